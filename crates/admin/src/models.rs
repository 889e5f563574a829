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
//! Writes need a SUPERADMIN, ADMIN or MODEL_DEVELOPER token and go through
//! the Raft log.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use boat_raft::catalog::ModelEntry;
use boat_raft::{Command, CommandResult, ModelChange, ServingCommand, ServingResult, UploadModel};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::MODEL_WRITERS;
use crate::consistency::Consistent;
use crate::error::{ApiError, ErrorKind};
use crate::extract::{read_body, JsonBody};
use crate::inference::now_ms;
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

#[utoipa::path(get, path = "/api/models", tag = "models",
    description = "Every model with its versions, sizes, checksums, signatures and default. Required role: none.",
    responses((status = 200, description = "the models")), extensions(("x-required-roles" = json!([]))))]
pub async fn list(State(app): State<AppState>, _: Consistent) -> Json<Value> {
    Json(json!({ "models": app.models_json() }))
}

#[utoipa::path(get, path = "/api/models/{name}", tag = "models", params(("name" = String, Path, description = "model name")),
    description = "One model's versions. Required role: none.",
    responses((status = 200, description = "the model"), (status = 404, description = "no such model", body = crate::api::ErrorBody)),
    extensions(("x-required-roles" = json!([]))))]
pub async fn show(
    State(app): State<AppState>,
    _: Consistent,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    app.model_json(&name).map(Json)
}

async fn append(app: &AppState, cmd: ServingCommand) -> Result<CommandResult, ApiError> {
    app.append(Command::Serving(cmd), "GET /api/models").await
}

/// Appends a model change and returns its effect.
async fn write(app: &AppState, cmd: ServingCommand) -> Result<ModelChange, ApiError> {
    match append(app, cmd).await? {
        CommandResult::Serving(ServingResult::ModelChanged(c)) => Ok(c),
        other => Err(ApiError::internal(format!("unexpected result {other:?}"))),
    }
}

#[utoipa::path(post, path = "/api/models/{name}", tag = "models", params(("name" = String, Path, description = "model name")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the ONNX file"),
    description = "Upload a new version of a model (it becomes the default). Required role: SUPERADMIN, ADMIN or MODEL_DEVELOPER.",
    responses((status = 201, description = "the new version"), (status = 422, description = "not a loadable ONNX file", body = crate::api::ErrorBody),
              (status = 401, description = "no valid token", body = crate::api::ErrorBody), (status = 403, description = "role too low", body = crate::api::ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN", "MODEL_DEVELOPER"]))))]
#[tracing::instrument(skip_all, fields(model = %name))]
pub async fn upload(
    State(app): State<AppState>,
    Path(name): Path<String>,
    req: Request<Body>,
) -> Result<Response, ApiError> {
    app.authorize_write(req.headers(), MODEL_WRITERS)?;
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type.split(';').next().unwrap_or("").trim() != "application/octet-stream" {
        return Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            format!("send the ONNX file as Content-Type: application/octet-stream, not {content_type:?}"),
        ));
    }
    let bytes = read_body(req.into_body(), app.config.max_model_bytes, "model file").await?;
    let body = app.upload_model(&name, bytes.to_vec()).await?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

impl AppState {
    /// Validates an ONNX file by loading it, then stores it as a new version
    /// of `name` through the log; the caller was authorized.
    pub async fn upload_model(&self, name: &str, bytes: Vec<u8>) -> Result<Value, ApiError> {
        check_name(name)?;
        self.require_leader()?;
        if self.node.state().read().serving.apps.apps.contains_key(name) {
            return Err(ApiError::conflict(format!("{name:?} is an app's name; a model needs its own")));
        }
        // Loading the model is the validation; it is CPU work, off the runtime.
        let registry = self.node.executor().registry().clone();
        let (signature, bytes) = tokio::task::spawn_blocking(move || (registry.validate(&bytes), bytes))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let signature = signature.map_err(|e| ApiError::unprocessable(e.to_string()))?;
        let sha256 = signature.sha256.clone();
        tracing::info!(bytes = bytes.len(), %sha256, "model upload validated");
        // The file travels as chunk entries, then one entry that completes it.
        let (upload_id, chunks) = self.stage_upload(&bytes, "GET /api/models").await?;
        let done =
            UploadModel { name: name.to_string(), upload_id, chunks, sha256: sha256.clone(), uploaded_at_ms: now_ms() };
        let change = write(self, ServingCommand::UploadModel(done)).await?;
        Ok(json!({
            "name": name,
            "version": change.version,
            "default_version": change.default_version,
            "sha256": sha256,
            "size_bytes": signature.size_bytes,
            "inputs": signature.inputs,
            "outputs": signature.outputs,
            "index": change.index,
        }))
    }

    /// Makes `version` the default of `name`.
    pub async fn set_default_version(&self, name: &str, version: u64) -> Result<ModelChange, ApiError> {
        write(self, ServingCommand::SetDefault { name: name.to_string(), version }).await
    }

    /// Deletes a version that is neither the default nor an app's member.
    pub async fn delete_model_version(&self, name: &str, version: u64) -> Result<ModelChange, ApiError> {
        write(self, ServingCommand::DeleteVersion { name: name.to_string(), version }).await
    }

    /// One model as JSON (as `GET /api/models/{name}` shows it).
    pub fn model_json(&self, name: &str) -> Result<Value, ApiError> {
        let state = self.node.state().read();
        let entry = state
            .serving
            .catalog
            .models
            .get(name)
            .ok_or_else(|| ApiError::not_found(format!("unknown model {name:?}")))?;
        Ok(entry_json(self, name, entry))
    }

    /// Every model as JSON.
    pub fn models_json(&self) -> Vec<Value> {
        let state = self.node.state().read();
        state.serving.catalog.models.iter().map(|(n, e)| entry_json(self, n, e)).collect()
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultBody {
    pub version: u64,
}

#[utoipa::path(post, path = "/api/models/{name}/default", tag = "models", params(("name" = String, Path, description = "model name")),
    request_body = DefaultBody,
    description = "Make a version the default (roll back or forward). Required role: SUPERADMIN, ADMIN or MODEL_DEVELOPER.",
    responses((status = 200, description = "changed"), (status = 404, description = "no such version", body = crate::api::ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN", "MODEL_DEVELOPER"]))))]
pub async fn set_default(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<DefaultBody>,
) -> Result<Json<Value>, ApiError> {
    app.authorize_write(&headers, MODEL_WRITERS)?;
    let change = app.set_default_version(&name, body.version).await?;
    Ok(Json(json!({"name": name, "default_version": change.default_version, "index": change.index})))
}

#[utoipa::path(delete, path = "/api/models/{name}/versions/{version}", tag = "models",
    params(("name" = String, Path, description = "model name"), ("version" = u64, Path, description = "version")),
    description = "Delete a version that is neither the default nor an app's member. Required role: SUPERADMIN, ADMIN or MODEL_DEVELOPER.",
    responses((status = 200, description = "deleted"), (status = 409, description = "the default or in use", body = crate::api::ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN", "MODEL_DEVELOPER"]))))]
pub async fn delete_version(
    State(app): State<AppState>,
    Path((name, version)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.authorize_write(&headers, MODEL_WRITERS)?;
    let change = app.delete_model_version(&name, version).await?;
    Ok(Json(
        json!({"name": name, "deleted_version": version, "default_version": change.default_version, "index": change.index}),
    ))
}
