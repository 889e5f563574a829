//! Applying the serving domain's entries: model changes, and predictions
//! run in batches.
//!
//! Predictions from consecutive entries are collected, grouped by model
//! version and run together. Requests of different entries share a run only
//! when the model is batch-invariant (its outputs for a row never depend on
//! the other rows), because replicas receive committed entries in different
//! apply calls; otherwise each entry's requests form their own group, which
//! every replica forms identically. Outcomes are then recorded strictly in
//! log order, entry by entry, so the digest does not depend on grouping.
//!
//! Model files arrive as chunks that go to the blob store; completing an
//! upload assembles them into one blob, checks its SHA-256 and loads it here
//! before the catalog names it the default.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::command::{
    ModelChange, PredictBatch, PredictOutcome, PredictResult, ServingCommand, ServingResult, UploadChunk, UploadModel,
};
use super::executor::keep_wanted;
use super::records::Decision;
use crate::blobs::BlobError;
use crate::domains::{read, write, AppliedState, ApplyEnv, CommandResult, Refusal};
use crate::types::LogId;

/// How one request will be answered.
enum Plan {
    /// Run it in group `group`; the result lands in `ran`.
    Run,
    /// Same key and request as an earlier slot of this call.
    SameAs(usize),
    Done(PredictOutcome),
    /// Refused before running (unknown model, key conflict).
    Refuse(PredictResult),
}

struct Slot {
    log_id: LogId,
    id: String,
    model: String,
    version: u64,
    fingerprint: String,
    proposed_at_ms: u64,
    wanted: Option<Vec<String>>,
    plan: Plan,
    ran: Option<PredictResult>,
}

/// Predictions collected from consecutive entries, not yet run.
struct Pending<'a> {
    state: &'a RwLock<AppliedState>,
    env: &'a ApplyEnv,
    slots: Vec<Slot>,
    /// Entry position in the apply call → its slots.
    entries: Vec<(usize, LogId, std::ops::Range<usize>)>,
    /// (model, version, entry position if not batch-invariant) → group.
    group_of: BTreeMap<(String, u64, Option<usize>), usize>,
    groups: Vec<Vec<(usize, Vec<boat_serving::Tensor>)>>,
    /// Request id → (slot, fingerprint) among the pending slots.
    seen: HashMap<String, (usize, String)>,
}

impl<'a> Pending<'a> {
    fn add(&mut self, pos: usize, log_id: LogId, batch: PredictBatch) {
        let start = self.slots.len();
        let state = read(self.state);
        let resolved = state.serving.catalog.resolve(&batch.model, batch.version);
        for req in batch.requests {
            let fingerprint = req.fingerprint(&batch.model, batch.version);
            let slot_no = self.slots.len();
            let plan = match (
                &resolved,
                self.seen.get(&req.id),
                self.env.records.decide(&state.serving.records, &req.id, &fingerprint),
            ) {
                (_, Some((earlier, fp)), _) if *fp == fingerprint => Plan::SameAs(*earlier),
                (_, Some(_), _) | (_, None, Decision::Conflict) => Plan::Refuse(PredictResult::KeyConflict(format!(
                    "idempotency key {:?} was already used for a different request",
                    req.id
                ))),
                (_, None, Decision::Replay(o)) => Plan::Done(o),
                (Err(e), None, Decision::Run) => Plan::Refuse(PredictResult::UnknownModel(e.clone())),
                (Ok(version), None, Decision::Run) => {
                    let per_entry = (!self.env.executor.batch_invariant(&batch.model, *version)).then_some(pos);
                    let key = (batch.model.clone(), *version, per_entry);
                    let next = self.groups.len();
                    let group = *self.group_of.entry(key).or_insert(next);
                    if group == next {
                        self.groups.push(Vec::new());
                    }
                    self.groups[group].push((slot_no, req.inputs));
                    Plan::Run
                }
            };
            // The slot that will be recorded for this id answers later
            // retries within the same call.
            if matches!(plan, Plan::Run | Plan::Refuse(PredictResult::UnknownModel(_))) {
                self.seen.insert(req.id.clone(), (slot_no, fingerprint.clone()));
            }
            self.slots.push(Slot {
                log_id,
                id: req.id,
                model: batch.model.clone(),
                version: *resolved.as_ref().unwrap_or(&0),
                fingerprint,
                proposed_at_ms: batch.proposed_at_ms,
                wanted: req.outputs,
                plan,
                ran: None,
            });
        }
        self.entries.push((pos, log_id, start..self.slots.len()));
    }

