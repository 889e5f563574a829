//! Linearizable reads on every node (the read-index protocol).
//!
//! A node about to answer a read from its own applied state first learns
//! the leader's read index: the leader's commit index, confirmed by a round
//! of heartbeats to a majority so that a deposed leader cannot answer.
//! The leader gets it from openraft; a follower asks the leader over the
//! Raft transport (`ReadIndex` in `proto/raft.proto`). The node then waits
//! until it has applied that index. Every write acknowledged before the
//! read began was committed at or below it, so the read sees it, whichever
//! node serves it. With no leader reachable the read fails; it never falls
//! back to possibly stale local data.

use std::time::{Duration, Instant};

use openraft::error::{CheckIsLeaderError, RaftError};

use crate::network::ReadIndexError;
use crate::node::RaftNode;
use crate::types::NodeId;

/// Why a linearizable read cannot be served now.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    #[error("no leader is known right now; an election is probably under way")]
    NoLeader,
    #[error("cannot confirm the leader's commit index: {0}")]
    Leader(#[from] ReadIndexError),
    #[error("this node did not apply up to the read index {index} within {timeout:?}")]
    Lagging { index: u64, timeout: Duration },
    #[error("raft stopped: {0}")]
    Fatal(String),
}

impl RaftNode {
    /// Waits until this node has applied every entry committed before the
    /// call, so that reading its state afterwards is linearizable. Returns
    /// the read index.
    pub async fn read_barrier(&self, timeout: Duration) -> Result<u64, ReadError> {
        let deadline = Instant::now() + timeout;
        let index = self.read_index(deadline).await?;
        let left = deadline.saturating_duration_since(Instant::now());
        let applied = self.state().read().last_applied.map_or(0, |l| l.index);
        if applied < index {
            self.raft()
                .wait(Some(left))
                .applied_index_at_least(Some(index), "linearizable read")
                .await
                .map_err(|_| ReadError::Lagging { index, timeout })?;
        }
        Ok(index)
    }

    async fn read_index(&self, deadline: Instant) -> Result<u64, ReadError> {
        let left = || deadline.saturating_duration_since(Instant::now());
        if self.is_leader() {
            match tokio::time::timeout(left(), self.raft().get_read_log_id()).await {
                Ok(Ok((read, _))) => return Ok(read.map_or(0, |l| l.index)),
                // Deposed in between: ask whoever leads now.
                Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_)))) => {}
                Ok(Err(e)) => return Err(ReadError::Fatal(e.to_string())),
                Err(_) => {
                    return Err(ReadIndexError::NoQuorum(format!("no majority answered within {:?}", left())).into())
                }
            }
        }
        let (leader, addr) = self.leader_raft_addr().ok_or(ReadError::NoLeader)?;
        if leader == self.id() {
            return Err(ReadError::NoLeader);
        }
        Ok(self.inner().peers.read_index(leader, &addr, left()).await?)
    }

    /// The leader's id and Raft address, as this node knows them.
    fn leader_raft_addr(&self) -> Option<(NodeId, String)> {
        let m = self.raft().metrics();
        let m = m.borrow();
        let id = m.current_leader?;
        let addr = m.membership_config.membership().get_node(&id)?.raft_addr.clone();
        Some((id, addr))
    }
}
