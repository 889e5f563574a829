//! The leader's orchestrator: drives every train job from the replicated
//! state and the runtimes' own listings.
//!
//! It runs as a leader task, one pass every [`PASS`]. A pass reads each job
//! that is running (or has trials still active) from the state, lists that
//! job's workers from its runtime, and then, in order:
//! 1. settles running trials: a worker that ended is collected (its model is
//!    uploaded through the log and registered, then `FinishTrial`); a worker
//!    that vanished without output is requeued under the same number;
//! 2. starts pending trials, adopting a worker that already runs for the
//!    same trial and attempt (started by a leader that died before it could
//!    record it) instead of starting a second one;
//! 3. removes workers no trial owns;
//! 4. enforces the budget: time (running trials are stopped, not merely no
//!    new ones started) and errored trials in a row;
//! 5. asks the advisor for new trials while workers are free;
//! 6. ends the job once every trial is done, deploying the best trials to
//!    the app when asked, in one entry.
//!
//! Every step is an entry, so the next leader's first pass picks up where
//! this one stopped, and every step tolerates having been done already.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use boat_raft::domains::training::{
    Job, JobStatus, ModelRef, TrainingCommand, Trial, TrialOutcome, TrialStatus, MAX_CONSECUTIVE_ERRORS,
};
use boat_raft::{App, AppMember, Command, CommandResult, ServingCommand, ServingResult, UploadModel};
use boat_serving::EnsembleRule;
use boat_training::advisor::{propose, trial_seed, Observation};
use boat_training::worker::{self, ScoreFile, MODEL_FILE, SCORE_FILE};
use tokio_util::sync::CancellationToken;

use super::runtime::{Runtime, WorkerInfo, WorkerSpec, WorkerState};
use super::shared::SharedDir;
use super::{logs, TrainingEnv};
use crate::error::ErrorKind;
use crate::inference::now_ms;
use crate::server::AppState;

/// Time between passes.
pub const PASS: Duration = Duration::from_millis(400);

/// Name of the model a job's trials register their versions under.
pub fn model_name(job: &Job) -> String {
    format!("{}-job{}", job.spec.app, job.id)
}

pub struct Orchestrator {
    app: AppState,
    env: Arc<TrainingEnv>,
    /// Workers whose output this leader forwards to their trial logs.
    followed: Mutex<HashSet<String>>,
    /// Jobs whose data this leader has checked on the shared directory.
    materialised: Mutex<HashSet<u64>>,
}

/// Runs the orchestrator on this node whenever it leads.
pub fn spawn(app: &AppState, env: Arc<TrainingEnv>) {
    let (app, env) = (app.clone(), env);
    let node = app.node.clone();
    node.spawn_leader_task("orchestrator", move |_, stop| {
        let o = Orchestrator {
            app: app.clone(),
            env: env.clone(),
            followed: Default::default(),
            materialised: Default::default(),
        };
        async move { o.run(stop).await }
    });
}

type Step<T> = Result<T, String>;

