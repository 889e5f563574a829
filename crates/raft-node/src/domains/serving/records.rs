//! Prediction records: the outcome of every recent request by id. They
//! answer retries (idempotency) and `GET /predictions/{id}` (the result
//! backend of asynchronous requests).
//!
//! Records live on disk, in the node's records database, not in memory.
//! What is replicated, and snapshotted, is only the [`RecordWindow`]: the
//! sequence numbers of the live records. Each record is written once, at
//! the sequence number apply gives it, and never changed, so:
//! - a record is live when `first_live <= seq < next_seq`; eviction (by the
//!   leader's timestamps, and by count as a safety cap) only moves
//!   `first_live`, identically on every replica;
//! - a node restarting from a snapshot drops the records at or after the
//!   snapshot's `next_seq` ([`RecordStore::forget_from`]), which the log
//!   replay writes again, byte for byte;
//! - records below the current snapshot's `first_live` are dead for good
//!   and are removed after each snapshot ([`RecordStore::forget_before`]);
//! - a full snapshot sent to another node carries the live records.
//!
//! # Layout
//! sled keeps some memory for every page of a tree even when the page is
//! not cached, and splits a leaf at 16 items, so one sled item per record
//! cost about 30 bytes of RAM each: over 100 MB for a ten-minute window at
//! full load. Records are therefore packed into few items:
//! - `record_runs`: run number (`seq / RUN_LEN`) → up to [`RUN_LEN`]
//!   consecutive records, each with its id and the leader's timestamp;
//! - `record_ids`: one of [`ID_BUCKETS`] buckets (a fixed hash of the id) →
//!   the (sequence number, id) of every stored record whose id falls there.
//!
//! A bucket is read-modify-written per record; the newest run waits in
//! memory until it is full (see [`Writer`]). One lock covers both, since
//! apply appends while a snapshot's compaction removes.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::command::PredictOutcome;

/// Records per item of `record_runs`. A run is rewritten when records are
/// dropped from it or a partly written one is completed, so runs are short.
const RUN_LEN: u64 = 8;
/// Buckets of `record_ids`: about ten ids each in a ten-minute window at
/// full load, and at most one item per record when there are few.
const ID_BUCKETS: u64 = 1 << 18;

/// How long prediction records are kept: by age (the dedup window), with a
/// count cap so that disk use stays bounded at any load.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Retention {
    pub max_records: u64,
    pub max_age_ms: u64,
}

impl Default for Retention {
    /// Ten minutes, and at most 20 million records (a few GB of disk).
    fn default() -> Self {
        Self { max_records: 20_000_000, max_age_ms: 10 * 60 * 1000 }
    }
}

/// What to do with a prediction request, decided before any model runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Run,
    /// Answer with an earlier outcome (a retry).
    Replay(PredictOutcome),
    /// The key was used for a different request.
    Conflict,
}

/// The replicated part of the records: which sequence numbers are live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordWindow {
    /// The sequence number the next record gets.
    pub next_seq: u64,
    /// The oldest live record's sequence number.
    pub first_live: u64,
}

impl RecordWindow {
    /// Live records.
    pub fn len(&self) -> u64 {
        self.next_seq - self.first_live
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    fingerprint: String,
    outcome: PredictOutcome,
}

/// A `records_seq` value of the layout before runs and buckets, read only
/// to migrate a store written by an older binary.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SeqEntry {
    id: String,
    proposed_at_ms: u64,
}

/// One live record as a full snapshot carries it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportedRecord {
    seq: u64,
    id: String,
    proposed_at_ms: u64,
    #[serde(with = "serde_bytes")]
    record: Vec<u8>,
}

/// The node-local trees holding the records. Cheap to clone.
#[derive(Clone)]
pub struct RecordStore {
    runs: sled::Tree,
    ids: sled::Tree,
    writer: Arc<Mutex<Writer>>,
}

/// What the writer keeps in memory, under the lock.
#[derive(Default)]
struct Writer {
    /// Records of the newest run not yet in `record_runs`. sled rewrites a
    /// whole leaf (16 runs) now and then when one of its items changes, so
    /// appending to a stored run record by record cost kilobytes of disk
    /// writes per record; a run is written when it is full, or when the
    /// records must be on disk ([`RecordStore::write_pending`]).
    tail: Vec<TailItem>,
    /// The leader's timestamps of one stored run: eviction asks for the
    /// oldest live record's on every insert.
    first: u64,
    at: Vec<u64>,
}