    /// Runs every group, records outcomes in log order and fills `results`.
    fn flush(&mut self, results: &mut [CommandResult]) {
        for (group, members) in std::mem::take(&mut self.groups).into_iter().enumerate() {
            let Some((first, _)) = members.first() else {
                continue;
            };
            let (model, version) = (self.slots[*first].model.clone(), self.slots[*first].version);
            let (slot_nos, inputs): (Vec<usize>, Vec<_>) = members.into_iter().unzip();
            let started = Instant::now();
            let outcomes = self.env.executor.run_batch(&model, version, inputs);
            metrics::histogram!("boat_inference_seconds", "model" => model.clone())
                .record(started.elapsed().as_secs_f64());
            metrics::histogram!("boat_batch_size", "model" => model.clone()).record(slot_nos.len() as f64);
            tracing::debug!(group, model, version, rows = slot_nos.len(), "ran a batch");
            for (slot_no, result) in slot_nos.into_iter().zip(outcomes) {
                let wanted = self.slots[slot_no].wanted.as_deref();
                let result = keep_wanted(result, wanted);
                self.slots[slot_no].ran = Some(result);
            }
        }

        let mut state = write(self.state);
        // Outcomes that a later slot of this call repeats (the same key sent
        // twice), kept until then.
        let repeated: HashSet<usize> = self
            .slots
            .iter()
            .filter_map(|s| match s.plan {
                Plan::SameAs(earlier) => Some(earlier),
                _ => None,
            })
            .collect();
        let mut kept: HashMap<usize, PredictOutcome> = HashMap::new();
        for (pos, log_id, range) in std::mem::take(&mut self.entries) {
            let mut outcomes = Vec::with_capacity(range.len());
            for slot_no in range {
                let slot = &mut self.slots[slot_no];
                let fresh = |result: PredictResult| PredictOutcome {
                    id: slot.id.clone(),
                    model: slot.model.clone(),
                    version: slot.version,
                    index: slot.log_id.index,
                    term: slot.log_id.leader_id.term,
                    result,
                    duplicate: false,
                };
                let outcome = match std::mem::replace(&mut slot.plan, Plan::SameAs(usize::MAX)) {
                    Plan::Done(o) => o,
                    Plan::SameAs(earlier) => match kept.get(&earlier).cloned() {
                        Some(mut o) => {
                            o.duplicate = true;
                            o
                        }
                        None => fresh(PredictResult::ModelError("internal: missing earlier outcome".into())),
                    },
                    // Refused before running, or run: recorded either way.
                    plan => {
                        let result = match plan {
                            Plan::Refuse(result) => result,
                            _ => slot
                                .ran
                                .take()
                                .unwrap_or_else(|| PredictResult::ModelError("internal: request did not run".into())),
                        };
                        let o = fresh(result);
                        let (records, retention) = (&self.env.records, self.env.retention);
                        state.serving.record(
                            records,
                            slot.fingerprint.clone(),
                            o.clone(),
                            slot.proposed_at_ms,
                            retention,
                        );
                        o
                    }
                };
                // Rendering the result is work only done when debug logging is on.
                tracing::debug!(
                    index = outcome.index,
                    term = outcome.term,
                    id = %outcome.id,
                    model = %outcome.model,
                    version = outcome.version,
                    duplicate = outcome.duplicate,
                    result = %outcome.result.summary(),
                    "applied prediction"
                );
                if repeated.contains(&slot_no) {
                    kept.insert(slot_no, outcome.clone());
                }
                outcomes.push(outcome);
            }
            APPLIED.note(outcomes.len());
            results[pos] = CommandResult::Serving(ServingResult::Predicted(outcomes));
            state.seal(log_id);
        }
        self.slots.clear();
        self.seen.clear();
        self.group_of.clear();
    }
}

/// Applies the serving domain's entries, holding predictions back so that
/// consecutive entries' requests can share a run.
pub struct Applier<'a> {
    pending: Pending<'a>,
}

impl<'a> Applier<'a> {
    pub fn new(state: &'a RwLock<AppliedState>, env: &'a ApplyEnv) -> Self {
        Self {
            pending: Pending {
                state,
                env,
                slots: Vec::new(),
                entries: Vec::new(),
                group_of: BTreeMap::new(),
                groups: Vec::new(),
                seen: HashMap::new(),
            },
        }
    }

