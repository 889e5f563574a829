//! The deterministic part of the state machine: everything that a snapshot
//! holds and that must be identical on every replica at the same log index.
//!
//! Invariants:
//! - Applying the same entries in the same order from the same state gives
//!   the same `AppliedState` on every node; nothing here reads a local clock,
//!   a random source or iteration order of a hash map.
//! - `digest` is a running SHA-256 over every applied prediction outcome and
//!   model change, so two replicas with equal `last_applied` and equal digest
//!   have produced the same results.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::command::{PredictOutcome, PredictResult};
use crate::types::{LogId, StoredMembership};

/// How long prediction records (idempotency and async results) are kept,
/// by count and by age.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Retention {
    pub max_records: usize,
    pub max_age_ms: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self { max_records: 20_000, max_age_ms: 60 * 60 * 1000 }
    }
}

/// Digests kept for comparison with the leader's checkpoints.
const DIGEST_HISTORY: usize = 4096;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    fingerprint: String,
    outcome: PredictOutcome,
}

/// Prediction records, evicted oldest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RecordTable {
    by_id: HashMap<String, Record>,
    /// (id, proposed_at_ms) in apply order.
    order: VecDeque<(String, u64)>,
}

impl RecordTable {
    fn insert(&mut self, id: String, proposed_at_ms: u64, record: Record, retention: Retention) {
        if self.by_id.insert(id.clone(), record).is_none() {
            self.order.push_back((id, proposed_at_ms));
        }
        let horizon = proposed_at_ms.saturating_sub(retention.max_age_ms);
        while let Some((oldest, at)) = self.order.front() {
            if self.order.len() > retention.max_records || *at < horizon {
                self.by_id.remove(oldest);
                self.order.pop_front();
            } else {
                break;
            }
        }
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

/// A replica's digest disagreed with the leader's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Divergence {
    pub index: u64,
    pub local_digest: String,
    pub leader_digest: String,
    /// Log index of the checkpoint entry that revealed it.
    pub detected_at: u64,
}

/// The replicated, snapshotted state of one node.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppliedState {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    /// Hex SHA-256 chain; empty before the first fold.
    pub digest: String,
    /// Predictions run (not counting replays of idempotent retries).
    pub predictions_run: u64,
    pub catalog: Catalog,
    /// First divergence from the leader this replica has seen, if any.
    pub divergence: Option<Divergence>,
    records: RecordTable,
    /// (index, digest after that index) for recent indexes that changed it.
    history: VecDeque<(u64, String)>,
    history_truncated: bool,
}

impl AppliedState {
    /// Looks up the record for a request id.
    pub fn decide(&self, id: &str, fingerprint: &str) -> Decision {
        match self.records.by_id.get(id) {
            None => Decision::Run,
            Some(r) if r.fingerprint == fingerprint => {
                let mut earlier = r.outcome.clone();
                earlier.duplicate = true;
                Decision::Replay(earlier)
            }
            Some(_) => Decision::Conflict,
        }
    }

    /// The recorded outcome of a request, if it is still held.
    pub fn outcome(&self, id: &str) -> Option<&PredictOutcome> {
        self.records.by_id.get(id).map(|r| &r.outcome)
    }

    /// Records a prediction outcome, folding it into the digest. A key
    /// conflict is answered but not recorded, so the original stays.
    pub fn record(&mut self, fingerprint: String, outcome: PredictOutcome, proposed_at_ms: u64, retention: Retention) {
        self.fold(outcome.index, &[outcome.id.as_bytes(), &bincode::serialize(&outcome.result).unwrap_or_default()]);
        if !matches!(outcome.result, PredictResult::KeyConflict(_)) {
            self.predictions_run += 1;
            let id = outcome.id.clone();
            self.records.insert(id, proposed_at_ms, Record { fingerprint, outcome }, retention);
        }
    }

    /// Folds a model change into the digest.
    pub fn record_model_change(&mut self, index: u64, what: &str, name: &str, version: u64) {
        self.fold(index, &[what.as_bytes(), name.as_bytes(), &version.to_be_bytes()]);
    }

    pub fn records_held(&self) -> usize {
        self.records.by_id.len()
    }

