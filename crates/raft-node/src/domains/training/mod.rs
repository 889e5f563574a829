//! The training domain: model templates that bring their own trainer, and
//! train jobs with their trials.
//!
//! A job is the search an app developer asked for: datasets, templates to
//! try, a budget and an advisor. Its trials move pending → running →
//! completed | errored | stopped, each step one entry proposed by the
//! leader's orchestrator, so a new leader finds every proposal, every
//! running worker and every result recorded, and resumes from there. A
//! trial whose worker was lost with its leader goes back to pending
//! (`RequeueTrial`) and runs again under the same number: none is lost and
//! none is counted twice.
//!
//! Built-in templates live in code (`boat_training::templates`); only
//! container templates, registered by model developers, are state. As in
//! the other domains, every clock reading and random choice (job seeds,
//! knobs the advisor proposed) is made by the leader and travels in the
//! command, so applying stays deterministic.

mod json_field;

use std::collections::BTreeMap;

use boat_training::advisor::AdvisorKind;
use boat_training::knobs::{KnobConfig, KnobOverride, Knobs};
use serde::{Deserialize, Serialize};

use super::integrity::chain;
use super::platform::{DatasetTask, PlatformState};
use super::{CommandResult, Refusal};
use crate::types::NodeId;

/// Errored trials in a row after which a job stops by itself.
pub const MAX_CONSECUTIVE_ERRORS: u32 = 100;

/// A template whose trainer is a Docker image following the worker
/// contract (README, "Bring your own trainer").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerTemplate {
    pub name: String,
    pub task: DatasetTask,
    pub image: String,
    #[serde(with = "json_field")]
    pub knob_config: KnobConfig,
    pub description: String,
    pub owner: u64,
    pub created_at_ms: u64,
}

/// Where a job's trial workers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerRuntime {
    /// Child processes of the leader (`boat worker`).
    Local,
    /// Containers on the leader's Docker engine.
    Docker,
    /// Docker Swarm services, placed by the Swarm on any of its hosts.
    Swarm,
}

impl WorkerRuntime {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerRuntime::Local => "local",
            WorkerRuntime::Docker => "docker",
            WorkerRuntime::Swarm => "swarm",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "local" => Some(Self::Local),
            "docker" => Some(Self::Docker),
            "swarm" => Some(Self::Swarm),
            _ => None,
        }
    }
}

/// What a job may spend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Trials to run in all (completed, errored and stopped ones count).
    pub trials: u32,
    /// Wall-clock minutes from the job's creation; running trials are
    /// stopped when they run out.
    pub minutes: f64,
    /// Trials that may run at the same time.
    pub workers: u32,
    /// CPU cores one worker may use (containers only).
    pub cpus: f64,
    /// Memory one worker may use, in MiB (containers only).
    pub memory_mb: u64,
}

/// Once the job ends, make `app` serve its best trials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployBest {
    pub app: String,
    /// How many of the best trials become members (1 to 8).
    pub members: u32,
    /// Ensemble rule name (`boat_serving::ensemble`).
    pub rule: String,
}

/// What the app developer asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The app the job trains for; names the job's models too.
    pub app: String,
    pub task: DatasetTask,
    pub train_dataset: String,
    /// `None`: the orchestrator holds out a seeded fifth of the training rows.
    pub validation_dataset: Option<String>,
    pub templates: Vec<String>,
    pub budget: Budget,
    pub advisor: AdvisorKind,
    pub runtime: WorkerRuntime,
    /// Per template, knobs the developer fixed or narrowed.
    #[serde(with = "json_field")]
    pub knob_overrides: BTreeMap<String, BTreeMap<String, KnobOverride>>,
    pub deploy_best: Option<DeployBest>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Running,
    Completed,
    Stopped,
    Errored,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Stopped => "stopped",
            JobStatus::Errored => "errored",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialStatus {
    Pending,
    Running,
    Completed,
    Errored,
    Stopped,
}

