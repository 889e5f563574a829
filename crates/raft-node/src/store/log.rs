//! The Raft log, vote and commit marker in sled.
//!
//! Keys of the `log` tree are big-endian `u64` indexes, so sled's byte order
//! is log order and range scans return entries in sequence.
//!
//! Durability: sled only writes its buffers to disk every 500 ms by itself.
//! `append` and `save_vote` therefore flush before they report completion,
//! because openraft counts an entry towards a majority (and so acknowledges
//! it to a client) once the follower's append has completed.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{RaftLogReader, StorageIOError};

use crate::commit::CommitTracker;
use crate::network::Faults;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

/// Shared, cheap-to-clone handle to the log trees.
#[derive(Clone)]
pub struct LogStore {
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
    /// Last committed index seen by `save_committed`, for `/status`.
    committed_index: Arc<AtomicU64>,
    tracker: CommitTracker,
    /// Injected disk stalls (`/control`'s `slow_disk`).
    faults: Faults,
}

fn key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_logs(&e).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_logs(&e).into()
}

impl LogStore {
    pub fn open(db: &sled::Db, tracker: CommitTracker, faults: Faults) -> Result<Self, sled::Error> {
        let store = Self {
            db: db.clone(),
            log: db.open_tree("log")?,
            meta: db.open_tree("meta")?,
            committed_index: Arc::new(AtomicU64::new(0)),
            tracker,
            faults,
        };
        if let Ok(Some(c)) = store.get_meta::<LogId>(COMMITTED) {
            store.committed_index.store(c.index, Ordering::Relaxed);
        }
        Ok(store)
    }

    /// Highest index known to be committed (0 before anything is).
    pub fn committed_index(&self) -> u64 {
        self.committed_index.load(Ordering::Relaxed)
    }

    /// Whether the log holds no entry at all.
    pub fn is_empty(&self) -> bool {
        self.log.is_empty()
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, k: &[u8]) -> Result<Option<T>, StorageError> {
        match self.meta.get(k).map_err(read_err)? {
            None => Ok(None),
            Some(v) => Ok(Some(bincode::deserialize(&v).map_err(read_err)?)),
        }
    }

    fn put_meta<T: serde::Serialize>(&self, k: &[u8], v: &T) -> Result<(), StorageError> {
        let bytes = bincode::serialize(v).map_err(write_err)?;
        self.meta.insert(k, bytes).map_err(write_err)?;
        Ok(())
    }

    fn last_entry_id(&self) -> Result<Option<LogId>, StorageError> {
        match self.log.last().map_err(read_err)? {
            None => Ok(None),
            Some((_, v)) => {
                let e: Entry = bincode::deserialize(&v).map_err(read_err)?;
                Ok(Some(e.log_id))
            }
        }
    }

    /// Removes every entry with index in `range`.
    fn remove_range(&self, range: impl RangeBounds<[u8; 8]>) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for item in self.log.range(range) {
            let (k, _) = item.map_err(write_err)?;
            batch.remove(k);
        }
        self.log.apply_batch(batch).map_err(write_err)
    }
}

fn to_key_bound(b: Bound<&u64>) -> Bound<[u8; 8]> {
    match b {
        Bound::Included(i) => Bound::Included(key(*i)),
        Bound::Excluded(i) => Bound::Excluded(key(*i)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Most bytes of entries one AppendEntries carries. openraft (0.9) gives an
/// append one heartbeat interval to complete, so a follower catching up gets
/// the log in slices it can receive, store and flush in that time.
pub const MAX_APPEND_BYTES: usize = 4 * 1024 * 1024;

impl LogStore {
    /// Entries from `start` (exclusive of `end`), stopping once
    /// `MAX_APPEND_BYTES` are collected; never empty for a non-empty range.
    fn entries_within_budget(&self, start: u64, end: u64) -> Result<Vec<Entry>, StorageError> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for item in self.log.range(key(start)..key(end)) {
            let (_, v) = item.map_err(read_err)?;
            if !out.is_empty() && bytes + v.len() > MAX_APPEND_BYTES {
                break;
            }
            bytes += v.len();
            out.push(bincode::deserialize(&v).map_err(read_err)?);
        }
        Ok(out)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let bounds = (to_key_bound(range.start_bound()), to_key_bound(range.end_bound()));
        let mut out = Vec::new();
        for item in self.log.range(bounds) {
            let (_, v) = item.map_err(read_err)?;
            out.push(bincode::deserialize(&v).map_err(read_err)?);
        }
        Ok(out)
    }

    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<Entry>, StorageError> {
        self.entries_within_budget(start, end)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = self.get_meta(LAST_PURGED)?;
        let last = self.last_entry_id()?.or(last_purged);
        Ok(LogState { last_purged_log_id: last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.put_meta(VOTE, vote)?;
        self.db.flush_async().await.map_err(|e| StorageIOError::write_vote(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.get_meta(VOTE)
    }

    /// The commit marker is written but not flushed on its own: losing it in
    /// a crash is safe (the node just learns the commit index again from the
    /// leader), and it reaches disk with the next flushed append.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        if let Some(c) = committed {
            self.put_meta(COMMITTED, &c)?;
            self.committed_index.store(c.index, Ordering::Relaxed);
            self.tracker.on_commit(c.index);
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.get_meta(COMMITTED)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let mut batch = sled::Batch::default();
        for entry in &entries {
            let bytes = bincode::serialize(entry).map_err(write_err)?;
            batch.insert(&key(entry.log_id.index), bytes);
        }
        self.log.apply_batch(batch).map_err(write_err)?;
        self.tracker.on_append(&entries);
        self.faults.stall_flush().await;
        let flushed = self.db.flush_async().await;
        callback.log_io_completed(flushed.map(|_| ()).map_err(std::io::Error::other));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.remove_range(key(log_id.index)..)?;
        self.db.flush_async().await.map_err(write_err)?;
        self.tracker.on_truncate(log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Record the purge point first: a crash between the two steps leaves
        // extra entries below it, which are harmless, never a hole.
        self.put_meta(LAST_PURGED, &log_id)?;
        self.remove_range(..=key(log_id.index))?;
        Ok(())
    }
}
