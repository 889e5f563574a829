//! `boat control`: failure injection on one node, over its HTTP `/control`
//! (the one client command that talks HTTP: it is aimed at a node, not at
//! the cluster).

use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::json;

use crate::client::HttpClient;

#[derive(Debug, Clone, Subcommand)]
pub enum ControlCmd {
    /// Stop the node cleanly (a supervisor restarts it).
    Exit,
    /// Abort the node at once.
    Crash,
    /// Drop Raft traffic to and from the given peers.
    Partition {
        /// Peer node ids, comma separated.
        #[arg(value_delimiter = ',', required = true)]
        peers: Vec<u64>,
        #[arg(long, default_value_t = 30_000)]
        duration_ms: u64,
    },
    /// End partitions and delays.
    Heal,
    /// Add latency to Raft traffic (0 removes it).
    Delay { ms: u64 },
}

/// `boat control URL CMD`.
pub async fn control(url: &str, cmd: ControlCmd) -> anyhow::Result<()> {
    let body = match cmd {
        ControlCmd::Exit => json!({"cmd": "exit"}),
        ControlCmd::Crash => json!({"cmd": "crash"}),
        ControlCmd::Partition { peers, duration_ms } => {
            json!({"cmd": "partition", "peers": peers, "duration_ms": duration_ms})
        }
        ControlCmd::Heal => json!({"cmd": "heal"}),
        ControlCmd::Delay { ms } => json!({"cmd": "delay", "ms": ms}),
    };
    let url = if url.contains("://") { url.to_string() } else { format!("http://{url}") };
    let reply = HttpClient::new()?.control(&url, &body).await.with_context(|| format!("calling {url}/control"))?;
    println!("{}", serde_json::to_string_pretty(&reply.body).unwrap_or(reply.text.clone()));
    if !reply.status.is_success() {
        bail!("{url} answered {}", reply.status);
    }
    Ok(())
}
