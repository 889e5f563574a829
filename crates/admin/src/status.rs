//! `GET /` (a greeting) and `GET /status` (this node's view of the cluster).

use axum::extract::State;
use axum::Json;
use boat_raft::NodeStatus;

use crate::server::AppState;

#[utoipa::path(get, path = "/", tag = "node", description = "A plain-text greeting naming the node, its role and the leader. Required role: none.", responses((status = 200, description = "greeting", content_type = "text/plain")), extensions(("x-required-roles" = json!([]))))]
pub async fn greeting(State(app): State<AppState>) -> String {
    let s = app.node.status();
    let role = if s.is_leader { "the leader".to_string() } else { format!("a {}", s.state.to_lowercase()) };
    let leader = match (s.leader_id, s.leader_http) {
        (Some(id), Some(http)) if !s.is_leader => {
            format!(" The leader is node {id} at http://{http}.")
        }
        _ => String::new(),
    };
    format!(
        "Hello from Boat node {id}, {role} of a {n}-node cluster at term {term}.{leader}\n\
         POST /predict with {{\"input\": ...}} to get a prediction; GET /status for details.\n",
        id = s.node_id,
        n = s.members.len(),
        term = s.term,
    )
}

#[utoipa::path(get, path = "/status", tag = "node", description = "This node's Raft state: role, term, indexes, members, voters, state digest, divergence, faults (always local). Required role: none.", responses((status = 200, description = "status")), extensions(("x-required-roles" = json!([]))))]
pub async fn status(State(app): State<AppState>) -> Json<NodeStatus> {
    Json(app.node.status())
}
