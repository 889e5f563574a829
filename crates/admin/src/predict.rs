//! `POST /predict`: Boat's prediction API.
//!
//! The leader appends the request to the Raft log, waits until it is
//! committed and applied, and answers with the model's output and the log
//! position. A follower redirects to the leader (307); with no leader known
//! the answer is 503 with `Retry-After`.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use boat_raft::{PredictCommand, PredictOutcome, PredictResult, WriteError, ECHO_MODEL};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::server::AppState;

/// Header carrying a client's idempotency key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
const MAX_KEY_LEN: usize = 256;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictBody {
    /// The model's input.
    pub input: Value,
    /// Model name; the echo model when absent.
    #[serde(default)]
    pub model: Option<String>,
    /// Idempotency key, as an alternative to the `Idempotency-Key` header.
    #[serde(default)]
    pub id: Option<String>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn new_request_id() -> String {
    format!("req-{:032x}", rand::random::<u128>())
}

/// The idempotency key from the header or the body; they must agree.
fn request_key(headers: &HeaderMap, body_id: Option<String>) -> Result<Option<String>, ApiError> {
    let header = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(v) => Some(
            v.to_str().map_err(|_| ApiError::bad_request("Idempotency-Key must be visible ASCII"))?.to_string(),
        ),
    };
    let key = match (header, body_id) {
        (Some(h), Some(b)) if h != b => {
            return Err(ApiError::bad_request("Idempotency-Key header and body \"id\" differ; send one of them"))
        }
        (Some(h), _) => Some(h),
        (None, b) => b,
    };
    if let Some(k) = &key {
        if k.is_empty() || k.len() > MAX_KEY_LEN {
            return Err(ApiError::bad_request(format!("idempotency key must be 1 to {MAX_KEY_LEN} bytes")));
        }
    }
    Ok(key)
}

/// Redirect to the leader, or 503 when none is known.
pub fn not_leader(leader_id: Option<u64>, leader_http: Option<String>, path: &str) -> ApiError {
    match (leader_id, leader_http) {
        (Some(id), Some(http)) => {
            let mut e = ApiError::new(StatusCode::TEMPORARY_REDIRECT, format!("node {id} is the leader; send writes there"))
                .with("leader_id", id)
                .with("leader_http", http.clone());
            e.location = Some(format!("http://{http}{path}"));
            e
        }
        _ => ApiError::unavailable("no leader is known right now; an election is probably under way", 1),
    }
}

#[tracing::instrument(skip_all, fields(id, model))]
pub async fn predict(
    State(app): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PredictBody>,
) -> Result<Json<Value>, ApiError> {
    let node = &app.node;
    let status = node.status();
    if !status.is_leader {
        return Err(not_leader(status.leader_id, status.leader_http, "/predict"));
    }
    let model = body.model.unwrap_or_else(|| ECHO_MODEL.to_string());
    if !node.executor().has_model(&model) {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("unknown model {model:?}")).with("model", model));
    }
    let id = request_key(&headers, body.id)?.unwrap_or_else(new_request_id);
    tracing::Span::current().record("id", id.as_str()).record("model", model.as_str());
    let cmd = PredictCommand { id: id.clone(), model, input_json: body.input.to_string(), proposed_at_ms: now_ms() };

    let timeout = app.config.write_timeout;
    let outcome = match tokio::time::timeout(timeout, node.predict(cmd)).await {
        Err(_) => {
            return Err(ApiError::unavailable(
                format!(
                    "not committed within {timeout:?}; the outcome is unknown, retry with the same idempotency key"
                ),
                1,
            )
            .with("id", id))
        }
        Ok(Err(WriteError::NotLeader { leader_id, leader_http })) => {
            return Err(not_leader(leader_id, leader_http, "/predict"))
        }
        Ok(Err(WriteError::Fatal(e))) => {
            return Err(ApiError::unavailable(format!("this node's Raft stopped: {e}"), 1))
        }
        Ok(Ok(outcome)) => outcome,
    };
    outcome_response(outcome, node.id())
}

/// Renders an applied outcome: 200 with the output, or the client error the
/// model raised (recorded identically on every replica).
fn outcome_response(o: PredictOutcome, node_id: u64) -> Result<Json<Value>, ApiError> {
    let meta = |e: ApiError| {
        e.with("id", o.id.clone()).with("index", o.index).with("term", o.term).with("model", o.model.clone())
    };
    match &o.result {
        PredictResult::Output(text) => {
            let output: Value = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone()));
            Ok(Json(json!({
                "id": o.id,
                "model": o.model,
                "output": output,
                "index": o.index,
                "term": o.term,
                "duplicate": o.duplicate,
                "node_id": node_id,
            })))
        }
        PredictResult::InvalidInput(m) => Err(meta(ApiError::unprocessable(format!("invalid input: {m}")))),
        PredictResult::ModelError(m) => Err(meta(ApiError::unprocessable(format!("the model failed on this input: {m}")))),
        PredictResult::UnknownModel(m) => Err(meta(ApiError::new(StatusCode::NOT_FOUND, format!("unknown model {m:?}")))),
        PredictResult::KeyConflict(m) => Err(meta(ApiError::new(StatusCode::CONFLICT, m.clone()))),
    }
}
