//! The client commands over the gRPC training service: `templates`,
//! `jobs` and `logs`. Tables by default, JSON with `--json`, one-line
//! errors, as for the admin commands.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use boat_admin::admin_grpc::pb;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};

use crate::admin_cmd::show;
use crate::rpc::{with_body, Conn};
use crate::table::render;

/// How often `watch` and `--follow` ask again.
const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Subcommand)]
pub enum TemplatesCmd {
    /// Built-in and container templates, with their tasks.
    List,
    /// One template's knob space.
    Show { name: String },
    /// Register a Docker image that follows the worker contract as a template.
    Register {
        name: String,
        #[arg(long)]
        task: String,
        #[arg(long)]
        image: String,
        /// A JSON file with the knob space: {"knobs": {"lr": {"kind": "float", "min": 0.0001, "max": 0.1, "log": true}}}.
        #[arg(long)]
        knobs: PathBuf,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Delete a container template.
    Delete { name: String },
}

// Parsed once per command; the size of `Create` does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Subcommand)]
pub enum JobsCmd {
    /// Start a train job.
    Create {
        /// The app the job trains for.
        #[arg(long)]
        app: String,
        #[arg(long, default_value = "classification")]
        task: String,
        /// Training dataset.
        #[arg(long)]
        train: String,
        /// Validation dataset (default: a seeded fifth of the training rows).
        #[arg(long)]
        validation: Option<String>,
        /// A template to try; repeat for several.
        #[arg(long = "template", required = true)]
        templates: Vec<String>,
        #[arg(long)]
        trials: Option<u32>,
        /// Wall-clock budget in minutes.
        #[arg(long)]
        minutes: Option<f64>,
        /// Trials at once.
        #[arg(long)]
        workers: Option<u32>,
        #[arg(long)]
        cpus: Option<f64>,
        #[arg(long)]
        memory_mb: Option<u64>,
        /// tpe (default) or random.
        #[arg(long)]
        advisor: Option<String>,
        /// local, docker or swarm (default: the node's).
        #[arg(long)]
        runtime: Option<String>,
        /// Knob overrides as JSON: {"TEMPLATE": {"knob": value or space}}.
        #[arg(long)]
        knobs: Option<String>,
        /// When the job ends, make this app serve the best trials.
        #[arg(long)]
        deploy_best: Option<String>,
        /// How many best trials the app gets.
        #[arg(long)]
        deploy_members: Option<u32>,
        #[arg(long)]
        deploy_rule: Option<String>,
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Jobs you may see.
    List,
    /// One job.
    Show { id: u64 },
    /// Stop a job: running trials stop, none starts.
    Stop { id: u64 },
    /// A job's trials.
    Trials { id: u64 },
    /// A job's best trials.
    Best {
        id: u64,
        #[arg(long, default_value_t = 1)]
        n: u32,
    },
    /// Follow a job until it ends: trials done and running, best score, time left.
    Watch { id: u64 },
}

#[derive(Debug, Clone, Subcommand)]
pub enum LogsCmd {
    /// A trial's messages and metrics (TRIAL is JOB-TRIAL, e.g. 3-2).
    Trial {
        trial: String,
        /// Keep printing new lines until the trial ends.
        #[arg(long)]
        follow: bool,
    },
    /// A node's own log.
    Node {
        node: u64,
        /// Keep printing new lines (Ctrl-C stops).
        #[arg(long)]
        follow: bool,
    },
}

fn template_rows(list: &pb::TemplateList) -> String {
    let rows = list
        .templates
        .iter()
        .map(|t| {
            let knobs = serde_json::from_str::<serde_json::Value>(&t.knob_config_json)
                .ok()
                .and_then(|v| v["knobs"].as_object().map(|m| m.keys().cloned().collect::<Vec<_>>().join(",")))
                .unwrap_or_default();
            vec![t.name.clone(), t.kind.clone(), t.task.clone(), t.image.clone(), knobs]
        })
        .collect::<Vec<_>>();
    render(&["NAME", "KIND", "TASK", "IMAGE", "KNOBS"], &rows)
}

fn score(s: Option<f64>) -> String {
    s.map(|s| format!("{s:.4}")).unwrap_or_default()
}

fn job_rows(jobs: &[pb::Job]) -> String {
    let rows = jobs
        .iter()
        .map(|j| {
            vec![
                j.id.to_string(),
                j.app.clone(),
                j.status.clone(),
                format!("{}/{}", j.trials_done, j.budget.as_ref().map_or(0, |b| b.trials)),
                j.trials_running.to_string(),
                score(j.best.as_ref().and_then(|b| b.score)),
                format!("{:.0}s", j.elapsed_s),
                j.templates.join(","),
            ]
        })
        .collect::<Vec<_>>();
    render(&["ID", "APP", "STATUS", "DONE", "RUNNING", "BEST", "ELAPSED", "TEMPLATES"], &rows)
}

fn job_table(j: &pb::Job) -> String {
    let mut out = job_rows(std::slice::from_ref(j));
    if !j.reason.is_empty() {
        out.push_str(&format!("\n{}", j.reason));
    }
    if !j.deployed_to.is_empty() {
        out.push_str(&format!("\ndeployed to app {}", j.deployed_to));
    }
    out
}

fn trial_rows(trials: &[pb::Trial]) -> String {
    let rows = trials
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.template.clone(),
                t.status.clone(),
                score(t.score),
                format!("{:.1}s", t.duration_s),
                t.model.clone(),
                t.knobs_json.clone(),
                t.reason.clone(),
            ]
        })
        .collect::<Vec<_>>();
    render(&["TRIAL", "TEMPLATE", "STATUS", "SCORE", "TIME", "MODEL", "KNOBS", "REASON"], &rows)
}