impl TrialStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TrialStatus::Pending => "pending",
            TrialStatus::Running => "running",
            TrialStatus::Completed => "completed",
            TrialStatus::Errored => "errored",
            TrialStatus::Stopped => "stopped",
        }
    }

    pub fn is_done(self) -> bool {
        matches!(self, TrialStatus::Completed | TrialStatus::Errored | TrialStatus::Stopped)
    }
}

/// A model version a trial produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    pub name: String,
    pub version: u64,
}

/// One trial of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// 1-based number within the job.
    pub no: u32,
    pub template: String,
    #[serde(with = "json_field")]
    pub knobs: Knobs,
    pub status: TrialStatus,
    /// Starts at 1; a requeued trial runs again with the next attempt.
    pub attempt: u32,
    pub proposed_at_ms: u64,
    pub started_at_ms: Option<u64>,
    pub ended_at_ms: Option<u64>,
    /// The runtime's handle on the worker (process id, container or
    /// service id), for reconciling after a leader change.
    pub worker: Option<String>,
    /// The node whose orchestrator started the worker.
    pub node: Option<NodeId>,
    pub score: Option<f64>,
    pub metric: Option<String>,
    pub epochs: Option<u32>,
    pub model: Option<ModelRef>,
    /// Why it errored or stopped.
    pub reason: Option<String>,
}

/// A train job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: u64,
    pub spec: JobSpec,
    pub owner: u64,
    /// Seeds the advisor and the trainers, so a job's search replays.
    pub seed: u64,
    pub status: JobStatus,
    pub created_at_ms: u64,
    pub ended_at_ms: Option<u64>,
    pub reason: Option<String>,
    pub trials: Vec<Trial>,
    pub consecutive_errors: u32,
    /// The app the best trials went to when the job ended.
    pub deployed_to: Option<String>,
}

impl Job {
    pub fn trial(&self, no: u32) -> Option<&Trial> {
        self.trials.get((no as usize).checked_sub(1)?)
    }

    fn trial_mut(&mut self, no: u32) -> Option<&mut Trial> {
        self.trials.get_mut((no as usize).checked_sub(1)?)
    }

    /// Trials pending or running.
    pub fn active(&self) -> impl Iterator<Item = &Trial> {
        self.trials.iter().filter(|t| !t.status.is_done())
    }

    /// The completed trial with the highest score (the earliest on a tie).
    pub fn best(&self) -> Option<&Trial> {
        self.ranked().into_iter().next()
    }

    /// Completed trials with a model, best first (the earlier on a tie).
    pub fn ranked(&self) -> Vec<&Trial> {
        let mut done: Vec<&Trial> = self
            .trials
            .iter()
            .filter(|t| t.status == TrialStatus::Completed && t.model.is_some() && t.score.is_some_and(f64::is_finite))
            .collect();
        done.sort_by(|a, b| b.score.partial_cmp(&a.score).unwrap_or(std::cmp::Ordering::Equal).then(a.no.cmp(&b.no)));
        done
    }

    pub fn uses_dataset(&self, name: &str) -> bool {
        self.spec.train_dataset == name || self.spec.validation_dataset.as_deref() == Some(name)
    }
}

/// How a trial ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TrialOutcome {
    Completed { score: f64, metric: String, epochs: u32, model: ModelRef },
    Errored { reason: String },
    Stopped { reason: String },
}