impl Orchestrator {
    async fn run(self, stop: CancellationToken) {
        tracing::info!("orchestrator started: this node leads");
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(PASS) => {}
            }
            if let Err(e) = self.pass(&stop).await {
                tracing::warn!(error = %e, "orchestrator pass failed; retrying");
            }
        }
        // Local workers are this process's children: the next leader cannot
        // see them, and would run their trials again beside them.
        if let Ok(workers) = self.env.local.list().await {
            for w in workers {
                let _ = self.env.local.remove(&w.id).await;
            }
        }
        tracing::info!("orchestrator stopped: this node no longer leads");
    }

    async fn pass(&self, stop: &CancellationToken) -> Step<()> {
        let jobs: Vec<Job> = {
            let state = self.app.node.state().read();
            state
                .training
                .jobs
                .values()
                .filter(|j| j.status == JobStatus::Running || j.active().next().is_some())
                .cloned()
                .collect()
        };
        for job in jobs {
            if stop.is_cancelled() {
                return Ok(());
            }
            if let Err(e) = self.drive(job.id).await {
                tracing::warn!(job = job.id, error = %e, "train job step failed; retrying");
            }
        }
        Ok(())
    }

    fn job(&self, id: u64) -> Option<Job> {
        self.app.node.state().read().training.jobs.get(&id).cloned()
    }

    async fn append(&self, cmd: TrainingCommand) -> Step<CommandResult> {
        self.app.append(Command::Training(cmd), "GET /api/jobs").await.map_err(|e| e.message)
    }

    async fn drive(&self, id: u64) -> Step<()> {
        let Some(job) = self.job(id) else { return Ok(()) };
        let runtime = match self.env.runtime(job.spec.runtime) {
            Ok(r) => r,
            Err(reason) => {
                if job.status == JobStatus::Running {
                    self.end(&job, JobStatus::Errored, Some(reason)).await?;
                }
                return self.stop_all(&job, None, "the job ended").await;
            }
        };
        if job.status == JobStatus::Running {
            self.materialise(&job).await?;
        }
        let workers: Vec<WorkerInfo> =
            runtime.list().await.map_err(|e| e.to_string())?.into_iter().filter(|w| w.job == id).collect();

        // 1. Running trials.
        for t in job.trials.iter().filter(|t| t.status == TrialStatus::Running) {
            let worker = workers.iter().find(|w| Some(&w.id) == t.worker.as_ref());
            self.settle(&job, t, worker, runtime.as_ref()).await?;
        }
        // 2. Pending trials.
        let Some(job) = self.job(id) else { return Ok(()) };
        let mut running = job.trials.iter().filter(|t| t.status == TrialStatus::Running).count() as u32;
        for t in job.trials.iter().filter(|t| t.status == TrialStatus::Pending) {
            if job.status != JobStatus::Running {
                self.finish(&job, t, TrialOutcome::Stopped { reason: stopped_reason(&job) }).await?;
                continue;
            }
            if running >= job.spec.budget.workers {
                break;
            }
            self.start(&job, t, &workers, runtime.as_ref()).await?;
            running += 1;
        }
        // 3. Workers no trial owns (a trial done meanwhile, a superseded
        // attempt, or a worker started twice).
        let Some(job) = self.job(id) else { return Ok(()) };
        for w in &workers {
            let owned =
                job.trial(w.trial).is_some_and(|t| t.worker.as_deref() == Some(w.id.as_str()) && !t.status.is_done());
            if !owned {
                tracing::info!(job = id, trial = w.trial, worker = %w.id, "removing a worker no trial owns");
                self.discard(runtime.as_ref(), &w.id).await;
            }
        }
        if job.status != JobStatus::Running {
            return Ok(());
        }
        // 4. The budget.
        let elapsed_min = now_ms().saturating_sub(job.created_at_ms) as f64 / 60_000.0;
        if elapsed_min >= job.spec.budget.minutes {
            let reason = format!("its time budget of {} minutes is spent", job.spec.budget.minutes);
            return self.complete(&job, reason).await;
        }
        if job.consecutive_errors >= MAX_CONSECUTIVE_ERRORS {
            let reason = format!("{} trials in a row errored; the last: {}", job.consecutive_errors, last_error(&job));
            self.end(&job, JobStatus::Errored, Some(reason)).await?;
            return Ok(());
        }
        // 5. New trials while workers are free.
        let active = job.active().count() as u32;
        let proposed = job.trials.len() as u32;
        let free = job.spec.budget.workers.saturating_sub(active).min(job.spec.budget.trials.saturating_sub(proposed));
        if free > 0 {
            self.propose(&job).await?;
            return Ok(());
        }
        // 6. Done.
        if proposed >= job.spec.budget.trials && active == 0 {
            return self.complete(&job, format!("all {} trials are done", job.spec.budget.trials)).await;
        }
        Ok(())
    }

    fn followed(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.followed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes a worker from its runtime and stops following its output.
    async fn discard(&self, rt: &dyn Runtime, id: &str) {
        let _ = rt.remove(id).await;
        self.followed().remove(id);
    }

    /// Writes the job's data files once per leadership; the copying runs on
    /// a blocking thread (datasets may be large, the directory on NFS).
    async fn materialise(&self, job: &Job) -> Step<()> {
        if self.materialised.lock().unwrap_or_else(|p| p.into_inner()).contains(&job.id) {
            return Ok(());
        }
        let (train, val) = {
            let state = self.app.node.state().read();
            let sha = |name: &str| state.platform.datasets.get(name).map(|d| d.sha256.clone());
            let train = sha(&job.spec.train_dataset).ok_or("the training dataset is gone")?;
            let val = match &job.spec.validation_dataset {
                Some(v) => Some(sha(v).ok_or("the validation dataset is gone")?),
                None => None,
            };
            (train, val)
        };
        let (blobs, shared, id, seed) = (self.app.node.blobs().clone(), self.env.shared.clone(), job.id, job.seed);
        tokio::task::spawn_blocking(move || {
            let train = blobs.read(&train).map_err(|e| format!("reading the training dataset: {e}"))?;
            let val = match val {
                Some(v) => Some(blobs.read(&v).map_err(|e| format!("reading the validation dataset: {e}"))?),
                None => None,
            };
            shared
                .materialise(id, seed, &train, val.as_deref())
                .map_err(|e| format!("writing the job's data to {}: {e}", shared.root().display()))
        })
        .await
        .map_err(|e| format!("copying the job's data: {e}"))??;
        self.materialised.lock().unwrap_or_else(|p| p.into_inner()).insert(job.id);
        Ok(())
    }

    /// Step 1 for one running trial.
    async fn settle(&self, job: &Job, t: &Trial, worker: Option<&WorkerInfo>, rt: &dyn Runtime) -> Step<()> {
        let output = self.env.shared.abs(&SharedDir::trial_output(job.id, t.no, t.attempt));
        let finished = output.join(SCORE_FILE).exists();
        match worker {
            Some(w @ WorkerInfo { state: WorkerState::Running, .. }) if job.status != JobStatus::Running => {
                self.discard(rt, &w.id).await;
                self.finish(job, t, TrialOutcome::Stopped { reason: stopped_reason(job) }).await
            }
            Some(w @ WorkerInfo { state: WorkerState::Running, .. }) => {
                let id = w.id.clone();
                if !self.followed().contains(&id) {
                    let since = t.started_at_ms.unwrap_or_else(now_ms) as i64 / 1000;
                    let sink = logs::trial_sink(&self.env.shared.trial_log(job.id, t.no), t.attempt)
                        .map_err(|e| e.to_string())?;
                    match rt.follow(&id, since, sink).await {
                        Ok(()) => {
                            self.followed().insert(id);
                        }
                        Err(e) => tracing::debug!(worker = %id, error = %e, "cannot follow the worker's output"),
                    }
                }
                Ok(())
            }
            Some(WorkerInfo { state: WorkerState::Exited { code: 0 }, .. }) | None if finished => {
                let outcome = self.collect(job, t).await;
                if let Some(w) = worker {
                    self.discard(rt, &w.id).await;
                }
                self.finish(job, t, outcome).await
            }
            Some(w @ WorkerInfo { state: WorkerState::Exited { code }, .. }) => {
                let reason = if *code == 0 {
                    format!("the worker exited without writing {SCORE_FILE} to its output directory ($BOAT_OUTPUT_DIR)")
                } else {
                    format!("the worker exited with code {code}: {}", self.last_message(job, t))
                };
                self.discard(rt, &w.id).await;
                self.finish(job, t, TrialOutcome::Errored { reason }).await
            }
            Some(w @ WorkerInfo { state: WorkerState::Failed { reason }, .. }) => {
                self.discard(rt, &w.id).await;
                self.finish(job, t, TrialOutcome::Errored { reason: format!("the worker failed: {reason}") }).await
            }
            None if job.status != JobStatus::Running => {
                self.finish(job, t, TrialOutcome::Stopped { reason: stopped_reason(job) }).await
            }
            None => {
                let reason = format!(
                    "its worker {} is gone (its leader stopped, or the engine lost it); running it again",
                    t.worker.as_deref().unwrap_or("?")
                );
                tracing::info!(job = job.id, trial = t.no, "{reason}");
                self.append(TrainingCommand::RequeueTrial { job: job.id, no: t.no, reason }).await.map(|_| ())
            }
        }
    }

    /// The last message a trial logged, for an error's reason.
    fn last_message(&self, job: &Job, t: &Trial) -> String {
        let path = self.env.shared.trial_log(job.id, t.no);
        let (entries, _) = logs::read_trial_log(&path, 0, usize::MAX).unwrap_or_default();
        entries
            .iter()
            .rev()
            .filter(|e| e.attempt == t.attempt)
            .find_map(|e| match &e.body {
                logs::LogBody::Message { message } => Some(message.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "(it printed nothing)".into())
    }

    /// Reads a finished trial's output and registers its model.
    async fn collect(&self, job: &Job, t: &Trial) -> TrialOutcome {
        match self.try_collect(job, t).await {
            Ok(outcome) => outcome,
            Err(reason) => TrialOutcome::Errored { reason },
        }
    }

    async fn try_collect(&self, job: &Job, t: &Trial) -> Step<TrialOutcome> {
        let dir = self.env.shared.abs(&SharedDir::trial_output(job.id, t.no, t.attempt));
        let score = tokio::fs::read(dir.join(SCORE_FILE)).await.map_err(|e| format!("reading {SCORE_FILE}: {e}"))?;
        let score: ScoreFile = serde_json::from_slice(&score)
            .map_err(|e| format!("{SCORE_FILE} is not {{\"score\": number, ...}}: {e}"))?;
        if !score.score.is_finite() {
            return Err(format!("score.json holds a score that is not a finite number ({})", score.score));
        }
        let bytes = tokio::fs::read(dir.join(MODEL_FILE)).await.map_err(|e| format!("reading {MODEL_FILE}: {e}"))?;
        let limit = self.app.config.max_model_bytes;
        if bytes.len() > limit {
            return Err(format!(
                "{MODEL_FILE} is {} bytes, over the node's limit of {limit} (raise it with boat node --max-model-bytes)",
                bytes.len()
            ));
        }
        let sha = boat_raft::sha256_hex(&bytes);
        let name = model_name(job);
        // A leader that died between registering and recording leaves the
        // version behind: use it rather than registering the file twice.
        let existing = {
            let state = self.app.node.state().read();
            state
                .serving
                .catalog
                .models
                .get(&name)
                .and_then(|m| m.versions.iter().find(|(_, v)| v.sha256 == sha).map(|(n, _)| *n))
        };
        let version = match existing {
            Some(v) => v,
            None => {
                let (upload_id, chunks) =
                    self.app.stage_upload(&bytes, "GET /api/models").await.map_err(|e| e.message)?;
                let upload =
                    UploadModel { name: name.clone(), upload_id, chunks, sha256: sha, uploaded_at_ms: now_ms() };
                match self.app.append(Command::Serving(ServingCommand::UploadModel(upload)), "GET /api/models").await {
                    Ok(CommandResult::Serving(ServingResult::ModelChanged(c))) => c.version,
                    Ok(other) => return Err(format!("registering the model: unexpected {other:?}")),
                    // The file did not load on the cluster: the trial's fault.
                    Err(e)
                        if matches!(e.kind, ErrorKind::InvalidInput | ErrorKind::Conflict | ErrorKind::BadRequest) =>
                    {
                        return Err(format!("its model does not load: {}", e.message))
                    }
                    Err(e) => return Err(e.message),
                }
            }
        };
        Ok(TrialOutcome::Completed {
            score: score.score,
            metric: score.metric,
            epochs: score.epochs,
            model: ModelRef { name, version },
        })
    }

    async fn finish(&self, job: &Job, t: &Trial, outcome: TrialOutcome) -> Step<()> {
        match &outcome {
            TrialOutcome::Completed { score, .. } => {
                tracing::info!(job = job.id, trial = t.no, score, "trial completed")
            }
            TrialOutcome::Errored { reason } => tracing::info!(job = job.id, trial = t.no, %reason, "trial errored"),
            TrialOutcome::Stopped { reason } => tracing::info!(job = job.id, trial = t.no, %reason, "trial stopped"),
        }
        let cmd = TrainingCommand::FinishTrial { job: job.id, no: t.no, outcome, at_ms: now_ms() };
        self.append(cmd).await.map(|_| ())
    }

    /// Step 2 for one pending trial.
    async fn start(&self, job: &Job, t: &Trial, workers: &[WorkerInfo], rt: &dyn Runtime) -> Step<()> {
        let adopt =
            workers.iter().find(|w| w.trial == t.no && w.attempt == t.attempt && w.state == WorkerState::Running);
        let id = match adopt {
            Some(w) => {
                tracing::info!(job = job.id, trial = t.no, worker = %w.id, "adopting a worker already running this trial");
                w.id.clone()
            }
            None => match self.launch(job, t, rt).await {
                Ok(id) => id,
                Err(reason) => {
                    return self
                        .finish(job, t, TrialOutcome::Errored { reason: format!("cannot start: {reason}") })
                        .await
                }
            },
        };
        let cmd = TrainingCommand::StartTrial {
            job: job.id,
            no: t.no,
            worker: id.clone(),
            node: self.app.node.id(),
            at_ms: now_ms(),
        };
        match self.append(cmd).await {
            Ok(CommandResult::Refused(r)) => {
                let _ = rt.remove(&id).await;
                Err(r.message)
            }
            Ok(_) => Ok(()),
            Err(e) => {
                // Not recorded: the next pass (here or on a new leader)
                // adopts the worker by its labels, or removes it.
                Err(e)
            }
        }
    }

    async fn launch(&self, job: &Job, t: &Trial, rt: &dyn Runtime) -> Step<String> {
        let (image, target) = {
            let state = self.app.node.state().read();
            let image = state.training.templates.get(&t.template).map(|c| c.image.clone());
            let target = state.platform.datasets.get(&job.spec.train_dataset).map(|d| d.target.clone());
            (image, target.ok_or("the training dataset is gone")?)
        };
        let out_rel = SharedDir::trial_output(job.id, t.no, t.attempt);
        let out = self.env.shared.abs(&out_rel);
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
        let knobs = serde_json::to_string(&t.knobs).map_err(|e| e.to_string())?;
        let mut env = BTreeMap::from([
            (worker::ENV_TASK.to_string(), job.spec.task.as_str().to_string()),
            (worker::ENV_KNOBS.to_string(), knobs),
            (worker::ENV_TARGET_COLUMN.to_string(), target),
            (worker::ENV_SEED.to_string(), trial_seed(job.seed, t.no as u64).to_string()),
            (worker::ENV_JOB_ID.to_string(), job.id.to_string()),
            (worker::ENV_TRIAL_ID.to_string(), format!("{}-{}", job.id, t.no)),
            (worker::ENV_ATTEMPT.to_string(), t.attempt.to_string()),
        ]);
        // Boat's own worker needs to know which built-in template to train;
        // a container template's image is its trainer.
        if image.is_none() {
            env.insert(worker::ENV_TEMPLATE.to_string(), t.template.clone());
        }
        let data = SharedDir::job_data(job.id);
        let paths = BTreeMap::from([
            (worker::ENV_TRAIN_PATH.to_string(), data.join("train.csv")),
            (worker::ENV_VAL_PATH.to_string(), data.join("val.csv")),
            (worker::ENV_OUTPUT_DIR.to_string(), out_rel),
        ]);
        let spec = WorkerSpec {
            job: job.id,
            trial: t.no,
            attempt: t.attempt,
            args: if image.is_none() { vec!["worker".into()] } else { Vec::new() },
            image,
            env,
            paths,
            cpus: job.spec.budget.cpus,
            memory_mb: job.spec.budget.memory_mb,
        };
        let sink = logs::trial_sink(&self.env.shared.trial_log(job.id, t.no), t.attempt).map_err(|e| e.to_string())?;
        let id = rt.launch(&spec, sink).await.map_err(|e| e.to_string())?;
        self.followed().insert(id.clone());
        tracing::info!(job = job.id, trial = t.no, attempt = t.attempt, worker = %id, template = %t.template, "trial started");
        Ok(id)
    }

    /// Step 5: one new trial from the advisor.
    async fn propose(&self, job: &Job) -> Step<()> {
        let no = job.trials.len() as u32 + 1;
        let template = &job.spec.templates[(no as usize - 1) % job.spec.templates.len()];
        let space = {
            let state = self.app.node.state().read();
            super::jobs::knob_space(&state.training, template, job.spec.knob_overrides.get(template))
                .map_err(|e| e.message)?
        };
        let observations: Vec<Observation> = job
            .trials
            .iter()
            .filter(|t| &t.template == template && t.status == TrialStatus::Completed)
            .filter_map(|t| Some(Observation { knobs: t.knobs.clone(), score: t.score? }))
            .collect();
        let pending: Vec<_> = job.active().filter(|t| &t.template == template).map(|t| t.knobs.clone()).collect();
        let knobs = propose(job.spec.advisor, &space, &observations, &pending, trial_seed(job.seed, no as u64));
        let cmd = TrainingCommand::ProposeTrial { job: job.id, template: template.clone(), knobs, at_ms: now_ms() };
        self.append(cmd).await.map(|_| ())
    }

    /// Ends a job whose budget is spent, deploying its best trials first
    /// when asked. Running trials are stopped by the next passes.
    async fn complete(&self, job: &Job, reason: String) -> Step<()> {
        let mut reason = reason;
        let mut deployed = None;
        if let Some(d) = &job.spec.deploy_best {
            match self.deploy(job, d).await {
                Ok(app) => deployed = Some(app),
                Err(e) => reason = format!("{reason}; not deployed: {e}"),
            }
        }
        let cmd = TrainingCommand::EndJob {
            job: job.id,
            status: JobStatus::Completed,
            reason: Some(reason),
            deployed_to: deployed,
            at_ms: now_ms(),
        };
        self.append(cmd).await.map(|_| ())?;
        tracing::info!(job = job.id, "train job completed");
        Ok(())
    }

    async fn end(&self, job: &Job, status: JobStatus, reason: Option<String>) -> Step<()> {
        tracing::info!(
            job = job.id,
            status = status.as_str(),
            reason = reason.as_deref().unwrap_or(""),
            "train job ends"
        );
        let cmd = TrainingCommand::EndJob { job: job.id, status, reason, deployed_to: None, at_ms: now_ms() };
        self.append(cmd).await.map(|_| ())
    }

    /// Makes the app serve the job's best trials: one entry, so the app
    /// switches at one index.
    async fn deploy(&self, job: &Job, d: &boat_raft::domains::training::DeployBest) -> Step<String> {
        let members: Vec<AppMember> = job
            .ranked()
            .into_iter()
            .take(d.members.max(1) as usize)
            .filter_map(|t| t.model.as_ref().map(|m| AppMember { model: m.name.clone(), version: m.version }))
            .collect();
        if members.is_empty() {
            return Err("no trial completed".into());
        }
        let exists = self.app.node.state().read().serving.apps.apps.contains_key(&d.app);
        let cmd = if exists {
            ServingCommand::SetAppMembers { name: d.app.clone(), members }
        } else {
            ServingCommand::CreateApp(App {
                name: d.app.clone(),
                owner: job.owner,
                members,
                rule: EnsembleRule::parse(&d.rule).unwrap_or(EnsembleRule::First),
                running: true,
                requires_token: false,
                revision: 0,
                created_at_ms: now_ms(),
                index: 0,
            })
        };
        match self.app.append(Command::Serving(cmd), "GET /api/apps").await.map_err(|e| e.message)? {
            CommandResult::Refused(r) => Err(r.message),
            _ => {
                tracing::info!(job = job.id, app = %d.app, "best trials deployed");
                Ok(d.app.clone())
            }
        }
    }

    /// Removes every worker of a job and stops its active trials.
    async fn stop_all(&self, job: &Job, rt: Option<&dyn Runtime>, reason: &str) -> Step<()> {
        for t in job.active() {
            if let (Some(rt), Some(w)) = (rt, &t.worker) {
                let _ = rt.remove(w).await;
            }
            self.finish(job, t, TrialOutcome::Stopped { reason: reason.to_string() }).await?;
        }
        Ok(())
    }
}

fn stopped_reason(job: &Job) -> String {
    match (&job.status, &job.reason) {
        (JobStatus::Running, _) => "stopped".into(),
        (s, Some(r)) => format!("the job is {}: {r}", s.as_str()),
        (s, None) => format!("the job is {}", s.as_str()),
    }
}

fn last_error(job: &Job) -> String {
    job.trials
        .iter()
        .rev()
        .find(|t| t.status == TrialStatus::Errored)
        .and_then(|t| t.reason.clone())
        .unwrap_or_default()
}
