//! The Open Inference Protocol (KServe v2) over HTTP: health, model
//! metadata and readiness, and inference.
//!
//! Inference goes through the same service as `/predict`: validated on the
//! leader, batched into a log entry, applied on every replica. Set
//! `"parameters": {"async": true}` (or `?async=true`) for a 202 at commit
//! time; the result is then at `GET /predictions/{id}`. An idempotency key
//! comes in the `Idempotency-Key` header or as
//! `"parameters": {"idempotency_key": "..."}`. Model metadata and readiness
//! are linearizable reads by default (see `consistency`); the health probes
//! are local.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use boat_raft::PredictResult;
use boat_serving::oip::{self, InferRequest, ModelMetadata};
use serde_json::{json, Value};

use crate::consistency::Consistent;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::inference::{outcome_error, Answer, Call, Inputs, Mode};
use crate::predict::{accepted, async_mode, request_key};
use crate::server::AppState;
use crate::service::{SERVER_EXTENSIONS, SERVER_NAME};

#[utoipa::path(get, path = "/v2", tag = "open inference protocol", description = "Server metadata (name, version, extensions). Required role: none.", responses((status = 200, description = "metadata")), extensions(("x-required-roles" = json!([]))))]
pub async fn server_metadata() -> Json<Value> {
    Json(json!({"name": SERVER_NAME, "version": env!("CARGO_PKG_VERSION"), "extensions": SERVER_EXTENSIONS}))
}

#[utoipa::path(get, path = "/v2/health/live", tag = "open inference protocol", description = "Liveness. Required role: none.", responses((status = 200, description = "live")), extensions(("x-required-roles" = json!([]))))]
pub async fn live() -> Json<Value> {
    Json(json!({"live": true}))
}

/// Ready when a leader is known and this replica has not diverged (local).
#[utoipa::path(get, path = "/v2/health/ready", tag = "open inference protocol", description = "Readiness: a leader is known and this replica has not diverged. Required role: none.", responses((status = 200, description = "ready"), (status = 503, description = "not ready", body = crate::api::ErrorBody)), extensions(("x-required-roles" = json!([]))))]
pub async fn ready(State(app): State<AppState>) -> Response {
    match app.server_ready() {
        Ok(()) => Json(json!({"ready": true})).into_response(),
        Err(p) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"ready": false, "error": p}))).into_response(),
    }
}

/// A version in a path; a non-number names a version that does not exist.
pub fn parse_version(v: &str) -> Result<u64, ApiError> {
    v.parse().map_err(|_| ApiError::not_found(format!("version {v:?} is not a number")))
}

#[utoipa::path(get, path = "/v2/models/{name}", tag = "open inference protocol", params(("name" = String, Path, description = "model or app")), description = "Model metadata (linearizable unless ?consistency=stale). Required role: none.", responses((status = 200, description = "metadata"), (status = 404, description = "unknown model", body = crate::api::ErrorBody)), extensions(("x-required-roles" = json!([]))))]
pub async fn model_metadata(
    State(app): State<AppState>,
    _: Consistent,
    Path(name): Path<String>,
) -> Result<Json<ModelMetadata>, ApiError> {
    app.model_metadata(&name, None).map(Json)
}

