//! The Open Inference Protocol (KServe v2) over HTTP: health, model
//! metadata and readiness, and inference.
//!
//! Inference goes through the same service as `/predict`: validated on the
//! leader, batched into a log entry, applied on every replica. Set
//! `"parameters": {"async": true}` (or `?async=true`) for a 202 at commit
//! time; the result is then at `GET /predictions/{id}`. An idempotency key
//! comes in the `Idempotency-Key` header or as
//! `"parameters": {"idempotency_key": "..."}`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use boat_raft::PredictResult;
use boat_serving::oip::{self, InferRequest};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::inference::{outcome_error, Answer, Call, Inputs, Mode};
use crate::predict::{accepted, async_mode, request_key};
use crate::server::AppState;

pub async fn server_metadata() -> Json<Value> {
    Json(json!({"name": "boat", "version": env!("CARGO_PKG_VERSION"), "extensions": ["async", "idempotency"]}))
}

pub async fn live() -> Json<Value> {
    Json(json!({"live": true}))
}

/// Ready when a leader is known and this replica has not diverged.
pub async fn ready(State(app): State<AppState>) -> Response {
    let s = app.node.status();
    let problem = if s.leader_id.is_none() {
        Some("no leader is known")
    } else if s.divergence.is_some() {
        Some("this replica's state differs from the leader's")
    } else {
        None
    };
    match problem {
        None => Json(json!({"ready": true})).into_response(),
        Some(p) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"ready": false, "error": p}))).into_response(),
    }
}

fn parse_version(v: &str) -> Result<u64, ApiError> {
    v.parse().map_err(|_| ApiError::new(StatusCode::NOT_FOUND, format!("version {v:?} is not a number")))
}

/// The resolved version and its metadata, or 404.
fn resolve(
    app: &AppState,
    name: &str,
    version: Option<u64>,
) -> Result<(u64, boat_serving::ModelMeta, Vec<u64>), ApiError> {
    let state = app.node.state().read();
    let not_found = |m: String| ApiError::new(StatusCode::NOT_FOUND, m);
    let v = state.catalog.resolve(name, version).map_err(not_found)?;
    let versions = state.catalog.models.get(name).map(|e| e.versions.keys().copied().collect()).unwrap_or_default();
    let meta = app
        .node
        .executor()
        .registry()
        .meta(name, v)
        .ok_or_else(|| not_found(format!("model {name:?} version {v} is not loaded on this node")))?;
    Ok((v, meta, versions))
}

pub async fn model_metadata(State(app): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    let (_, meta, versions) = resolve(&app, &name, None)?;
    Ok(Json(oip::model_metadata(&meta, &versions)))
}

pub async fn version_metadata(
    State(app): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (_, meta, versions) = resolve(&app, &name, Some(parse_version(&version)?))?;
    Ok(Json(oip::model_metadata(&meta, &versions)))
}

pub async fn model_ready(State(app): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    let (v, _, _) = resolve(&app, &name, None)?;
    Ok(Json(json!({"name": name, "version": v.to_string(), "ready": true})))
}

pub async fn version_ready(
    State(app): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (v, _, _) = resolve(&app, &name, Some(parse_version(&version)?))?;
    Ok(Json(json!({"name": name, "version": v.to_string(), "ready": true})))
}

pub async fn infer(
    State(app): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let path = format!("/v2/models/{name}/infer");
    run_infer(app, name, None, path, query, headers, body).await
}

pub async fn version_infer(
    State(app): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let path = format!("/v2/models/{name}/versions/{version}/infer");
    let v = parse_version(&version)?;
    run_infer(app, name, Some(v), path, query, headers, body).await
}

async fn run_infer(
    app: AppState,
    model: String,
    version: Option<u64>,
    path: String,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Value,
) -> Result<Response, ApiError> {
    let req = InferRequest::from_json(&body).map_err(|e| ApiError::unprocessable(e.to_string()))?;
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
    let call = Call {
        model: model.clone(),
        version,
        inputs: Inputs::Tensors(req.inputs),
        outputs: requested,
        key,
        mode,
        path,
    };
    match app.infer(call).await? {
        Answer::Accepted { id, index, term } => Ok(accepted(id, index, term)),
        Answer::Done(o) => {
            if let Some(e) = outcome_error(&o) {
                return Err(e);
            }
            let PredictResult::Output(outputs) = &o.result else {
                return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "an outcome without outputs"));
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
