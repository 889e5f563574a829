//! Applying committed entries: model changes, checkpoints, and predictions
//! run in batches.
//!
//! Predictions from consecutive entries in one apply call are collected,
//! grouped by model version and run together. Requests of different entries
//! share a run only when the model is batch-invariant (its outputs for a row
//! never depend on the other rows), because replicas receive committed
//! entries in different apply calls; otherwise each entry's requests form
//! their own group, which every replica forms identically. Outcomes are then
//! recorded strictly in log order, so the digest does not depend on grouping.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;
use std::time::Instant;

use openraft::EntryPayload;

use crate::command::{
    Command, CommandResult, ModelChange, PredictBatch, PredictOutcome, PredictResult, Refusal, UploadChunk, UploadModel,
};
use crate::executor::{select_outputs, Executor};
use crate::state::{AppliedState, Decision, Retention};
use crate::types::{Entry, LogId, StoredMembership};

fn write(state: &RwLock<AppliedState>) -> std::sync::RwLockWriteGuard<'_, AppliedState> {
    // A poisoned lock still holds the last consistent state: only this
    // module writes it, and each write is a single assignment or fold.
    state.write().unwrap_or_else(|p| p.into_inner())
}

fn read(state: &RwLock<AppliedState>) -> std::sync::RwLockReadGuard<'_, AppliedState> {
    state.read().unwrap_or_else(|p| p.into_inner())
}

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
    executor: &'a Executor,
    retention: Retention,
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
        let resolved = state.catalog.resolve(&batch.model, batch.version);
        for req in batch.requests {
            let fingerprint = req.fingerprint(&batch.model, batch.version);
            let slot_no = self.slots.len();
            let plan = match (&resolved, self.seen.get(&req.id), state.decide(&req.id, &fingerprint)) {
                (_, Some((earlier, fp)), _) if *fp == fingerprint => Plan::SameAs(*earlier),
                (_, Some(_), _) | (_, None, Decision::Conflict) => Plan::Refuse(PredictResult::KeyConflict(format!(
                    "idempotency key {:?} was already used for a different request",
                    req.id
                ))),
                (_, None, Decision::Replay(o)) => Plan::Done(o),
                (Err(e), None, Decision::Run) => Plan::Refuse(PredictResult::UnknownModel(e.clone())),
                (Ok(version), None, Decision::Run) => {
                    let per_entry = (!self.executor.batch_invariant(&batch.model, *version)).then_some(pos);
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
            let outcomes = self.executor.run_batch(&model, version, inputs);
            metrics::histogram!("boat_inference_seconds", "model" => model.clone())
                .record(started.elapsed().as_secs_f64());
            metrics::histogram!("boat_batch_size", "model" => model.clone()).record(slot_nos.len() as f64);
            tracing::debug!(group, model, version, rows = slot_nos.len(), "ran a batch");
            for (slot_no, result) in slot_nos.into_iter().zip(outcomes) {
                let wanted = self.slots[slot_no].wanted.as_deref();
                let result = match result {
                    PredictResult::Output(o) => match select_outputs(o, wanted) {
                        Ok(o) => PredictResult::Output(o),
                        Err(e) => PredictResult::InvalidInput(e),
                    },
                    other => other,
                };
                self.slots[slot_no].ran = Some(result);
            }
        }

        let mut state = write(self.state);
        let mut finished: Vec<Option<PredictOutcome>> = Vec::with_capacity(self.slots.len());
        for slot in &mut self.slots {
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
                Plan::SameAs(earlier) => match finished.get(earlier).cloned().flatten() {
                    Some(mut o) => {
                        o.duplicate = true;
                        o
                    }
                    None => fresh(PredictResult::ModelError("internal: missing earlier outcome".into())),
                },
                Plan::Refuse(result) => {
                    let o = fresh(result);
                    state.record(slot.fingerprint.clone(), o.clone(), slot.proposed_at_ms, self.retention);
                    o
                }
                Plan::Run => {
                    let result = slot
                        .ran
                        .take()
                        .unwrap_or_else(|| PredictResult::ModelError("internal: request did not run".into()));
                    let o = fresh(result);
                    state.record(slot.fingerprint.clone(), o.clone(), slot.proposed_at_ms, self.retention);
                    o
                }
            };
            tracing::info!(
                index = outcome.index,
                term = outcome.term,
                id = %outcome.id,
                model = %outcome.model,
                version = outcome.version,
                duplicate = outcome.duplicate,
                result = %outcome.result.summary(),
                "applied prediction"
            );
            finished.push(Some(outcome));
        }
        for (pos, log_id, range) in self.entries.drain(..) {
            let outcomes = finished[range].iter_mut().filter_map(Option::take).collect();
            results[pos] = CommandResult::Predicted(outcomes);
            state.last_applied = Some(log_id);
        }
        self.slots.clear();
        self.seen.clear();
        self.group_of.clear();
    }
}

