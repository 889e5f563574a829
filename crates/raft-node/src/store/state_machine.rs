//! The Raft state machine: applies committed entries by running predictions
//! on this node's own ONNX Runtime, and keeps snapshots in sled.
//!
//! The state itself lives in memory (`AppliedState`); what is durable is the
//! latest snapshot. On start the node loads that snapshot and openraft
//! replays the log from the snapshot's index up to the saved commit index,
//! running every prediction again, as Boat's replay design asks.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};

use crate::command::{Command, CommandResult, PredictCommand, PredictResult};
use crate::executor::Executor;
use crate::state::{AppliedState, Decision, Retention};
use crate::types::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};

const CURRENT_SNAPSHOT: &[u8] = b"current";

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// Read access to the applied state, shared with the HTTP layer.
#[derive(Clone)]
pub struct StateView(Arc<RwLock<AppliedState>>);

impl StateView {
    /// A read guard. Poisoning can only follow a panic while the state
    /// machine held the write lock; the data is still the last consistent
    /// value, so readers take it rather than fail.
    pub fn read(&self) -> RwLockReadGuard<'_, AppliedState> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// The state machine handed to openraft.
#[derive(Clone)]
pub struct StateMachineStore {
    state: Arc<RwLock<AppliedState>>,
    executor: Executor,
    snapshots: sled::Tree,
    retention: Retention,
    snapshot_seq: Arc<AtomicU64>,
}

fn sm_read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_state_machine(&e).into()
}

fn sm_write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_state_machine(&e).into()
}

impl StateMachineStore {
    /// Opens the snapshot tree and rebuilds the in-memory state from the
    /// latest snapshot, if any.
    pub fn open(db: &sled::Db, executor: Executor, retention: Retention) -> Result<Self, StorageError> {
        let snapshots = db.open_tree("snapshot").map_err(sm_read_err)?;
        let store = Self {
            state: Arc::new(RwLock::new(AppliedState::default())),
            executor,
            snapshots,
            retention,
            snapshot_seq: Arc::new(AtomicU64::new(0)),
        };
        if let Some(stored) = store.load_snapshot()? {
            let state: AppliedState = bincode::deserialize(&stored.data).map_err(sm_read_err)?;
            tracing::info!(last_applied = ?state.last_applied, "restored state from snapshot");
            *store.write() = state;
        }
        Ok(store)
    }

    pub fn view(&self) -> StateView {
        StateView(self.state.clone())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, AppliedState> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn load_snapshot(&self) -> Result<Option<StoredSnapshot>, StorageError> {
        match self.snapshots.get(CURRENT_SNAPSHOT).map_err(sm_read_err)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(bincode::deserialize(&bytes).map_err(sm_read_err)?)),
        }
    }

    async fn save_snapshot(&self, stored: &StoredSnapshot) -> Result<(), StorageError> {
        let bytes = bincode::serialize(stored).map_err(sm_write_err)?;
        self.snapshots.insert(CURRENT_SNAPSHOT, bytes).map_err(sm_write_err)?;
        self.snapshots.flush_async().await.map_err(sm_write_err)?;
        Ok(())
    }

    /// Applies entries in order. Runs on a blocking thread because model
    /// inference is CPU work.
    fn apply_blocking(&self, entries: Vec<Entry>) -> Vec<CommandResult> {
        let mut results = Vec::with_capacity(entries.len());
        for entry in entries {
            let log_id = entry.log_id;
            let result = match entry.payload {
                EntryPayload::Blank => CommandResult::None,
                EntryPayload::Membership(m) => {
                    self.write().membership = StoredMembership::new(Some(log_id), m);
                    CommandResult::None
                }
                EntryPayload::Normal(Command::Predict(cmd)) => self.apply_predict(&cmd, log_id),
            };
            self.write().last_applied = Some(log_id);
            results.push(result);
        }
        results
    }

    fn apply_predict(&self, cmd: &PredictCommand, log_id: LogId) -> CommandResult {
        // Only this task mutates the state, so deciding under a read lock and
        // recording later under a write lock cannot race with another apply.
        let decision = self.state.read().unwrap_or_else(|p| p.into_inner()).decide(cmd);
        let outcome = match decision {
            Decision::Replay(earlier) => {
                tracing::info!(index = log_id.index, id = %cmd.id, first_index = earlier.index, "retry answered from the idempotency record");
                earlier
            }
            Decision::Conflict => {
                let msg = format!("idempotency key {:?} was already used for a different request", cmd.id);
                self.write().record(cmd, log_id, PredictResult::KeyConflict(msg), self.retention)
            }
            Decision::Run => {
                let result = self.executor.predict(&cmd.model, &cmd.input_json);
                let outcome = self.write().record(cmd, log_id, result, self.retention);
                tracing::info!(
                    index = log_id.index,
                    term = log_id.leader_id.term,
                    id = %cmd.id,
                    model = %cmd.model,
                    result = %outcome.result.summary(),
                    "applied prediction"
                );
                outcome
            }
        };
        CommandResult::Predicted(outcome)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (data, last_applied, membership) = {
            let state = self.state.read().unwrap_or_else(|p| p.into_inner());
            let data = bincode::serialize(&*state).map_err(sm_read_err)?;
            (data, state.last_applied, state.membership.clone())
        };
        let seq = self.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match last_applied {
            Some(l) => format!("{}-{}-{seq}", l.leader_id.term, l.index),
            None => format!("empty-{seq}"),
        };
        let meta = SnapshotMeta { last_log_id: last_applied, last_membership: membership, snapshot_id };
        let stored = StoredSnapshot { meta: meta.clone(), data };
        self.save_snapshot(&stored).await?;
        tracing::info!(snapshot = %meta.snapshot_id, bytes = stored.data.len(), "built snapshot");
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(stored.data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.apply_blocking(entries))
            .await
            .map_err(|e| StorageIOError::write_state_machine(&e).into())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let state: AppliedState = bincode::deserialize(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        self.save_snapshot(&StoredSnapshot { meta: meta.clone(), data }).await?;
        tracing::info!(snapshot = %meta.snapshot_id, last_applied = ?state.last_applied, "installed snapshot from leader");
        *self.write() = state;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self.load_snapshot()?.map(|s| Snapshot { meta: s.meta, snapshot: Box::new(Cursor::new(s.data)) }))
    }
}
