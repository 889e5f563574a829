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
use openraft::{RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};

use crate::apply::apply_entries;
use crate::command::CommandResult;
use crate::executor::Executor;
use crate::state::{AppliedState, Retention};
use crate::types::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};

const CURRENT_SNAPSHOT: &[u8] = b"current";

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    #[serde(with = "serde_bytes")]
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

    /// Fault injection: makes this replica's digest differ from the others,
    /// as if it had computed a different output, so that the leader's next
    /// checkpoint exposes it.
    pub fn inject_divergence(&self) {
        let mut s = self.0.write().unwrap_or_else(|p| p.into_inner());
        let index = s.last_applied.map(|l| l.index).unwrap_or(0);
        s.perturb_digest(index);
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
        store.executor.sync_catalog(&store.view().read().catalog);
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
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        // Encoding a state that holds model files is CPU work: off the runtime.
        let shared = self.state.clone();
        let encoded = tokio::task::spawn_blocking(move || {
            let state = shared.read().unwrap_or_else(|p| p.into_inner());
            bincode::serialize(&*state).map(|data| (data, state.last_applied, state.membership.clone()))
        })
        .await
        .map_err(sm_read_err)?;
        let (data, last_applied, membership) = encoded.map_err(sm_read_err)?;
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
        tokio::task::spawn_blocking(move || apply_entries(&this.state, &this.executor, this.retention, entries))
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
        let signature = meta.signature();
        // Decoding the state and loading its models (ONNX Runtime sessions)
        // is CPU work: off the runtime.
        let executor = self.executor.clone();
        let (state, data) = tokio::task::spawn_blocking(move || {
            let state: AppliedState =
                bincode::deserialize(&data).map_err(|e| StorageIOError::read_snapshot(Some(signature), &e))?;
            executor.sync_catalog(&state.catalog);
            Ok::<_, StorageIOError<crate::types::NodeId>>((state, data))
        })
        .await
        .map_err(sm_write_err)??;
        self.save_snapshot(&StoredSnapshot { meta: meta.clone(), data }).await?;
        tracing::info!(snapshot = %meta.snapshot_id, last_applied = ?state.last_applied, "installed snapshot from leader");
        *self.write() = state;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self.load_snapshot()?.map(|s| Snapshot { meta: s.meta, snapshot: Box::new(Cursor::new(s.data)) }))
    }
}
