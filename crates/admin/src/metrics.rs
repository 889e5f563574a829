//! `GET /metrics`: Prometheus text format. Every metric is described once
//! here, with its unit.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

use crate::server::AppState;

/// Registers the descriptions of every `boat_` metric.
pub fn describe() {
    describe_counter!("boat_requests_total", Unit::Count, "Prediction requests by model and outcome");
    describe_histogram!("boat_queue_seconds", Unit::Seconds, "Time a request waited in the leader's batching queue");
    describe_histogram!("boat_commit_seconds", Unit::Seconds, "Time from proposing a batch entry to its commit");
    describe_histogram!("boat_inference_seconds", Unit::Seconds, "Time of one ONNX Runtime call for a batch, by model");
    describe_histogram!("boat_batch_size", Unit::Count, "Requests per ONNX Runtime call, by model");
    describe_histogram!("boat_entry_requests", Unit::Count, "Requests packed into one log entry by the leader");
    describe_gauge!("boat_raft_term", Unit::Count, "Current Raft term");
    describe_gauge!("boat_raft_commit_index", Unit::Count, "Highest committed log index known here");
    describe_gauge!("boat_raft_last_applied", Unit::Count, "Highest log index applied here");
    describe_gauge!("boat_raft_is_leader", Unit::Count, "1 when this node is the leader");
    describe_counter!("boat_raft_leader_changes_total", Unit::Count, "Times this node saw a new leader");
    describe_counter!(
        "boat_divergence_total",
        Unit::Count,
        "Checkpoints that showed this replica differs from the leader"
    );
}

pub async fn render(State(app): State<AppState>) -> Response {
    match &app.metrics {
        Some(handle) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response(),
        None => {
            crate::error::ApiError::new(StatusCode::NOT_FOUND, "metrics are not enabled on this node").into_response()
        }
    }
}
