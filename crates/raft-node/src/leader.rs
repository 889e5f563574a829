//! Leader-only background work.
//!
//! [`RaftNode::spawn_leader_task`] runs a task each time this node becomes
//! leader, with a cancellation token that fires as soon as it stops leading
//! (a new term, a step-down) or the node shuts down. Work that only the
//! leader may do (checkpoints; later, orchestration) uses it, so two nodes
//! never run it at once for long: a deposed leader's task learns of it at the
//! same moment openraft does.

use std::future::Future;

use openraft::ServerState;
use tokio_util::sync::CancellationToken;

use crate::node::RaftNode;

impl RaftNode {
    /// Runs `task(node, stop)` for every term in which this node leads;
    /// `stop` is cancelled when that leadership ends. The task should return
    /// promptly once `stop` is cancelled.
    pub fn spawn_leader_task<F, Fut>(&self, name: &'static str, task: F)
    where
        F: Fn(RaftNode, CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let node = self.clone();
        let shutdown = self.inner().shutdown.clone();
        tokio::spawn(async move {
            let mut metrics = node.raft().metrics();
            let mut running: Option<(u64, CancellationToken)> = None;
            loop {
                let (leading, term) = {
                    let m = metrics.borrow_and_update();
                    (m.state == ServerState::Leader, m.current_term)
                };
                match (&running, leading) {
                    (Some((t, stop)), _) if !leading || *t != term => {
                        tracing::debug!(task = name, term = *t, "leadership ended; stopping leader task");
                        stop.cancel();
                        running = None;
                        continue;
                    }
                    (None, true) => {
                        let stop = shutdown.child_token();
                        tracing::debug!(task = name, term, "leading; starting leader task");
                        tokio::spawn(task(node.clone(), stop.clone()));
                        running = Some((term, stop));
                    }
                    _ => {}
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    changed = metrics.changed() => if changed.is_err() { break },
                }
            }
            if let Some((_, stop)) = running {
                stop.cancel();
            }
        });
    }
}
