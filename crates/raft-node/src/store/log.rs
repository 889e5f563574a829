//! The Raft log, vote and commit marker.
//!
//! Entries live in append-only segment files (`wal`, under
//! `<data-dir>/raft-log/`), and so do the vote and the purge point, each a
//! small file replaced durably. The commit marker is kept in the node's
//! sled database without a flush of its own.
//!
//! Durability: openraft counts an entry towards a majority (and so
//! acknowledges it to a client) once the follower's append has completed,
//! so `append` reports completion only after `fdatasync`, and `save_vote`
//! only after the new vote file is synced and renamed into place.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{RaftLogReader, StorageIOError};

use super::wal::{self, Wal};
use crate::commit::CommitTracker;
use crate::format::STORE_FORMAT;
use crate::network::Faults;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

/// Keys of the sled `meta` tree. Format-1 stores also kept the vote and
/// the purge point there, and the entries in the `log` tree.
const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";
/// File names in the log directory.
const VOTE_FILE: &str = "vote";
const PURGED_FILE: &str = "purged";

/// Shared, cheap-to-clone handle to the log.
#[derive(Clone)]
pub struct LogStore {
    dir: PathBuf,
    wal: Arc<Mutex<Wal>>,
    /// The last purged log id, as the purge file says.
    purged: Arc<Mutex<Option<LogId>>>,
    meta: sled::Tree,
    /// Last committed index seen by `save_committed`, for `/status`.
    committed_index: Arc<AtomicU64>,
    tracker: CommitTracker,
    /// Injected disk stalls (`/control`'s `slow_disk`).
    faults: Faults,
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_logs(&e).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_logs(&e).into()
}

fn sled_io(e: sled::Error) -> io::Error {
    io::Error::other(e.to_string())
}

fn bincode_io(e: bincode::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Reads a small bincode file, `None` when it does not exist.
fn read_file<T: serde::de::DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bincode::deserialize(&bytes).map_err(bincode_io)?)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn lock_wal(wal: &Mutex<Wal>) -> MutexGuard<'_, Wal> {
    // The segment table stays consistent across a panic elsewhere: every
    // change to it is made after the file operation it records.
    wal.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs blocking file work (writes followed by a sync) off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(io::Error::other)?
}

