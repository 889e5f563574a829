//! Cluster membership: adding a node (as a learner that catches up, then a
//! voter) and removing one. Admins only.

use std::time::Duration;

use boat_raft::{BoatNode, MembershipError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::server::AppState;

/// How long a leadership handover may take, catching up included.
pub const TRANSFER_WITHIN: Duration = Duration::from_secs(10);

/// How long a new node may take to catch up unless the caller says.
pub const DEFAULT_CATCH_UP_S: u64 = 120;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddNodeRequest {
    pub id: u64,
    /// Where peers reach the node's Raft transport (host:port; the host a
    /// name or an IP address).
    pub raft_addr: String,
    /// Where peers reach the node's HTTP API (host:port). Clients are sent
    /// to the address the node advertises (`boat node --advertise-http`).
    pub http_addr: String,
    /// Seconds the node may take to catch up before it is promoted (default 120).
    #[serde(default)]
    pub catch_up_seconds: Option<u64>,
}

/// The voter that should lead.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaderRequest {
    pub id: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeView {
    pub id: u64,
    pub raft_addr: String,
    /// Where peers reach the node's HTTP API (its membership record).
    pub http_addr: String,
    /// Where clients reach it, as far as this node knows (the address it
    /// advertises, else `http_addr`).
    pub client_http: String,
    /// `voter` or `learner`.
    pub role: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MembersView {
    pub leader_id: Option<u64>,
    pub nodes: Vec<NodeView>,
}

fn membership_error(e: MembershipError) -> ApiError {
    match e {
        MembershipError::NotLeader { leader_id, leader_http } => ApiError::not_leader(leader_id, leader_http),
        MembershipError::Conflict(m) => ApiError::conflict(m),
        MembershipError::NotFound(m) => ApiError::not_found(m),
        e @ MembershipError::CatchUpTimeout { .. } => ApiError::unavailable(
            format!("{e}; it stays a learner: check that it runs with --join, then add it again"),
            1,
        ),
        MembershipError::Fatal(m) => ApiError::unavailable(m, 1),
    }
}

fn check_addr(what: &str, addr: &str) -> Result<(), ApiError> {
    boat_raft::check_host_port(addr).map_err(|e| ApiError::unprocessable(format!("{what}: {e}")))
}

impl AppState {
    pub fn members_view(&self) -> MembersView {
        let status = self.node.status();
        let members = self.node.members();
        let nodes = status
            .members
            .iter()
            .map(|m| NodeView {
                id: m.id,
                raft_addr: m.raft_addr.clone(),
                http_addr: m.http_addr.clone(),
                client_http: self.node.client_addrs().of(m.id, &m.http_addr),
                role: if members.voters.contains(&m.id) { "voter" } else { "learner" }.into(),
            })
            .collect();
        MembersView { leader_id: status.leader_id, nodes }
    }

    pub async fn add_node(&self, who: &Principal, req: AddNodeRequest) -> Result<MembersView, ApiError> {
        check_addr("raft_addr", &req.raft_addr)?;
        check_addr("http_addr", &req.http_addr)?;
        let catch_up = Duration::from_secs(req.catch_up_seconds.unwrap_or(DEFAULT_CATCH_UP_S).clamp(1, 3600));
        let node = BoatNode { raft_addr: req.raft_addr, http_addr: req.http_addr };
        self.node.add_voter(req.id, node, catch_up).await.map_err(membership_error)?;
        tracing::info!(node = req.id, by = %who.email, "node added as a voter");
        Ok(self.members_view())
    }

    /// Hands the leadership to the voter `id`; answers once it leads.
    pub async fn transfer_leader(&self, who: &Principal, id: u64) -> Result<MembersView, ApiError> {
        self.node.transfer_leader(id, TRANSFER_WITHIN).await.map_err(membership_error)?;
        tracing::info!(node = id, by = %who.email, "leadership handed over");
        Ok(self.members_view())
    }

    pub async fn remove_node(&self, who: &Principal, id: u64) -> Result<MembersView, ApiError> {
        self.node.remove_member(id).await.map_err(membership_error)?;
        tracing::info!(node = id, by = %who.email, "node removed");
        Ok(self.members_view())
    }
}

/// How long the cluster view waits for each member's `/status`.
const STATUS_WITHIN: Duration = Duration::from_secs(1);

/// Lag (entries behind the leader's applied index) above which a node
/// counts as behind.
pub const LAG_LIMIT: u64 = 1000;

/// One member as the cluster view saw it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberStatusView {
    pub id: u64,
    pub http_addr: String,
    /// `voter` or `learner`.
    pub role: String,
    /// The member's own `/status` document; absent when it did not answer.
    #[schema(value_type = Option<Object>)]
    pub status: Option<boat_raft::NodeStatus>,
    /// Entries behind the leader's applied index.
    pub lag: Option<u64>,
    /// Why the member could not be read.
    pub error: Option<String>,
}

/// Every member's status, asked by the answering node, and one verdict.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClusterStatusView {
    /// The node that asked.
    pub answered_by: u64,
    pub leader_id: Option<u64>,
    pub nodes: Vec<MemberStatusView>,
    /// `healthy`, `degraded` or `no quorum`.
    pub verdict: String,
    pub reason: Option<String>,
}