#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}", tag = "open inference protocol", params(("name" = String, Path, description = "model"), ("version" = String, Path, description = "version")), description = "Metadata of one version. Required role: none.", responses((status = 200, description = "metadata"), (status = 404, description = "unknown model or version", body = crate::api::ErrorBody)), extensions(("x-required-roles" = json!([]))))]
pub async fn version_metadata(
    State(app): State<AppState>,
    _: Consistent,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<ModelMetadata>, ApiError> {
    app.model_metadata(&name, Some(parse_version(&version)?)).map(Json)
}

#[utoipa::path(get, path = "/v2/models/{name}/ready", tag = "open inference protocol", params(("name" = String, Path, description = "model")), description = "Whether the model can serve. Required role: none.", responses((status = 200, description = "ready"), (status = 404, description = "unknown model", body = crate::api::ErrorBody)), extensions(("x-required-roles" = json!([]))))]
pub async fn model_ready(
    State(app): State<AppState>,
    _: Consistent,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let v = app.model_ready(&name, None)?;
    Ok(Json(json!({"name": name, "version": v.to_string(), "ready": true})))
}

#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}/ready", tag = "open inference protocol", params(("name" = String, Path, description = "model"), ("version" = String, Path, description = "version")), description = "Whether the version can serve. Required role: none.", responses((status = 200, description = "ready"), (status = 404, description = "unknown model or version", body = crate::api::ErrorBody)), extensions(("x-required-roles" = json!([]))))]
pub async fn version_ready(
    State(app): State<AppState>,
    _: Consistent,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let v = app.model_ready(&name, Some(parse_version(&version)?))?;
    Ok(Json(json!({"name": name, "version": v.to_string(), "ready": true})))
}

#[utoipa::path(post, path = "/v2/models/{name}/infer", tag = "open inference protocol", params(("name" = String, Path, description = "model or app")), request_body(content = Object, description = "an OIP inference request: inputs (name, datatype, shape, data), optional outputs and parameters (async, idempotency_key)"), description = "Inference with the default version (or an app). Required role: none, unless an app requires a token.", responses((status = 200, description = "outputs with the log index and term"), (status = 202, description = "accepted (parameters.async)"), (status = 307, description = "not the leader"), (status = 422, description = "invalid input", body = crate::api::ErrorBody)), extensions(("x-required-roles" = json!([]))))]
pub async fn infer(
    State(app): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    run_infer(app, name, None, query, headers, body).await
}

#[utoipa::path(post, path = "/v2/models/{name}/versions/{version}/infer", tag = "open inference protocol", params(("name" = String, Path, description = "model"), ("version" = String, Path, description = "version")), request_body(content = Object, description = "an OIP inference request"), description = "Inference with a pinned version. Required role: none.", responses((status = 200, description = "outputs"), (status = 404, description = "unknown version", body = crate::api::ErrorBody), (status = 422, description = "invalid input", body = crate::api::ErrorBody)), extensions(("x-required-roles" = json!([]))))]
pub async fn version_infer(
    State(app): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let v = parse_version(&version)?;
    run_infer(app, name, Some(v), query, headers, body).await
}

async fn run_infer(
    app: AppState,
    model: String,
    version: Option<u64>,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Value,
) -> Result<Response, ApiError> {
    let small = crate::inference::json_is_small(&body);
    let decode = move || InferRequest::from_json(&body).map_err(|e| ApiError::unprocessable(e.to_string()));
    // Decoding a large request into tensors is CPU work: off the runtime.
    let req = if small {
        decode()?
    } else {
        tokio::task::spawn_blocking(decode).await.map_err(|e| ApiError::internal(e.to_string()))??
    };
    let param = |k: &str| req.parameters.as_ref().and_then(|p| p.get(k));
    let mode = match param("async") {
        Some(Value::Bool(true)) => Mode::Async,
        Some(Value::Bool(false)) => Mode::Wait,
        Some(other) => return Err(ApiError::unprocessable(format!("parameters.async must be a boolean, not {other}"))),
        None => async_mode(&query)?,
    };
    let body_key = match param("idempotency_key") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(ApiError::unprocessable(format!("parameters.idempotency_key must be a string, not {other}")))
        }
    };
    let key = request_key(&headers, body_key)?;
    let requested = req.requested_output_names();
    let token = crate::auth::bearer(&headers).map(str::to_string);
    let inputs = Inputs::Tensors(req.inputs);
    let call = Call { model: model.clone(), version, inputs, outputs: requested, key, mode, token };
    match app.infer(call).await? {
        Answer::Accepted { id, index, term } => Ok(accepted(id, index, term)),
        Answer::Done(o) => {
            if let Some(e) = outcome_error(&o) {
                return Err(e);
            }
            let PredictResult::Output(outputs) = &o.result else {
                return Err(ApiError::internal("an outcome without outputs"));
            };
            let echo_id = req.id.as_deref().unwrap_or(&o.id);
            let mut resp = oip::infer_response(&o.model, &o.version.to_string(), Some(echo_id), outputs, None);
            resp["parameters"] = json!({
                "request_id": o.id, "index": o.index, "term": o.term, "duplicate": o.duplicate, "node_id": app.node.id(),
            });
            Ok(Json(resp).into_response())
        }
    }
}
