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
