//! `GET /` (a greeting) and `GET /status` (this node's view of the cluster).

use axum::extract::State;
use axum::Json;
use boat_raft::NodeStatus;

use crate::server::AppState;

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

pub async fn status(State(app): State<AppState>) -> Json<NodeStatus> {
    Json(app.node.status())
}
