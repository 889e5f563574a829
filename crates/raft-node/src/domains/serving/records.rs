//! Prediction records: the outcome of every recent request by id. They
//! answer retries (idempotency) and `GET /predictions/{id}` (the result
//! backend of asynchronous requests).
//!
//! Records live on disk, in two sled trees of the node's database, not in
//! memory: `records` (id and sequence number → fingerprint and outcome) and
//! `records_seq` (sequence number → id and the leader's timestamp). What is
//! replicated, and snapshotted, is only the [`RecordWindow`]: the sequence
//! numbers of the live records. Each record is written once, at the
//! sequence number apply gives it, and never changed, so:
//! - a record is live when `first_live <= seq < next_seq`; eviction (by the
//!   leader's timestamps, and by count as a safety cap) only moves
//!   `first_live`, identically on every replica;
//! - a node restarting from a snapshot drops the records at or after the
//!   snapshot's `next_seq` ([`RecordStore::forget_from`]), which the log
//!   replay writes again, byte for byte;
//! - records below the current snapshot's `first_live` are dead for good
//!   and are removed after each snapshot ([`RecordStore::forget_before`]);
//! - a full snapshot sent to another node carries the live records.

use serde::{Deserialize, Serialize};

use super::command::PredictOutcome;

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
    by_id: sled::Tree,
    by_seq: sled::Tree,
}

fn id_prefix(id: &str) -> Vec<u8> {
    // Length-prefixed, so that no id's keys fall inside another's prefix.
    let mut k = Vec::with_capacity(4 + id.len() + 8);
    k.extend_from_slice(&(id.len() as u32).to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

fn id_key(id: &str, seq: u64) -> Vec<u8> {
    let mut k = id_prefix(id);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn seq_of(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

/// A disk failure here makes this replica's answers differ from the others';
/// it is logged, and the checkpoints will show the divergence.
fn disk_error(what: &str, e: impl std::fmt::Display) {
    tracing::error!(error = %e, "prediction records: cannot {what}");
}

impl RecordStore {
    pub fn open(db: &sled::Db) -> sled::Result<Self> {
        Ok(Self { by_id: db.open_tree("records")?, by_seq: db.open_tree("records_seq")? })
    }

    /// The live record for `id`, if any: the newest one inside the window.
    fn live(&self, w: &RecordWindow, id: &str) -> Option<Record> {
        let end = id_key(id, w.next_seq);
        let start = id_key(id, w.first_live);
        let found = self.by_id.range(start..end).next_back()?;
        match found {
            Ok((_, v)) => bincode::deserialize(&v).map_err(|e| disk_error("decode a record", e)).ok(),
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
        let id = outcome.id.clone();
        let record = Record { fingerprint, outcome };
        match (bincode::serialize(&record), bincode::serialize(&SeqEntry { id: id.clone(), proposed_at_ms })) {
            (Ok(r), Ok(s)) => {
                if let Err(e) =
                    self.by_id.insert(id_key(&id, seq), r).and_then(|_| self.by_seq.insert(seq.to_be_bytes(), s))
                {
                    disk_error("write", e);
                }
            }
            _ => disk_error("encode", "a record"),
        }
        w.next_seq += 1;
        while w.len() > retention.max_records {
            w.first_live += 1;
        }
        let horizon = proposed_at_ms.saturating_sub(retention.max_age_ms);
        while !w.is_empty() {
            match self.seq_entry(w.first_live) {
                Some(e) if e.proposed_at_ms < horizon => w.first_live += 1,
                _ => break,
            }
        }
    }

    fn seq_entry(&self, seq: u64) -> Option<SeqEntry> {
        match self.by_seq.get(seq.to_be_bytes()) {
            Ok(Some(v)) => bincode::deserialize(&v).ok(),
            Ok(None) => None,
            Err(e) => {
                disk_error("read", e);
                None
            }
        }
    }

    /// Removes the records in `seqs` from both trees.
    fn remove(&self, seqs: impl std::ops::RangeBounds<[u8; 8]>) -> sled::Result<usize> {
        let mut n = 0;
        for item in self.by_seq.range(seqs) {
            let (k, v) = item?;
            if let (Some(seq), Ok(e)) = (seq_of(&k), bincode::deserialize::<SeqEntry>(&v)) {
                self.by_id.remove(id_key(&e.id, seq))?;
            }
            self.by_seq.remove(k)?;
            n += 1;
        }
        Ok(n)
    }

    /// Drops the records at or after `w.next_seq`: after a restart from a
    /// snapshot, the log replay writes them again.
    pub fn forget_from(&self, w: &RecordWindow) -> sled::Result<usize> {
        self.remove(w.next_seq.to_be_bytes()..)
    }

    /// Drops the records below `first_live`, dead in every later state.
    pub fn forget_before(&self, first_live: u64) -> sled::Result<usize> {
        self.remove(..first_live.to_be_bytes())
    }

    /// The live records of `w`, for a full snapshot.
    pub fn export(&self, w: RecordWindow) -> impl Iterator<Item = sled::Result<ExportedRecord>> + '_ {
        self.by_seq.range(w.first_live.to_be_bytes()..w.next_seq.to_be_bytes()).map(move |item| {
            let (k, v) = item?;
            let seq = seq_of(&k).unwrap_or_default();
            let e: SeqEntry = bincode::deserialize(&v).map_err(|e| sled::Error::Unsupported(e.to_string()))?;
            let record = self.by_id.get(id_key(&e.id, seq))?.map(|r| r.to_vec()).unwrap_or_default();
            Ok(ExportedRecord { seq, id: e.id, proposed_at_ms: e.proposed_at_ms, record })
        })
    }

    /// Empties both trees (before importing a snapshot's records).
    pub fn clear(&self) -> sled::Result<()> {
        self.by_id.clear()?;
        self.by_seq.clear()
    }

    /// Stores one record of a received snapshot.
    pub fn import(&self, r: ExportedRecord) -> sled::Result<()> {
        let entry = bincode::serialize(&SeqEntry { id: r.id.clone(), proposed_at_ms: r.proposed_at_ms })
            .map_err(|e| sled::Error::Unsupported(e.to_string()))?;
        self.by_id.insert(id_key(&r.id, r.seq), r.record)?;
        self.by_seq.insert(r.seq.to_be_bytes(), entry)?;
        Ok(())
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
}
