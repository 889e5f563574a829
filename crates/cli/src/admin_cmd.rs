//! The client commands over the gRPC admin service: `login`, `logout`,
//! `users`, `datasets`, `models`, `apps`, `predict` and `status`.
//!
//! Each prints a table by default and JSON with `--json`; an error exits
//! non-zero with a one-line reason (on stdout as `{"error": ...}` with
//! `--json`). Uploads stream the file in pieces behind a progress bar.

use std::path::PathBuf;

use anyhow::Context;
use boat_admin::admin_grpc::pb;
use boat_admin::platform::cluster::{verdict, Seen};
use clap::Subcommand;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::{json, Value};

use crate::rpc::{save_token, saved_token_path, with_body, Conn};
use crate::table::render;

/// Size of one upload message.
const PIECE: usize = 256 * 1024;

#[derive(Debug, Clone, Subcommand)]
pub enum UsersCmd {
    /// List every user (admins only).
    List,
    /// Show the user the token belongs to.
    Me,
    /// Create a user; the password comes from --password or BOAT_PASSWORD.
    Create {
        email: String,
        /// SUPERADMIN, ADMIN, MODEL_DEVELOPER, APP_DEVELOPER or APP_USER.
        #[arg(long)]
        role: String,
        #[arg(long, env = "BOAT_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Ban a user (by id or email); their tokens stop working.
    Ban { user: String },
    /// Lift a ban.
    Unban { user: String },
    /// Delete a user.
    Delete { user: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum DatasetsCmd {
    /// Upload a CSV file (header row; the target is the last column unless --target).
    Upload {
        name: String,
        file: PathBuf,
        /// classification or regression.
        #[arg(long, default_value = "classification")]
        task: String,
        #[arg(long)]
        target: Option<String>,
    },
    List,
    Show {
        name: String,
    },
    Delete {
        name: String,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum ModelsCmd {
    /// Upload an ONNX file as a new version of NAME (it becomes the default).
    Upload {
        name: String,
        file: PathBuf,
    },
    /// List models, versions, checksums and defaults.
    List,
    Show {
        name: String,
    },
    /// Make VERSION the default of NAME (roll back or forward).
    Default {
        name: String,
        version: u64,
    },
    /// Delete a version that is not the default.
    Delete {
        name: String,
        version: u64,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum AppsCmd {
    /// Create an app from model versions (MODEL or MODEL:VERSION).
    Create {
        name: String,
        #[arg(long = "member", required = true)]
        members: Vec<String>,
        /// mean_probabilities, majority_vote, mean or first.
        #[arg(long, default_value = "first")]
        rule: String,
        /// Predictions need a bearer token.
        #[arg(long)]
        requires_token: bool,
    },
    List,
    Show {
        name: String,
    },
    /// Replace the members (one log entry).
    Members {
        name: String,
        #[arg(long = "member", required = true)]
        members: Vec<String>,
    },
    Start {
        name: String,
    },
    Stop {
        name: String,
    },
    Delete {
        name: String,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum ClusterCmd {
    /// List the members (voters and learners) and the leader.
    Members,
    /// Add a node started with `boat node --join`: it joins as a learner,
    /// catches up, then becomes a voter.
    Add {
        id: u64,
        /// The node's Raft address (host:port).
        raft_addr: String,
        /// The node's HTTP address (host:port).
        http_addr: String,
        /// Seconds it may take to catch up.
        #[arg(long, default_value_t = 120)]
        catch_up_s: u64,
    },
    /// Remove a node (a removed leader steps down).
    Remove { id: u64 },
    /// Hand leadership to another voter and wait until it leads (writes
    /// pause for about one election timeout).
    TransferLeader { id: u64 },
}

/// Prints `value` as JSON, or the table `table` renders.
pub(crate) fn show<T: Serialize>(conn: &Conn, value: &T, table: impl FnOnce(&T) -> String) {
    if conn.json {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    } else {
        println!("{}", table(value));
    }
}

fn user_rows(users: &[pb::User]) -> String {
    let rows = users
        .iter()
        .map(|u| vec![u.id.to_string(), u.email.clone(), u.role.clone(), if u.banned { "banned" } else { "" }.into()])
        .collect::<Vec<_>>();
    render(&["ID", "EMAIL", "ROLE", "BANNED"], &rows)
}

pub async fn login(conn: &Conn, email: String, password: String, ttl_seconds: u64) -> anyhow::Result<()> {
    let reply = conn
        .call(|mut c, r| {
            let body = pb::LoginRequest { email: email.clone(), password: password.clone(), ttl_seconds };
            async move { c.login(with_body(r, body)).await }
        })
        .await?;
    let path = saved_token_path().context("no HOME or XDG_CONFIG_HOME to keep the token in")?;
    save_token(&path, &reply.token)?;
    let user = reply.user.clone().unwrap_or_default();
    if conn.json {
        println!(
            "{}",
            json!({"email": user.email, "role": user.role, "expires_at_ms": reply.expires_at_ms, "token_file": path})
        );
    } else {
        println!("logged in as {} ({}); token saved in {}", user.email, user.role, path.display());
    }
    Ok(())
}

pub async fn logout(conn: &Conn) -> anyhow::Result<()> {
    conn.call(|mut c, r| async move { c.logout(with_body(r, pb::Empty {})).await }).await?;
    if let Some(path) = saved_token_path() {
        let _ = std::fs::remove_file(path);
    }
    show(conn, &json!({"ok": true}), |_| "logged out".into());
    Ok(())
}

pub async fn users(conn: &Conn, cmd: UsersCmd) -> anyhow::Result<()> {
    let user = |u: pb::User| vec![u];
    match cmd {
        UsersCmd::List => {
            let list = conn.call(|mut c, r| async move { c.list_users(with_body(r, pb::Empty {})).await }).await?;
            show(conn, &list, |l| user_rows(&l.users));
        }
        UsersCmd::Me => {
            let u = conn.call(|mut c, r| async move { c.who_am_i(with_body(r, pb::Empty {})).await }).await?;
            show(conn, &u, |u| user_rows(&user(u.clone())));
        }
        UsersCmd::Create { email, role, password } => {
            let u = conn
                .call(|mut c, r| {
                    let body =
                        pb::CreateUserRequest { email: email.clone(), password: password.clone(), role: role.clone() };
                    async move { c.create_user(with_body(r, body)).await }
                })
                .await?;
            show(conn, &u, |u| user_rows(&user(u.clone())));
        }
        UsersCmd::Ban { user: who } => ban(conn, who, true).await?,
        UsersCmd::Unban { user: who } => ban(conn, who, false).await?,
        UsersCmd::Delete { user: who } => {
            let u = conn
                .call(|mut c, r| {
                    let body = pb::UserRef { user: who.clone() };
                    async move { c.delete_user(with_body(r, body)).await }
                })
                .await?;
            show(conn, &u, |u| format!("deleted user {} ({})", u.email, u.id));
        }
    }
    Ok(())
}

async fn ban(conn: &Conn, who: String, banned: bool) -> anyhow::Result<()> {
    let u = conn
        .call(|mut c, r| {
            let body = pb::SetBannedRequest { user: who.clone(), banned };
            async move { c.set_banned(with_body(r, body)).await }
        })
        .await?;
    show(conn, &u, |u| user_rows(std::slice::from_ref(u)));
    Ok(())
}

/// A progress bar for an upload of `len` bytes (hidden with `--json` or
/// when stderr is not a terminal).
fn progress(conn: &Conn, len: u64, what: &str) -> ProgressBar {
    if conn.json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// The pieces of an upload as a stream of messages that advances `bar`.
fn pieces<M: Send + 'static>(
    bytes: std::sync::Arc<Vec<u8>>,
    bar: ProgressBar,
    mut make: impl FnMut(bool, Vec<u8>) -> M + Send + 'static,
) -> impl futures::Stream<Item = M> + Send + 'static {
    let count = bytes.len().div_ceil(PIECE).max(1);
    futures::stream::iter(0..count).map(move |i| {
        let piece = bytes.get(i * PIECE..((i + 1) * PIECE).min(bytes.len())).unwrap_or_default().to_vec();
        bar.inc(piece.len() as u64);
        make(i == 0, piece)
    })
}

fn dataset_table(d: &pb::Dataset) -> String {
    let mut out = render(
        &["NAME", "TASK", "ROWS", "COLUMNS", "TARGET", "BYTES", "OWNER"],
        &[vec![
            d.name.clone(),
            d.task.clone(),
            d.rows.to_string(),
            d.columns.len().to_string(),
            d.target.clone(),
            d.size_bytes.to_string(),
            d.owner.to_string(),
        ]],
    );
    let columns: Vec<String> = d.columns.iter().map(|c| format!("{} ({})", c.name, c.kind)).collect();
    out.push_str(&format!("\ncolumns: {}", columns.join(", ")));
    if !d.class_counts.is_empty() {
        let mut classes: Vec<_> = d.class_counts.iter().collect();
        classes.sort();
        let classes: Vec<String> = classes.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        out.push_str(&format!("\nclasses: {}", classes.join(", ")));
    }
    out
}

pub async fn datasets(conn: &Conn, cmd: DatasetsCmd) -> anyhow::Result<()> {
    match cmd {
        DatasetsCmd::Upload { name, file, task, target } => {
            let bytes =
                std::sync::Arc::new(std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?);
            let d = conn
                .call(|mut c, r| {
                    let bar = progress(conn, bytes.len() as u64, &name);
                    let (name, task, target) = (name.clone(), task.clone(), target.clone().unwrap_or_default());
                    let stream = pieces(bytes.clone(), bar.clone(), move |first, data| pb::DatasetChunk {
                        name: if first { name.clone() } else { String::new() },
                        task: if first { task.clone() } else { String::new() },
                        target: if first { target.clone() } else { String::new() },
                        data,
                    });
                    async move {
                        let reply = c.upload_dataset(with_body(r, stream)).await;
                        bar.finish_and_clear();
                        reply
                    }
                })
                .await?;
            show(conn, &d, dataset_table);
        }
        DatasetsCmd::List => {
            let list = conn.call(|mut c, r| async move { c.list_datasets(with_body(r, pb::Empty {})).await }).await?;
            show(conn, &list, |l| {
                let rows = l
                    .datasets
                    .iter()
                    .map(|d| {
                        vec![
                            d.name.clone(),
                            d.task.clone(),
                            d.rows.to_string(),
                            d.columns.len().to_string(),
                            d.size_bytes.to_string(),
                        ]
                    })
                    .collect::<Vec<_>>();
                render(&["NAME", "TASK", "ROWS", "COLUMNS", "BYTES"], &rows)
            });
        }
        DatasetsCmd::Show { name } => {
            let d = conn
                .call(|mut c, r| {
                    let body = pb::NameRef { name: name.clone() };
                    async move { c.get_dataset(with_body(r, body)).await }
                })
                .await?;
            show(conn, &d, dataset_table);
        }
        DatasetsCmd::Delete { name } => {
            let d = conn
                .call(|mut c, r| {
                    let body = pb::NameRef { name: name.clone() };
                    async move { c.delete_dataset(with_body(r, body)).await }
                })
                .await?;
            show(conn, &d, |d| format!("deleted dataset {}", d.name));
        }
    }
    Ok(())
}

fn models_table(models: &[pb::Model]) -> String {
    let mut rows = Vec::new();
    for m in models {
        for v in &m.versions {
            rows.push(vec![
                m.name.clone(),
                v.version.to_string(),
                if v.is_default { "*" } else { "" }.into(),
                v.size_bytes.to_string(),
                v.sha256.get(..12).unwrap_or("").into(),
                v.index.to_string(),
            ]);
        }
    }
    render(&["MODEL", "VERSION", "DEFAULT", "BYTES", "SHA256", "INDEX"], &rows)
}

/// A model reply as the REST API shows it, for `--json`.
fn model_json(m: &pb::Model) -> Value {
    let versions: Vec<Value> = m
        .versions
        .iter()
        .map(|v| {
            let sig: Value = serde_json::from_str(&v.signature_json).unwrap_or(Value::Null);
            json!({"version": v.version, "default": v.is_default, "sha256": v.sha256, "size_bytes": v.size_bytes,
                   "uploaded_at_ms": v.uploaded_at_ms, "index": v.index, "loaded": v.loaded,
                   "inputs": sig["inputs"], "outputs": sig["outputs"]})
        })
        .collect();
    let default = (m.default_version != 0).then_some(m.default_version);
    json!({"name": m.name, "default_version": default, "versions": versions})
}

pub async fn models(conn: &Conn, cmd: ModelsCmd) -> anyhow::Result<()> {
    let name_ref = |name: &str| pb::NameRef { name: name.to_string() };
    let version_ref = |name: &str, version: u64| pb::VersionRef { name: name.to_string(), version };
    let one = |m: pb::Model| -> (Value, String) { (model_json(&m), models_table(std::slice::from_ref(&m))) };
    let (value, table) = match cmd {
        ModelsCmd::Upload { name, file } => {
            let bytes =
                std::sync::Arc::new(std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?);
            let v = conn
                .call(|mut c, r| {
                    let bar = progress(conn, bytes.len() as u64, &name);
                    let name = name.clone();
                    let stream = pieces(bytes.clone(), bar.clone(), move |first, data| pb::ModelChunk {
                        name: if first { name.clone() } else { String::new() },
                        data,
                    });
                    async move {
                        let reply = c.upload_model(with_body(r, stream)).await;
                        bar.finish_and_clear();
                        reply
                    }
                })
                .await?;
            let sig: Value = serde_json::from_str(&v.signature_json).unwrap_or(Value::Null);
            let value = json!({"name": v.name, "version": v.version, "default_version": v.version, "sha256": v.sha256,
                               "size_bytes": v.size_bytes, "index": v.index, "inputs": sig["inputs"], "outputs": sig["outputs"]});
            let table =
                format!("uploaded {} version {} ({} bytes, sha256 {})", v.name, v.version, v.size_bytes, v.sha256);
            (value, table)
        }
        ModelsCmd::List => {
            let list = conn.call(|mut c, r| async move { c.list_models(with_body(r, pb::Empty {})).await }).await?;
            (json!({"models": list.models.iter().map(model_json).collect::<Vec<_>>()}), models_table(&list.models))
        }
        ModelsCmd::Show { name } => one(conn
            .call(|mut c, r| {
                let body = name_ref(&name);
                async move { c.get_model(with_body(r, body)).await }
            })
            .await?),
        ModelsCmd::Default { name, version } => one(conn
            .call(|mut c, r| {
                let body = version_ref(&name, version);
                async move { c.set_default_version(with_body(r, body)).await }
            })
            .await?),
        ModelsCmd::Delete { name, version } => one(conn
            .call(|mut c, r| {
                let body = version_ref(&name, version);
                async move { c.delete_version(with_body(r, body)).await }
            })
            .await?),
    };
    show(conn, &value, |_| table);
    Ok(())
}

/// `MODEL` or `MODEL:VERSION`.
fn parse_members(specs: &[String]) -> anyhow::Result<Vec<pb::Member>> {
    specs
        .iter()
        .map(|s| match s.rsplit_once(':') {
            Some((model, v)) => {
                let version = v.parse().with_context(|| format!("{s:?}: the version must be a number"))?;
                Ok(pb::Member { model: model.to_string(), version })
            }
            None => Ok(pb::Member { model: s.clone(), version: 0 }),
        })
        .collect()
}

fn apps_table(apps: &[pb::App]) -> String {
    let ms = |v: f64| if v < 0.0 { "-".to_string() } else { format!("{v:.1}") };
    let rows = apps
        .iter()
        .map(|a| {
            let members: Vec<String> = a.members.iter().map(|m| format!("{}:{}", m.model, m.version)).collect();
            let stats = a.stats.unwrap_or_default();
            vec![
                a.name.clone(),
                a.status.clone(),
                a.rule.clone(),
                members.join(","),
                a.revision.to_string(),
                stats.requests.to_string(),
                ms(stats.p50_ms),
                ms(stats.p99_ms),
            ]
        })
        .collect::<Vec<_>>();
    render(&["APP", "STATUS", "RULE", "MEMBERS", "REVISION", "REQUESTS", "P50_MS", "P99_MS"], &rows)
}

/// `conn` with the leader's address tried first, when a node names it:
/// the leader serves every prediction, so its request counts and latencies
/// are the ones that mean something.
async fn leader_first(conn: &Conn) -> Conn {
    let probe = Conn { timeout_s: 2, ..conn.clone() };
    let leader = probe
        .call(|mut c, r| async move { c.status(with_body(r, pb::Empty {})).await })
        .await
        .ok()
        .and_then(|s| serde_json::from_str::<boat_raft::NodeStatus>(&s.status_json).ok())
        .and_then(|s| s.leader_http);
    let mut nodes = conn.urls();
    if let Some(l) = leader {
        nodes.insert(0, format!("http://{l}"));
    }
    Conn { nodes, ..conn.clone() }
}

pub async fn apps(conn: &Conn, cmd: AppsCmd) -> anyhow::Result<()> {
    let name_ref = |name: &str| pb::NameRef { name: name.to_string() };
    let leader_conn = leader_first(conn).await;
    let conn = &leader_conn;
    let app = match cmd {
        AppsCmd::Create { name, members, rule, requires_token } => {
            let members = parse_members(&members)?;
            conn.call(|mut c, r| {
                let body = pb::CreateAppRequest {
                    name: name.clone(),
                    members: members.clone(),
                    rule: rule.clone(),
                    requires_token,
                };
                async move { c.create_app(with_body(r, body)).await }
            })
            .await?
        }
        AppsCmd::List => {
            let list = conn.call(|mut c, r| async move { c.list_apps(with_body(r, pb::Empty {})).await }).await?;
            show(conn, &list, |l| apps_table(&l.apps));
            return Ok(());
        }
        AppsCmd::Show { name } => {
            conn.call(|mut c, r| {
                let body = name_ref(&name);
                async move { c.get_app(with_body(r, body)).await }
            })
            .await?
        }
        AppsCmd::Members { name, members } => {
            let members = parse_members(&members)?;
            conn.call(|mut c, r| {
                let body = pb::SetAppMembersRequest { name: name.clone(), members: members.clone() };
                async move { c.set_app_members(with_body(r, body)).await }
            })
            .await?
        }
        AppsCmd::Start { name } => {
            conn.call(|mut c, r| {
                let body = name_ref(&name);
                async move { c.start_app(with_body(r, body)).await }
            })
            .await?
        }
        AppsCmd::Stop { name } => {
            conn.call(|mut c, r| {
                let body = name_ref(&name);
                async move { c.stop_app(with_body(r, body)).await }
            })
            .await?
        }
        AppsCmd::Delete { name } => {
            conn.call(|mut c, r| {
                let body = name_ref(&name);
                async move { c.delete_app(with_body(r, body)).await }
            })
            .await?
        }
    };
    show(conn, &app, |a| apps_table(std::slice::from_ref(a)));
    Ok(())
}

/// `boat predict`: a prediction with a model or an app, through the leader.
pub async fn predict(
    conn: &Conn,
    input: String,
    model: Option<String>,
    key: Option<String>,
    version: Option<u64>,
) -> anyhow::Result<()> {
    // A bare word is taken as a string.
    let input_json = match serde_json::from_str::<Value>(&input) {
        Ok(v) => v.to_string(),
        Err(_) => Value::String(input).to_string(),
    };
    let reply = conn
        .call(|mut c, r| {
            let body = pb::PredictRequest {
                model: model.clone().unwrap_or_default(),
                version: version.unwrap_or(0),
                input_json: input_json.clone(),
                id: key.clone().unwrap_or_default(),
            };
            async move { c.predict(with_body(r, body)).await }
        })
        .await?;
    let output: Value = serde_json::from_str(&reply.output_json).unwrap_or(Value::Null);
    let value = json!({"id": reply.id, "model": reply.model, "version": reply.version, "output": output,
                       "index": reply.index, "term": reply.term, "duplicate": reply.duplicate});
    if conn.json {
        println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
    } else {
        println!("{}", serde_json::to_string_pretty(&output).unwrap_or_default());
        eprintln!(
            "{} version {} at index {} (term {}), id {}",
            reply.model, reply.version, reply.index, reply.term, reply.id
        );
    }
    Ok(())
}

/// `boat status`: every node's Raft state in a table, and one verdict line.
pub async fn status(conn: &Conn) -> anyhow::Result<bool> {
    let mut seen: Vec<(String, Option<boat_raft::NodeStatus>, String)> = Vec::new();
    for url in conn.urls() {
        let one = Conn { nodes: vec![url.clone()], timeout_s: 2, ..conn.clone() };
        match one.call(|mut c, r| async move { c.status(with_body(r, pb::Empty {})).await }).await {
            Ok(s) => match serde_json::from_str::<boat_raft::NodeStatus>(&s.status_json) {
                Ok(st) => seen.push((url, Some(st), String::new())),
                Err(e) => seen.push((url, None, format!("unreadable status: {e}"))),
            },
            Err(e) => seen.push((url, None, format!("{e:#}"))),
        }
    }
    let up: Vec<&boat_raft::NodeStatus> = seen.iter().filter_map(|(_, s, _)| s.as_ref()).collect();
    let leader = up.iter().find(|s| s.is_leader);
    let leader_applied = leader.map(|l| l.last_applied);
    let views: Vec<Seen<'_>> = seen.iter().map(|(url, s, _)| Seen { addr: url, status: s.as_ref() }).collect();
    let verdict = verdict(&views);
    if conn.json {
        let nodes: Vec<Value> = seen
            .iter()
            .map(|(url, s, err)| match s {
                Some(s) => {
                    json!({"url": url, "status": s, "lag": leader_applied.map(|a| a.saturating_sub(s.last_applied))})
                }
                None => json!({"url": url, "error": err}),
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"nodes": nodes, "verdict": verdict.0, "reason": verdict.1}))
                .unwrap_or_default()
        );
    } else {
        let rows: Vec<Vec<String>> = seen
            .iter()
            .map(|(url, s, err)| match s {
                Some(s) => vec![
                    url.clone(),
                    s.node_id.to_string(),
                    s.state.clone(),
                    s.term.to_string(),
                    s.commit_index.to_string(),
                    s.last_applied.to_string(),
                    leader_applied.map_or("-".into(), |a| a.saturating_sub(s.last_applied).to_string()),
                    s.state_digest.get(..16).unwrap_or("-").to_string(),
                ],
                None => vec![
                    url.clone(),
                    "-".into(),
                    "unreachable".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    err.clone(),
                ],
            })
            .collect();
        println!("{}", render(&["NODE", "ID", "ROLE", "TERM", "COMMIT", "APPLIED", "LAG", "DIGEST"], &rows));
        match &verdict.1 {
            None => println!("{}", verdict.0),
            Some(reason) => println!("{}: {reason}", verdict.0),
        }
    }
    Ok(verdict.0 != "no quorum")
}

fn cluster_table(c: &pb::ClusterNodes) -> String {
    let rows = c
        .nodes
        .iter()
        .map(|n| {
            let leader = c.has_leader && c.leader_id == n.id;
            vec![
                n.id.to_string(),
                n.role.clone(),
                if leader { "*" } else { "" }.into(),
                n.raft_addr.clone(),
                n.http_addr.clone(),
            ]
        })
        .collect::<Vec<_>>();
    render(&["ID", "ROLE", "LEADER", "RAFT", "HTTP"], &rows)
}

pub async fn cluster(conn: &Conn, cmd: ClusterCmd) -> anyhow::Result<()> {
    let nodes = match cmd {
        ClusterCmd::Members => {
            conn.call(|mut c, r| async move { c.cluster_members(with_body(r, pb::Empty {})).await }).await?
        }
        ClusterCmd::Add { id, raft_addr, http_addr, catch_up_s } => {
            // The call waits for the catch-up.
            let conn = Conn { timeout_s: conn.timeout_s.max(catch_up_s + 15), ..conn.clone() };
            conn.call(|mut c, r| {
                let body = pb::AddNodeRequest {
                    id,
                    raft_addr: raft_addr.clone(),
                    http_addr: http_addr.clone(),
                    catch_up_seconds: catch_up_s,
                };
                async move { c.add_node(with_body(r, body)).await }
            })
            .await?
        }
        ClusterCmd::Remove { id } => {
            conn.call(|mut c, r| async move { c.remove_node(with_body(r, pb::NodeRef { id })).await }).await?
        }
        ClusterCmd::TransferLeader { id } => {
            conn.call(|mut c, r| async move { c.transfer_leader(with_body(r, pb::NodeRef { id })).await }).await?
        }
    };
    show(conn, &nodes, cluster_table);
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
    /// End partitions, delays and disk stalls.
    Heal,
    /// Add latency to Raft traffic (0 removes it).
    Delay { ms: u64 },
    /// Make every log flush take this many milliseconds longer (0 removes it).
    SlowDisk { ms: u64 },
}

/// `boat control URL CMD`: failure injection on the node at URL (no
/// leader following: the command is for that node). Prints the node's
/// report as JSON.
pub async fn control(conn: &Conn, url: &str, cmd: ControlCmd) -> anyhow::Result<()> {
    let req = match cmd {
        ControlCmd::Exit => pb::ControlRequest { cmd: "exit".into(), ..Default::default() },
        ControlCmd::Crash => pb::ControlRequest { cmd: "crash".into(), ..Default::default() },
        ControlCmd::Partition { peers, duration_ms } => {
            pb::ControlRequest { cmd: "partition".into(), peers, duration_ms, ..Default::default() }
        }
        ControlCmd::Heal => pb::ControlRequest { cmd: "heal".into(), ..Default::default() },
        ControlCmd::Delay { ms } => pb::ControlRequest { cmd: "delay".into(), ms, ..Default::default() },
        ControlCmd::SlowDisk { ms } => pb::ControlRequest { cmd: "slow_disk".into(), ms, ..Default::default() },
    };
    let one = Conn { nodes: vec![url.to_string()], ..conn.clone() };
    let reply = one
        .call(|mut c, r| {
            let body = req.clone();
            async move { c.control(with_body(r, body)).await }
        })
        .await?;
    let value: Value = serde_json::from_str(&reply.result_json).unwrap_or(Value::String(reply.result_json));
    println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
    Ok(())
}