pub async fn templates(conn: &Conn, cmd: TemplatesCmd) -> anyhow::Result<()> {
    match cmd {
        TemplatesCmd::List => {
            let list = conn.train(|mut c, r| async move { c.list_templates(with_body(r, pb::Empty {})).await }).await?;
            show(conn, &list, template_rows);
        }
        TemplatesCmd::Show { name } => {
            let list = conn.train(|mut c, r| async move { c.list_templates(with_body(r, pb::Empty {})).await }).await?;
            let t =
                list.templates.into_iter().find(|t| t.name == name).with_context(|| format!("no template {name:?}"))?;
            show(conn, &t, |t| {
                let space: serde_json::Value = serde_json::from_str(&t.knob_config_json).unwrap_or_default();
                format!(
                    "{} ({}, {}) {}\n{}",
                    t.name,
                    t.kind,
                    t.task,
                    t.description,
                    serde_json::to_string_pretty(&space).unwrap_or_default()
                )
            });
        }
        TemplatesCmd::Register { name, task, image, knobs, description } => {
            let knob_config_json =
                std::fs::read_to_string(&knobs).with_context(|| format!("reading {}", knobs.display()))?;
            let body = pb::RegisterTemplateRequest { name, task, image, knob_config_json, description };
            let t = conn
                .train(|mut c, r| {
                    let body = body.clone();
                    async move { c.register_template(with_body(r, body)).await }
                })
                .await?;
            show(conn, &pb::TemplateList { templates: vec![t] }, template_rows);
        }
        TemplatesCmd::Delete { name } => {
            conn.train(|mut c, r| {
                let name = name.clone();
                async move { c.delete_template(with_body(r, pb::NameRef { name })).await }
            })
            .await?;
            show(conn, &serde_json::json!({"deleted": name}), |_| format!("template {name} deleted"));
        }
    }
    Ok(())
}

pub async fn jobs(conn: &Conn, cmd: JobsCmd) -> anyhow::Result<()> {
    match cmd {
        JobsCmd::Create {
            app,
            task,
            train,
            validation,
            templates,
            trials,
            minutes,
            workers,
            cpus,
            memory_mb,
            advisor,
            runtime,
            knobs,
            deploy_best,
            deploy_members,
            deploy_rule,
            seed,
        } => {
            let body = pb::CreateJobRequest {
                app,
                task,
                train_dataset: train,
                validation_dataset: validation.unwrap_or_default(),
                templates,
                budget: Some(pb::Budget {
                    trials: trials.unwrap_or(0),
                    minutes: minutes.unwrap_or(0.0),
                    workers: workers.unwrap_or(0),
                    cpus: cpus.unwrap_or(0.0),
                    memory_mb: memory_mb.unwrap_or(0),
                }),
                advisor: advisor.unwrap_or_default(),
                runtime: runtime.unwrap_or_default(),
                knobs_json: knobs.unwrap_or_default(),
                deploy_best: deploy_best.unwrap_or_default(),
                deploy_members: deploy_members.unwrap_or(0),
                deploy_rule: deploy_rule.unwrap_or_default(),
                seed,
            };
            let job = conn
                .train(|mut c, r| {
                    let body = body.clone();
                    async move { c.create_job(with_body(r, body)).await }
                })
                .await?;
            show(conn, &job, job_table);
        }
        JobsCmd::List => {
            let list = conn.train(|mut c, r| async move { c.list_jobs(with_body(r, pb::Empty {})).await }).await?;
            show(conn, &list, |l| job_rows(&l.jobs));
        }
        JobsCmd::Show { id } => show(conn, &get_job(conn, id).await?, job_table),
        JobsCmd::Stop { id } => {
            let job = conn.train(|mut c, r| async move { c.stop_job(with_body(r, pb::JobRef { id })).await }).await?;
            show(conn, &job, job_table);
        }
        JobsCmd::Trials { id } => {
            let list =
                conn.train(|mut c, r| async move { c.list_trials(with_body(r, pb::JobRef { id })).await }).await?;
            show(conn, &list, |l| trial_rows(&l.trials));
        }
        JobsCmd::Best { id, n } => {
            let list = conn
                .train(|mut c, r| async move { c.best_trials(with_body(r, pb::BestRequest { id, n })).await })
                .await?;
            show(conn, &list, |l| trial_rows(&l.trials));
        }
        JobsCmd::Watch { id } => watch(conn, id).await?,
    }
    Ok(())
}

