//! CheckQuorum: a leader that has not heard from a majority for a while
//! stops taking writes.
//!
//! A leader cut off from its peers stays leader in openraft until it hears
//! of a higher term, and would keep accepting requests it can never commit;
//! clients would wait for their own timeouts before trying another node.
//! Instead, once a majority has not acknowledged this leader for
//! `check_quorum` (the maximum election timeout, by which time the others
//! may have elected a new leader), it refuses new writes with
//! `WriteError::NoQuorum` (503 with `Retry-After`), and writes waiting for
//! their commit learn it through [`RaftNode::quorum_lost`].
//!
//! The time of the last majority acknowledgement is the later of two
//! sources: openraft's `millis_since_quorum_ack`, taken when each metrics
//! report arrives (so it stays right however rarely reports come), and the
//! answers to the leader's beacons (`liveness`), which keep coming while
//! openraft's core waits on a slow flush and sends no heartbeats.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::ServerState;

use crate::node::RaftNode;
use crate::types::RaftMetrics;

/// When a majority last acknowledged this node as leader, by term. Shared
/// by the metrics task and the beacon thread, which update it, and writers.
#[derive(Clone, Default)]
pub(crate) struct QuorumClock(Arc<Mutex<Acks>>);

#[derive(Default)]
struct Acks {
    /// From openraft's metrics; None when this node does not lead.
    raft: Option<(u64, Instant)>,
    /// From the beacons' answers.
    beacons: Option<(u64, Instant)>,
}

impl QuorumClock {
    fn lock(&self) -> std::sync::MutexGuard<'_, Acks> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A majority answered this leader's beacons of `term` by `at`.
    pub(crate) fn beacons_acked(&self, term: u64, at: Instant) {
        let mut acks = self.lock();
        if !acks.beacons.is_some_and(|(t, b)| t == term && b >= at) {
            acks.beacons = Some((term, at));
        }
    }

    /// Updates from one metrics report.
    pub(crate) fn observe(&self, m: &RaftMetrics) {
        let mut acks = self.lock();
        let last = &mut acks.raft;
        if m.state != ServerState::Leader {
            *last = None;
            return;
        }
        let now = Instant::now();
        let acked = match (m.millis_since_quorum_ack, *last) {
            (Some(ms), _) => now.checked_sub(Duration::from_millis(ms)).unwrap_or(now),
            // A leader of a new term not acknowledged yet counts from the
            // moment it was elected.
            (None, Some((term, at))) if term == m.current_term => at,
            (None, _) => now,
        };
        *last = Some((m.current_term, acked));
    }

    /// Time since a majority last acknowledged this leader.
    pub(crate) fn age(&self) -> Option<Duration> {
        let acks = self.lock();
        let (term, at) = acks.raft?;
        let at = match acks.beacons {
            Some((t, b)) if t == term => at.max(b),
            _ => at,
        };
        Some(at.elapsed())
    }
}

impl RaftNode {
    /// Whether this node leads and a majority acknowledged it recently.
    pub fn has_quorum(&self) -> bool {
        self.is_leader() && self.inner().quorum.age().is_some_and(|a| a <= self.inner().check_quorum)
    }

    /// Resolves once this node leads no more or has lost its majority: a
    /// write waiting for its commit here will not get it soon.
    pub async fn quorum_lost(&self) {
        let every = (self.inner().check_quorum / 4).max(Duration::from_millis(10));
        while self.has_quorum() {
            tokio::time::sleep(every).await;
        }
    }
}
