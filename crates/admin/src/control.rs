//! `POST /control`: failure injection for testing and demos.
//!
//! Commands (JSON body, field `cmd`):
//! - `exit`: stop cleanly; a supervisor (`boat deploy`) restarts the node.
//! - `crash`: abort the process at once, with no cleanup.
//! - `partition`: drop Raft traffic to and from `peers` (a list of node ids)
//!   for `duration_ms` (default 30000).
//! - `heal`: end all partitions and remove added delay and disk stalls.
//! - `delay`: add `ms` milliseconds to every Raft message sent or received
//!   (0 removes it).
//! - `slow_disk`: make every log flush on this node take `ms` milliseconds
//!   longer (0 removes it), as a stalling disk would.
//! - `diverge`: change this replica's state digest as if it had computed a
//!   different output; the leader's next checkpoint reports it.
//!
//! Access: while the node listens on a loopback address, loopback callers
//! may use it freely. Otherwise every call needs the bearer token of a
//! SUPERADMIN or ADMIN. The gRPC admin service's Control RPC carries out
//! the same commands under the same rule.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::require_control;
use crate::error::ApiError;
use crate::extract::AnyJson;
use crate::server::AppState;

const DEFAULT_PARTITION_MS: u64 = 30_000;

#[derive(Debug, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase", deny_unknown_fields)]
pub enum ControlCommand {
    Exit,
    Crash,
    Partition {
        peers: Vec<u64>,
        #[serde(default)]
        duration_ms: Option<u64>,
    },
    Heal,
    Delay {
        ms: u64,
    },
    #[serde(rename = "slow_disk")]
    SlowDisk {
        ms: u64,
    },
    Diverge,
}

#[tracing::instrument(skip_all, fields(%peer))]
#[utoipa::path(post, path = "/control", tag = "node", request_body(content = Object, description = "{\"cmd\": \"exit\" | \"crash\" | \"partition\" | \"heal\" | \"delay\" | \"slow_disk\" | \"diverge\", ...}"), description = "Failure injection on this node. Required role: none for loopback callers while the node listens on loopback; otherwise SUPERADMIN or ADMIN.", responses((status = 200, description = "done"), (status = 401, description = "no valid token", body = crate::api::ErrorBody), (status = 403, description = "role too low", body = crate::api::ErrorBody)), security((), ("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN"]))))]
pub async fn control(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    AnyJson(cmd): AnyJson<ControlCommand>,
) -> Result<Json<Value>, ApiError> {
    require_control(&app, peer, &headers)?;
    app.control(cmd).map(Json)
}

impl AppState {
    /// Carries out a control command; the caller was allowed to send it.
    pub fn control(&self, cmd: ControlCommand) -> Result<Value, ApiError> {
        let app = self;
        let node = &app.node;
        let faults = node.faults();
        tracing::warn!(?cmd, "control command");
        let answer = match cmd {
            ControlCommand::Exit => {
                // Graceful: the HTTP server finishes this response, then the
                // node shuts down and the process exits.
                app.request_exit();
                json!({"ok": true, "cmd": "exit", "node_id": node.id()})
            }
            ControlCommand::Crash => {
                tokio::spawn(async {
                    // Give the response a moment to leave the socket, then die
                    // without running any destructor or flushing anything.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    std::process::abort();
                });
                json!({"ok": true, "cmd": "crash", "node_id": node.id()})
            }
            ControlCommand::Partition { peers, duration_ms } => {
                if peers.is_empty() {
                    return Err(ApiError::unprocessable("partition needs a non-empty \"peers\" list of node ids"));
                }
                let known: Vec<u64> = node.status().members.iter().map(|m| m.id).collect();
                if let Some(p) = peers.iter().find(|p| !known.contains(p) || **p == node.id()) {
                    return Err(ApiError::unprocessable(format!(
                        "peer {p} is not another member of this cluster (members: {known:?})"
                    )));
                }
                let ms = duration_ms.unwrap_or(DEFAULT_PARTITION_MS);
                faults.partition(&peers, Duration::from_millis(ms));
                json!({"ok": true, "cmd": "partition", "peers": peers, "duration_ms": ms, "faults": faults.report()})
            }
            ControlCommand::Heal => {
                faults.heal();
                json!({"ok": true, "cmd": "heal", "faults": faults.report()})
            }
            ControlCommand::Diverge => {
                node.state().inject_divergence();
                json!({"ok": true, "cmd": "diverge", "node_id": node.id()})
            }
            ControlCommand::Delay { ms } => {
                faults.set_delay(Duration::from_millis(ms));
                json!({"ok": true, "cmd": "delay", "faults": faults.report()})
            }
            ControlCommand::SlowDisk { ms } => {
                faults.set_slow_disk(Duration::from_millis(ms));
                json!({"ok": true, "cmd": "slow_disk", "faults": faults.report()})
            }
        };
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_from_their_documented_form() {
        let c: ControlCommand = serde_json::from_str(r#"{"cmd":"partition","peers":[1,2],"duration_ms":500}"#).unwrap();
        assert!(matches!(c, ControlCommand::Partition { ref peers, duration_ms: Some(500) } if peers == &vec![1, 2]));
        assert!(serde_json::from_str::<ControlCommand>(r#"{"cmd":"explode"}"#).is_err());
        assert!(serde_json::from_str::<ControlCommand>(r#"{"cmd":"delay"}"#).is_err());
        let c: ControlCommand = serde_json::from_str(r#"{"cmd":"slow_disk","ms":700}"#).unwrap();
        assert!(matches!(c, ControlCommand::SlowDisk { ms: 700 }));
    }
}
