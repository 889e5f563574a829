//! The leader's beacon and the record of openraft's sends it depends on.
//!
//! openraft 0.9 sends heartbeats from its core task, and that task waits
//! for every log flush it starts. A leader whose disk is slow for a moment
//! (another process flushing, a snapshot being written) therefore goes
//! silent, and its followers, hearing nothing for a lease, depose a leader
//! that is alive and about to commit. A short lease, which a fast failover
//! needs, makes that common on a busy machine.
//!
//! So the leader also sends a small [`Beacon`] from a thread of its own
//! (`crate::liveness`), several times per heartbeat interval. A follower
//! counts a beacon as word from the leader, as it counts an append. The
//! beacon must not keep a leader whose Raft core is stuck for good in
//! office, though: the leader sends beacons to a peer only while openraft
//! has sent that peer an append recently ([`Pulse`]), within a stall
//! allowance of several leases. A dead or cut-off leader sends nothing, and
//! is replaced within a lease as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::types::{NodeId, Vote};

/// The leader's word to a peer: the vote it leads under (committed). The
/// answer is whether the peer follows that vote (its own is not newer).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Beacon {
    pub vote: Vote,
}

/// When openraft last sent each peer an append (entries or a heartbeat).
/// Written by the replication client, read by the beacon thread.
#[derive(Clone, Default)]
pub struct Pulse(Arc<Mutex<HashMap<NodeId, Instant>>>);

impl Pulse {
    pub(crate) fn sent(&self, to: NodeId) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(to, Instant::now());
    }

    /// Time since openraft last sent `to` an append; `None` if never.
    pub(crate) fn since(&self, to: NodeId) -> Option<Duration> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(&to).map(|at| at.elapsed())
    }
}
