//! The leader's beacon thread (see `network::beacon` for why beacons
//! exist).
//!
//! It runs on an OS thread with a runtime of its own, so that neither a
//! Raft core waiting on a flush nor a node runtime busy with blocking work
//! holds it up. While this node leads, it sends every member a beacon each
//! `every`, to a peer only while openraft sent that peer an append within
//! `allowance`, and tells the [`QuorumClock`] when a majority of the voters
//! last answered that they follow this leader.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::ServerState;
use tokio_util::sync::CancellationToken;

use crate::network::{Beacon, ClientAddrs, Faults, PeerCalls, Pulse};
use crate::quorum::QuorumClock;
use crate::types::{NodeId, Raft};

/// What the beacon thread needs from its node.
pub(crate) struct Beacons {
    pub raft: Raft,
    pub id: NodeId,
    pub faults: Faults,
    pub addrs: Arc<ClientAddrs>,
    pub pulse: Pulse,
    pub quorum: QuorumClock,
    pub every: Duration,
    pub allowance: Duration,
}

impl Beacons {
    /// Starts the thread; it ends when `stop` is cancelled or openraft has
    /// shut down.
    pub(crate) fn spawn(self, stop: CancellationToken) -> std::io::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new().name("boat-beacons".into()).spawn(move || {
            runtime.block_on(async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = self.run() => {}
                }
            })
        })?;
        Ok(())
    }

    async fn run(self) {
        // The channels are made on this thread's runtime, which drives them.
        let calls = PeerCalls::new(self.id, self.faults.clone(), self.addrs.clone());
        let mut metrics = self.raft.metrics();
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // When each voter last said it follows this leader, in `term`.
        let mut acked: HashMap<NodeId, Instant> = HashMap::new();
        let mut term = 0;
        loop {
            tick.tick().await;
            if metrics.has_changed().is_err() {
                return; // openraft has shut down
            }
            let (vote, voters, peers) = {
                let m = metrics.borrow_and_update();
                if m.state != ServerState::Leader {
                    continue;
                }
                let membership = m.membership_config.membership();
                let voters: Vec<NodeId> = membership.voter_ids().collect();
                let peers: Vec<(NodeId, String)> = membership
                    .nodes()
                    .filter(|(n, _)| **n != self.id)
                    .map(|(n, node)| (*n, node.raft_addr.clone()))
                    .collect();
                (m.vote, voters, peers)
            };
            if vote.leader_id().term != term {
                term = vote.leader_id().term;
                acked.clear();
            }
            let beacon = Beacon { vote };
            let mut answers = tokio::task::JoinSet::new();
            for (peer, addr) in peers {
                // A peer openraft has stopped sending to hears no beacon
                // either: the core may be stuck, and then a new leader is due.
                if self.pulse.since(peer).is_none_or(|d| d > self.allowance) {
                    continue;
                }
                let (calls, beacon, ttl) = (calls.clone(), beacon.clone(), self.every);
                answers.spawn(async move { (peer, calls.beacon(peer, &addr, &beacon, ttl).await) });
            }
            while let Some(answer) = answers.join_next().await {
                if let Ok((peer, true)) = answer {
                    acked.insert(peer, Instant::now());
                }
            }
            if let Some(at) = majority_since(self.id, &voters, &acked) {
                self.quorum.beacons_acked(term, at);
            }
        }
    }
}

/// When a majority of `voters` last followed this leader: the latest time
/// by which that many of them (this node, `id`, at any time) had answered.
fn majority_since(id: NodeId, voters: &[NodeId], acked: &HashMap<NodeId, Instant>) -> Option<Instant> {
    let needed = voters.len() / 2 + 1;
    let from_peers = needed - usize::from(voters.contains(&id));
    if from_peers == 0 {
        return Some(Instant::now());
    }
    let mut times: Vec<Instant> = voters.iter().filter(|v| **v != id).filter_map(|v| acked.get(v).copied()).collect();
    times.sort_unstable_by(|a, b| b.cmp(a));
    times.get(from_peers - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_majority_is_as_recent_as_its_oldest_needed_answer() {
        let now = Instant::now();
        let old = now - Duration::from_millis(300);
        let acked: HashMap<NodeId, Instant> = [(2, now), (3, old)].into();
        // Three voters: this node and the newest answer.
        assert_eq!(majority_since(1, &[1, 2, 3], &acked), Some(now));
        // Five voters: three needed, so the second answer, and none without it.
        assert_eq!(majority_since(1, &[1, 2, 3, 4, 5], &acked), Some(old));
        let one: HashMap<NodeId, Instant> = [(2, now)].into();
        assert_eq!(majority_since(1, &[1, 2, 3, 4, 5], &one), None);
        // A node that is not a voter itself needs a majority of others.
        assert_eq!(majority_since(9, &[2, 3, 4], &one), None);
        assert_eq!(majority_since(9, &[2, 3], &acked), Some(old));
    }
}
