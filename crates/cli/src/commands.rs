//! Client subcommands: `status`, `predict`, `control`.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::client::HttpClient;

/// Where the cluster is: one or more node URLs.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// A node's base URL; repeat for several. Defaults to the three nodes
    /// `boat deploy` starts.
    #[arg(long = "node", global = true)]
    pub nodes: Vec<String>,
}

impl Target {
    pub fn urls(&self) -> Vec<String> {
        if self.nodes.is_empty() {
            (0..3).map(|i| format!("http://127.0.0.1:{}", 8080 + i)).collect()
        } else {
            self.nodes.iter().map(|n| if n.contains("://") { n.clone() } else { format!("http://{n}") }).collect()
        }
    }
}

/// `boat status`: one line per node.
pub async fn status(target: &Target) -> anyhow::Result<()> {
    let client = HttpClient::new()?;
    println!(
        "{:<24} {:>4} {:<10} {:>6} {:>8} {:>8} {:>8}  digest",
        "node", "id", "state", "term", "commit", "applied", "log"
    );
    for url in target.urls() {
        match client.status(&url).await {
            Ok(s) => println!(
                "{:<24} {:>4} {:<10} {:>6} {:>8} {:>8} {:>8}  {}",
                url,
                s.node_id,
                s.state,
                s.term,
                s.commit_index,
                s.last_applied,
                s.log_entries,
                s.state_digest.get(..16).unwrap_or("-")
            ),
            Err(e) => println!("{url:<24} unreachable: {e:#}"),
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Args)]
pub struct PredictArgs {
    /// The input, as JSON (a bare word is taken as a string).
    pub input: String,
    /// Model name (the echo model when absent).
    #[arg(long)]
    pub model: Option<String>,
    /// Idempotency key: a retry with the same key returns the first result.
    #[arg(long)]
    pub key: Option<String>,
    /// Give up after this many seconds without a leader.
    #[arg(long, default_value_t = 15)]
    pub timeout_s: u64,
}

/// `boat predict`: sends a prediction to the leader, wherever it is.
pub async fn predict(target: &Target, args: PredictArgs) -> anyhow::Result<()> {
    let input: Value = serde_json::from_str(&args.input).unwrap_or(Value::String(args.input.clone()));
    let mut body = json!({ "input": input });
    if let Some(m) = &args.model {
        body["model"] = json!(m);
    }
    let client = HttpClient::new()?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
    let reply = client.predict_anywhere(&target.urls(), &body, args.key.as_deref(), deadline).await?;
    println!("{}", serde_json::to_string_pretty(&reply.body).unwrap_or(reply.text.clone()));
    if !reply.status.is_success() {
        bail!("the cluster answered {}", reply.status);
    }
    Ok(())
}

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