    /// Compares the leader's digest at `upto` with ours. Returns the
    /// divergence when they differ (and remembers the first one).
    pub fn check(&mut self, upto: u64, leader_digest: &str, checkpoint_index: u64) -> Option<Divergence> {
        let local = self.digest_at(upto)?;
        if local == leader_digest {
            return None;
        }
        let d = Divergence {
            index: upto,
            local_digest: local,
            leader_digest: leader_digest.to_string(),
            detected_at: checkpoint_index,
        };
        if self.divergence.is_none() {
            self.divergence = Some(d.clone());
        }
        Some(d)
    }

    /// Our digest after applying every entry up to `index`, when known.
    fn digest_at(&self, index: u64) -> Option<String> {
        match self.history.iter().rev().find(|(i, _)| *i <= index) {
            Some((_, d)) => Some(d.clone()),
            None if !self.history_truncated => Some(String::new()),
            None => None,
        }
    }

    /// Simulates a replica that computed something different (fault
    /// injection for testing the divergence check).
    pub fn perturb_digest(&mut self, index: u64) {
        self.fold(index, &[b"injected divergence"]);
    }

    fn fold(&mut self, index: u64, parts: &[&[u8]]) {
        let mut h = Sha256::new();
        h.update(self.digest.as_bytes());
        h.update(index.to_be_bytes());
        for p in parts {
            h.update((p.len() as u64).to_be_bytes());
            h.update(p);
        }
        self.digest = hex::encode(h.finalize());
        match self.history.back_mut() {
            Some((i, d)) if *i == index => d.clone_from(&self.digest),
            _ => self.history.push_back((index, self.digest.clone())),
        }
        if self.history.len() > DIGEST_HISTORY {
            self.history.pop_front();
            self.history_truncated = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(id: &str, index: u64, out: &str) -> PredictOutcome {
        PredictOutcome {
            id: id.into(),
            model: "echo".into(),
            version: 1,
            index,
            term: 1,
            result: PredictResult::InvalidInput(out.into()),
            duplicate: false,
        }
    }

    #[test]
    fn retry_replays_the_first_outcome_and_conflicts_are_refused() {
        let mut s = AppliedState::default();
        assert_eq!(s.decide("k", "f1"), Decision::Run);
        s.record("f1".into(), outcome("k", 3, "a"), 1, Retention::default());
        match s.decide("k", "f1") {
            Decision::Replay(o) => {
                assert!(o.duplicate);
                assert_eq!(o.index, 3);
            }
            other => panic!("expected a replay, got {other:?}"),
        }
        assert_eq!(s.decide("k", "f2"), Decision::Conflict);
    }

    #[test]
    fn digest_depends_on_every_outcome() {
        let (mut a, mut b) = (AppliedState::default(), AppliedState::default());
        let r = Retention::default();
        a.record("f".into(), outcome("1", 1, "x"), 1, r);
        b.record("f".into(), outcome("1", 1, "x"), 1, r);
        assert_eq!(a.digest, b.digest);
        a.record("f".into(), outcome("2", 2, "x"), 1, r);
        b.record("f".into(), outcome("2", 2, "y"), 1, r);
        assert_ne!(a.digest, b.digest);
    }

    #[test]
    fn records_are_bounded_by_count_and_age() {
        let mut s = AppliedState::default();
        let r = Retention { max_records: 3, max_age_ms: 100 };
        for i in 0..5u64 {
            s.record("f".into(), outcome(&i.to_string(), i + 1, "x"), i, r);
        }
        assert_eq!(s.records_held(), 3);
        assert_eq!(s.decide("0", "f"), Decision::Run);
        s.record("f".into(), outcome("late", 9, "x"), 1_000, r);
        assert_eq!(s.records_held(), 1, "records older than max_age are dropped");
    }

    #[test]
    fn checkpoints_find_a_replica_that_differs() {
        let (mut a, mut b) = (AppliedState::default(), AppliedState::default());
        let r = Retention::default();
        for s in [&mut a, &mut b] {
            s.record("f".into(), outcome("1", 5, "x"), 1, r);
        }
        let leader_digest = a.digest.clone();
        assert_eq!(b.check(5, &leader_digest, 6), None);
        assert_eq!(b.check(7, &leader_digest, 8), None, "digest unchanged after 5");
        b.perturb_digest(9);
        a.record_model_change(9, "upload", "m", 1);
        let d = b.check(9, &a.digest, 10).expect("divergence detected");
        assert_eq!(d.index, 9);
        assert_eq!(b.divergence.as_ref(), Some(&d));
        assert_eq!(b.check(4, "", 11), None, "before the first fold both are empty");
    }
}