/// Applies entries in order and returns one result per entry.
pub fn apply_entries(
    state: &RwLock<AppliedState>,
    executor: &Executor,
    retention: Retention,
    entries: Vec<Entry>,
) -> Vec<CommandResult> {
    let mut results = vec![CommandResult::None; entries.len()];
    let mut pending = Pending {
        state,
        executor,
        retention,
        slots: Vec::new(),
        entries: Vec::new(),
        group_of: BTreeMap::new(),
        groups: Vec::new(),
        seen: HashMap::new(),
    };
    for (pos, entry) in entries.into_iter().enumerate() {
        let log_id = entry.log_id;
        if let EntryPayload::Normal(Command::PredictBatch(batch)) = entry.payload {
            pending.add(pos, log_id, batch);
            continue;
        }
        pending.flush(&mut results);
        results[pos] = match entry.payload {
            EntryPayload::Blank | EntryPayload::Normal(Command::PredictBatch(_)) => CommandResult::None,
            EntryPayload::Membership(m) => {
                write(state).membership = StoredMembership::new(Some(log_id), m);
                CommandResult::None
            }
            EntryPayload::Normal(cmd) => apply_control(state, executor, log_id, cmd),
        };
        write(state).last_applied = Some(log_id);
    }
    pending.flush(&mut results);
    results
}

/// Model changes and checkpoints.
fn apply_control(state: &RwLock<AppliedState>, executor: &Executor, log_id: LogId, cmd: Command) -> CommandResult {
    let index = log_id.index;
    let mut s = write(state);
    let change = |s: &AppliedState, name: &str, version: u64| {
        CommandResult::ModelChanged(ModelChange {
            name: name.to_string(),
            version,
            default_version: s.catalog.default_of(name),
            index,
        })
    };
    match cmd {
        Command::UploadChunk(UploadChunk { upload_id, seq, at_ms, bytes }) => {
            match s.catalog.stage_chunk(upload_id, seq, bytes, at_ms) {
                Ok(()) => CommandResult::None,
                Err(e) => CommandResult::Refused(Refusal::conflict(e)),
            }
        }
        Command::UploadModel(upload) => {
            drop(s);
            apply_upload(state, executor, index, upload)
        }
        Command::SetDefault { name, version } => match s.catalog.set_default(&name, version) {
            Ok(()) => {
                s.record_model_change(index, "default", &name, version);
                tracing::info!(index, model = %name, version, "default version changed");
                change(&s, &name, version)
            }
            Err(e) => CommandResult::Refused(e),
        },
        Command::DeleteVersion { name, version } => match s.catalog.delete(&name, version) {
            Ok(()) => {
                s.record_model_change(index, "delete", &name, version);
                executor.registry().unload(&name, version);
                tracing::info!(index, model = %name, version, "model version deleted");
                change(&s, &name, version)
            }
            Err(e) => CommandResult::Refused(e),
        },
        Command::Checkpoint { upto, digest } => {
            if let Some(d) = s.check(upto, &digest, index) {
                metrics::counter!("boat_divergence_total").increment(1);
                tracing::error!(
                    upto,
                    local = %d.local_digest,
                    leader = %d.leader_digest,
                    "this replica's state differs from the leader's: it computed different results"
                );
            }
            CommandResult::None
        }
        Command::PredictBatch(_) => CommandResult::None,
    }
}

/// Completes an upload. The new version is loaded into this node's registry
/// before the catalog names it the default, so no request can resolve to a
/// version that is not ready here; the state lock is not held while ONNX
/// Runtime builds its sessions.
fn apply_upload(state: &RwLock<AppliedState>, executor: &Executor, index: u64, upload: UploadModel) -> CommandResult {
    let UploadModel { name, upload_id, chunks, sha256, uploaded_at_ms } = upload;
    let (bytes, version) = {
        let mut s = write(state);
        match s.catalog.take_staged(upload_id, chunks) {
            Ok(b) => (b, s.catalog.next_version(&name)),
            Err(e) => return CommandResult::Refused(Refusal::conflict(e)),
        }
    };
    let actual = crate::command::sha256_hex(&bytes);
    if actual != sha256 {
        let message = format!("sha256 of the file is {actual}, the upload said {sha256}");
        return CommandResult::Refused(Refusal::conflict(message));
    }
    match executor.registry().load(&name, version, &bytes) {
        Ok(_) => tracing::info!(index, model = %name, version, "model version uploaded and made default"),
        // The leader loaded this file before proposing it, so this node's
        // runtime differs; its predictions on this version will record the
        // failure and the checkpoints will show the divergence.
        Err(e) => tracing::error!(index, model = %name, version, error = %e, "cannot load an uploaded model"),
    }
    let mut s = write(state);
    let version = s.catalog.upload(&name, sha256, bytes, uploaded_at_ms, index);
    s.record_model_change(index, "upload", &name, version);
    CommandResult::ModelChanged(ModelChange {
        name: name.clone(),
        version,
        default_version: s.catalog.default_of(&name),
        index,
    })
}
