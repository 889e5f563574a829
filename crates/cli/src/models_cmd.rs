//! `boat models`: upload, list, roll back and delete model versions.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{HttpClient, Reply};
use crate::commands::Target;

#[derive(Debug, Clone, Args)]
pub struct ModelsArgs {
    #[command(flatten)]
    pub target: Target,
    /// Admin bearer token (otherwise read from --token-file).
    #[arg(long, env = "BOAT_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// File holding the admin token.
    #[arg(long, default_value = ".boat/admin-token", global = true)]
    pub token_file: PathBuf,
    #[command(subcommand)]
    pub cmd: ModelsCmd,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ModelsCmd {
    /// Upload an ONNX file as a new version of NAME (it becomes the default).
    Upload { name: String, file: PathBuf },
    /// List models, versions, checksums and defaults.
    List,
    /// Make VERSION the default of NAME (roll back or forward).
    Default { name: String, version: u64 },
    /// Delete a version that is not the default.
    Delete { name: String, version: u64 },
}

impl ModelsArgs {
    fn token(&self) -> anyhow::Result<String> {
        if let Some(t) = &self.token {
            return Ok(t.clone());
        }
        let t = std::fs::read_to_string(&self.token_file)
            .with_context(|| format!("reading the admin token from {} (or pass --token)", self.token_file.display()))?;
        Ok(t.trim().to_string())
    }
}

/// Sends a write to the nodes in turn, following a redirect to the leader.
async fn send_to_leader<F, Fut>(nodes: &[String], mut send: F) -> anyhow::Result<Reply>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Reply>>,
{
    let mut last_error = None;
    for base in nodes {
        match send(base.clone()).await {
            Ok(r) if r.status.as_u16() == 307 => {
                let Some(leader) = r.body.get("leader_http").and_then(Value::as_str) else {
                    continue;
                };
                return send(format!("http://{leader}")).await;
            }
            Ok(r) if r.status.as_u16() == 503 => last_error = Some(anyhow::anyhow!("{base}: {}", r.text)),
            Ok(r) => return Ok(r),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no node to talk to")))
}

fn print(reply: &Reply) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&reply.body).unwrap_or_else(|_| reply.text.clone()));
    if !reply.status.is_success() {
        bail!("the cluster answered {}", reply.status);
    }
    Ok(())
}

pub async fn run(args: ModelsArgs) -> anyhow::Result<()> {
    let client = HttpClient::new()?;
    let nodes = args.target.urls();
    let reply = match &args.cmd {
        ModelsCmd::List => {
            let mut reply = None;
            for base in &nodes {
                if let Ok(r) = client.get(base, "/api/models").await {
                    reply = Some(r);
                    break;
                }
            }
            reply.context("no node answered")?
        }
        ModelsCmd::Upload { name, file } => {
            let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            let token = args.token()?;
            send_to_leader(&nodes, |base| {
                let (c, bytes, token) = (client.clone(), bytes.clone(), token.clone());
                async move { c.upload_model(&base, name, bytes, Some(&token)).await }
            })
            .await?
        }
        ModelsCmd::Default { name, version } => {
            let token = args.token()?;
            let body = json!({ "version": version });
            send_to_leader(&nodes, |base| {
                let (c, body, token) = (client.clone(), body.clone(), token.clone());
                let path = format!("/api/models/{name}/default");
                async move { c.send_json(Method::POST, &base, &path, Some(&body), Some(&token)).await }
            })
            .await?
        }
        ModelsCmd::Delete { name, version } => {
            let token = args.token()?;
            send_to_leader(&nodes, |base| {
                let (c, token) = (client.clone(), token.clone());
                let path = format!("/api/models/{name}/versions/{version}");
                async move { c.send_json(Method::DELETE, &base, &path, None, Some(&token)).await }
            })
            .await?
        }
    };
    print(&reply)
}
