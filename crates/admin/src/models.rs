//! The model registry's REST surface:
//! - `POST /api/models/{name}`: upload an ONNX file (raw body,
//!   `application/octet-stream`); the new version becomes the default;
//! - `GET /api/models` and `GET /api/models/{name}`: versions, sizes,
//!   checksums, upload times, signatures and the default;
//! - `POST /api/models/{name}/default` with `{"version": N}`: roll back or
//!   forward;
//! - `DELETE /api/models/{name}/versions/{version}`: drop a version that is
//!   not the default.
//!
//! Writes need the admin token and go through the Raft log.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use boat_raft::catalog::ModelEntry;
use boat_raft::{
    Command, CommandResult, ModelChange, RefusalKind, ServingCommand, ServingResult, UploadChunk, UploadModel,
    UPLOAD_CHUNK_BYTES,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::require_admin;
use crate::consistency::Consistent;
use crate::error::{ApiError, ErrorKind};
use crate::extract::{read_body, JsonBody};
use crate::inference::{now_ms, write_error};
use crate::server::AppState;

const MAX_NAME_LEN: usize = 64;

/// Model names: 1 to 64 of `A-Z a-z 0-9 _ - .`, not starting with a dot.
pub fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::unprocessable(format!(
            "model name {name:?} must be 1 to {MAX_NAME_LEN} of A-Z a-z 0-9 _ - . and not start with a dot"
        )))
    }
}

fn entry_json(app: &AppState, name: &str, entry: &ModelEntry) -> Value {
    let registry = app.node.executor().registry();
    let versions: Vec<Value> = entry
        .versions
        .iter()
        .map(|(v, r)| {
            let meta = registry.meta(name, *v);
            json!({
                "version": v,
                "default": entry.default == Some(*v),
                "sha256": r.sha256,
                "size_bytes": r.size_bytes,
                "uploaded_at_ms": r.uploaded_at_ms,
                "index": r.index,
                "builtin": r.builtin,
                "loaded": meta.is_some(),
                "batch_invariant": registry.batch_invariant(name, *v),
                "inputs": meta.as_ref().map(|m| json!(m.inputs)),
                "outputs": meta.as_ref().map(|m| json!(m.outputs)),
            })
        })
        .collect();
    json!({"name": name, "default_version": entry.default, "versions": versions})
}

pub async fn list(State(app): State<AppState>, _: Consistent) -> Json<Value> {
    let state = app.node.state().read();
    let models: Vec<Value> = state.serving.catalog.models.iter().map(|(n, e)| entry_json(&app, n, e)).collect();
    Json(json!({ "models": models }))
}

pub async fn show(
    State(app): State<AppState>,
    _: Consistent,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let state = app.node.state().read();
    let entry = state
        .serving
        .catalog
        .models
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("unknown model {name:?}")))?;
    Ok(Json(entry_json(&app, &name, entry)))
}

/// Appends a model command and waits for its result.
async fn append(app: &AppState, cmd: ServingCommand) -> Result<CommandResult, ApiError> {
    let timeout = app.config.write_timeout;
    let written = tokio::select! {
        biased;
        w = tokio::time::timeout(timeout, app.node.write(Command::Serving(cmd))) => w,
        _ = app.node.quorum_lost() => {
            return Err(ApiError::unavailable("this leader lost contact with a majority; check GET /api/models and retry", 1))
        }
    };
    match written {
        Err(_) => Err(ApiError::unavailable(format!("not committed within {timeout:?}; check GET /api/models"), 1)),
        Ok(Err(e)) => Err(write_error(e, None)),
        Ok(Ok(CommandResult::Refused(r))) => Err(match r.kind {
            RefusalKind::NotFound => ApiError::not_found(r.message),
            RefusalKind::Conflict => ApiError::conflict(r.message),
        }),
        Ok(Ok(result)) => Ok(result),
    }
}

/// Appends a model change and returns its effect.
async fn write(app: &AppState, cmd: ServingCommand) -> Result<ModelChange, ApiError> {
    match append(app, cmd).await? {
        CommandResult::Serving(ServingResult::ModelChanged(c)) => Ok(c),
        other => Err(ApiError::internal(format!("unexpected result {other:?}"))),
    }
}

#[tracing::instrument(skip_all, fields(model = %name))]
pub async fn upload(
    State(app): State<AppState>,
    Path(name): Path<String>,
    req: Request<Body>,
) -> Result<Response, ApiError> {
    require_admin(&app.config, req.headers())?;
    check_name(&name)?;
    if !app.node.is_leader() {
        let s = app.node.status();
        return Err(ApiError::not_leader(s.leader_id, s.leader_http));
    }
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type.split(';').next().unwrap_or("").trim() != "application/octet-stream" {
        return Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            format!("send the ONNX file as Content-Type: application/octet-stream, not {content_type:?}"),
        ));
    }
    let bytes = read_body(req.into_body(), app.config.max_model_bytes, "model file").await?;
    let bytes = bytes.to_vec();
    // Loading the model is the validation; it is CPU work, off the runtime.
    let registry = app.node.executor().registry().clone();
    let (signature, bytes) = tokio::task::spawn_blocking(move || (registry.validate(&bytes), bytes))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let signature = signature.map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let sha256 = signature.sha256.clone();
    tracing::info!(bytes = bytes.len(), %sha256, "model upload validated");
    // The file travels as chunk entries, then one entry that completes it,
    // so that no single append is large.
    let upload_id = rand::random::<u64>();
    let mut chunks = 0u32;
    for piece in bytes.chunks(UPLOAD_CHUNK_BYTES) {
        let chunk = UploadChunk { upload_id, seq: chunks, at_ms: now_ms(), bytes: piece.to_vec() };
        append(&app, ServingCommand::UploadChunk(chunk)).await?;
        chunks += 1;
    }
    let done = UploadModel { name: name.clone(), upload_id, chunks, sha256: sha256.clone(), uploaded_at_ms: now_ms() };
    let change = write(&app, ServingCommand::UploadModel(done)).await?;
    let body = json!({
        "name": name,
        "version": change.version,
        "default_version": change.default_version,
        "sha256": sha256,
        "size_bytes": signature.size_bytes,
        "inputs": signature.inputs,
        "outputs": signature.outputs,
        "index": change.index,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultBody {
    pub version: u64,
}

pub async fn set_default(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<DefaultBody>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&app.config, &headers)?;
    let change = write(&app, ServingCommand::SetDefault { name: name.clone(), version: body.version }).await?;
    Ok(Json(json!({"name": name, "default_version": change.default_version, "index": change.index})))
}

pub async fn delete_version(
    State(app): State<AppState>,
    Path((name, version)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&app.config, &headers)?;
    let change = write(&app, ServingCommand::DeleteVersion { name: name.clone(), version }).await?;
    Ok(Json(
        json!({"name": name, "deleted_version": version, "default_version": change.default_version, "index": change.index}),
    ))
}
