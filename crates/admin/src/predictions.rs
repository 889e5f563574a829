//! `GET /predictions/{id}`: the result backend for asynchronous requests
//! (and for any recent request). Results live in the replicated state,
//! bounded by count and age, so they survive failover.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::ApiError;
use crate::inference::{not_leader, outcome_error};
use crate::predict::outcome_json;
use crate::server::AppState;

pub async fn get(State(app): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let found = app.node.state().read().outcome(&id).cloned();
    if let Some(outcome) = found {
        let mut body = outcome_json(&outcome, app.node.id());
        match outcome_error(&outcome) {
            None => body["status"] = json!("done"),
            Some(e) => {
                body["status"] = json!("failed");
                body["error"] = json!(e.message);
                body["error_status"] = json!(e.status.as_u16());
            }
        }
        return Ok(Json(body).into_response());
    }
    if app.is_pending(&id) {
        return Ok((StatusCode::ACCEPTED, Json(json!({"id": id, "status": "pending"}))).into_response());
    }
    let status = app.node.status();
    if !status.is_leader && status.leader_id.is_some() {
        return Err(not_leader(status.leader_id, status.leader_http, &format!("/predictions/{id}")));
    }
    Err(ApiError::new(StatusCode::NOT_FOUND, "no result for this id: unknown, expired, or not applied yet")
        .with("id", id))
}