async fn get_job(conn: &Conn, id: u64) -> anyhow::Result<pb::Job> {
    conn.train(|mut c, r| async move { c.get_job(with_body(r, pb::JobRef { id })).await }).await
}

/// A progress bar over the job's trial budget until the job ends.
async fn watch(conn: &Conn, id: u64) -> anyhow::Result<()> {
    let mut job = get_job(conn, id).await?;
    let total = job.budget.as_ref().map_or(0, |b| b.trials) as u64;
    let bar = if conn.json { ProgressBar::hidden() } else { ProgressBar::new(total) };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} trials  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("job {id}"));
    loop {
        bar.set_position(job.trials_done as u64);
        let minutes = job.budget.as_ref().map_or(0.0, |b| b.minutes);
        let left = (minutes * 60.0 - job.elapsed_s).max(0.0);
        bar.set_message(format!(
            "running {}  best {}  {:.0}s left",
            job.trials_running,
            job.best.as_ref().and_then(|b| b.score).map(|s| format!("{s:.4}")).unwrap_or_else(|| "-".into()),
            left
        ));
        if job.status != "running" && job.trials_running == 0 {
            break;
        }
        tokio::time::sleep(POLL).await;
        job = get_job(conn, id).await?;
    }
    bar.finish_and_clear();
    show(conn, &job, job_table);
    Ok(())
}

/// One log entry as a line: its time (UTC, to the millisecond), attempt
/// and content.
fn entry_line(e: &pb::LogEntry) -> String {
    let ms = e.ts_ms % 86_400_000;
    let at = format!("{:02}:{:02}:{:02}.{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    if e.kind == "metrics" {
        let values: Vec<String> = e.values.iter().map(|(k, v)| format!("{k}={v:.4}")).collect();
        format!("{at} a{} epoch {} {}", e.attempt, e.epoch, values.join(" "))
    } else {
        format!("{at} a{} {}", e.attempt, e.message)
    }
}

/// Prints a line; false once stdout is closed (`boat logs ... | head`).
fn emit(line: &str) -> bool {
    use std::io::Write;
    writeln!(std::io::stdout(), "{line}").is_ok()
}

pub async fn logs(conn: &Conn, cmd: LogsCmd) -> anyhow::Result<()> {
    match cmd {
        LogsCmd::Trial { trial, follow } => {
            let mut since = 0u64;
            loop {
                let log = conn
                    .train(|mut c, r| {
                        let body = pb::TrialLogRequest { trial: trial.clone(), since, limit: 0 };
                        async move { c.trial_logs(with_body(r, body)).await }
                    })
                    .await?;
                for e in &log.entries {
                    let line = if conn.json { serde_json::to_string(e).unwrap_or_default() } else { entry_line(e) };
                    if !emit(&line) {
                        return Ok(());
                    }
                }
                since = log.next;
                if !follow || (!log.live && log.entries.is_empty()) {
                    return Ok(());
                }
                if log.entries.is_empty() {
                    tokio::time::sleep(POLL).await;
                }
            }
        }
        LogsCmd::Node { node, follow } => {
            let mut since = 0u64;
            loop {
                let log = conn
                    .train(|mut c, r| async move {
                        c.node_logs(with_body(r, pb::NodeLogRequest { node, since, limit: 0 })).await
                    })
                    .await?;
                for line in &log.lines {
                    if !emit(line) {
                        return Ok(());
                    }
                }
                since = log.next;
                if !follow {
                    return Ok(());
                }
                if log.lines.is_empty() {
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    }
}
