//! The deterministic part of the state machine: everything that a snapshot
//! holds and that must be identical on every replica at the same log index.
//!
//! Invariants:
//! - Applying the same entries in the same order from the same state gives
//!   the same `AppliedState` on every node; nothing here reads a local clock,
//!   a random source or iteration order of a hash map.
//! - `digest` is a running SHA-256 over every applied prediction outcome
//!   (index, id, result), so two replicas with equal `last_applied` and equal
//!   digest have produced the same results.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::command::{PredictCommand, PredictOutcome, PredictResult};
use crate::types::{LogId, StoredMembership};

/// How long idempotency records are kept, by count and by age.
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

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    fingerprint: String,
    outcome: PredictOutcome,
}

/// Idempotency records, evicted oldest first.
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

/// What to do with a prediction command, decided before any model runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run the model.
    Run,
    /// Answer with an earlier outcome (a retry).
    Replay(PredictOutcome),
    /// The key was used for a different request.
    Conflict,
}

/// The replicated, snapshotted state of one node.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppliedState {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    /// Hex SHA-256 chain over applied outcomes; empty string before the first.
    pub digest: String,
    /// Predictions run (not counting replays of idempotent retries).
    pub predictions_run: u64,
    records: RecordTable,
}

impl AppliedState {
    /// Looks up the idempotency record for `cmd`.
    pub fn decide(&self, cmd: &PredictCommand) -> Decision {
        match self.records.by_id.get(&cmd.id) {
            None => Decision::Run,
            Some(r) if r.fingerprint == cmd.fingerprint() => {
                let mut earlier = r.outcome.clone();
                earlier.duplicate = true;
                Decision::Replay(earlier)
            }
            Some(_) => Decision::Conflict,
        }
    }

    /// Records the result of a prediction that ran at `log_id` and returns
    /// its outcome. A conflicting key is answered but not recorded, so the
    /// original record stays authoritative.
    pub fn record(
        &mut self,
        cmd: &PredictCommand,
        log_id: LogId,
        result: PredictResult,
        retention: Retention,
    ) -> PredictOutcome {
        let outcome = PredictOutcome {
            id: cmd.id.clone(),
            model: cmd.model.clone(),
            index: log_id.index,
            term: log_id.leader_id.term,
            result,
            duplicate: false,
        };
        self.fold_digest(&outcome);
        if !matches!(outcome.result, PredictResult::KeyConflict(_)) {
            self.predictions_run += 1;
            let record = Record { fingerprint: cmd.fingerprint(), outcome: outcome.clone() };
            self.records.insert(cmd.id.clone(), cmd.proposed_at_ms, record, retention);
        }
        outcome
    }

    /// Number of idempotency records held.
    pub fn records_held(&self) -> usize {
        self.records.by_id.len()
    }

    fn fold_digest(&mut self, outcome: &PredictOutcome) {
        let mut h = Sha256::new();
        h.update(self.digest.as_bytes());
        h.update(outcome.index.to_be_bytes());
        h.update(outcome.id.as_bytes());
        h.update([0u8]);
        // bincode of a plain enum is deterministic; it cannot fail for these
        // types, but an error still folds in a stable marker rather than panic.
        h.update(bincode::serialize(&outcome.result).unwrap_or_else(|_| b"?".to_vec()));
        self.digest = hex::encode(h.finalize());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    fn cmd(id: &str, input: &str, at: u64) -> PredictCommand {
        PredictCommand { id: id.into(), model: "echo".into(), input_json: input.into(), proposed_at_ms: at }
    }

    fn log_id(index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(1, 0), index)
    }

    #[test]
    fn retry_replays_the_first_outcome() {
        let mut s = AppliedState::default();
        let c = cmd("k", "\"a\"", 1);
        assert_eq!(s.decide(&c), Decision::Run);
        let first = s.record(&c, log_id(3), PredictResult::Output("\"a\"".into()), Retention::default());
        match s.decide(&c) {
            Decision::Replay(o) => {
                assert!(o.duplicate);
                assert_eq!(o.index, 3);
                assert_eq!(o.result, first.result);
            }
            other => panic!("expected a replay, got {other:?}"),
        }
        assert_eq!(s.decide(&cmd("k", "\"b\"", 2)), Decision::Conflict);
    }

    #[test]
    fn digest_depends_on_every_outcome() {
        let mut a = AppliedState::default();
        let mut b = AppliedState::default();
        let r = Retention::default();
        a.record(&cmd("1", "1", 1), log_id(1), PredictResult::Output("1".into()), r);
        b.record(&cmd("1", "1", 1), log_id(1), PredictResult::Output("1".into()), r);
        assert_eq!(a.digest, b.digest);
        a.record(&cmd("2", "2", 1), log_id(2), PredictResult::Output("2".into()), r);
        b.record(&cmd("2", "2", 1), log_id(2), PredictResult::Output("3".into()), r);
        assert_ne!(a.digest, b.digest);
    }

    #[test]
    fn records_are_bounded_by_count_and_age() {
        let mut s = AppliedState::default();
        let r = Retention { max_records: 3, max_age_ms: 100 };
        for i in 0..5u64 {
            s.record(&cmd(&i.to_string(), "0", i), log_id(i + 1), PredictResult::Output("0".into()), r);
        }
        assert_eq!(s.records_held(), 3);
        assert_eq!(s.decide(&cmd("0", "0", 0)), Decision::Run);
        s.record(&cmd("late", "0", 1_000), log_id(9), PredictResult::Output("0".into()), r);
        assert_eq!(s.records_held(), 1, "records older than max_age are dropped");
    }
}
