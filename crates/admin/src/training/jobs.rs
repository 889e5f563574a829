//! The training service behind every face: templates, train jobs, trials
//! and their logs. Each operation takes an authorized caller and answers
//! a view; the leader validates everything before it proposes, so a bad
//! request commits nothing.

use std::collections::BTreeMap;

use boat_raft::domains::serving::apps::MAX_APP_MEMBERS;
use boat_raft::domains::training::{
    Budget, ContainerTemplate, DeployBest, Job, JobSpec, JobStatus, TrainingCommand, TrainingResult, TrainingState,
    Trial, TrialStatus, WorkerRuntime,
};
use boat_raft::{Command, CommandResult, DatasetTask};
use boat_serving::EnsembleRule;
use boat_training::advisor::AdvisorKind;
use boat_training::knobs::{KnobConfig, KnobOverride};
use boat_training::templates::builtin_templates;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::logs::{read_text_log, read_trial_log, LogEntry};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::inference::now_ms;
use crate::models::check_name;
use crate::server::AppState;

/// Most trials one job may run.
pub const MAX_TRIALS: u32 = 1000;
/// Most workers one job may run at once.
pub const MAX_WORKERS: u32 = 16;
/// Longest time budget, in minutes (a week).
pub const MAX_MINUTES: f64 = 7.0 * 24.0 * 60.0;

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetRequest {
    /// Trials in all (default 10).
    pub trials: Option<u32>,
    /// Wall-clock minutes from creation (default 60); running trials are stopped when they run out.
    pub minutes: Option<f64>,
    /// Trials at once (default 1).
    pub workers: Option<u32>,
    /// CPU cores per worker, for container runtimes (default 1).
    pub cpus: Option<f64>,
    /// MiB of memory per worker, for container runtimes (default 1024).
    pub memory_mb: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJobRequest {
    /// The app the job trains for.
    pub app: String,
    /// `classification` or `regression`; must match the datasets and templates.
    pub task: String,
    pub train_dataset: String,
    /// Without one, a seeded fifth of the training rows is held out.
    #[serde(default)]
    pub validation_dataset: Option<String>,
    /// Templates to try (built-in or container), in turn.
    pub templates: Vec<String>,
    #[serde(default)]
    pub budget: BudgetRequest,
    /// `tpe` (default) or `random`.
    #[serde(default)]
    pub advisor: Option<String>,
    /// `local`, `docker` or `swarm` (default: the node's).
    #[serde(default)]
    pub runtime: Option<String>,
    /// Per template, knobs to fix (a value) or narrow (a space).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub knobs: BTreeMap<String, BTreeMap<String, Value>>,
    /// When the job ends, create or update this app with the best trials.
    #[serde(default)]
    pub deploy_best: Option<String>,
    /// How many best trials the app gets (default 1).
    #[serde(default)]
    pub deploy_members: Option<u32>,
    /// Ensemble rule of a created app (default `first`, or `mean_probabilities` for several classifiers).
    #[serde(default)]
    pub deploy_rule: Option<String>,
    /// Seeds the advisor and the trainers (default: random).
    #[serde(default)]
    pub seed: Option<u64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TemplateView {
    pub name: String,
    /// `builtin` or `container`.
    pub kind: String,
    pub task: String,
    pub description: String,
    pub image: Option<String>,
    /// The knob space: `{"knobs": {name: {"kind": ...}}, "early_stopping": ...}`.
    #[schema(value_type = Object)]
    pub knob_config: Value,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterTemplateRequest {
    pub name: String,
    pub task: String,
    /// A Docker image on the engines that run workers (built or loaded there).
    pub image: String,
    #[schema(value_type = Object)]
    pub knob_config: Value,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrialView {
    /// `JOB-TRIAL`, as `/api/trials/{id}/logs` takes it.
    pub id: String,
    pub job: u64,
    pub no: u32,
    pub template: String,
    #[schema(value_type = Object)]
    pub knobs: Value,
    pub status: String,
    pub attempt: u32,
    pub score: Option<f64>,
    pub metric: Option<String>,
    pub epochs: Option<u32>,
    pub proposed_at_ms: u64,
    pub started_at_ms: Option<u64>,
    pub ended_at_ms: Option<u64>,
    pub duration_s: Option<f64>,
    pub worker: Option<String>,
    pub node: Option<u64>,
    /// `name:version` of the model it produced.
    pub model: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BudgetView {
    pub trials: u32,
    pub minutes: f64,
    pub workers: u32,
    pub cpus: f64,
    pub memory_mb: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    pub id: u64,
    pub app: String,
    pub owner: u64,
    pub task: String,
    pub status: String,
    pub reason: Option<String>,
    pub train_dataset: String,
    pub validation_dataset: Option<String>,
    pub templates: Vec<String>,
    pub advisor: String,
    pub runtime: String,
    pub budget: BudgetView,
    pub seed: u64,
    pub created_at_ms: u64,
    pub ended_at_ms: Option<u64>,
    /// Seconds since creation (until the end, once ended).
    pub elapsed_s: f64,
    pub trials_proposed: u32,
    pub trials_done: u32,
    pub trials_running: u32,
    pub trials_completed: u32,
    pub trials_errored: u32,
    pub best: Option<TrialView>,
    pub deploy_best: Option<String>,
    pub deployed_to: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrialLogView {
    pub trial: String,
    pub entries: Vec<LogEntry>,
    /// Pass as `since` to read on from here.
    pub next: usize,
    /// Whether the trial is still pending or running.
    pub live: bool,
}

/// A built-in template's or container template's knob space, narrowed by a
/// job's overrides.
pub fn knob_space(
    training: &TrainingState,
    template: &str,
    overrides: Option<&BTreeMap<String, KnobOverride>>,
) -> Result<KnobConfig, ApiError> {
    let base = builtin_templates()
        .into_iter()
        .find(|t| t.name == template)
        .map(|t| t.knob_config)
        .or_else(|| training.templates.get(template).map(|t| t.knob_config.clone()))
        .ok_or_else(|| ApiError::not_found(format!("no template {template:?}; see GET /api/templates")))?;
    match overrides {
        None => Ok(base),
        Some(o) => base
            .with_overrides(o)
            .map_err(|e| ApiError::unprocessable(format!("template {template}: {e}")).with("template", template)),
    }
}

fn container_view(t: &ContainerTemplate) -> TemplateView {
    TemplateView {
        name: t.name.clone(),
        kind: "container".into(),
        task: t.task.as_str().into(),
        description: t.description.clone(),
        image: Some(t.image.clone()),
        knob_config: serde_json::to_value(&t.knob_config).unwrap_or(Value::Null),
    }
}

fn trial_view(job: &Job, t: &Trial) -> TrialView {
    TrialView {
        id: format!("{}-{}", job.id, t.no),
        job: job.id,
        no: t.no,
        template: t.template.clone(),
        knobs: serde_json::to_value(&t.knobs).unwrap_or(Value::Null),
        status: t.status.as_str().into(),
        attempt: t.attempt,
        score: t.score,
        metric: t.metric.clone(),
        epochs: t.epochs,
        proposed_at_ms: t.proposed_at_ms,
        started_at_ms: t.started_at_ms,
        ended_at_ms: t.ended_at_ms,
        duration_s: t.started_at_ms.map(|s| t.ended_at_ms.unwrap_or_else(now_ms).saturating_sub(s) as f64 / 1000.0),
        worker: t.worker.clone(),
        node: t.node,
        model: t.model.as_ref().map(|m| format!("{}:{}", m.name, m.version)),
        reason: t.reason.clone(),
    }
}

pub fn job_view(job: &Job) -> JobView {
    let count = |s: TrialStatus| job.trials.iter().filter(|t| t.status == s).count() as u32;
    let b = &job.spec.budget;
    JobView {
        id: job.id,
        app: job.spec.app.clone(),
        owner: job.owner,
        task: job.spec.task.as_str().into(),
        status: job.status.as_str().into(),
        reason: job.reason.clone(),
        train_dataset: job.spec.train_dataset.clone(),
        validation_dataset: job.spec.validation_dataset.clone(),
        templates: job.spec.templates.clone(),
        advisor: job.spec.advisor.as_str().into(),
        runtime: job.spec.runtime.as_str().into(),
        budget: BudgetView {
            trials: b.trials,
            minutes: b.minutes,
            workers: b.workers,
            cpus: b.cpus,
            memory_mb: b.memory_mb,
        },
        seed: job.seed,
        created_at_ms: job.created_at_ms,
        ended_at_ms: job.ended_at_ms,
        elapsed_s: job.ended_at_ms.unwrap_or_else(now_ms).saturating_sub(job.created_at_ms) as f64 / 1000.0,
        trials_proposed: job.trials.len() as u32,
        trials_done: job.trials.iter().filter(|t| t.status.is_done()).count() as u32,
        trials_running: count(TrialStatus::Running),
        trials_completed: count(TrialStatus::Completed),
        trials_errored: count(TrialStatus::Errored),
        best: job.best().map(|t| trial_view(job, t)),
        deploy_best: job.spec.deploy_best.as_ref().map(|d| d.app.clone()),
        deployed_to: job.deployed_to.clone(),
    }
}

fn parse_task(task: &str) -> Result<DatasetTask, ApiError> {
    crate::platform::datasets::parse_task(Some(task))
}

/// Parses `"3-2"` (job 3, trial 2).
pub fn parse_trial_id(id: &str) -> Result<(u64, u32), ApiError> {
    let bad = || ApiError::bad_request(format!("trial id {id:?} is not JOB-TRIAL, e.g. 3-2"));
    let (j, t) = id.split_once('-').ok_or_else(bad)?;
    Ok((j.parse().map_err(|_| bad())?, t.parse().map_err(|_| bad())?))
}

impl AppState {
    pub fn list_templates(&self) -> Vec<TemplateView> {
        let mut out: Vec<TemplateView> = builtin_templates()
            .into_iter()
            .map(|t| TemplateView {
                name: t.name,
                kind: "builtin".into(),
                task: t.task.as_str().into(),
                description: t.description,
                image: None,
                knob_config: serde_json::to_value(&t.knob_config).unwrap_or(Value::Null),
            })
            .collect();
        let state = self.node.state().read();
        out.extend(state.training.templates.values().map(container_view));
        out
    }

    pub async fn register_template(
        &self,
        who: &Principal,
        req: RegisterTemplateRequest,
    ) -> Result<TemplateView, ApiError> {
        check_name(&req.name)?;
        if builtin_templates().iter().any(|t| t.name == req.name) {
            return Err(ApiError::conflict(format!("{:?} is a built-in template", req.name)));
        }
        let task = parse_task(&req.task)?;
        if req.image.trim().is_empty() || req.image.len() > 255 || req.image.chars().any(char::is_whitespace) {
            return Err(ApiError::unprocessable("image must be a Docker image reference, e.g. my-trainer:1"));
        }
        let knob_config: KnobConfig = serde_json::from_value(req.knob_config)
            .map_err(|e| ApiError::unprocessable(format!("knob_config: {e}")))?;
        knob_config.check().map_err(|e| ApiError::unprocessable(e.to_string()))?;
        let t = ContainerTemplate {
            name: req.name,
            task,
            image: req.image,
            knob_config,
            description: req.description,
            owner: who.user_id,
            created_at_ms: now_ms(),
        };
        match self.append(Command::Training(TrainingCommand::RegisterTemplate(t)), "GET /api/templates").await? {
            CommandResult::Training(TrainingResult::Template(t)) => {
                tracing::info!(template = %t.name, image = %t.image, by = %who.email, "container template registered");
                Ok(container_view(&t))
            }
            other => Err(ApiError::internal(format!("unexpected result {other:?}"))),
        }
    }

    pub async fn delete_template(&self, who: &Principal, name: &str) -> Result<(), ApiError> {
        let owner = self.node.state().read().training.templates.get(name).map(|t| t.owner);
        match owner {
            None if builtin_templates().iter().any(|t| t.name == name) => {
                Err(ApiError::conflict(format!("{name:?} is a built-in template")))
            }
            None => Err(ApiError::not_found(format!("no container template {name:?}"))),
            Some(owner) if !who.sees(owner) => {
                Err(ApiError::forbidden("only its owner or an admin deletes a template"))
            }
            Some(_) => {
                let cmd = TrainingCommand::DeleteTemplate { name: name.to_string() };
                self.append(Command::Training(cmd), "GET /api/templates").await?;
                Ok(())
            }
        }
    }

    pub async fn create_job(&self, who: &Principal, req: CreateJobRequest) -> Result<JobView, ApiError> {
        // On the leader, whose runtimes are the ones that will run the job.
        self.require_leader()?;
        let seed = req.seed.unwrap_or_else(rand::random);
        let spec = self.check_job(req)?;
        let cmd = TrainingCommand::CreateJob { spec, owner: who.user_id, seed, at_ms: now_ms() };
        match self.append(Command::Training(cmd), "GET /api/jobs").await? {
            CommandResult::Training(TrainingResult::Job(job)) => {
                tracing::info!(job = job.id, app = %job.spec.app, by = %who.email, "train job created");
                Ok(job_view(&job))
            }
            other => Err(ApiError::internal(format!("unexpected result {other:?}"))),
        }
    }

    /// Everything a job needs, checked before anything is proposed.
    fn check_job(&self, req: CreateJobRequest) -> Result<JobSpec, ApiError> {
        check_name(&req.app)?;
        let task = parse_task(&req.task)?;
        let state = self.node.state().read();
        let dataset = |name: &str| {
            state
                .platform
                .datasets
                .get(name)
                .ok_or_else(|| ApiError::not_found(format!("no dataset {name:?}")).with("dataset", name))
        };
        let train = dataset(&req.train_dataset)?;
        if train.task != task {
            return Err(ApiError::unprocessable(format!(
                "dataset {:?} is for {}, the job for {}",
                train.name,
                train.task.as_str(),
                task.as_str()
            )));
        }
        if let Some(v) = &req.validation_dataset {
            let val = dataset(v)?;
            let names = |d: &boat_raft::Dataset| d.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
            if val.task != task || names(val) != names(train) || val.target != train.target {
                return Err(ApiError::unprocessable(format!(
                    "validation dataset {v:?} must have the training dataset's task, columns and target"
                )));
            }
        }
        if req.templates.is_empty() {
            return Err(ApiError::unprocessable("name at least one template; see GET /api/templates"));
        }
        let builtins = builtin_templates();
        let mut overrides = BTreeMap::new();
        for name in &req.templates {
            let template_task = match builtins.iter().find(|t| &t.name == name) {
                Some(t) => t.task.as_str().to_string(),
                None => match state.training.templates.get(name) {
                    Some(c) => c.task.as_str().to_string(),
                    None => return Err(ApiError::not_found(format!("no template {name:?}; see GET /api/templates"))),
                },
            };
            if template_task != task.as_str() {
                return Err(ApiError::unprocessable(format!(
                    "template {name} is for {template_task}, the job for {}",
                    task.as_str()
                )));
            }
        }
        for (template, knobs) in &req.knobs {
            if !req.templates.contains(template) {
                return Err(ApiError::unprocessable(format!(
                    "knobs given for {template:?}, which the job does not try"
                )));
            }
            let mut parsed = BTreeMap::new();
            for (knob, value) in knobs {
                let ov: KnobOverride = serde_json::from_value(value.clone())
                    .map_err(|e| ApiError::unprocessable(format!("template {template}, knob {knob}: {e}")))?;
                parsed.insert(knob.clone(), ov);
            }
            knob_space(&state.training, template, Some(&parsed))?;
            overrides.insert(template.clone(), parsed);
        }
        let b = &req.budget;
        let budget = Budget {
            trials: b.trials.unwrap_or(10),
            minutes: b.minutes.unwrap_or(60.0),
            workers: b.workers.unwrap_or(1),
            cpus: b.cpus.unwrap_or(1.0),
            memory_mb: b.memory_mb.unwrap_or(1024),
        };
        if !(1..=MAX_TRIALS).contains(&budget.trials) {
            return Err(ApiError::unprocessable(format!("budget.trials must be 1 to {MAX_TRIALS}")));
        }
        if !(budget.minutes > 0.0 && budget.minutes <= MAX_MINUTES) {
            return Err(ApiError::unprocessable(format!("budget.minutes must be above 0 and at most {MAX_MINUTES}")));
        }
        if !(1..=MAX_WORKERS).contains(&budget.workers) {
            return Err(ApiError::unprocessable(format!("budget.workers must be 1 to {MAX_WORKERS}")));
        }
        let cpus_ok = budget.cpus > 0.0 && budget.cpus <= 64.0;
        if !cpus_ok || !(64..=1 << 20).contains(&budget.memory_mb) {
            return Err(ApiError::unprocessable(
                "budget.cpus must be in (0, 64] and budget.memory_mb in [64, 1048576]",
            ));
        }
        let advisor = match req.advisor.as_deref() {
            None | Some("") => AdvisorKind::Tpe,
            Some(a) => AdvisorKind::parse(a)
                .ok_or_else(|| ApiError::unprocessable(format!("unknown advisor {a:?}; use tpe or random")))?,
        };
        let runtime = match req.runtime.as_deref() {
            None | Some("") => self.training.default_runtime,
            Some(r) => WorkerRuntime::parse(r)
                .ok_or_else(|| ApiError::unprocessable(format!("unknown runtime {r:?}; use local, docker or swarm")))?,
        };
        self.training.runtime(runtime).map_err(ApiError::unprocessable)?;
        let uses_container = req.templates.iter().any(|t| state.training.templates.contains_key(t));
        if uses_container && runtime == WorkerRuntime::Local {
            return Err(ApiError::unprocessable("container templates need the docker or swarm runtime"));
        }
        let deploy_best = match &req.deploy_best {
            None => None,
            Some(app) => {
                check_name(app)?;
                let members = req.deploy_members.unwrap_or(1);
                if members == 0 || members as usize > MAX_APP_MEMBERS {
                    return Err(ApiError::unprocessable(format!("deploy_members must be 1 to {MAX_APP_MEMBERS}")));
                }
                let default_rule = if members > 1 && task == DatasetTask::Classification {
                    EnsembleRule::MeanProbabilities
                } else if members > 1 {
                    EnsembleRule::Mean
                } else {
                    EnsembleRule::First
                };
                let rule = match req.deploy_rule.as_deref() {
                    None | Some("") => default_rule,
                    Some(r) => EnsembleRule::parse(r).ok_or_else(|| {
                        ApiError::unprocessable(format!(
                            "unknown deploy_rule {r:?}: use first, mean, mean_probabilities or majority_vote"
                        ))
                    })?,
                };
                Some(DeployBest { app: app.clone(), members, rule: rule.as_str().into() })
            }
        };
        Ok(JobSpec {
            app: req.app,
            task,
            train_dataset: req.train_dataset,
            validation_dataset: req.validation_dataset,
            templates: req.templates,
            budget,
            advisor,
            runtime,
            knob_overrides: overrides,
            deploy_best,
        })
    }

    pub fn list_jobs(&self, who: &Principal) -> Vec<JobView> {
        let state = self.node.state().read();
        state.training.jobs.values().filter(|j| who.sees(j.owner)).map(job_view).collect()
    }

    pub fn find_job(&self, who: &Principal, id: u64) -> Result<Job, ApiError> {
        let state = self.node.state().read();
        state
            .training
            .jobs
            .get(&id)
            .filter(|j| who.sees(j.owner))
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("no train job {id}")))
    }

    pub fn show_job(&self, who: &Principal, id: u64) -> Result<JobView, ApiError> {
        self.find_job(who, id).map(|j| job_view(&j))
    }

    pub fn job_trials(&self, who: &Principal, id: u64) -> Result<Vec<TrialView>, ApiError> {
        let job = self.find_job(who, id)?;
        Ok(job.trials.iter().map(|t| trial_view(&job, t)).collect())
    }

    /// Completed trials, best first.
    pub fn best_trials(&self, who: &Principal, id: u64, n: usize) -> Result<Vec<TrialView>, ApiError> {
        let job = self.find_job(who, id)?;
        Ok(job.ranked().into_iter().take(n.max(1)).map(|t| trial_view(&job, t)).collect())
    }

    pub async fn stop_job(&self, who: &Principal, id: u64) -> Result<JobView, ApiError> {
        let job = self.find_job(who, id)?;
        if job.status != JobStatus::Running {
            return Err(ApiError::conflict(format!("train job {id} is already {}", job.status.as_str())));
        }
        let cmd = TrainingCommand::EndJob {
            job: id,
            status: JobStatus::Stopped,
            reason: Some(format!("stopped by {}", who.email)),
            deployed_to: None,
            at_ms: now_ms(),
        };
        match self.append(Command::Training(cmd), "GET /api/jobs").await? {
            CommandResult::Training(TrainingResult::Job(job)) => {
                tracing::info!(job = id, by = %who.email, "train job stopped");
                Ok(job_view(&job))
            }
            other => Err(ApiError::internal(format!("unexpected result {other:?}"))),
        }
    }

    /// Reads the log file on a blocking thread: it may be megabytes, on NFS.
    pub async fn trial_logs(
        &self,
        who: &Principal,
        trial: &str,
        since: usize,
        limit: usize,
    ) -> Result<TrialLogView, ApiError> {
        let (job_id, no) = parse_trial_id(trial)?;
        let job = self.find_job(who, job_id)?;
        let t = job.trial(no).ok_or_else(|| ApiError::not_found(format!("train job {job_id} has no trial {no}")))?;
        let path = self.training.shared.trial_log(job_id, no);
        let limit = limit.clamp(1, 10_000);
        let (entries, next) = tokio::task::spawn_blocking(move || read_trial_log(&path, since, limit))
            .await
            .map_err(|e| ApiError::internal(format!("reading the trial's log: {e}")))?
            .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok((vec![], since)) } else { Err(e) })
            .map_err(|e| ApiError::internal(format!("reading the trial's log: {e}")))?;
        Ok(TrialLogView { trial: format!("{job_id}-{no}"), entries, next, live: !t.status.is_done() })
    }

    /// Lines of a node's own log on the shared directory.
    pub async fn node_logs(&self, node: u64, since: usize, limit: usize) -> Result<(Vec<String>, usize), ApiError> {
        let path = self.training.shared.node_log(node);
        let limit = limit.clamp(1, 10_000);
        let read = tokio::task::spawn_blocking(move || read_text_log(&path, since, limit))
            .await
            .map_err(|e| ApiError::internal(format!("reading node {node}'s log: {e}")))?;
        read.map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ApiError::not_found(format!(
                "no log of node {node} in the shared directory (nodes write it there with --shared-dir)"
            )),
            _ => ApiError::internal(format!("reading node {node}'s log: {e}")),
        })
    }
}