struct TailItem {
    seq: u64,
    id: Vec<u8>,
    proposed_at_ms: u64,
    record: Vec<u8>,
}

impl Writer {
    fn cached_at(&self, seq: u64) -> Option<u64> {
        if let Some(it) = self.tail.iter().find(|it| it.seq == seq) {
            return Some(it.proposed_at_ms);
        }
        let i = usize::try_from(seq.checked_sub(self.first)?).ok()?;
        self.at.get(i).copied()
    }

    fn forget_timestamps(&mut self) {
        self.first = 0;
        self.at.clear();
    }
}

fn run_key(seq: u64) -> [u8; 8] {
    (seq / RUN_LEN).to_be_bytes()
}

/// FNV-1a: fixed, so that buckets written by one run of the binary are
/// found by the next.
fn bucket_key(id: &str) -> [u8; 4] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    ((h % ID_BUCKETS) as u32).to_be_bytes()
}

/// Reads the fields of a run or bucket value; `None` when it is cut short.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn u64(&mut self) -> Option<u64> {
        let (head, rest) = self.0.split_first_chunk::<8>()?;
        self.0 = rest;
        Some(u64::from_be_bytes(*head))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_first_chunk::<4>()?;
        let n = u32::from_be_bytes(*head) as usize;
        if rest.len() < n {
            return None;
        }
        let (field, rest) = rest.split_at(n);
        self.0 = rest;
        Some(field)
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

fn put_run_item(out: &mut Vec<u8>, proposed_at_ms: u64, id: &[u8], record: &[u8]) {
    out.extend_from_slice(&proposed_at_ms.to_be_bytes());
    put_bytes(out, id);
    put_bytes(out, record);
}

fn put_bucket_entry(out: &mut Vec<u8>, seq: u64, id: &[u8]) {
    out.extend_from_slice(&seq.to_be_bytes());
    put_bytes(out, id);
}

/// One record inside a run.
struct RunItem<'a> {
    seq: u64,
    id: &'a [u8],
    proposed_at_ms: u64,
    record: &'a [u8],
}

/// A run value: the first record's sequence number, then per record the
/// leader's timestamp, the id and the encoded [`Record`].
fn parse_run(v: &[u8]) -> Option<Vec<RunItem<'_>>> {
    let mut f = Fields(v);
    let first = f.u64()?;
    let mut items = Vec::with_capacity(RUN_LEN as usize);
    while !f.0.is_empty() {
        let proposed_at_ms = f.u64()?;
        let (id, record) = (f.bytes()?, f.bytes()?);
        items.push(RunItem { seq: first + items.len() as u64, id, proposed_at_ms, record });
    }
    Some(items)
}

fn encode_run(items: &[RunItem]) -> Vec<u8> {
    let mut v = Vec::new();
    if let Some(first) = items.first() {
        v.extend_from_slice(&first.seq.to_be_bytes());
    }
    for it in items {
        put_run_item(&mut v, it.proposed_at_ms, it.id, it.record);
    }
    v
}

/// A bucket value: (sequence number, id) pairs.
fn parse_bucket(v: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let mut f = Fields(v);
    std::iter::from_fn(move || Some((f.u64()?, f.bytes()?)))
}

