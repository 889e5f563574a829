//! Prediction records: the outcome of every recent request by id. They
//! answer retries (idempotency) and `GET /predictions/{id}` (the result
//! backend of asynchronous requests).
//!
//! Records are evicted oldest first, by count and by the age measured with
//! the leader's timestamps, so every replica evicts the same ones.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::command::PredictOutcome;

/// How long prediction records are kept, by count and by age.
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

/// What to do with a prediction request, decided before any model runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Run,
    /// Answer with an earlier outcome (a retry).
    Replay(PredictOutcome),
    /// The key was used for a different request.
    Conflict,
}

/// Prediction records, evicted oldest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RecordTable {
    by_id: HashMap<String, Record>,
    /// (id, proposed_at_ms) in apply order.
    order: VecDeque<(String, u64)>,
}

impl RecordTable {
    /// Looks up the record for a request id.
    pub fn decide(&self, id: &str, fingerprint: &str) -> Decision {
        match self.by_id.get(id) {
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
        self.by_id.get(id).map(|r| &r.outcome)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn insert(&mut self, fingerprint: String, outcome: PredictOutcome, proposed_at_ms: u64, retention: Retention) {
        let id = outcome.id.clone();
        if self.by_id.insert(id.clone(), Record { fingerprint, outcome }).is_none() {
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

    #[test]
    fn retry_replays_the_first_outcome_and_conflicts_are_refused() {
        let mut t = RecordTable::default();
        assert_eq!(t.decide("k", "f1"), Decision::Run);
        t.insert("f1".into(), outcome("k", 3), 1, Retention::default());
        match t.decide("k", "f1") {
            Decision::Replay(o) => {
                assert!(o.duplicate);
                assert_eq!(o.index, 3);
            }
            other => panic!("expected a replay, got {other:?}"),
        }
        assert_eq!(t.decide("k", "f2"), Decision::Conflict);
    }

    #[test]
    fn records_are_bounded_by_count_and_age() {
        let mut t = RecordTable::default();
        let r = Retention { max_records: 3, max_age_ms: 100 };
        for i in 0..5u64 {
            t.insert("f".into(), outcome(&i.to_string(), i + 1), i, r);
        }
        assert_eq!(t.len(), 3);
        assert_eq!(t.decide("0", "f"), Decision::Run);
        t.insert("f".into(), outcome("late", 9), 1_000, r);
        assert_eq!(t.len(), 1, "records older than max_age are dropped");
    }
}
