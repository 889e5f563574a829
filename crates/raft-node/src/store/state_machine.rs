//! The Raft state machine: applies committed entries through the domains
//! and keeps snapshots as files under `<data-dir>/snapshots/`.
//!
//! The state itself lives in memory (`AppliedState`, metadata only: model
//! files are in the blob store); what is durable is the latest snapshot. On
//! start the node loads that snapshot and openraft replays the log from the
//! snapshot's index up to the saved commit index, running every prediction
//! again, as Boat's replay design asks.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{RaftSnapshotBuilder, StorageIOError};

use super::snapshot::{self, SnapshotError};
use crate::domains::{apply_entries, read, write, AppliedState, ApplyEnv, CommandResult};
use crate::types::{Entry, LogId, NodeId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};

/// The node's current snapshot, thin (blob hashes only).
const CURRENT: &str = "current.snap";

/// Read access to the applied state, shared with the HTTP layer.
#[derive(Clone)]
pub struct StateView(Arc<RwLock<AppliedState>>);

impl StateView {
    /// A read guard. Poisoning can only follow a panic while the state
    /// machine held the write lock; the data is still the last consistent
    /// value, so readers take it rather than fail.
    pub fn read(&self) -> RwLockReadGuard<'_, AppliedState> {
        read(&self.0)
    }

    /// Fault injection: makes this replica's digest differ from the others,
    /// as if it had computed a different output, so that the leader's next
    /// checkpoint exposes it.
    pub fn inject_divergence(&self) {
        let mut s = write(&self.0);
        let index = s.last_applied.map(|l| l.index).unwrap_or(0);
        s.integrity.perturb(index);
    }
}

/// The state machine handed to openraft.
#[derive(Clone)]
pub struct StateMachineStore {
    state: Arc<RwLock<AppliedState>>,
    env: ApplyEnv,
    /// The database of the domains' node-local records, flushed (and its
    /// file synced) before a snapshot that refers to them is written.
    db: sled::Db,
    db_dir: Arc<PathBuf>,
    dir: Arc<PathBuf>,
    snapshot_seq: Arc<AtomicU64>,
    /// Serialises writing snapshot files and removing blobs, so a full file
    /// is never assembled from blobs that are being removed.
    files: Arc<tokio::sync::Mutex<()>>,
}

fn sm_read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_state_machine(&e).into()
}

fn sm_write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_state_machine(&e).into()
}

fn snapshot_err(meta: Option<&SnapshotMeta>, e: SnapshotError) -> StorageError {
    StorageIOError::<NodeId>::read_snapshot(meta.map(|m| m.signature()), &e).into()
}

/// Runs blocking file work off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f).await.map_err(sm_write_err)?
}

impl StateMachineStore {
    /// Opens the snapshot directory and rebuilds the in-memory state from
    /// the latest snapshot, if any, then loads its models.
    pub fn open(data_dir: &Path, db: &sled::Db, env: ApplyEnv) -> Result<Self, StorageError> {
        let dir = data_dir.join("snapshots");
        fs::create_dir_all(&dir).map_err(sm_read_err)?;
        let store = Self {
            state: Arc::default(),
            env,
            db: db.clone(),
            db_dir: Arc::new(data_dir.join(super::RECORDS_DIR)),
            dir: Arc::new(dir),
            snapshot_seq: Arc::default(),
            files: Arc::default(),
        };
        let current = store.dir.join(CURRENT);
        if current.exists() {
            let file = File::open(&current).map_err(sm_read_err)?;
            let head = snapshot::read(file, None).map_err(|e| snapshot_err(None, e))?;
            let state = snapshot::decode_state(head.format, &head.state).map_err(|e| snapshot_err(None, e))?;
            tracing::info!(last_applied = ?state.last_applied, "restored state from snapshot");
            *write(&store.state) = state;
        }
        store.env.restore(&read(&store.state)).map_err(sm_read_err)?;
        store.env.executor.sync_catalog(&read(&store.state).serving.catalog, &store.env.blobs);
        Ok(store)
    }

    pub fn view(&self) -> StateView {
        StateView(self.state.clone())
    }

    fn full_path(&self, snapshot_id: &str) -> PathBuf {
        let safe: String = snapshot_id.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        self.dir.join(format!("full-{safe}.snap"))
    }

