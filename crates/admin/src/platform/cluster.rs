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
    /// The node's Raft address (host:port).
    pub raft_addr: String,
    /// The node's HTTP address (host:port).
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
    pub http_addr: String,
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
    addr.parse::<std::net::SocketAddr>()
        .map(|_| ())
        .map_err(|_| ApiError::unprocessable(format!("{what} {addr:?} is not host:port with a numeric host")))
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
    let leader_applied = up.iter().find(|s| s.is_leader).map(|l| l.last_applied);
    let voters = up.iter().map(|s| s.members.len()).max().unwrap_or(seen.len()).max(seen.len());
    if up.len() * 2 <= voters || leader_applied.is_none() {
        let reason =
            if leader_applied.is_none() { "no node is leader" } else { "fewer than a majority of nodes answer" };
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
    if up.len() < voters {
        reasons.push(format!("{} of {voters} members answer", up.len()));
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
        let http = reqwest::Client::builder()
            .timeout(STATUS_WITHIN)
            .no_proxy()
            .build()
            .map_err(|e| ApiError::internal(format!("HTTP client: {e}")))?;
        let own = self.node.status();
        let answers = futures::future::join_all(members.nodes.iter().map(|n| {
            let http = &http;
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