impl LogStore {
    /// Opens the log in `data_dir`, whose sled database `db` has the format
    /// marker `found` (see `super::check_format`), converting a format-1
    /// store, whose log lived in sled, first.
    pub fn open(
        db: &sled::Db,
        data_dir: &Path,
        found: u32,
        tracker: CommitTracker,
        faults: Faults,
    ) -> io::Result<Self> {
        let dir = &data_dir.join(super::LOG_DIR);
        let meta = db.open_tree("meta").map_err(sled_io)?;
        if found < STORE_FORMAT {
            convert_sled_log(db, &data_dir.join(super::SLED_DIR), dir)?;
        }
        // A conversion that stopped after the new marker was written
        // leaves the old entries behind; they are no longer read.
        let old_log = db.open_tree("log").map_err(sled_io)?;
        if !old_log.is_empty() {
            old_log.clear().map_err(sled_io)?;
        }
        std::fs::create_dir_all(dir)?;
        let purged: Option<LogId> = read_file(&dir.join(PURGED_FILE))?;
        let wal = Wal::open(dir, purged.map(|p| p.index + 1).unwrap_or(0))?;
        let store = Self {
            dir: dir.to_path_buf(),
            wal: Arc::new(Mutex::new(wal)),
            purged: Arc::new(Mutex::new(purged)),
            meta,
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

    /// Whether a vote has ever been stored.
    pub fn has_vote(&self) -> bool {
        self.dir.join(VOTE_FILE).exists()
    }

    /// Whether the log holds no entry at all.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> MutexGuard<'_, Wal> {
        lock_wal(&self.wal)
    }

    fn purged(&self) -> Option<LogId> {
        *self.purged.lock().unwrap_or_else(|p| p.into_inner())
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
        let last = self.lock().last_index();
        match last {
            None => Ok(None),
            Some(i) => Ok(self.read_entries(i, i + 1, usize::MAX)?.pop().map(|e| e.log_id)),
        }
    }

    /// Entries from `start` up to `end` (exclusive) that the log holds,
    /// stopping once `budget` bytes are collected; never empty when the
    /// first one is held.
    fn read_entries(&self, start: u64, end: u64, budget: usize) -> Result<Vec<Entry>, StorageError> {
        let mut places = Vec::new();
        {
            let wal = self.lock();
            let (Some(first), Some(last)) = (wal.first_index(), wal.last_index()) else {
                return Ok(Vec::new());
            };
            let mut bytes = 0usize;
            for i in start.max(first)..end.min(last + 1) {
                let Some(place) = wal.locate(i) else { break };
                if !places.is_empty() && bytes + place.2 > budget {
                    break;
                }
                bytes += place.2;
                places.push(place);
            }
        }
        places
            .into_iter()
            .map(|(file, offset, len)| {
                let bytes = wal::read_at(&file, offset, len).map_err(read_err)?;
                bincode::deserialize(&bytes).map_err(read_err)
            })
            .collect()
    }
}

/// Moves a format-1 store's log (entries in the sled `log` tree, vote and
/// purge point in `meta`) into `dir`, then records the current format. A
/// conversion interrupted before the marker is written starts again.
fn convert_sled_log(db: &sled::Db, sled_dir: &Path, dir: &Path) -> io::Result<()> {
    let log = db.open_tree("log").map_err(sled_io)?;
    let meta = db.open_tree("meta").map_err(sled_io)?;
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    if let Some(v) = meta.get(VOTE).map_err(sled_io)? {
        wal::write_durably(dir, VOTE_FILE, &v)?;
    }
    let mut keep_from = 0;
    if let Some(p) = meta.get(LAST_PURGED).map_err(sled_io)? {
        let purged: LogId = bincode::deserialize(&p).map_err(bincode_io)?;
        keep_from = purged.index + 1;
        wal::write_durably(dir, PURGED_FILE, &p)?;
    }
    let mut wal = Wal::open(dir, keep_from)?;
    let mut chunk: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut flush = |chunk: &mut Vec<(u64, Vec<u8>)>| -> io::Result<()> {
        if let Some(f) = wal.append(chunk)? {
            f.sync_data()?;
        }
        chunk.clear();
        Ok(())
    };
    for item in log.iter() {
        let (k, v) = item.map_err(sled_io)?;
        let index =
            u64::from_be_bytes(k.as_ref().try_into().map_err(|_| io::Error::other("a log key is not 8 bytes"))?);
        if index < keep_from {
            continue;
        }
        chunk.push((index, v.to_vec()));
        if chunk.len() >= 256 {
            flush(&mut chunk)?;
        }
    }
    flush(&mut chunk)?;
    meta.insert(super::FORMAT_KEY, &STORE_FORMAT.to_be_bytes()).map_err(sled_io)?;
    meta.remove(VOTE).map_err(sled_io)?;
    meta.remove(LAST_PURGED).map_err(sled_io)?;
    db.flush().map_err(sled_io)?;
    super::sync_sled(sled_dir)?;
    log.clear().map_err(sled_io)?;
    tracing::info!(dir = %dir.display(), "converted the Raft log from sled to segment files");
    Ok(())
}

/// Most bytes of entries one AppendEntries carries. openraft (0.9) gives an
/// append one heartbeat interval to complete, so a follower catching up gets
/// the log in slices it can receive, store and flush in that time.
pub const MAX_APPEND_BYTES: usize = 4 * 1024 * 1024;

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => i.saturating_add(1),
            Bound::Excluded(i) => *i,
            Bound::Unbounded => u64::MAX,
        };
        self.read_entries(start, end, usize::MAX)
    }

    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<Entry>, StorageError> {
        self.read_entries(start, end, MAX_APPEND_BYTES)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged = self.purged();
        let last = self.last_entry_id()?.or(last_purged);
        Ok(LogState { last_purged_log_id: last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let bytes = bincode::serialize(vote).map_err(|e| StorageIOError::write_vote(&e))?;
        let dir = self.dir.clone();
        blocking(move || wal::write_durably(&dir, VOTE_FILE, &bytes))
            .await
            .map_err(|e| StorageIOError::write_vote(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        read_file(&self.dir.join(VOTE_FILE)).map_err(|e| StorageIOError::read_vote(&e).into())
    }

    /// The commit marker is written but not flushed: losing it in a crash is
    /// safe (the node just learns the commit index again from the leader),
    /// and sled writes it out within half a second.
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
        let mut items = Vec::with_capacity(entries.len());
        for entry in &entries {
            items.push((entry.log_id.index, bincode::serialize(entry).map_err(write_err)?));
        }
        // Writing to the page cache is quick; the sync is what waits.
        let to_sync = self.lock().append(&items).map_err(write_err)?;
        self.tracker.on_append(&entries);
        self.faults.stall_flush().await;
        let synced = blocking(move || to_sync.iter().try_for_each(|f| f.sync_data())).await;
        callback.log_io_completed(synced);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let wal = self.wal.clone();
        blocking(move || lock_wal(&wal).truncate(log_id.index)).await.map_err(write_err)?;
        self.tracker.on_truncate(log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Record the purge point first: a crash between the two steps leaves
        // extra entries below it, which are skipped, never a hole.
        let bytes = bincode::serialize(&log_id).map_err(write_err)?;
        let (dir, wal) = (self.dir.clone(), self.wal.clone());
        blocking(move || {
            wal::write_durably(&dir, PURGED_FILE, &bytes)?;
            lock_wal(&wal).purge(log_id.index)
        })
        .await
        .map_err(write_err)?;
        *self.purged.lock().unwrap_or_else(|p| p.into_inner()) = Some(log_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use openraft::testing::{StoreBuilder, Suite};
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::blobs::BlobStore;
    use crate::domains::serving::{Executor, RecordStore, Retention};
    use crate::domains::{ApplyEnv, Domains};
    use crate::store::StateMachineStore;

    fn open_db(dir: &Path) -> (sled::Db, u32) {
        let db = sled::Config::new().path(dir.join(super::super::SLED_DIR)).open().expect("sled");
        let found = super::super::check_format(&db).expect("format");
        (db, found)
    }

    struct Stores;

    impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for Stores {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError> {
            let dir = tempfile::tempdir().expect("temp dir");
            let (db, found) = open_db(dir.path());
            let log =
                LogStore::open(&db, dir.path(), found, CommitTracker::default(), Faults::default()).expect("log store");
            let records_db =
                sled::Config::new().path(dir.path().join(super::super::RECORDS_DIR)).open().expect("records");
            let records = RecordStore::open(&records_db).expect("record store");
            let blobs = BlobStore::open(dir.path().join("blobs")).expect("blob store");
            let executor = Executor::new(boat_serving::ModelRegistry::new(Default::default()));
            let env = ApplyEnv::new(Domains { executor, retention: Retention::default() }, blobs, records);
            let sm = StateMachineStore::open(dir.path(), &records_db, env)?;
            Ok((dir, log, sm))
        }
    }

    /// openraft's own conformance suite for log and state machine stores:
    /// appends, reads, truncation, purges, votes and snapshots.
    #[test]
    fn the_stores_pass_openraft_s_storage_suite() {
        Suite::test_all(Stores).expect("storage suite");
    }

    fn blank(term: u64, index: u64) -> Entry {
        Entry { log_id: LogId::new(CommittedLeaderId::new(term, 0), index), payload: EntryPayload::Blank }
    }

    #[test]
    fn a_format_1_store_is_converted_with_its_entries_vote_and_purge_point() {
        let dir = tempfile::tempdir().unwrap();
        let sled_dir = dir.path().join(super::super::SLED_DIR);
        {
            // The layout format 1 wrote: everything in sled.
            let db = sled::Config::new().path(&sled_dir).open().unwrap();
            let meta = db.open_tree("meta").unwrap();
            meta.insert(super::super::FORMAT_KEY, &1u32.to_be_bytes()).unwrap();
            let vote = Vote::new_committed(3, 1);
            meta.insert(VOTE, bincode::serialize(&vote).unwrap()).unwrap();
            meta.insert(LAST_PURGED, bincode::serialize(&blank(2, 4).log_id).unwrap()).unwrap();
            let log = db.open_tree("log").unwrap();
            // Index 4 was purged but not yet removed when the node stopped.
            for i in 4..=9u64 {
                log.insert(i.to_be_bytes(), bincode::serialize(&blank(2 + i / 8, i)).unwrap()).unwrap();
            }
            db.flush().unwrap();
        }
        let (db, found) = open_db(dir.path());
        assert_eq!(found, 1);
        let mut store = LogStore::open(&db, dir.path(), found, CommitTracker::default(), Faults::default()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new_committed(3, 1)));
            let state = store.get_log_state().await.unwrap();
            assert_eq!(state.last_purged_log_id, Some(blank(2, 4).log_id));
            assert_eq!(state.last_log_id, Some(blank(3, 9).log_id));
            let entries = store.try_get_log_entries(0..100).await.unwrap();
            let ids: Vec<LogId> = entries.iter().map(|e| e.log_id).collect();
            assert_eq!(ids, (5..=9).map(|i| blank(2 + i / 8, i).log_id).collect::<Vec<_>>());
        });
        assert!(db.open_tree("log").unwrap().is_empty(), "the sled log is emptied");
        drop((store, db));
        let (db, found) = open_db(dir.path());
        assert_eq!(found, STORE_FORMAT, "the marker says the store was converted");
        let store = LogStore::open(&db, dir.path(), found, CommitTracker::default(), Faults::default()).unwrap();
        assert_eq!(store.lock().last_index(), Some(9));
    }
}