/// Commands of the training domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TrainingCommand {
    /// Adds a container template; refused when the name is taken.
    RegisterTemplate(ContainerTemplate),
    /// Removes a container template; refused while a running job uses it.
    DeleteTemplate { name: String },
    /// Starts a job; its datasets must exist.
    CreateJob { spec: JobSpec, owner: u64, seed: u64, at_ms: u64 },
    /// The advisor's next trial; refused once the job ended or its trial
    /// budget is spent.
    ProposeTrial {
        job: u64,
        template: String,
        #[serde(with = "json_field")]
        knobs: Knobs,
        at_ms: u64,
    },
    /// A worker runs the pending trial `no`.
    StartTrial { job: u64, no: u32, worker: String, node: NodeId, at_ms: u64 },
    /// The trial's worker was lost before it finished: it runs again.
    RequeueTrial { job: u64, no: u32, reason: String },
    /// The trial ended.
    FinishTrial { job: u64, no: u32, outcome: TrialOutcome, at_ms: u64 },
    /// The job ended (its budget is spent, it was stopped, or it failed).
    EndJob { job: u64, status: JobStatus, reason: Option<String>, deployed_to: Option<String>, at_ms: u64 },
}

/// What applying a training command produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TrainingResult {
    Template(ContainerTemplate),
    Job(Box<Job>),
    Trial { job: u64, trial: Box<Trial> },
    Done,
}

/// The training domain's part of the applied state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrainingState {
    pub templates: BTreeMap<String, ContainerTemplate>,
    pub jobs: BTreeMap<u64, Job>,
    pub next_job_id: u64,
    digest: String,
}

impl TrainingState {
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// A running job that reads the dataset, if any.
    pub fn job_using_dataset(&self, name: &str) -> Option<&Job> {
        self.jobs.values().find(|j| j.status == JobStatus::Running && j.uses_dataset(name))
    }

    pub fn running_jobs(&self) -> impl Iterator<Item = &Job> {
        self.jobs.values().filter(|j| j.status == JobStatus::Running)
    }
}

fn no_job(id: u64) -> Refusal {
    Refusal::not_found(format!("no train job {id}"))
}

fn no_trial(job: u64, no: u32) -> Refusal {
    Refusal::not_found(format!("train job {job} has no trial {no}"))
}

/// Applies a training command. `platform` is read to check that the
/// datasets a job names exist.
pub(crate) fn apply(
    s: &mut TrainingState,
    platform: &PlatformState,
    index: u64,
    cmd: TrainingCommand,
) -> CommandResult {
    // Every change is folded whole: the command carries everything it did.
    let folded = bincode::serialize(&cmd).unwrap_or_default();
    let result = apply_inner(s, platform, cmd);
    if result.is_ok() {
        s.digest = chain(&s.digest, index, &[b"training", &folded]);
    }
    match result {
        Ok(r) => CommandResult::Training(r),
        Err(refusal) => CommandResult::Refused(refusal),
    }
}