/// A node's status as seen from outside: its address, and its status or
/// why it could not be read.
pub struct Seen<'a> {
    pub addr: &'a str,
    pub status: Option<&'a boat_raft::NodeStatus>,
}

/// The verdict on a cluster from what each of its nodes answered: `healthy`,
/// `degraded` (with the reasons) or `no quorum`. `boat status` and the
/// cluster view share it.
pub fn verdict(seen: &[Seen<'_>]) -> (&'static str, Option<String>) {
    let up: Vec<&boat_raft::NodeStatus> = seen.iter().filter_map(|s| s.status).collect();
    // The voters, as the answering nodes know them (learners do not count
    // towards a majority); a node too old to list them lists its members.
    let mut voters: Vec<u64> = up
        .iter()
        .flat_map(|s| if s.voters.is_empty() { s.members.iter().map(|m| m.id).collect() } else { s.voters.clone() })
        .collect();
    voters.sort_unstable();
    voters.dedup();
    let n_voters = if voters.is_empty() { seen.len() } else { voters.len() };
    let voters_up = up.iter().filter(|s| voters.is_empty() || voters.contains(&s.node_id)).count();
    let leader_applied = up.iter().find(|s| s.is_leader).map(|l| l.last_applied);
    if voters_up * 2 <= n_voters || leader_applied.is_none() {
        let reason =
            if leader_applied.is_none() { "no node is leader" } else { "fewer than a majority of voters answer" };
        return ("no quorum", Some(reason.to_string()));
    }
    let leader_applied = leader_applied.unwrap_or(0);
    let mut reasons = Vec::new();
    for s in seen {
        match s.status {
            None => reasons.push(format!("{} is unreachable", s.addr)),
            Some(s) if s.divergence.is_some() => reasons.push(format!("node {} diverged from the leader", s.node_id)),
            Some(s) if leader_applied.saturating_sub(s.last_applied) > LAG_LIMIT => {
                reasons.push(format!("node {} is {} entries behind", s.node_id, leader_applied - s.last_applied))
            }
            Some(_) => {}
        }
    }
    if voters_up < n_voters {
        reasons.push(format!("{voters_up} of {n_voters} voters answer"));
    }
    if reasons.is_empty() {
        ("healthy", None)
    } else {
        reasons.dedup();
        ("degraded", Some(reasons.join("; ")))
    }
}

/// Reads `http://{addr}/status`.
async fn member_status(http: &reqwest::Client, addr: &str) -> Result<boat_raft::NodeStatus, String> {
    let r = http.get(format!("http://{addr}/status")).send().await.map_err(|e| {
        if e.is_timeout() {
            format!("no answer within {} s", STATUS_WITHIN.as_secs())
        } else if e.is_connect() {
            "cannot connect (not running, or cut off)".to_string()
        } else {
            e.to_string()
        }
    })?;
    if !r.status().is_success() {
        return Err(format!("/status answered {}", r.status()));
    }
    r.json::<boat_raft::NodeStatus>().await.map_err(|e| format!("unreadable /status: {e}"))
}

impl AppState {
    /// Asks every member for its status, in parallel, and judges the whole.
    pub async fn cluster_status(&self) -> Result<ClusterStatusView, ApiError> {
        let members = self.members_view();
        // One client for every call, so that its connections are reused.
        static CLIENT: std::sync::OnceLock<Result<reqwest::Client, String>> = std::sync::OnceLock::new();
        let http = CLIENT
            .get_or_init(|| {
                let builder = reqwest::Client::builder().timeout(STATUS_WITHIN).no_proxy();
                builder.redirect(reqwest::redirect::Policy::none()).build().map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| ApiError::internal(format!("HTTP client: {e}")))?;
        let own = self.node.status();
        let answers = futures::future::join_all(members.nodes.iter().map(|n| {
            let own = &own;
            async move {
                // This node answers from memory rather than through its own port.
                if n.id == own.node_id {
                    Ok(own.clone())
                } else {
                    member_status(http, &n.http_addr).await
                }
            }
        }))
        .await;
        let seen: Vec<Seen<'_>> = members
            .nodes
            .iter()
            .zip(&answers)
            .map(|(n, a)| Seen { addr: &n.http_addr, status: a.as_ref().ok() })
            .collect();
        let (verdict, reason) = verdict(&seen);
        let leader_applied = answers.iter().flatten().find(|s| s.is_leader).map(|s| s.last_applied);
        let nodes = members
            .nodes
            .iter()
            .zip(answers)
            .map(|(n, a)| {
                let (status, error) = match a {
                    Ok(s) => (Some(s), None),
                    Err(e) => (None, Some(e)),
                };
                MemberStatusView {
                    id: n.id,
                    http_addr: n.http_addr.clone(),
                    role: n.role.clone(),
                    lag: status.as_ref().zip(leader_applied).map(|(s, a)| a.saturating_sub(s.last_applied)),
                    status,
                    error,
                }
            })
            .collect();
        Ok(ClusterStatusView {
            answered_by: own.node_id,
            leader_id: members.leader_id,
            nodes,
            verdict: verdict.into(),
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: u64, leader: bool, applied: u64, voters: &[u64], members: &[u64]) -> boat_raft::NodeStatus {
        let json = serde_json::json!({
            "node_id": id, "is_leader": leader, "state": if leader { "Leader" } else { "Follower" },
            "leader_id": null, "leader_http": null, "term": 2, "commit_index": applied, "last_applied": applied,
            "last_log_index": applied, "snapshot_index": null, "purged_index": null, "log_entries": 0,
            "members": members.iter().map(|m| serde_json::json!({"id": m, "raft_addr": "a", "http_addr": "b"})).collect::<Vec<_>>(),
            "voters": voters, "state_digest": "d", "predictions_run": 0, "idempotency_records": 0,
            "divergence": null, "faults": {"partitioned": {}, "delay_ms": 0}
        });
        serde_json::from_value(json).expect("a status document")
    }

    #[test]
    fn learners_do_not_count_towards_the_majority() {
        let (voters, members) = ([0, 1, 2], [0, 1, 2, 3]);
        let leader = status(0, true, 10, &voters, &members);
        let follower = status(1, false, 10, &voters, &members);
        let learner = status(3, false, 10, &voters, &members);
        // Two of three voters up, a learner and a voter down: degraded, not lost.
        let seen = [
            Seen { addr: "n0", status: Some(&leader) },
            Seen { addr: "n1", status: Some(&follower) },
            Seen { addr: "n2", status: None },
            Seen { addr: "n3", status: None },
        ];
        let (v, reason) = verdict(&seen);
        assert_eq!(v, "degraded", "{reason:?}");
        assert!(reason.unwrap().contains("2 of 3 voters answer"));
        // One voter and the learner up: no majority of voters.
        let seen = [
            Seen { addr: "n0", status: Some(&leader) },
            Seen { addr: "n1", status: None },
            Seen { addr: "n2", status: None },
            Seen { addr: "n3", status: Some(&learner) },
        ];
        assert_eq!(verdict(&seen).0, "no quorum");
        let all = [Seen { addr: "n0", status: Some(&leader) }, Seen { addr: "n1", status: Some(&follower) }];
        let (v, _) = verdict(&all[..1]);
        assert_eq!(v, "no quorum", "one of three voters");
        let behind = status(1, false, 10 - 10, &voters, &members);
        let three = status(2, false, 10, &voters, &members);
        let lagging = status(0, true, LAG_LIMIT + 50, &voters, &members);
        let seen = [
            Seen { addr: "n0", status: Some(&lagging) },
            Seen { addr: "n1", status: Some(&behind) },
            Seen { addr: "n2", status: Some(&three) },
        ];
        let (v, reason) = verdict(&seen);
        assert_eq!(v, "degraded");
        assert!(reason.unwrap().contains("node 1 is 1050 entries behind"));
    }
}
