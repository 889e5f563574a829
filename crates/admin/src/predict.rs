//! `POST /predict`: Boat's prediction API.
//!
//! The leader batches the request into a log entry, waits until it is
//! committed and applied, and answers with the model's output and the log
//! position. `?async=true` answers 202 as soon as the entry is committed; the
//! result is then at `GET /predictions/{id}`. A follower redirects to the
//! leader (307); with no leader known the answer is 503 with `Retry-After`.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use boat_raft::{PredictOutcome, PredictResult, ECHO_MODEL};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::inference::{outcome_error, Answer, Call, Inputs, Mode};
use crate::server::AppState;

/// Header carrying a client's idempotency key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
const MAX_KEY_LEN: usize = 256;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictBody {
    /// The model's input.
    #[schema(value_type = Object)]
    pub input: Value,
    /// Model name; the echo model when absent.
    #[serde(default)]
    pub model: Option<String>,
    /// Pin a version instead of using the model's default.
    #[serde(default)]
    pub version: Option<u64>,
    /// Idempotency key, as an alternative to the `Idempotency-Key` header.
    #[serde(default)]
    pub id: Option<String>,
}

/// The idempotency key from the header or the body; they must agree.
pub fn request_key(headers: &HeaderMap, body_id: Option<String>) -> Result<Option<String>, ApiError> {
    let header = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(v) => {
            Some(v.to_str().map_err(|_| ApiError::bad_request("Idempotency-Key must be visible ASCII"))?.to_string())
        }
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

/// Reads `?async=true|false` (absent means false).
pub fn async_mode(query: &HashMap<String, String>) -> Result<Mode, ApiError> {
    match query.get("async").map(String::as_str) {
        None | Some("false") | Some("0") => Ok(Mode::Wait),
        Some("true") | Some("1") | Some("") => Ok(Mode::Async),
        Some(other) => Err(ApiError::bad_request(format!("async must be true or false, not {other:?}"))),
    }
}

/// The 202 answer for an accepted asynchronous request.
pub fn accepted(id: String, index: u64, term: u64) -> Response {
    let url = format!("/predictions/{id}");
    let body = json!({"id": id, "status": "accepted", "index": index, "term": term, "result_url": url});
    let mut resp = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&url) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// Boat's JSON rendering of a successful outcome.
pub fn outcome_json(o: &PredictOutcome, node_id: u64) -> Value {
    let output = match &o.result {
        PredictResult::Output(outputs) => boat_serving::boat_output(outputs.clone()),
        _ => Value::Null,
    };
    json!({
        "id": o.id,
        "model": o.model,
        "version": o.version,
        "output": output,
        "index": o.index,
        "term": o.term,
        "duplicate": o.duplicate,
        "node_id": node_id,
    })
}

#[utoipa::path(post, path = "/predict", tag = "predict", request_body = PredictBody,
    description = "Predict with a model (or an app, by name). `?async=true` answers 202 once committed. Required role: none, unless an app requires a token.",
    responses((status = 200, description = "the model's answer with its log index and term"), (status = 202, description = "accepted (async)"),
              (status = 307, description = "not the leader; Location names it"), (status = 422, description = "invalid input", body = crate::api::ErrorBody)),
    extensions(("x-required-roles" = json!([]))))]
#[tracing::instrument(skip_all, fields(model))]
pub async fn predict(
    State(app): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PredictBody>,
) -> Result<Response, ApiError> {
    let mode = async_mode(&query)?;
    let model = body.model.unwrap_or_else(|| ECHO_MODEL.to_string());
    tracing::Span::current().record("model", model.as_str());
    let call = Call {
        model,
        version: body.version,
        inputs: Inputs::Boat(body.input),
        outputs: None,
        key: request_key(&headers, body.id)?,
        mode,
        token: crate::auth::bearer(&headers).map(str::to_string),
    };
    match app.infer(call).await? {
        Answer::Accepted { id, index, term } => Ok(accepted(id, index, term)),
        Answer::Done(o) => match outcome_error(&o) {
            Some(e) => Err(e),
            None => Ok(Json(outcome_json(&o, app.node.id())).into_response()),
        },
    }
}
