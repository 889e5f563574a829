//! Fault injection, driven by a node's `/control` endpoint: cut this node
//! off from chosen peers for a while, add latency to every Raft message it
//! sends or receives, or make every flush of its log slower (a disk that
//! stalls).
//!
//! A partition is enforced on both sides of this node's links: outbound calls
//! to a cut peer fail as unreachable, and inbound calls from it are refused.
//! Partitions heal by themselves when their duration runs out.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::types::NodeId;

#[derive(Default)]
struct FaultState {
    cut_until: BTreeMap<NodeId, Instant>,
    delay: Duration,
    slow_flush: Duration,
}

/// Shared handle; clones see the same faults.
#[derive(Clone, Default)]
pub struct Faults(Arc<Mutex<FaultState>>);

/// What `/status` and `/control` report about active faults.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FaultReport {
    /// Peers currently cut off, with milliseconds left.
    pub partitioned: BTreeMap<NodeId, u64>,
    pub delay_ms: u64,
    /// Added to every log flush.
    #[serde(default)]
    pub slow_disk_ms: u64,
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, FaultState> {
        // The guarded data is plain values; a poisoned lock still holds a
        // usable state.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops all Raft traffic to and from `peers` for `duration`.
    pub fn partition(&self, peers: &[NodeId], duration: Duration) {
        let until = Instant::now() + duration;
        let mut s = self.lock();
        for p in peers {
            s.cut_until.insert(*p, until);
        }
    }

    /// Ends every partition and removes any added delay and disk stall.
    pub fn heal(&self) {
        let mut s = self.lock();
        s.cut_until.clear();
        s.delay = Duration::ZERO;
        s.slow_flush = Duration::ZERO;
    }

    /// Every log flush from now on takes `stall` longer (zero removes it).
    pub fn set_slow_disk(&self, stall: Duration) {
        self.lock().slow_flush = stall;
    }

    /// Sleeps for the configured disk stall, if any: called by the log
    /// store around each flush.
    pub async fn stall_flush(&self) {
        let d = self.lock().slow_flush;
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }

    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    pub fn delay(&self) -> Duration {
        self.lock().delay
    }

    /// Whether traffic with `peer` must be dropped now.
    pub fn is_cut(&self, peer: NodeId) -> bool {
        let mut s = self.lock();
        match s.cut_until.get(&peer) {
            Some(until) if Instant::now() < *until => true,
            Some(_) => {
                s.cut_until.remove(&peer);
                false
            }
            None => false,
        }
    }

    pub fn report(&self) -> FaultReport {
        let now = Instant::now();
        let s = self.lock();
        FaultReport {
            partitioned: s
                .cut_until
                .iter()
                .filter(|(_, until)| **until > now)
                .map(|(p, until)| (*p, (*until - now).as_millis() as u64))
                .collect(),
            delay_ms: s.delay.as_millis() as u64,
            slow_disk_ms: s.slow_flush.as_millis() as u64,
        }
    }

    /// Sleeps for the configured delay, if any.
    pub async fn apply_delay(&self) {
        let d = self.delay();
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_cuts_only_named_peers_and_heals() {
        let f = Faults::default();
        f.partition(&[1, 2], Duration::from_secs(60));
        assert!(f.is_cut(1) && f.is_cut(2) && !f.is_cut(0));
        assert_eq!(f.report().partitioned.len(), 2);
        f.heal();
        assert!(!f.is_cut(1));
    }

    #[test]
    fn partition_expires() {
        let f = Faults::default();
        f.partition(&[1], Duration::ZERO);
        assert!(!f.is_cut(1));
        assert!(f.report().partitioned.is_empty());
    }
}
