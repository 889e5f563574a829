//! `GET /predictions/{id}`: the result backend for asynchronous requests
//! (and for any recent request). Results live in the replicated state,
//! bounded by count and age, so they survive failover, and any node answers.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::consistency::Consistent;
use crate::error::ApiError;
use crate::inference::outcome_error;
use crate::predict::outcome_json;
use crate::server::AppState;

/// A linearizable read by default: once a request was answered (200 or
/// 202) by any node, its record is found on every node.
#[utoipa::path(get, path = "/predictions/{id}", tag = "predict", params(("id" = String, Path, description = "request id or idempotency key")), description = "A stored result (linearizable unless ?consistency=stale). Required role: none.", responses((status = 200, description = "done or failed"), (status = 202, description = "pending (stale reads only)"), (status = 404, description = "unknown or expired", body = crate::api::ErrorBody)), extensions(("x-required-roles" = json!([]))))]
pub async fn get(State(app): State<AppState>, _: Consistent, Path(id): Path<String>) -> Result<Response, ApiError> {
    let found = app.node.prediction(&id);
    if let Some(outcome) = found {
        let mut body = outcome_json(&outcome, app.node.id());
        match outcome_error(&outcome) {
            None => body["status"] = json!("done"),
            Some(e) => {
                body["status"] = json!("failed");
                body["error"] = json!(e.message);
                body["error_status"] = json!(e.http_status().as_u16());
            }
        }
        return Ok(Json(body).into_response());
    }
    // Only a stale read on the accepting node can get here for a request
    // that is committed but not applied yet.
    if app.is_pending(&id) {
        return Ok((StatusCode::ACCEPTED, Json(json!({"id": id, "status": "pending"}))).into_response());
    }
    Err(ApiError::not_found("no result for this id: unknown or expired (or, for a stale read, not applied here yet)")
        .with("id", id))
}
