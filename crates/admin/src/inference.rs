//! The one prediction service behind every surface (Boat's `/predict`, the
//! Open Inference Protocol's `/v2/.../infer`): leader check, model
//! resolution, validation before anything is committed, batching, and
//! waiting for the commit or the result.

use std::time::{SystemTime, UNIX_EPOCH};

use boat_raft::{App, PredictOutcome, PredictRequest, PredictResult, Target, WriteError};
use boat_serving::{ServingError, Tensor};
use serde_json::Value;

use crate::error::{ApiError, ErrorKind};
use crate::server::AppState;

/// What the client sent as input.
pub enum Inputs {
    /// Boat's `{"input": ...}` form, for single-input models.
    Boat(Value),
    /// OIP tensors.
    Tensors(Vec<Tensor>),
}

/// Elements above which converting and checking inputs moves off the async
/// runtime (a few microseconds of work at most stays inline).
const INLINE_CHECK_ELEMENTS: usize = 2048;

impl Inputs {
    fn is_small(&self) -> bool {
        match self {
            Inputs::Tensors(t) => t.iter().map(|t| t.data().len()).sum::<usize>() <= INLINE_CHECK_ELEMENTS,
            Inputs::Boat(v) => json_is_small(v),
        }
    }
}

/// Whether converting `v` is cheap enough to do on the async runtime.
pub(crate) fn json_is_small(v: &Value) -> bool {
    let mut budget = INLINE_CHECK_ELEMENTS;
    json_within(v, &mut budget)
}

/// Whether `v` has at most `budget` values; stops counting once over.
fn json_within(v: &Value, budget: &mut usize) -> bool {
    if *budget == 0 {
        return false;
    }
    *budget -= 1;
    match v {
        Value::Array(items) => items.iter().all(|i| json_within(i, budget)),
        Value::Object(map) => map.values().all(|i| json_within(i, budget)),
        _ => true,
    }
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
    /// The caller's bearer token, for apps that require one.
    pub token: Option<String>,
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

/// Maps a write failure to its answer.
pub fn write_error(e: WriteError, id: Option<&str>) -> ApiError {
    let e = match e {
        WriteError::NotLeader { leader_id, leader_http } => return ApiError::not_leader(leader_id, leader_http),
        WriteError::Overloaded => ApiError::overloaded("too many requests are queued; retry shortly"),
        WriteError::NoQuorum(_) => {
            ApiError::unavailable(format!("{e}; retry on another node (with the same idempotency key)"), 1)
        }
        WriteError::Lost => ApiError::unavailable(
            "leadership changed before the request committed; retry (with the same idempotency key)",
            1,
        ),
        WriteError::HandingOver => {
            ApiError::unavailable(format!("{e}; retry in a moment (with the same idempotency key)"), 1)
        }
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
        PredictResult::UnknownModel(m) => ApiError::not_found(m.clone()),
        PredictResult::KeyConflict(m) => ApiError::conflict(m.clone()),
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
            ApiError::not_found(format!("model {name:?} version {version} is not loaded here"))
        }
        other => ApiError::internal(other.to_string()),
    }
}

fn count(model: &str, outcome: &'static str) {
    metrics::counter!("boat_requests_total", "model" => model.to_string(), "outcome" => outcome).increment(1);
}

impl AppState {
    /// Validates, queues and waits for one prediction.
    pub async fn infer(&self, call: Call) -> Result<Answer, ApiError> {
        let model = call.model.clone();
        let started = std::time::Instant::now();
        let result = self.infer_inner(call).await;
        let ok = matches!(&result, Ok(Answer::Done(o)) if matches!(o.result, PredictResult::Output(_)));
        // Latency samples (apps only) and metric labels are kept only for
        // names that exist, so that made-up names cannot grow them.
        let (is_app, known) = {
            let state = self.node.state().read();
            let is_app = state.serving.apps.apps.contains_key(&model);
            (is_app, is_app || state.serving.catalog.models.contains_key(&model))
        };
        let redirected = matches!(&result, Err(e) if matches!(e.kind, ErrorKind::NotLeader { .. }));
        if is_app && !redirected {
            self.latency.record(&model, started.elapsed(), ok);
        }
        let label = match &result {
            Ok(Answer::Done(o)) if o.duplicate => "duplicate",
            Ok(Answer::Done(o)) if matches!(o.result, PredictResult::Output(_)) => "ok",
            Ok(Answer::Done(_)) => "rejected_by_model",
            Ok(Answer::Accepted { .. }) => "accepted",
            Err(e) if matches!(e.kind, ErrorKind::NotLeader { .. }) => "redirected",
            Err(e) if e.kind == ErrorKind::Overloaded => "overloaded",
            Err(e) if e.http_status().is_client_error() => "invalid",
            Err(_) => "unavailable",
        };
        count(if known { &model } else { "(unknown)" }, label);
        result
    }

