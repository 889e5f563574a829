//! The one prediction service behind every surface (Boat's `/predict`, the
//! Open Inference Protocol's `/v2/.../infer`): leader check, model
//! resolution, validation before anything is committed, batching, and
//! waiting for the commit or the result.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use boat_raft::{PredictOutcome, PredictRequest, PredictResult, WriteError};
use boat_serving::{ServingError, Tensor};
use serde_json::Value;

use crate::error::ApiError;
use crate::server::AppState;

/// What the client sent as input.
pub enum Inputs {
    /// Boat's `{"input": ...}` form, for single-input models.
    Boat(Value),
    /// OIP tensors.
    Tensors(Vec<Tensor>),
}

/// Wait for the result, or answer as soon as the request is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Wait,
    Async,
}

/// A prediction to make.
pub struct Call {
    pub model: String,
    /// Pinned version, or the default at the request's log index.
    pub version: Option<u64>,
    pub inputs: Inputs,
    pub outputs: Option<Vec<String>>,
    /// Idempotency key.
    pub key: Option<String>,
    pub mode: Mode,
    /// Path to redirect to when this node is not the leader.
    pub path: String,
}

pub enum Answer {
    Done(PredictOutcome),
    Accepted { id: String, index: u64, term: u64 },
}

fn new_request_id() -> String {
    format!("req-{:032x}", rand::random::<u128>())
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Redirect to the leader, or 503 when none is known.
pub fn not_leader(leader_id: Option<u64>, leader_http: Option<String>, path: &str) -> ApiError {
    match (leader_id, leader_http) {
        (Some(id), Some(http)) => {
            let mut e =
                ApiError::new(StatusCode::TEMPORARY_REDIRECT, format!("node {id} is the leader; send writes there"))
                    .with("leader_id", id)
                    .with("leader_http", http.clone());
            e.location = Some(format!("http://{http}{path}"));
            e
        }
        _ => ApiError::unavailable("no leader is known right now; an election is probably under way", 1),
    }
}

/// Maps a write failure to its HTTP answer.
pub fn write_error(e: WriteError, path: &str, id: Option<&str>) -> ApiError {
    let e = match e {
        WriteError::NotLeader { leader_id, leader_http } => return not_leader(leader_id, leader_http, path),
        WriteError::Overloaded => {
            let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too many requests are queued; retry shortly");
            e.retry_after_s = Some(1);
            e
        }
        WriteError::Lost => ApiError::unavailable(
            "leadership changed before the request committed; retry (with the same idempotency key)",
            1,
        ),
        WriteError::Fatal(m) => ApiError::unavailable(format!("this node's Raft stopped: {m}"), 1),
    };
    match id {
        Some(id) => e.with("id", id),
        None => e,
    }
}

/// The client error a recorded outcome stands for, if it is not an output.
pub fn outcome_error(o: &PredictOutcome) -> Option<ApiError> {
    let e = match &o.result {
        PredictResult::Output(_) => return None,
        PredictResult::InvalidInput(m) => ApiError::unprocessable(format!("invalid input: {m}")),
        PredictResult::ModelError(m) => ApiError::unprocessable(format!("the model failed on this input: {m}")),
        PredictResult::UnknownModel(m) => ApiError::new(StatusCode::NOT_FOUND, m.clone()),
        PredictResult::KeyConflict(m) => ApiError::new(StatusCode::CONFLICT, m.clone()),
    };
    Some(
        e.with("id", o.id.clone())
            .with("model", o.model.clone())
            .with("version", o.version)
            .with("index", o.index)
            .with("term", o.term),
    )
}

fn serving_error(e: ServingError) -> ApiError {
    match e {
        ServingError::InvalidInput(m) => ApiError::unprocessable(m),
        ServingError::UnknownModel { name, version } => {
            ApiError::new(StatusCode::NOT_FOUND, format!("model {name:?} version {version} is not loaded here"))
        }
        other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

fn count(model: &str, outcome: &'static str) {
    metrics::counter!("boat_requests_total", "model" => model.to_string(), "outcome" => outcome).increment(1);
}

impl AppState {
    /// Validates, queues and waits for one prediction.
    pub async fn infer(&self, call: Call) -> Result<Answer, ApiError> {
        let model = call.model.clone();
        let result = self.infer_inner(call).await;
        let label = match &result {
            Ok(Answer::Done(o)) if o.duplicate => "duplicate",
            Ok(Answer::Done(o)) if matches!(o.result, PredictResult::Output(_)) => "ok",
            Ok(Answer::Done(_)) => "rejected_by_model",
            Ok(Answer::Accepted { .. }) => "accepted",
            Err(e) if e.status == StatusCode::TEMPORARY_REDIRECT => "redirected",
            Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS => "overloaded",
            Err(e) if e.status.is_client_error() => "invalid",
            Err(_) => "unavailable",
        };
        count(&model, label);
        result
    }

    async fn infer_inner(&self, call: Call) -> Result<Answer, ApiError> {
        let node = &self.node;
        if !node.is_leader() {
            let s = node.status();
            return Err(not_leader(s.leader_id, s.leader_http, &call.path));
        }
        let resolved = node.state().read().catalog.resolve(&call.model, call.version);
        let version =
            resolved.map_err(|m| ApiError::new(StatusCode::NOT_FOUND, m).with("model", call.model.clone()))?;
        let registry = node.executor().registry();
        let inputs = match call.inputs {
            Inputs::Boat(v) => registry.boat_inputs(&call.model, version, &v),
            Inputs::Tensors(t) => registry.check(&call.model, version, t),
        }
        .map_err(serving_error)?;
        if let Some(wanted) = &call.outputs {
            let meta = registry
                .meta(&call.model, version)
                .ok_or_else(|| serving_error(ServingError::UnknownModel { name: call.model.clone(), version }))?;
            boat_serving::oip::check_requested_outputs(&meta, wanted).map_err(serving_error)?;
        }
        let id = call.key.unwrap_or_else(new_request_id);
        let request = PredictRequest { id: id.clone(), inputs, outputs: call.outputs };
        let ticket =
            node.submit(&call.model, call.version, request).map_err(|e| write_error(e, &call.path, Some(&id)))?;

        let timeout = self.config.write_timeout;
        let timed_out = || {
            ApiError::unavailable(
                format!(
                    "not committed within {timeout:?}; the outcome is unknown, retry with the same idempotency key"
                ),
                1,
            )
            .with("id", id.clone())
        };
        let gone =
            || ApiError::unavailable("the request was dropped while this node stopped", 1).with("id", id.clone());
        match call.mode {
            Mode::Wait => match tokio::time::timeout(timeout, ticket.outcome).await {
                Err(_) => Err(timed_out()),
                Ok(Err(_)) => Err(gone()),
                Ok(Ok(Err(e))) => Err(write_error(e, &call.path, Some(&id))),
                Ok(Ok(Ok(outcome))) => Ok(Answer::Done(outcome)),
            },
            Mode::Async => {
                self.pending_insert(&id);
                let answer = match tokio::time::timeout(timeout, ticket.committed).await {
                    Err(_) => Err(timed_out()),
                    Ok(Err(_)) => Err(gone()),
                    Ok(Ok(Err(e))) => Err(write_error(e, &call.path, Some(&id))),
                    Ok(Ok(Ok(log_id))) => {
                        Ok(Answer::Accepted { id: id.clone(), index: log_id.index, term: log_id.leader_id.term })
                    }
                };
                // Forget the pending mark once the outcome is in (or lost).
                let (pending, outcome) = (self.clone(), ticket.outcome);
                let pending_id = id.clone();
                tokio::spawn(async move {
                    let _ = outcome.await;
                    pending.pending_remove(&pending_id);
                });
                answer
            }
        }
    }

    fn pending_insert(&self, id: &str) {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_string());
    }

    fn pending_remove(&self, id: &str) {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    pub fn is_pending(&self, id: &str) -> bool {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).contains(id)
    }
}