fn apply_inner(
    s: &mut TrainingState,
    platform: &PlatformState,
    cmd: TrainingCommand,
) -> Result<TrainingResult, Refusal> {
    match cmd {
        TrainingCommand::RegisterTemplate(t) => {
            if s.templates.contains_key(&t.name) {
                return Err(Refusal::conflict(format!("a template named {:?} exists", t.name)));
            }
            s.templates.insert(t.name.clone(), t.clone());
            Ok(TrainingResult::Template(t))
        }
        TrainingCommand::DeleteTemplate { name } => {
            if let Some(job) = s.running_jobs().find(|j| j.spec.templates.contains(&name)) {
                return Err(Refusal::conflict(format!("train job {} uses template {name:?}", job.id)));
            }
            s.templates
                .remove(&name)
                .map(TrainingResult::Template)
                .ok_or_else(|| Refusal::not_found(format!("no container template {name:?}")))
        }
        TrainingCommand::CreateJob { spec, owner, seed, at_ms } => {
            for name in std::iter::once(&spec.train_dataset).chain(spec.validation_dataset.as_ref()) {
                if !platform.datasets.contains_key(name) {
                    return Err(Refusal::not_found(format!("no dataset {name:?}")));
                }
            }
            s.next_job_id = s.next_job_id.max(1);
            let id = s.next_job_id;
            s.next_job_id += 1;
            let job = Job {
                id,
                spec,
                owner,
                seed,
                status: JobStatus::Running,
                created_at_ms: at_ms,
                ended_at_ms: None,
                reason: None,
                trials: Vec::new(),
                consecutive_errors: 0,
                deployed_to: None,
            };
            s.jobs.insert(id, job.clone());
            Ok(TrainingResult::Job(Box::new(job)))
        }
        TrainingCommand::ProposeTrial { job, template, knobs, at_ms } => {
            let j = s.jobs.get_mut(&job).ok_or_else(|| no_job(job))?;
            if j.status != JobStatus::Running {
                return Err(Refusal::conflict(format!("train job {job} is {}", j.status.as_str())));
            }
            if j.trials.len() as u32 >= j.spec.budget.trials {
                return Err(Refusal::conflict(format!(
                    "train job {job} has proposed its {} trials",
                    j.spec.budget.trials
                )));
            }
            let trial = Trial {
                no: j.trials.len() as u32 + 1,
                template,
                knobs,
                status: TrialStatus::Pending,
                attempt: 1,
                proposed_at_ms: at_ms,
                started_at_ms: None,
                ended_at_ms: None,
                worker: None,
                node: None,
                score: None,
                metric: None,
                epochs: None,
                model: None,
                reason: None,
            };
            j.trials.push(trial.clone());
            Ok(TrainingResult::Trial { job, trial: Box::new(trial) })
        }
        TrainingCommand::StartTrial { job, no, worker, node, at_ms } => {
            let j = s.jobs.get_mut(&job).ok_or_else(|| no_job(job))?;
            let t = j.trial_mut(no).ok_or_else(|| no_trial(job, no))?;
            if t.status != TrialStatus::Pending {
                return Err(Refusal::conflict(format!("trial {no} of job {job} is {}", t.status.as_str())));
            }
            t.status = TrialStatus::Running;
            t.worker = Some(worker);
            t.node = Some(node);
            t.started_at_ms = Some(at_ms);
            Ok(TrainingResult::Trial { job, trial: Box::new(t.clone()) })
        }
        TrainingCommand::RequeueTrial { job, no, reason } => {
            let j = s.jobs.get_mut(&job).ok_or_else(|| no_job(job))?;
            let t = j.trial_mut(no).ok_or_else(|| no_trial(job, no))?;
            if t.status.is_done() {
                return Err(Refusal::conflict(format!("trial {no} of job {job} is {}", t.status.as_str())));
            }
            t.status = TrialStatus::Pending;
            t.attempt += 1;
            t.worker = None;
            t.node = None;
            t.started_at_ms = None;
            t.reason = Some(reason);
            Ok(TrainingResult::Trial { job, trial: Box::new(t.clone()) })
        }
        TrainingCommand::FinishTrial { job, no, outcome, at_ms } => {
            let j = s.jobs.get_mut(&job).ok_or_else(|| no_job(job))?;
            let t = j.trial_mut(no).ok_or_else(|| no_trial(job, no))?;
            if t.status.is_done() {
                return Err(Refusal::conflict(format!("trial {no} of job {job} is already {}", t.status.as_str())));
            }
            t.ended_at_ms = Some(at_ms);
            let errored = matches!(outcome, TrialOutcome::Errored { .. });
            match outcome {
                TrialOutcome::Completed { score, metric, epochs, model } => {
                    t.status = TrialStatus::Completed;
                    t.score = Some(score);
                    t.metric = Some(metric);
                    t.epochs = Some(epochs);
                    t.model = Some(model);
                    t.reason = None;
                }
                TrialOutcome::Errored { reason } => {
                    t.status = TrialStatus::Errored;
                    t.reason = Some(reason);
                }
                TrialOutcome::Stopped { reason } => {
                    t.status = TrialStatus::Stopped;
                    t.reason = Some(reason);
                }
            }
            let trial = t.clone();
            if errored {
                j.consecutive_errors += 1;
            } else if trial.status == TrialStatus::Completed {
                j.consecutive_errors = 0;
            }
            Ok(TrainingResult::Trial { job, trial: Box::new(trial) })
        }
        TrainingCommand::EndJob { job, status, reason, deployed_to, at_ms } => {
            let j = s.jobs.get_mut(&job).ok_or_else(|| no_job(job))?;
            if j.status != JobStatus::Running {
                return Err(Refusal::conflict(format!("train job {job} is already {}", j.status.as_str())));
            }
            if status == JobStatus::Running {
                return Err(Refusal::conflict("a job cannot end as running"));
            }
            j.status = status;
            j.reason = reason;
            j.deployed_to = deployed_to;
            j.ended_at_ms = Some(at_ms);
            Ok(TrainingResult::Job(Box::new(j.clone())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domains::platform::Dataset;

    fn platform() -> PlatformState {
        let mut p = PlatformState::default();
        let d = Dataset {
            name: "iris".into(),
            task: DatasetTask::Classification,
            columns: vec![],
            target: "target".into(),
            rows: 150,
            size_bytes: 1,
            sha256: "00".into(),
            class_counts: Default::default(),
            owner: 1,
            uploaded_at_ms: 0,
            index: 1,
        };
        p.datasets.insert("iris".into(), d);
        p
    }

    fn spec(trials: u32) -> JobSpec {
        JobSpec {
            app: "flowers".into(),
            task: DatasetTask::Classification,
            train_dataset: "iris".into(),
            validation_dataset: None,
            templates: vec!["mlp_classifier".into()],
            budget: Budget { trials, minutes: 10.0, workers: 2, cpus: 1.0, memory_mb: 512 },
            advisor: AdvisorKind::Tpe,
            runtime: WorkerRuntime::Local,
            knob_overrides: Default::default(),
            deploy_best: None,
        }
    }

    fn ok(r: CommandResult) -> TrainingResult {
        match r {
            CommandResult::Training(t) => t,
            other => panic!("refused: {other:?}"),
        }
    }

    fn propose(s: &mut TrainingState, p: &PlatformState, index: u64) -> CommandResult {
        let cmd = TrainingCommand::ProposeTrial {
            job: 1,
            template: "mlp_classifier".into(),
            knobs: serde_json::from_str(r#"{"lr":0.01}"#).unwrap(),
            at_ms: index,
        };
        apply(s, p, index, cmd)
    }

    fn finish(no: u32, outcome: TrialOutcome) -> TrainingCommand {
        TrainingCommand::FinishTrial { job: 1, no, outcome, at_ms: 9 }
    }

    #[test]
    fn a_job_needs_its_datasets_and_proposes_within_its_budget() {
        let (mut s, p) = (TrainingState::default(), platform());
        let mut missing = spec(2);
        missing.validation_dataset = Some("nope".into());
        let cmd = TrainingCommand::CreateJob { spec: missing, owner: 1, seed: 7, at_ms: 1 };
        assert!(matches!(apply(&mut s, &p, 1, cmd), CommandResult::Refused(_)));
        let cmd = TrainingCommand::CreateJob { spec: spec(2), owner: 1, seed: 7, at_ms: 1 };
        assert!(matches!(ok(apply(&mut s, &p, 2, cmd)), TrainingResult::Job(j) if j.id == 1));
        ok(propose(&mut s, &p, 3));
        ok(propose(&mut s, &p, 4));
        assert!(matches!(propose(&mut s, &p, 5), CommandResult::Refused(_)), "the budget holds two trials");
        assert_eq!(s.jobs[&1].trials[1].knobs["lr"], boat_training::knobs::KnobValue::Float(0.01));
    }

    #[test]
    fn trials_move_forward_and_a_lost_worker_runs_again_under_the_same_number() {
        let (mut s, p) = (TrainingState::default(), platform());
        ok(apply(&mut s, &p, 1, TrainingCommand::CreateJob { spec: spec(3), owner: 1, seed: 7, at_ms: 1 }));
        ok(propose(&mut s, &p, 2));
        let start =
            |worker: &str| TrainingCommand::StartTrial { job: 1, no: 1, worker: worker.into(), node: 0, at_ms: 3 };
        ok(apply(&mut s, &p, 3, start("pid:1")));
        assert!(matches!(apply(&mut s, &p, 4, start("pid:2")), CommandResult::Refused(_)), "already running");
        let requeue = TrainingCommand::RequeueTrial { job: 1, no: 1, reason: "leader lost".into() };
        ok(apply(&mut s, &p, 5, requeue));
        let t = &s.jobs[&1].trials[0];
        assert_eq!((t.status, t.attempt, t.worker.clone()), (TrialStatus::Pending, 2, None));
        ok(apply(&mut s, &p, 6, start("pid:3")));
        let model = ModelRef { name: "flowers-job1".into(), version: 1 };
        let done = TrialOutcome::Completed { score: 0.9, metric: "accuracy".into(), epochs: 5, model };
        ok(apply(&mut s, &p, 7, finish(1, done.clone())));
        assert!(matches!(apply(&mut s, &p, 8, finish(1, done)), CommandResult::Refused(_)), "counted once");
        assert_eq!(s.jobs[&1].trials.len(), 1);
        assert_eq!(s.jobs[&1].best().map(|t| t.no), Some(1));
    }

    #[test]
    fn errors_in_a_row_are_counted_and_reset_by_a_success() {
        let (mut s, p) = (TrainingState::default(), platform());
        ok(apply(&mut s, &p, 1, TrainingCommand::CreateJob { spec: spec(3), owner: 1, seed: 7, at_ms: 1 }));
        for i in 0..3 {
            ok(propose(&mut s, &p, 2 + i));
        }
        ok(apply(&mut s, &p, 5, finish(1, TrialOutcome::Errored { reason: "exit 1".into() })));
        ok(apply(&mut s, &p, 6, finish(2, TrialOutcome::Errored { reason: "exit 1".into() })));
        assert_eq!(s.jobs[&1].consecutive_errors, 2);
        let model = ModelRef { name: "m".into(), version: 1 };
        let done = TrialOutcome::Completed { score: 0.5, metric: "accuracy".into(), epochs: 1, model };
        ok(apply(&mut s, &p, 7, finish(3, done)));
        assert_eq!(s.jobs[&1].consecutive_errors, 0);
    }

    #[test]
    fn a_running_job_holds_its_dataset_and_ends_once() {
        let (mut s, p) = (TrainingState::default(), platform());
        ok(apply(&mut s, &p, 1, TrainingCommand::CreateJob { spec: spec(1), owner: 1, seed: 7, at_ms: 1 }));
        assert_eq!(s.job_using_dataset("iris").map(|j| j.id), Some(1));
        let end = |status| TrainingCommand::EndJob { job: 1, status, reason: None, deployed_to: None, at_ms: 2 };
        ok(apply(&mut s, &p, 2, end(JobStatus::Stopped)));
        assert!(matches!(apply(&mut s, &p, 3, end(JobStatus::Completed)), CommandResult::Refused(_)));
        assert!(s.job_using_dataset("iris").is_none());
    }

    #[test]
    fn state_with_knobs_survives_the_binary_encoding() {
        let (mut s, p) = (TrainingState::default(), platform());
        ok(apply(&mut s, &p, 1, TrainingCommand::CreateJob { spec: spec(1), owner: 1, seed: 7, at_ms: 1 }));
        ok(propose(&mut s, &p, 2));
        let bytes = bincode::serialize(&s).unwrap();
        let back: TrainingState = bincode::deserialize(&bytes).unwrap();
        assert_eq!(back.jobs, s.jobs);
        assert_eq!(back.digest(), s.digest());
        assert!(!s.digest().is_empty());
    }
}