    async fn infer_inner(&self, call: Call) -> Result<Answer, ApiError> {
        let node = &self.node;
        if !node.is_leader() {
            let s = node.status();
            return Err(ApiError::not_leader(s.leader_id, s.leader_http));
        }
        let Call { model, version, inputs, outputs, key, mode, token } = call;
        let app = node.state().read().serving.apps.apps.get(&model).cloned();
        let (inputs, submit, pinned): (Vec<Tensor>, Target, Option<u64>) = match app {
            Some(app) => {
                (self.validate_app_call(&app, version, token.as_deref(), inputs).await?, Target::App(app.name), None)
            }
            None => {
                let resolved = node.state().read().serving.catalog.resolve(&model, version);
                let pinned = resolved.map_err(|m| ApiError::not_found(m).with("model", model.clone()))?;
                let inputs = self.validate_inputs(&model, pinned, inputs, outputs.as_deref()).await?;
                (inputs, Target::Model { name: model.clone(), version }, Some(pinned))
            }
        };
        let id = key.unwrap_or_else(new_request_id);
        if self.config.unreplicated {
            return self.infer_inline(id, model, pinned, inputs, outputs, mode);
        }
        let request = PredictRequest { id: id.clone(), inputs, outputs };
        let ticket = self.batcher.submit_to(submit, request).map_err(|e| write_error(e, Some(&id)))?;

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
        // A leader cut off from its majority will not commit soon: say so
        // instead of holding the client until its timeout.
        let cut_off = || {
            ApiError::unavailable(
                "this leader lost contact with a majority before the request committed; the outcome is unknown, \
                 retry on another node with the same idempotency key",
                1,
            )
            .with("id", id.clone())
        };
        match mode {
            // `biased`: an outcome that is ready wins over a loss of quorum
            // noticed at the same moment.
            Mode::Wait => tokio::select! {
                biased;
                waited = tokio::time::timeout(timeout, ticket.outcome) => match waited {
                    Err(_) => Err(timed_out()),
                    Ok(Err(_)) => Err(gone()),
                    Ok(Ok(Err(e))) => Err(write_error(e, Some(&id))),
                    Ok(Ok(Ok(outcome))) => Ok(Answer::Done(outcome)),
                },
                _ = node.quorum_lost() => Err(cut_off()),
            },
            Mode::Async => {
                self.pending_insert(&id);
                let answer = tokio::select! {
                    biased;
                    waited = tokio::time::timeout(timeout, ticket.committed) => match waited {
                        Err(_) => Err(timed_out()),
                        Ok(Err(_)) => Err(gone()),
                        Ok(Ok(Err(e))) => Err(write_error(e, Some(&id))),
                        Ok(Ok(Ok(log_id))) => {
                            Ok(Answer::Accepted { id: id.clone(), index: log_id.index, term: log_id.leader_id.term })
                        }
                    },
                    _ = node.quorum_lost() => Err(cut_off()),
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

    /// The unreplicated reference mode: the model runs here and now, on this
    /// thread (the reference is a serving path with nothing but inference
    /// in it). Models only; an app or an asynchronous request needs the log.
    fn infer_inline(
        &self,
        id: String,
        model: String,
        pinned: Option<u64>,
        inputs: Vec<Tensor>,
        outputs: Option<Vec<String>>,
        mode: Mode,
    ) -> Result<Answer, ApiError> {
        let Some(version) = pinned else {
            return Err(ApiError::unprocessable("apps are not served in the unreplicated reference mode"));
        };
        if matches!(mode, Mode::Async) {
            return Err(ApiError::unprocessable("asynchronous requests need the log; this node runs unreplicated"));
        }
        let result = self.node.executor().run_one(&model, version, inputs, outputs.as_deref());
        Ok(Answer::Done(PredictOutcome { id, model, version, index: 0, term: 0, result, duplicate: false }))
    }

    /// Checks an app request: the app runs, the caller may use it, and the
    /// inputs fit every member.
    async fn validate_app_call(
        &self,
        app: &App,
        version: Option<u64>,
        token: Option<&str>,
        inputs: Inputs,
    ) -> Result<Vec<Tensor>, ApiError> {
        if version.is_some() {
            return Err(ApiError::unprocessable(format!("{} is an app; it has no versions to pin", app.name)));
        }
        if app.requires_token {
            self.authorize(token, crate::auth::ANYONE)?;
        }
        if !app.running {
            return Err(ApiError::conflict(format!("app {} is stopped; start it first", app.name)));
        }
        let first = &app.members[0];
        let tensors = self.validate_inputs(&first.model, first.version, inputs, None).await?;
        let registry = self.node.executor().registry();
        for m in &app.members[1..] {
            registry
                .check(&m.model, m.version, tensors.clone())
                .map_err(|e| serving_error(e).with("member", m.to_string()))?;
        }
        Ok(tensors)
    }

    /// Converts and checks the inputs against the model's signature. Small
    /// inputs are checked inline; large ones on a blocking thread, so that
    /// converting megabytes of JSON never stalls the async runtime.
    async fn validate_inputs(
        &self,
        model: &str,
        version: u64,
        inputs: Inputs,
        outputs: Option<&[String]>,
    ) -> Result<Vec<Tensor>, ApiError> {
        let registry = self.node.executor().registry().clone();
        if let Some(wanted) = outputs {
            let meta = registry
                .meta(model, version)
                .ok_or_else(|| serving_error(ServingError::UnknownModel { name: model.to_string(), version }))?;
            boat_serving::oip::check_requested_outputs(&meta, wanted).map_err(serving_error)?;
        }
        let model = model.to_string();
        let small = inputs.is_small();
        let check = move || match inputs {
            Inputs::Boat(v) => registry.boat_inputs(&model, version, &v),
            Inputs::Tensors(t) => registry.check(&model, version, t),
        };
        let checked = if small {
            check()
        } else {
            tokio::task::spawn_blocking(check).await.map_err(|e| ApiError::internal(e.to_string()))?
        };
        checked.map_err(serving_error)
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
