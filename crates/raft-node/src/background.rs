//! Background tasks of a node: leader checkpoints and Raft metrics.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domains::integrity::IntegrityCommand;
use crate::domains::Command;
use crate::node::RaftNode;

/// A leader task: periodically proposes the leader's digest at its last
/// applied index, so that every replica can compare its own (see
/// `Integrity::check`).
pub(crate) async fn checkpoints(node: RaftNode, every: Duration, stop: CancellationToken) {
    // Checkpoint entries do not change the digest, so comparing digests (not
    // indexes) keeps an idle leader from checkpointing its own checkpoints.
    let mut last_digest = String::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (upto, digest) = {
            let s = node.state().read();
            (s.last_applied.map(|l| l.index).unwrap_or(0), s.digest().to_string())
        };
        if digest == last_digest || digest.is_empty() {
            continue;
        }
        let cmd = Command::Integrity(IntegrityCommand::Checkpoint { upto, digest: digest.clone() });
        tokio::select! {
            _ = stop.cancelled() => return,
            written = node.write(cmd) => match written {
                Ok(_) => last_digest = digest,
                Err(e) => tracing::debug!(error = %e, "checkpoint not written"),
            },
        }
    }
}

/// Mirrors openraft's metrics into the `metrics` registry.
pub(crate) async fn raft_metrics(node: RaftNode) {
    let mut rx = node.raft().metrics();
    let mut leader = None;
    loop {
        {
            let m = rx.borrow_and_update();
            node.inner().quorum.observe(&m);
            metrics::gauge!("boat_raft_term").set(m.current_term as f64);
            metrics::gauge!("boat_raft_last_applied").set(m.last_applied.map(|l| l.index).unwrap_or(0) as f64);
            metrics::gauge!("boat_raft_is_leader").set(if m.state == openraft::ServerState::Leader {
                1.0
            } else {
                0.0
            });
            metrics::gauge!("boat_raft_commit_index").set(node.log_store().committed_index() as f64);
            if m.current_leader != leader {
                if m.current_leader.is_some() {
                    metrics::counter!("boat_raft_leader_changes_total").increment(1);
                }
                leader = m.current_leader;
            }
        }
        tokio::select! {
            _ = node.stopped() => return,
            changed = rx.changed() => if changed.is_err() { return },
        }
    }
}