/// Keys of the layout before runs and buckets (migration only).
fn old_id_key(id: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + id.len() + 8);
    k.extend_from_slice(&(id.len() as u32).to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// A disk failure here makes this replica's answers differ from the others';
/// it is logged, and the checkpoints will show the divergence.
fn disk_error(what: &str, e: impl std::fmt::Display) {
    tracing::error!(error = %e, "prediction records: cannot {what}");
}

fn corrupt(what: &str) -> sled::Error {
    sled::Error::Unsupported(format!("damaged prediction record {what}"))
}

impl RecordStore {
    pub fn open(db: &sled::Db) -> sled::Result<Self> {
        let store =
            Self { runs: db.open_tree("record_runs")?, ids: db.open_tree("record_ids")?, writer: Arc::default() };
        store.migrate(db)?;
        Ok(store)
    }

    /// Moves records of the older layout (one sled item per record in
    /// `records`, indexed by `records_seq`) into runs and buckets.
    fn migrate(&self, db: &sled::Db) -> sled::Result<()> {
        if !db.tree_names().iter().any(|n| n.as_ref() == b"records_seq") {
            return Ok(());
        }
        let (by_id, by_seq) = (db.open_tree("records")?, db.open_tree("records_seq")?);
        // The old trees are dropped only once the move is durable, so a
        // move cut short by a crash starts again from nothing.
        self.runs.clear()?;
        self.ids.clear()?;
        let mut moved = 0usize;
        {
            let mut w = self.lock();
            for item in by_seq.iter() {
                let (k, v) = item?;
                let seq = u64::from_be_bytes(k.as_ref().try_into().map_err(|_| corrupt("key"))?);
                let e: SeqEntry = bincode::deserialize(&v).map_err(|_| corrupt("index entry"))?;
                if let Some(record) = by_id.get(old_id_key(&e.id, seq))? {
                    self.append(&mut w, seq, e.id.as_bytes(), e.proposed_at_ms, &record)?;
                    moved += 1;
                }
            }
            self.write_tail(&mut w)?;
        }
        db.flush()?;
        db.drop_tree("records")?;
        db.drop_tree("records_seq")?;
        db.flush()?;
        if moved > 0 {
            tracing::info!(moved, "moved prediction records to the packed layout");
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The encoded record at `seq`, if stored.
    fn record_at(&self, seq: u64) -> sled::Result<Option<Vec<u8>>> {
        if let Some(it) = self.lock().tail.iter().find(|it| it.seq == seq) {
            return Ok(Some(it.record.clone()));
        }
        let Some(run) = self.runs.get(run_key(seq))? else {
            return Ok(None);
        };
        let items = parse_run(&run).ok_or_else(|| corrupt("run"))?;
        Ok(items.iter().find(|it| it.seq == seq).map(|it| it.record.to_vec()))
    }

    /// The live record for `id`, if any: the newest one inside the window.
    fn live(&self, w: &RecordWindow, id: &str) -> Option<Record> {
        if w.is_empty() {
            return None;
        }
        let found = self.ids.get(bucket_key(id)).and_then(|bucket| {
            let Some(bucket) = bucket else {
                return Ok(None);
            };
            let newest = parse_bucket(&bucket)
                .filter(|(seq, i)| *i == id.as_bytes() && w.first_live <= *seq && *seq < w.next_seq)
                .map(|(seq, _)| seq)
                .max();
            match newest {
                Some(seq) => self.record_at(seq),
                None => Ok(None),
            }
        });
        match found {
            Ok(Some(v)) => bincode::deserialize(&v).map_err(|e| disk_error("decode a record", e)).ok(),
            Ok(None) => None,
            Err(e) => {
                disk_error("read", e);
                None
            }
        }
    }

    /// Whether `id` runs, replays an earlier outcome, or conflicts.
    pub fn decide(&self, w: &RecordWindow, id: &str, fingerprint: &str) -> Decision {
        match self.live(w, id) {
            None => Decision::Run,
            Some(r) if r.fingerprint == fingerprint => {
                let mut earlier = r.outcome;
                earlier.duplicate = true;
                Decision::Replay(earlier)
            }
            Some(_) => Decision::Conflict,
        }
    }

    /// The recorded outcome of a request, if it is still held.
    pub fn outcome(&self, w: &RecordWindow, id: &str) -> Option<PredictOutcome> {
        self.live(w, id).map(|r| r.outcome)
    }

    /// Stores one record at `seq`, which must follow the one before: in
    /// the tail, and its id in its bucket at once. Taking the writer shows
    /// that the caller holds the lock.
    fn append(&self, w: &mut Writer, seq: u64, id: &[u8], proposed_at_ms: u64, record: &[u8]) -> sled::Result<()> {
        if let Some(last) = w.tail.last() {
            if last.seq + 1 != seq {
                return Err(corrupt(&format!("run: {seq} does not follow {}", last.seq)));
            }
            // The tail holds one run only, even after a failed write of a
            // full one.
            if run_key(last.seq) != run_key(seq) {
                self.write_tail(w)?;
            }
        }
        let bucket_key = bucket_key(std::str::from_utf8(id).map_err(|_| corrupt("id"))?);
        let mut bucket = self.ids.get(bucket_key)?.map(|b| b.to_vec()).unwrap_or_default();
        put_bucket_entry(&mut bucket, seq, id);
        self.ids.insert(bucket_key, bucket)?;
        w.tail.push(TailItem { seq, id: id.to_vec(), proposed_at_ms, record: record.to_vec() });
        if (seq + 1).is_multiple_of(RUN_LEN) {
            self.write_tail(w)?;
        }
        Ok(())
    }

    /// Writes the tail into its run, after the records already stored there.
    fn write_tail(&self, w: &mut Writer) -> sled::Result<()> {
        let Some(first) = w.tail.first() else {
            return Ok(());
        };
        let key = run_key(first.seq);
        let mut run = match self.runs.get(key)? {
            Some(v) => {
                let next = parse_run(&v).ok_or_else(|| corrupt("run"))?.last().map(|it| it.seq + 1);
                if next != Some(first.seq) {
                    return Err(corrupt(&format!("run: {} does not follow {next:?}", first.seq)));
                }
                v.to_vec()
            }
            None => first.seq.to_be_bytes().to_vec(),
        };
        for it in &w.tail {
            put_run_item(&mut run, it.proposed_at_ms, &it.id, &it.record);
        }
        self.runs.insert(key, run)?;
        w.tail.clear();
        Ok(())
    }

    /// Writes the records still held in memory to the database, so that a
    /// flush of the database makes every record so far durable. Called
    /// before a snapshot refers to them.
    pub fn write_pending(&self) -> sled::Result<()> {
        self.write_tail(&mut self.lock())
    }

    /// The leader's timestamp of the record at `seq`.
    fn proposed_at(&self, w: &mut Writer, seq: u64) -> Option<u64> {
        if let Some(at) = w.cached_at(seq) {
            return Some(at);
        }
        let run = match self.runs.get(run_key(seq)) {
            Ok(Some(run)) => run,
            Ok(None) => return None,
            Err(e) => {
                disk_error("read", e);
                return None;
            }
        };
        let items = parse_run(&run)?;
        w.first = items.first().map_or(0, |it| it.seq);
        w.at = items.iter().map(|it| it.proposed_at_ms).collect();
        w.cached_at(seq)
    }

    /// Records an outcome at the next sequence number, then moves the
    /// window past records that are too old or too many.
    pub fn insert(
        &self,
        w: &mut RecordWindow,
        fingerprint: String,
        outcome: PredictOutcome,
        proposed_at_ms: u64,
        retention: Retention,
    ) {
        let seq = w.next_seq;
        let mut writer = self.lock();
        let record = Record { fingerprint, outcome };
        match bincode::serialize(&record) {
            Ok(bytes) => {
                if let Err(e) = self.append(&mut writer, seq, record.outcome.id.as_bytes(), proposed_at_ms, &bytes) {
                    disk_error("write", e);
                }
            }
            Err(e) => disk_error("encode a record", e),
        }
        w.next_seq += 1;
        while w.len() > retention.max_records {
            w.first_live += 1;
        }
        let horizon = proposed_at_ms.saturating_sub(retention.max_age_ms);
        while !w.is_empty() {
            match self.proposed_at(&mut writer, w.first_live) {
                Some(at) if at < horizon => w.first_live += 1,
                _ => break,
            }
        }
    }

    /// Removes the records of one run for which `drop` holds, and their
    /// bucket entries. They must be a prefix or a suffix of the run.
    fn drop_from_run(&self, key: &[u8], drop: impl Fn(u64) -> bool) -> sled::Result<usize> {
        let mut w = self.lock();
        self.write_tail(&mut w)?;
        let Some(run) = self.runs.get(key)? else {
            return Ok(0);
        };
        let items = parse_run(&run).ok_or_else(|| corrupt("run"))?;
        let (gone, kept): (Vec<_>, Vec<_>) = items.into_iter().partition(|it| drop(it.seq));
        for it in &gone {
            let bucket_key = bucket_key(std::str::from_utf8(it.id).map_err(|_| corrupt("id"))?);
            if let Some(bucket) = self.ids.get(bucket_key)? {
                let mut rest = Vec::with_capacity(bucket.len());
                for (seq, id) in parse_bucket(&bucket).filter(|(seq, _)| *seq != it.seq) {
                    put_bucket_entry(&mut rest, seq, id);
                }
                if rest.is_empty() {
                    self.ids.remove(bucket_key)?;
                } else {
                    self.ids.insert(bucket_key, rest)?;
                }
            }
        }
        if kept.is_empty() {
            self.runs.remove(key)?;
        } else if !gone.is_empty() {
            self.runs.insert(key, encode_run(&kept))?;
        }
        Ok(gone.len())
    }

    /// Drops the records at or after `w.next_seq`: after a restart from a
    /// snapshot, the log replay writes them again.
    pub fn forget_from(&self, w: &RecordWindow) -> sled::Result<usize> {
        self.write_pending()?;
        let keys: Vec<_> = self.runs.range(run_key(w.next_seq)..).keys().collect::<sled::Result<_>>()?;
        let mut n = 0;
        for k in keys {
            n += self.drop_from_run(&k, |seq| seq >= w.next_seq)?;
        }
        self.lock().forget_timestamps();
        Ok(n)
    }

    /// Drops the records below `first_live`, dead in every later state. One
    /// run at a time, so that apply is held up for one run at most.
    pub fn forget_before(&self, first_live: u64) -> sled::Result<usize> {
        self.write_pending()?;
        let keys: Vec<_> = self.runs.range(..=run_key(first_live)).keys().collect::<sled::Result<_>>()?;
        let mut n = 0;
        for k in keys {
            n += self.drop_from_run(&k, |seq| seq < first_live)?;
        }
        Ok(n)
    }

    /// The live records of `w`, for a full snapshot.
    pub fn export(&self, w: RecordWindow) -> impl Iterator<Item = sled::Result<ExportedRecord>> + '_ {
        let pending = self.write_pending().err().map(Err);
        let last = w.next_seq.saturating_sub(1).max(w.first_live);
        pending.into_iter().chain(self.runs.range(run_key(w.first_live)..=run_key(last)).flat_map(move |item| {
            let rows: Vec<sled::Result<ExportedRecord>> = match item {
                Err(e) => vec![Err(e)],
                Ok((_, run)) => match parse_run(&run) {
                    None => vec![Err(corrupt("run"))],
                    Some(items) => items
                        .into_iter()
                        .filter(|it| w.first_live <= it.seq && it.seq < w.next_seq)
                        .map(|it| {
                            Ok(ExportedRecord {
                                seq: it.seq,
                                id: String::from_utf8(it.id.to_vec()).map_err(|_| corrupt("id"))?,
                                proposed_at_ms: it.proposed_at_ms,
                                record: it.record.to_vec(),
                            })
                        })
                        .collect(),
                },
            };
            rows
        }))
    }

    /// Empties both trees (before importing a snapshot's records).
    pub fn clear(&self) -> sled::Result<()> {
        *self.lock() = Writer::default();
        self.runs.clear()?;
        self.ids.clear()
    }

    /// Stores one record of a received snapshot; they come in order.
    pub fn import(&self, r: ExportedRecord) -> sled::Result<()> {
        self.append(&mut self.lock(), r.seq, r.id.as_bytes(), r.proposed_at_ms, &r.record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domains::serving::PredictResult;

    fn outcome(id: &str, index: u64) -> PredictOutcome {
        PredictOutcome {
            id: id.into(),
            model: "echo".into(),
            version: 1,
            index,
            term: 1,
            result: PredictResult::InvalidInput("x".into()),
            duplicate: false,
        }
    }

    fn store() -> (tempfile::TempDir, RecordStore) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        (dir, RecordStore::open(&db).unwrap())
    }

    #[test]
    fn retry_replays_the_first_outcome_and_conflicts_are_refused() {
        let (_d, s) = store();
        let mut w = RecordWindow::default();
        assert_eq!(s.decide(&w, "k", "f1"), Decision::Run);
        s.insert(&mut w, "f1".into(), outcome("k", 3), 1, Retention::default());
        match s.decide(&w, "k", "f1") {
            Decision::Replay(o) => {
                assert!(o.duplicate);
                assert_eq!(o.index, 3);
            }
            other => panic!("expected a replay, got {other:?}"),
        }
        assert_eq!(s.decide(&w, "k", "f2"), Decision::Conflict);
        assert_eq!(s.decide(&w, "k2", "f1"), Decision::Run, "ids do not collide");
    }

    #[test]
    fn records_are_evicted_by_age_and_count_by_moving_the_window() {
        let (_d, s) = store();
        let mut w = RecordWindow::default();
        let r = Retention { max_records: 3, max_age_ms: 100 };
        for i in 0..5u64 {
            s.insert(&mut w, "f".into(), outcome(&i.to_string(), i + 1), i, r);
        }
        assert_eq!(w.len(), 3);
        assert_eq!(s.decide(&w, "0", "f"), Decision::Run, "over the count cap");
        assert!(matches!(s.decide(&w, "4", "f"), Decision::Replay(_)));
        s.insert(&mut w, "f".into(), outcome("late", 9), 1_000, r);
        assert_eq!(w.len(), 1, "records older than max_age are out of the window");
        assert_eq!(s.forget_before(w.first_live).unwrap(), 5, "dead records are removed");
        assert!(s.outcome(&w, "late").is_some());
    }

    #[test]
    fn a_restart_drops_records_after_the_snapshot_and_an_export_carries_the_live_ones() {
        let (_d, s) = store();
        let mut w = RecordWindow::default();
        let r = Retention::default();
        s.insert(&mut w, "f".into(), outcome("a", 1), 1, r);
        let at_snapshot = w;
        s.insert(&mut w, "f".into(), outcome("b", 2), 2, r);
        assert_eq!(s.forget_from(&at_snapshot).unwrap(), 1);
        assert!(s.outcome(&w, "b").is_none(), "written again by the replay");
        let exported: Vec<_> = s.export(at_snapshot).collect::<Result<_, _>>().unwrap();
        let (_d2, other) = store();
        for e in exported {
            other.import(e).unwrap();
        }
        assert_eq!(other.outcome(&at_snapshot, "a").unwrap().index, 1);
    }
    #[test]
    fn records_across_many_runs_and_shared_buckets_survive_a_reopen_and_an_export() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let s = RecordStore::open(&db).unwrap();
        let mut w = RecordWindow::default();
        let r = Retention { max_records: 100, max_age_ms: 1_000_000 };
        // 300 ids over 2^18 buckets share some buckets only by chance, so
        // the same id is also reused once it has left the window.
        for i in 0..300u64 {
            s.insert(&mut w, "f".into(), outcome(&format!("k{}", i % 250), i + 1), i, r);
        }
        assert_eq!((w.first_live, w.next_seq), (200, 300));
        assert_eq!(s.outcome(&w, "k10").unwrap().index, 261, "the newest record of a reused id");
        assert!(s.outcome(&w, "k199").is_none(), "its only record left the window");
        assert_eq!(s.forget_before(w.first_live).unwrap(), 200);
        drop(s);
        let s = RecordStore::open(&db).unwrap();
        assert_eq!(s.outcome(&w, "k249").unwrap().index, 250);
        let exported: Vec<_> = s.export(w).collect::<Result<_, _>>().unwrap();
        assert_eq!(exported.len(), 100);
        let (_d2, other) = store();
        for e in exported {
            other.import(e).unwrap();
        }
        let mut w2 = w;
        for id in ["k10", "k200", "k249"] {
            assert_eq!(other.outcome(&w, id).map(|o| o.index), s.outcome(&w, id).map(|o| o.index), "{id}");
        }
        other.insert(&mut w2, "f".into(), outcome("new", 301), 301, r);
        assert_eq!(other.outcome(&w2, "new").unwrap().index, 301, "appends after an import");
        assert_eq!(w2.first_live, 201);
    }

    #[test]
    fn records_of_the_older_one_item_per_record_layout_are_moved() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let (by_id, by_seq) = (db.open_tree("records").unwrap(), db.open_tree("records_seq").unwrap());
        for (seq, id) in [(0u64, "a"), (1, "b")] {
            let record = Record { fingerprint: "f".into(), outcome: outcome(id, seq + 7) };
            by_id.insert(old_id_key(id, seq), bincode::serialize(&record).unwrap()).unwrap();
            let entry = SeqEntry { id: id.into(), proposed_at_ms: 5 };
            by_seq.insert(seq.to_be_bytes(), bincode::serialize(&entry).unwrap()).unwrap();
        }
        let s = RecordStore::open(&db).unwrap();
        let w = RecordWindow { next_seq: 2, first_live: 0 };
        assert_eq!(s.outcome(&w, "b").unwrap().index, 8);
        assert!(matches!(s.decide(&w, "a", "f"), Decision::Replay(_)));
        assert!(!db.tree_names().iter().any(|n| n.as_ref() == b"records_seq"), "old trees dropped");
    }
}
