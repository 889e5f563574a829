//! The replicated state machine, split by domain.
//!
//! Each domain owns its commands, its part of the applied state, its apply
//! function and its own digest:
//! - [`serving`]: predictions (with idempotency records) and the model catalog;
//! - [`platform`]: users, roles, tokens and datasets;
//! - [`training`]: container templates, train jobs and their trials;
//! - [`integrity`]: the state digest and the leader's checkpoints.
//!
//! [`Command`] and [`AppliedState`] hold one field or variant per domain, and
//! [`apply_entries`] dispatches with one small match. Adding a domain means a
//! new module, a variant here, a field in `AppliedState`, its digest in
//! `AppliedState::seal` and one dispatch arm; adding a command touches only
//! its domain's module (see ARCHITECTURE.md for keeping old data readable).

pub mod integrity;
pub mod platform;
pub mod serving;
pub mod training;
pub(crate) mod v1;
pub(crate) mod v2;

use std::collections::BTreeSet;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::EntryPayload;
use serde::{Deserialize, Serialize};

use crate::blobs::BlobStore;
use crate::payload::LogPayload;
use crate::types::{Entry, LogId, StoredMembership};
use integrity::{Integrity, IntegrityCommand};
use platform::{PlatformCommand, PlatformResult, PlatformState};
use serving::{Executor, RecordStore, Retention, ServingCommand, ServingResult, ServingState};
use training::{TrainingCommand, TrainingResult, TrainingState};

/// One entry's command, by domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    Serving(ServingCommand),
    Integrity(IntegrityCommand),
    Platform(PlatformCommand),
    Training(TrainingCommand),
}

/// What applying an entry produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub enum CommandResult {
    /// Blank, membership and checkpoint entries produce nothing.
    #[default]
    None,
    Serving(ServingResult),
    /// The command had no effect (for example, deleting a default version).
    Refused(Refusal),
    Platform(PlatformResult),
    Training(TrainingResult),
}

/// Why a command had no effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefusalKind {
    /// What the command names does not exist.
    NotFound,
    /// The command conflicts with the current state.
    Conflict,
}

impl Refusal {
    pub fn not_found(message: impl Into<String>) -> Self {
        Self { kind: RefusalKind::NotFound, message: message.into() }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self { kind: RefusalKind::Conflict, message: message.into() }
    }
}

/// The domains' node-local parts, made by whoever starts the node.
#[derive(Clone)]
pub struct Domains {
    /// Runs the serving domain's predictions on this node's ONNX Runtime.
    pub executor: Executor,
    /// How long the serving domain keeps prediction records.
    pub retention: Retention,
}

/// Node-local resources the domains use while applying; never replicated,
/// and never read in a way that could make replicas differ.
#[derive(Clone)]
pub struct ApplyEnv {
    pub executor: Executor,
    pub blobs: BlobStore,
    /// The serving domain's prediction records, in the node's sled database.
    pub records: RecordStore,
    pub retention: Retention,
}

impl ApplyEnv {
    pub fn new(domains: Domains, blobs: BlobStore, records: RecordStore) -> Self {
        let Domains { executor, retention } = domains;
        Self { executor, blobs, records, retention }
    }

    /// Makes the node-local stores match `state` after it was restored from
    /// the node's own snapshot: records written after it are dropped (the
    /// log replay writes them again).
    pub(crate) fn restore(&self, state: &AppliedState) -> sled::Result<()> {
        let dropped = self.records.forget_from(&state.serving.records)?;
        if dropped > 0 {
            tracing::info!(dropped, "dropped prediction records newer than the snapshot; the log replays them");
        }
        Ok(())
    }

    /// Writes what the node-local stores still hold in memory, before a
    /// flush of their database makes a snapshot's references durable.
    pub(crate) fn write_pending(&self) -> sled::Result<()> {
        self.records.write_pending()
    }

    /// After `state` became the current snapshot: removes what no later
    /// state can need.
    pub(crate) fn compact(&self, state_at_snapshot: &AppliedState) -> sled::Result<usize> {
        self.records.forget_before(state_at_snapshot.serving.records.first_live)
    }

    /// The node-local rows a full snapshot of `state` carries: today the
    /// serving domain's live prediction records. Each row starts with its
    /// domain's tag.
    pub(crate) fn export_rows(&self, state: &AppliedState) -> impl Iterator<Item = Result<Vec<u8>, String>> + '_ {
        self.records.export(state.serving.records).map(|r| {
            let r = r.map_err(|e| e.to_string())?;
            let mut row = vec![ROW_SERVING_RECORD];
            bincode::serialize_into(&mut row, &r).map_err(|e| e.to_string())?;
            Ok(row)
        })
    }

    /// Empties the node-local rows before a received snapshot's are imported.
    pub(crate) fn clear_rows(&self) -> sled::Result<()> {
        self.records.clear()
    }

    /// Stores one row of a received full snapshot.
    pub(crate) fn import_row(&self, row: &[u8]) -> Result<(), String> {
        match row.split_first() {
            Some((&ROW_SERVING_RECORD, body)) => {
                let r: serving::ExportedRecord = bincode::deserialize(body).map_err(|e| e.to_string())?;
                self.records.import(r).map_err(|e| e.to_string())
            }
            Some((tag, _)) => Err(format!("a snapshot row of unknown kind {tag}")),
            None => Err("an empty snapshot row".into()),
        }
    }
}