    /// Applies one entry, or holds its predictions for [`Self::flush`].
    pub fn apply(&mut self, pos: usize, log_id: LogId, cmd: ServingCommand, results: &mut [CommandResult]) {
        if let ServingCommand::PredictBatch(batch) = cmd {
            self.pending.add(pos, log_id, batch);
            return;
        }
        self.flush(results);
        let (state, env) = (self.pending.state, self.pending.env);
        results[pos] = match cmd {
            ServingCommand::AppPredict(batch) => super::app_predict::apply(state, env, log_id, batch),
            cmd @ (ServingCommand::CreateApp(_)
            | ServingCommand::SetAppMembers { .. }
            | ServingCommand::SetAppRunning { .. }
            | ServingCommand::DeleteApp { .. }) => apply_app_command(state, log_id.index, cmd),
            cmd => apply_model_command(state, env, log_id.index, cmd),
        };
        write(state).seal(log_id);
    }

    /// Runs and records every held prediction.
    pub fn flush(&mut self, results: &mut [CommandResult]) {
        if !self.pending.entries.is_empty() {
            self.pending.flush(results);
        }
    }
}

/// Model changes.
fn apply_model_command(state: &RwLock<AppliedState>, env: &ApplyEnv, index: u64, cmd: ServingCommand) -> CommandResult {
    let changed = |s: &AppliedState, name: &str, version: u64| {
        CommandResult::Serving(ServingResult::ModelChanged(ModelChange {
            name: name.to_string(),
            version,
            default_version: s.serving.catalog.default_of(name),
            index,
        }))
    };
    match cmd {
        ServingCommand::UploadChunk(chunk) => stage_chunk(state, env, chunk),
        ServingCommand::UploadModel(upload) => match complete_upload(state, env, index, upload) {
            Ok(change) => CommandResult::Serving(ServingResult::ModelChanged(change)),
            Err(refusal) => CommandResult::Refused(refusal),
        },
        ServingCommand::SetDefault { name, version } => {
            let mut s = write(state);
            match s.serving.catalog.set_default(&name, version) {
                Ok(()) => {
                    s.serving.record_model_change(index, "default", &name, version);
                    tracing::info!(index, model = %name, version, "default version changed");
                    changed(&s, &name, version)
                }
                Err(e) => CommandResult::Refused(e),
            }
        }
        ServingCommand::DeleteVersion { name, version } => {
            let mut s = write(state);
            if let Some(app) = s.serving.apps.user_of(&name, version) {
                return CommandResult::Refused(Refusal::conflict(format!(
                    "version {version} of {name} is a member of app {:?}; change the app's members first",
                    app.name
                )));
            }
            match s.serving.catalog.delete(&name, version) {
                Ok(()) => {
                    s.serving.record_model_change(index, "delete", &name, version);
                    env.executor.registry().unload(&name, version);
                    tracing::info!(index, model = %name, version, "model version deleted");
                    changed(&s, &name, version)
                }
                Err(e) => CommandResult::Refused(e),
            }
        }
        // Predictions and apps never reach here: see `Applier::apply`.
        ServingCommand::PredictBatch(_)
        | ServingCommand::AppPredict(_)
        | ServingCommand::CreateApp(_)
        | ServingCommand::SetAppMembers { .. }
        | ServingCommand::SetAppRunning { .. }
        | ServingCommand::DeleteApp { .. } => CommandResult::None,
    }
}

/// App changes.
fn apply_app_command(state: &RwLock<AppliedState>, index: u64, cmd: ServingCommand) -> CommandResult {
    let mut s = write(state);
    let serving = &mut s.serving;
    let (what, result) = match cmd {
        ServingCommand::CreateApp(app) => ("create", serving.apps.create(&serving.catalog, app, index).cloned()),
        ServingCommand::SetAppMembers { name, members } => {
            ("members", serving.apps.set_members(&serving.catalog, &name, members, index).cloned())
        }
        ServingCommand::SetAppRunning { name, running } => {
            (if running { "start" } else { "stop" }, serving.apps.set_running(&name, running, index).cloned())
        }
        ServingCommand::DeleteApp { name } => ("delete", serving.apps.delete(&name)),
        _ => return CommandResult::None,
    };
    match result {
        Ok(app) => {
            serving.record_app_change(index, what, &app.name, app.revision);
            tracing::info!(index, app = %app.name, revision = app.revision, change = what, "app changed");
            CommandResult::Serving(ServingResult::AppChanged(app))
        }
        Err(refusal) => CommandResult::Refused(refusal),
    }
}