    /// Removes full files of older snapshots and blobs that neither the
    /// live state nor `snapshot_refs` refers to. Blocking.
    fn collect_garbage(&self, snapshot_refs: BTreeSet<String>, keep_full: &Path) {
        if let Ok(entries) = fs::read_dir(self.dir.as_path()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("full-") && e.path() != keep_full {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        let _guard = self.env.blobs.guard();
        let mut keep = snapshot_refs;
        keep.extend(read(&self.state).blob_refs());
        match self.env.blobs.retain(&keep) {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed blobs nothing refers to"),
            Err(e) => tracing::warn!(error = %e, "cannot remove unreferenced blobs"),
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let _files = self.files.clone().lock_owned().await;
        let seq = self.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let this = self.clone();
        let (meta, bytes) = blocking(move || {
            // The state is metadata only (files are blobs, records are in
            // sled): a copy taken under the read lock is cheap and consistent.
            let state = read(&this.state).clone();
            let encoded = snapshot::encode_state(&state).map_err(|e| snapshot_err(None, e))?;
            let (refs, last_applied, membership) = (state.blob_refs(), state.last_applied, state.membership.clone());
            // Everything the snapshot refers to in sled is on disk before
            // the snapshot is.
            this.env.write_pending().map_err(sm_write_err)?;
            this.db.flush().map_err(sm_write_err)?;
            super::sync_sled(&this.db_dir).map_err(sm_write_err)?;
            let snapshot_id = match last_applied {
                Some(l) => format!("{}-{}-{seq}", l.leader_id.term, l.index),
                None => format!("empty-{seq}"),
            };
            let meta = SnapshotMeta { last_log_id: last_applied, last_membership: membership, snapshot_id };
            let current = this.dir.join(CURRENT);
            snapshot::write(&current, &meta, &encoded, &refs, &this.env.blobs, None)
                .map_err(|e| snapshot_err(Some(&meta), e))?;
            this.collect_garbage(refs, Path::new(""));
            match this.env.compact(&state) {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "removed records no later state needs"),
                Err(e) => tracing::warn!(error = %e, "cannot remove old records"),
            }
            Ok((meta, encoded.len()))
        })
        .await?;
        tracing::info!(snapshot = %meta.snapshot_id, state_bytes = bytes, "built snapshot");
        let file = tokio::fs::File::open(self.dir.join(CURRENT)).await.map_err(sm_read_err)?;
        Ok(Snapshot { meta, snapshot: Box::new(file) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let state = read(&self.state);
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let this = self.clone();
        tokio::task::spawn_blocking(move || apply_entries(&this.state, &this.env, entries))
            .await
            .map_err(|e| StorageIOError::write_state_machine(&e).into())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    /// A file that is unlinked at once: it lives as long as openraft holds
    /// it, and a crash leaves nothing behind.
    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let seq = self.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("incoming-{}-{seq}.snap", std::process::id()));
        let file = blocking(move || {
            let f = OpenOptions::new().read(true).write(true).create_new(true).open(&path).map_err(sm_write_err)?;
            fs::remove_file(&path).map_err(sm_write_err)?;
            Ok(f)
        })
        .await?;
        Ok(Box::new(tokio::fs::File::from_std(file)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let _files = self.files.clone().lock_owned().await;
        let mut file = snapshot.into_std().await;
        let this = self.clone();
        let meta = meta.clone();
        let installed = meta.clone();
        // Reading the blobs, decoding the state and loading its models is
        // I/O and CPU work: off the runtime.
        let state = blocking(move || {
            file.seek(SeekFrom::Start(0)).map_err(sm_read_err)?;
            this.env.clear_rows().map_err(sm_write_err)?;
            let env = this.env.clone();
            let mut import =
                |row: Vec<u8>| env.import_row(&row).map_err(|e| SnapshotError::Io(std::io::Error::other(e)));
            let sinks = snapshot::Sinks { blobs: &this.env.blobs, rows: &mut import };
            let head = snapshot::read(&mut file, Some(sinks)).map_err(|e| snapshot_err(Some(&meta), e))?;
            let state = snapshot::decode_state(head.format, &head.state).map_err(|e| snapshot_err(Some(&meta), e))?;
            let refs: BTreeSet<String> = head.blobs.into_iter().map(|(sha, _)| sha).collect();
            this.env.write_pending().map_err(sm_write_err)?;
            this.db.flush().map_err(sm_write_err)?;
            super::sync_sled(&this.db_dir).map_err(sm_write_err)?;
            snapshot::write(&this.dir.join(CURRENT), &meta, &head.state, &refs, &this.env.blobs, None)
                .map_err(|e| snapshot_err(Some(&meta), e))?;
            this.env.executor.sync_catalog(&state.serving.catalog, &this.env.blobs);
            Ok(state)
        })
        .await?;
        tracing::info!(snapshot = %installed.snapshot_id, last_applied = ?state.last_applied, "installed snapshot from leader");
        *write(&self.state) = state;
        let this = self.clone();
        let refs = read(&self.state).blob_refs();
        blocking(move || {
            this.collect_garbage(refs, Path::new(""));
            Ok(())
        })
        .await
    }

    /// The current snapshot, full: assembled once from the thin file and
    /// the blob store, then streamed by openraft in chunks.
    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let _files = self.files.clone().lock_owned().await;
        let this = self.clone();
        let found = blocking(move || {
            let current = this.dir.join(CURRENT);
            if !current.exists() {
                return Ok(None);
            }
            let head = snapshot::read(File::open(&current).map_err(sm_read_err)?, None)
                .map_err(|e| snapshot_err(None, e))?;
            let full = this.full_path(&head.meta.snapshot_id);
            if !full.exists() {
                let refs: BTreeSet<String> = head.blobs.iter().map(|(sha, _)| sha.clone()).collect();
                let state = snapshot::decode_state(head.format, &head.state).map_err(|e| snapshot_err(None, e))?;
                let mut rows = this
                    .env
                    .export_rows(&state)
                    .map(|r| r.map_err(|e| SnapshotError::Io(std::io::Error::other(e))));
                snapshot::write(&full, &head.meta, &head.state, &refs, &this.env.blobs, Some(&mut rows))
                    .map_err(|e| snapshot_err(Some(&head.meta), e))?;
                tracing::info!(snapshot = %head.meta.snapshot_id, blobs = refs.len(), "assembled a full snapshot to send");
            }
            Ok(Some((head.meta, full)))
        })
        .await?;
        let Some((meta, full)) = found else {
            return Ok(None);
        };
        let file = tokio::fs::File::open(full).await.map_err(sm_read_err)?;
        Ok(Some(Snapshot { meta, snapshot: Box::new(file) }))
    }
}
