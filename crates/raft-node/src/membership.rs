//! Changing who is in the cluster while it serves.
//!
//! Adding a node is two steps, so that a newcomer never counts towards a
//! quorum before it holds the log: it joins as a learner (openraft
//! replicates to it, from a snapshot when the log is purged), and once its
//! matched index has reached the leader's log it is promoted to voter with
//! a joint-consensus membership change. Removing a voter is one membership
//! change; a removed leader steps down once the new configuration commits.
//!
//! openraft 0.9 has no leader transfer, and a follower refuses votes while
//! its leader's lease runs (one maximum election timeout after it last heard
//! from the leader). A handover therefore makes the leader go quiet: it
//! asks the other voters to pause their own elections, refuses writes and
//! stops heartbeats, waits until every follower's lease has run out, and
//! then tells the chosen voter to stand. That voter holds the whole log (it
//! was caught up and nothing was appended since), so it wins the votes of
//! the others; the old leader sees the higher term and steps down.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::ChangeMembers;

use crate::network::{ClientAddrs, Handover};
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

fn map(e: RaftError<NodeId, ClientWriteError<NodeId, BoatNode>>, addrs: &ClientAddrs) -> MembershipError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            let leader_http = f.leader_id.zip(f.leader_node).map(|(id, n)| addrs.of(id, &n.http_addr));
            MembershipError::NotLeader { leader_id: f.leader_id, leader_http }
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
        self.raft().add_learner(id, node, false).await.map_err(|e| map(e, &self.inner().addrs))?;
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
        self.raft()
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
            .map_err(|e| map(e, &self.inner().addrs))?;
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
        self.raft().change_membership(change, false).await.map_err(|e| map(e, &self.inner().addrs))?;
        Ok(self.members())
    }

    /// Hands this leader's leadership to the voter `target`, and waits (up
    /// to `within`) until `target` leads. Writes are refused, with a
    /// retryable error, during the quiet window (about one election timeout).
    pub async fn transfer_leader(&self, target: NodeId, within: Duration) -> Result<NodeId, MembershipError> {
        self.refuse_unless_leader()?;
        if target == self.id() {
            return Ok(target);
        }
        let members = self.members();
        if !members.voters.contains(&target) {
            return Err(MembershipError::NotFound(format!("node {target} is not a voter")));
        }
        let addrs: Vec<(NodeId, String)> = {
            let m = self.raft().metrics().borrow().membership_config.clone();
            m.nodes().map(|(id, n)| (*id, n.raft_addr.clone())).collect()
        };
        let target_addr = addrs.iter().find(|(id, _)| *id == target).map(|(_, a)| a.clone()).unwrap_or_default();
        let lease = self.inner().check_quorum;
        let started = Instant::now();
        // The other voters stay out of the race for the whole handover.
        let pause = (lease * 3 + within).as_millis() as u64;
        for (id, addr) in
            addrs.iter().filter(|(id, _)| *id != target && *id != self.id() && members.voters.contains(id))
        {
            if let Err(e) = self.inner().peers.handover(*id, addr, &Handover::PauseElections { ms: pause }, lease).await
            {
                tracing::warn!(node = id, error = %e, "a voter did not pause its elections; the handover goes on");
            }
        }
        tracing::info!(target, "handing leadership over: going quiet");
        let quiet = Quiet::begin(self, Instant::now() + lease * 3 + within);
        let outcome = self.hand_over(target, &target_addr, lease, within, started).await;
        drop(quiet);
        match &outcome {
            Ok(_) => tracing::info!(target, ms = started.elapsed().as_millis() as u64, "leadership handed over"),
            Err(e) => tracing::warn!(target, error = %e, "leadership handover failed"),
        }
        outcome
    }

    /// The quiet part of [`Self::transfer_leader`]: waits for the target to
    /// hold the whole log and for the followers' leases to run out, then
    /// tells the target to stand and waits for it to lead.
    async fn hand_over(
        &self,
        target: NodeId,
        target_addr: &str,
        lease: Duration,
        within: Duration,
        started: Instant,
    ) -> Result<NodeId, MembershipError> {
        let deadline = started + within;
        let last_index = || self.raft().metrics().borrow().last_log_index.unwrap_or(0);
        // Entries already accepted still go out and renew the followers'
        // leases; wait until the log stood still for a whole lease and the
        // target holds all of it.
        let mut quiet_since = (Instant::now(), last_index());
        loop {
            if !self.is_leader() {
                // The target may stand by itself once the quiet outlasts
                // its own wait; who won is known at its first append.
                match self.leader() {
                    Some((id, _)) if id == target => return Ok(target),
                    Some(_) => {
                        return Err(MembershipError::Conflict(
                            "this node lost its leadership during the handover".into(),
                        ))
                    }
                    None if Instant::now() > deadline => {
                        return Err(MembershipError::Conflict("no node leads after the handover".into()))
                    }
                    None => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                }
            }
            let now_index = last_index();
            if now_index != quiet_since.1 {
                quiet_since = (Instant::now(), now_index);
            }
            let matched = {
                let m = self.raft().metrics().borrow().clone();
                m.replication.as_ref().and_then(|r| r.get(&target).cloned().flatten()).map_or(0, |l| l.index)
            };
            if matched >= now_index && quiet_since.0.elapsed() > lease + Duration::from_millis(100) {
                break;
            }
            if Instant::now() > deadline {
                return Err(MembershipError::CatchUpTimeout { id: target, waited: within, matched, target: now_index });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let ttl = lease.max(Duration::from_millis(500));
        self.inner()
            .peers
            .handover(target, target_addr, &Handover::Elect, ttl)
            .await
            .map_err(|e| MembershipError::Conflict(format!("node {target} did not stand for election: {e}")))?;
        loop {
            if let Some((id, _)) = self.leader() {
                if id == target && !self.is_leader() {
                    return Ok(target);
                }
            }
            if Instant::now() > deadline {
                return Err(MembershipError::Conflict(format!(
                    "node {target} stood for election but does not lead after {:?}",
                    started.elapsed()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The leader's quiet period during a handover: no heartbeats, and writes
/// refused until `until`. Ends when dropped, also when the call handling the
/// handover is dropped halfway, so a leader never stays silent by accident.
struct Quiet<'a>(&'a RaftNode);

impl<'a> Quiet<'a> {
    fn begin(node: &'a RaftNode, until: Instant) -> Self {
        *node.inner().handover_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(until);
        node.raft().runtime_config().heartbeat(false);
        Self(node)
    }
}

impl Drop for Quiet<'_> {
    fn drop(&mut self) {
        self.0.raft().runtime_config().heartbeat(true);
        *self.0.inner().handover_until.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}