/// Stores a chunk in the blob store and stages its hash.
fn stage_chunk(state: &RwLock<AppliedState>, env: &ApplyEnv, chunk: UploadChunk) -> CommandResult {
    let UploadChunk { upload_id, seq, at_ms, bytes } = chunk;
    let _guard = env.blobs.guard();
    let sha = match env.blobs.put(&bytes) {
        Ok(sha) => sha,
        Err(e) => {
            // A local disk failure: this replica's upload will fail and the
            // checkpoints will show it.
            tracing::error!(upload_id, seq, error = %e, "cannot store an upload chunk");
            return CommandResult::Refused(Refusal::conflict(format!("cannot store chunk {seq}: {e}")));
        }
    };
    match write(state).serving.catalog.stage_chunk(upload_id, seq, sha, at_ms) {
        Ok(()) => CommandResult::None,
        Err(e) => CommandResult::Refused(Refusal::conflict(e)),
    }
}

/// Completes an upload. The chunks are assembled into one blob whose hash
/// must match, and the new version is loaded into this node's registry
/// before the catalog names it the default, so no request can resolve to a
/// version that is not ready here; the state lock is not held while ONNX
/// Runtime builds its sessions.
fn complete_upload(
    state: &RwLock<AppliedState>,
    env: &ApplyEnv,
    index: u64,
    upload: UploadModel,
) -> Result<ModelChange, Refusal> {
    let UploadModel { name, upload_id, chunks, sha256, uploaded_at_ms } = upload;
    let _guard = env.blobs.guard();
    let (parts, version) = {
        let mut s = write(state);
        if s.serving.apps.apps.contains_key(&name) {
            let _ = s.serving.catalog.take_staged(upload_id, chunks);
            return Err(Refusal::conflict(format!("{name:?} is an app's name; a model needs its own")));
        }
        let parts = s.serving.catalog.take_staged(upload_id, chunks).map_err(Refusal::conflict)?;
        (parts, s.serving.catalog.next_version(&name))
    };
    let size_bytes = env.blobs.concat(&parts, &sha256).map_err(|e| match e {
        BlobError::Mismatch { actual, .. } => {
            Refusal::conflict(format!("sha256 of the file is {actual}, the upload said {sha256}"))
        }
        other => {
            tracing::error!(index, model = %name, error = %other, "cannot assemble an uploaded model");
            Refusal::conflict(format!("cannot assemble the file: {other}"))
        }
    })?;
    let record =
        super::catalog::VersionRecord { sha256: sha256.clone(), size_bytes, uploaded_at_ms, index, builtin: false };
    match env.executor.load_version(&env.blobs, &name, version, &record) {
        Ok(_) => tracing::info!(index, model = %name, version, "model version uploaded and made default"),
        // The leader loaded this file before proposing it, so this node's
        // runtime differs; its predictions on this version will record the
        // failure and the checkpoints will show the divergence.
        Err(e) => tracing::error!(index, model = %name, version, error = %e, "cannot load an uploaded model"),
    }
    let mut s = write(state);
    let version = s.serving.catalog.upload(&name, sha256, size_bytes, uploaded_at_ms, index);
    s.serving.record_model_change(index, "upload", &name, version);
    Ok(ModelChange { name: name.clone(), version, default_version: s.serving.catalog.default_of(&name), index })
}

/// Counts applied predictions for a periodic summary at info level; the
/// per-prediction lines are debug only.
struct AppliedSummary {
    predictions: AtomicU64,
    entries: AtomicU64,
    last_ms: AtomicU64,
}

static APPLIED: AppliedSummary =
    AppliedSummary { predictions: AtomicU64::new(0), entries: AtomicU64::new(0), last_ms: AtomicU64::new(0) };

/// Seconds between two summary lines.
const SUMMARY_EVERY_MS: u64 = 10_000;

impl AppliedSummary {
    /// Logging only: the local clock here never touches the replicated state.
    fn note(&self, predictions: usize) {
        self.predictions.fetch_add(predictions as u64, Ordering::Relaxed);
        self.entries.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let last = self.last_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= SUMMARY_EVERY_MS
            && self.last_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            let predictions = self.predictions.swap(0, Ordering::Relaxed);
            let entries = self.entries.swap(0, Ordering::Relaxed);
            tracing::info!(predictions, entries, "applied predictions since the last summary");
        }
    }
}
