//! Applying an app's predictions: every member runs the entry's requests,
//! and the app's ensemble rule combines their answers.
//!
//! The requests of one entry run together for each member, in member order,
//! on every replica, so the combined answers are the same everywhere (see
//! invariant 8 in ARCHITECTURE.md). Outcomes are recorded like a model's,
//! under the app's name and revision, so retries and `GET /predictions/{id}`
//! work the same way.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Instant;

use boat_serving::{ensemble, Output, Tensor, TensorData};

use super::apps::App;
use super::command::{AppPredictBatch, PredictOutcome, PredictResult, ServingResult};
use super::executor::select_outputs;
use super::records::Decision;
use crate::domains::{read, write, AppliedState, ApplyEnv, CommandResult};
use crate::types::LogId;

/// Name of the extra output listing the member versions that answered.
pub const MEMBERS_OUTPUT: &str = "members";

/// What the fingerprint of an app request is keyed on, so that the same
/// idempotency key used for a model and an app is told apart.
fn fingerprint_key(app: &str) -> String {
    format!("app:{app}")
}

enum Plan {
    Run(usize),
    Replay(PredictOutcome),
    /// Same key and request as an earlier request of this entry.
    SameAs(usize),
    Refuse(PredictResult),
}

pub(crate) fn apply(
    state: &RwLock<AppliedState>,
    env: &ApplyEnv,
    log_id: LogId,
    batch: AppPredictBatch,
) -> CommandResult {
    let AppPredictBatch { app: name, proposed_at_ms, requests } = batch;
    let key = fingerprint_key(&name);
    let mut plans = Vec::with_capacity(requests.len());
    let mut inputs: Vec<Vec<Tensor>> = Vec::new();
    let mut fingerprints: Vec<String> = requests.iter().map(|r| r.fingerprint(&key, None)).collect();
    let app: Option<App> = {
        let s = read(state);
        let app = s.serving.apps.apps.get(&name).cloned();
        let mut seen: HashMap<&str, (usize, &str)> = HashMap::new();
        for (i, req) in requests.iter().enumerate() {
            let fp = fingerprints[i].as_str();
            let plan = match (seen.get(req.id.as_str()), env.records.decide(&s.serving.records, &req.id, fp)) {
                (Some((earlier, efp)), _) if *efp == fp => Plan::SameAs(*earlier),
                (Some(_), _) | (None, Decision::Conflict) => Plan::Refuse(PredictResult::KeyConflict(format!(
                    "idempotency key {:?} was already used for a different request",
                    req.id
                ))),
                (None, Decision::Replay(o)) => Plan::Replay(o),
                (None, Decision::Run) => match &app {
                    None => Plan::Refuse(PredictResult::UnknownModel(format!("no app {name:?}"))),
                    Some(a) if !a.running => {
                        Plan::Refuse(PredictResult::UnknownModel(format!("app {name:?} is stopped")))
                    }
                    Some(_) => {
                        inputs.push(req.inputs.clone());
                        Plan::Run(inputs.len() - 1)
                    }
                },
            };
            if matches!(plan, Plan::Run(_) | Plan::Refuse(PredictResult::UnknownModel(_))) {
                seen.insert(&req.id, (i, fp));
            }
            plans.push(plan);
        }
        app
    };

    let answers = match &app {
        Some(app) if !inputs.is_empty() => run_members(env, app, inputs),
        _ => Vec::new(),
    };

    let mut s = write(state);
    let revision = app.as_ref().map_or(0, |a| a.revision);
    let mut outcomes: Vec<PredictOutcome> = Vec::with_capacity(requests.len());
    for (i, (req, plan)) in requests.into_iter().zip(plans).enumerate() {
        let fresh = |result| PredictOutcome {
            id: req.id.clone(),
            model: name.clone(),
            version: revision,
            index: log_id.index,
            term: log_id.leader_id.term,
            result,
            duplicate: false,
        };
        let outcome = match plan {
            Plan::Replay(o) => o,
            Plan::SameAs(earlier) => {
                let mut o = outcomes[earlier].clone();
                o.duplicate = true;
                o
            }
            Plan::Refuse(result @ PredictResult::KeyConflict(_)) => fresh(result),
            plan => {
                let result = match plan {
                    Plan::Run(slot) => match answers.get(slot) {
                        Some(r) => match select_wanted(r.clone(), req.outputs.as_deref()) {
                            Ok(r) => r,
                            Err(e) => PredictResult::InvalidInput(e),
                        },
                        None => PredictResult::ModelError("internal: request did not run".into()),
                    },
                    Plan::Refuse(result) => result,
                    _ => PredictResult::ModelError("internal: unplanned request".into()),
                };
                let o = fresh(result);
                let fp = std::mem::take(&mut fingerprints[i]);
                s.serving.record(&env.records, fp, o.clone(), proposed_at_ms, env.retention);
                o
            }
        };
        outcomes.push(outcome);
    }
    CommandResult::Serving(ServingResult::Predicted(outcomes))
}

/// Runs every member on every input and combines each input's answers.
fn run_members(env: &ApplyEnv, app: &App, inputs: Vec<Vec<Tensor>>) -> Vec<PredictResult> {
    let rows = inputs.len();
    let mut per_member: Vec<Vec<PredictResult>> = Vec::with_capacity(app.members.len());
    for m in &app.members {
        let started = Instant::now();
        per_member.push(env.executor.run_batch(&m.model, m.version, inputs.clone()));
        metrics::histogram!("boat_inference_seconds", "model" => m.model.clone())
            .record(started.elapsed().as_secs_f64());
    }
    let names: Vec<String> = app.members.iter().map(ToString::to_string).collect();
    (0..rows)
        .map(|r| {
            let mut outputs = Vec::with_capacity(per_member.len());
            for (m, results) in per_member.iter().enumerate() {
                match results.get(r) {
                    Some(PredictResult::Output(o)) => outputs.push(o.clone()),
                    Some(PredictResult::InvalidInput(e)) => {
                        return PredictResult::InvalidInput(format!("member {}: {e}", names[m]))
                    }
                    Some(other) => {
                        return PredictResult::ModelError(format!("member {}: {}", names[m], other.summary()))
                    }
                    None => return PredictResult::ModelError(format!("member {} gave no answer", names[m])),
                }
            }
            match ensemble::combine(app.rule, &outputs) {
                Ok(mut combined) => {
                    let n = names.len() as i64;
                    // A BYTES tensor of as many strings as its shape says: valid.
                    if let Ok(t) = Tensor::new(MEMBERS_OUTPUT, vec![n], TensorData::Bytes(names.clone())) {
                        combined.push(Output::Tensor(t));
                    }
                    PredictResult::Output(combined)
                }
                Err(e) => PredictResult::ModelError(format!("ensemble {}: {e}", app.rule.as_str())),
            }
        })
        .collect()
}

/// Keeps the outputs the client asked for, and always the members list.
fn select_wanted(result: PredictResult, wanted: Option<&[String]>) -> Result<PredictResult, String> {
    let PredictResult::Output(outputs) = result else { return Ok(result) };
    let Some(wanted) = wanted else { return Ok(PredictResult::Output(outputs)) };
    let (members, rest): (Vec<Output>, Vec<Output>) = outputs.into_iter().partition(|o| o.name() == MEMBERS_OUTPUT);
    let mut chosen = select_outputs(rest, Some(wanted))?;
    chosen.extend(members);
    Ok(PredictResult::Output(chosen))
}