/// Tag of a serving-domain prediction record in a full snapshot's rows.
const ROW_SERVING_RECORD: u8 = 1;

/// The replicated, snapshotted state of one node: identical on every
/// replica at the same log index.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppliedState {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    pub serving: ServingState,
    pub integrity: Integrity,
    pub platform: PlatformState,
    pub training: TrainingState,
}

impl AppliedState {
    /// The state digest replicas compare.
    pub fn digest(&self) -> &str {
        &self.integrity.digest
    }

    /// Marks `log_id` applied and folds the domains' digests into the state
    /// digest. Every entry is sealed once, in log order.
    pub(crate) fn seal(&mut self, log_id: LogId) {
        self.last_applied = Some(log_id);
        // A domain that has never changed leaves the fold as it was before
        // the domain existed, so adding a domain keeps old digests.
        let mut domains = vec![("serving", self.serving.digest())];
        if !self.platform.digest().is_empty() {
            domains.push(("platform", self.platform.digest()));
        }
        if !self.training.digest().is_empty() {
            domains.push(("training", self.training.digest()));
        }
        self.integrity.observe(log_id.index, &domains);
    }

    /// Every blob (by SHA-256) the state refers to; the blob store keeps them.
    pub fn blob_refs(&self) -> BTreeSet<String> {
        let mut refs = self.serving.blob_refs();
        refs.extend(self.platform.blob_refs());
        refs
    }
}

pub(crate) fn write(state: &RwLock<AppliedState>) -> RwLockWriteGuard<'_, AppliedState> {
    // A poisoned lock still holds the last consistent state: only apply
    // writes it, and each write is a single assignment or fold.
    state.write().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn read(state: &RwLock<AppliedState>) -> RwLockReadGuard<'_, AppliedState> {
    state.read().unwrap_or_else(|p| p.into_inner())
}

/// Applies entries in log order and returns one result per entry.
///
/// The serving domain may hold predictions back to run several entries'
/// requests in one ONNX Runtime call; it finishes them before any entry of
/// another kind is applied, so every entry still takes effect in log order.
pub fn apply_entries(state: &RwLock<AppliedState>, env: &ApplyEnv, entries: Vec<Entry>) -> Vec<CommandResult> {
    let mut results = vec![CommandResult::None; entries.len()];
    let mut serving = serving::Applier::new(state, env);
    for (pos, entry) in entries.into_iter().enumerate() {
        let log_id = entry.log_id;
        if let EntryPayload::Normal(LogPayload { command: Command::Serving(cmd), .. }) = entry.payload {
            serving.apply(pos, log_id, cmd, &mut results);
            continue;
        }
        serving.flush(&mut results);
        let mut s = write(state);
        results[pos] = match entry.payload {
            EntryPayload::Normal(LogPayload { command: Command::Integrity(cmd), .. }) => {
                integrity::apply(&mut s.integrity, log_id.index, cmd)
            }
            EntryPayload::Normal(LogPayload {
                command: Command::Platform(cmd @ PlatformCommand::CreateDataset { .. }),
                ..
            }) => {
                // Assembling the file takes the blob store's guard and must
                // not hold the state lock meanwhile.
                drop(s);
                let result = platform::datasets::complete(state, env, log_id.index, cmd);
                s = write(state);
                result
            }
            EntryPayload::Normal(LogPayload {
                command: Command::Platform(PlatformCommand::DeleteDataset { name }),
                ..
            }) if s.training.job_using_dataset(&name).is_some() => {
                let job = s.training.job_using_dataset(&name).map_or(0, |j| j.id);
                CommandResult::Refused(Refusal::conflict(format!("train job {job} uses dataset {name:?}")))
            }
            EntryPayload::Normal(LogPayload { command: Command::Platform(cmd), .. }) => {
                platform::apply(&mut s.platform, log_id.index, cmd)
            }
            EntryPayload::Normal(LogPayload { command: Command::Training(cmd), .. }) => {
                let s = &mut *s;
                training::apply(&mut s.training, &s.platform, log_id.index, cmd)
            }
            EntryPayload::Membership(m) => {
                s.membership = StoredMembership::new(Some(log_id), m);
                CommandResult::None
            }
            EntryPayload::Blank | EntryPayload::Normal(LogPayload { command: Command::Serving(_), .. }) => {
                CommandResult::None
            }
        };
        s.seal(log_id);
    }
    serving.flush(&mut results);
    results
}
