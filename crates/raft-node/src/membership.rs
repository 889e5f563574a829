//! Changing who is in the cluster while it serves.
//!
//! Adding a node is two steps, so that a newcomer never counts towards a
//! quorum before it holds the log: it joins as a learner (openraft
//! replicates to it, from a snapshot when the log is purged), and once its
//! matched index has reached the leader's log it is promoted to voter with
//! a joint-consensus membership change. Removing a voter is one membership
//! change; a removed leader steps down once the new configuration commits.
//! openraft 0.9 has no leader transfer, so none is offered.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::ChangeMembers;

use crate::node::RaftNode;
use crate::types::{BoatNode, NodeId};

/// Why a membership change did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MembershipError {
    #[error("this node is not the leader")]
    NotLeader { leader_id: Option<NodeId>, leader_http: Option<String> },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("node {id} did not catch up within {waited:?} ({matched} of {target} entries)")]
    CatchUpTimeout { id: NodeId, waited: Duration, matched: u64, target: u64 },
    #[error("raft: {0}")]
    Fatal(String),
}

fn map(e: RaftError<NodeId, ClientWriteError<NodeId, BoatNode>>) -> MembershipError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            MembershipError::NotLeader { leader_id: f.leader_id, leader_http: f.leader_node.map(|n| n.http_addr) }
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => match c {
            ChangeMembershipError::LearnerNotFound(l) => MembershipError::NotFound(l.to_string()),
            other => MembershipError::Conflict(other.to_string()),
        },
        other => MembershipError::Fatal(other.to_string()),
    }
}

/// The voters and learners of the current configuration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Members {
    pub voters: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
}

impl RaftNode {
    pub fn members(&self) -> Members {
        let m = self.raft().metrics().borrow().membership_config.clone();
        let membership = m.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let learners = membership.learner_ids().collect();
        Members { voters, learners }
    }

    fn refuse_unless_leader(&self) -> Result<(), MembershipError> {
        if self.is_leader() {
            return Ok(());
        }
        let (leader_id, leader_http) = match self.leader() {
            Some((id, http)) => (Some(id), http),
            None => (None, None),
        };
        Err(MembershipError::NotLeader { leader_id, leader_http })
    }

    /// Adds `id` as a learner, waits (up to `catch_up`) until it holds the
    /// leader's log, then makes it a voter.
    pub async fn add_voter(&self, id: NodeId, node: BoatNode, catch_up: Duration) -> Result<Members, MembershipError> {
        self.refuse_unless_leader()?;
        let current = self.members();
        if current.voters.contains(&id) {
            return Err(MembershipError::Conflict(format!("node {id} is already a voter")));
        }
        tracing::info!(node = id, raft = %node.raft_addr, http = %node.http_addr, "adding a learner");
        self.raft().add_learner(id, node, false).await.map_err(map)?;
        let started = Instant::now();
        loop {
            let (matched, target) = {
                let m = self.raft().metrics().borrow().clone();
                let matched = m.replication.as_ref().and_then(|r| r.get(&id).cloned().flatten()).map_or(0, |l| l.index);
                (matched, m.last_log_index.unwrap_or(0))
            };
            if matched >= target {
                break;
            }
            if started.elapsed() > catch_up {
                return Err(MembershipError::CatchUpTimeout { id, waited: catch_up, matched, target });
            }
            self.refuse_unless_leader()?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::info!(node = id, waited_ms = started.elapsed().as_millis() as u64, "learner caught up; promoting it");
        self.raft().change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false).await.map_err(map)?;
        Ok(self.members())
    }

    /// Removes a voter or a learner from the cluster.
    pub async fn remove_member(&self, id: NodeId) -> Result<Members, MembershipError> {
        self.refuse_unless_leader()?;
        let current = self.members();
        let change = if current.voters.contains(&id) {
            if current.voters.len() == 1 {
                return Err(MembershipError::Conflict("the last voter cannot be removed".into()));
            }
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else if current.learners.contains(&id) {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        } else {
            return Err(MembershipError::NotFound(format!("node {id} is not a member")));
        };
        tracing::info!(node = id, "removing a member");
        self.raft().change_membership(change, false).await.map_err(map)?;
        Ok(self.members())
    }
}
