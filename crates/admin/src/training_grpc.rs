//! The training service over gRPC (`proto/admin.proto`, service
//! `boat.admin.v1.Training`), next to the admin service on the HTTP port.
//! Same roles, same service methods and same error mapping as the REST
//! routes in `api_training`; only the message conversions live here.

use std::collections::BTreeMap;

use tonic::Request;

use crate::admin_grpc::pb;
use crate::admin_grpc::pb::training_server::{Training, TrainingServer};
use crate::admin_grpc::{answer, caller, writer, Answered};
use crate::auth::{ADMINS, ANYONE, APP_WRITERS, MODEL_WRITERS};
use crate::error::ApiError;
use crate::server::AppState;
use crate::training::jobs::{
    BudgetRequest, CreateJobRequest, JobView, RegisterTemplateRequest, TemplateView, TrialView,
};
use crate::training::logs::LogBody;

pub fn server(app: AppState) -> TrainingServer<TrainingService> {
    TrainingServer::new(TrainingService { app })
}

pub struct TrainingService {
    app: AppState,
}

fn template(t: TemplateView) -> pb::Template {
    pb::Template {
        name: t.name,
        kind: t.kind,
        task: t.task,
        description: t.description,
        image: t.image.unwrap_or_default(),
        knob_config_json: t.knob_config.to_string(),
    }
}

fn trial(t: TrialView) -> pb::Trial {
    pb::Trial {
        id: t.id,
        job: t.job,
        no: t.no,
        template: t.template,
        knobs_json: t.knobs.to_string(),
        status: t.status,
        attempt: t.attempt,
        score: t.score,
        metric: t.metric.unwrap_or_default(),
        epochs: t.epochs.unwrap_or(0),
        proposed_at_ms: t.proposed_at_ms,
        started_at_ms: t.started_at_ms.unwrap_or(0),
        ended_at_ms: t.ended_at_ms.unwrap_or(0),
        duration_s: t.duration_s.unwrap_or(0.0),
        worker: t.worker.unwrap_or_default(),
        node: t.node,
        model: t.model.unwrap_or_default(),
        reason: t.reason.unwrap_or_default(),
    }
}

fn job(j: JobView) -> pb::Job {
    pb::Job {
        id: j.id,
        app: j.app,
        owner: j.owner,
        task: j.task,
        status: j.status,
        reason: j.reason.unwrap_or_default(),
        train_dataset: j.train_dataset,
        validation_dataset: j.validation_dataset.unwrap_or_default(),
        templates: j.templates,
        advisor: j.advisor,
        runtime: j.runtime,
        budget: Some(pb::Budget {
            trials: j.budget.trials,
            minutes: j.budget.minutes,
            workers: j.budget.workers,
            cpus: j.budget.cpus,
            memory_mb: j.budget.memory_mb,
        }),
        seed: j.seed,
        created_at_ms: j.created_at_ms,
        ended_at_ms: j.ended_at_ms.unwrap_or(0),
        elapsed_s: j.elapsed_s,
        trials_proposed: j.trials_proposed,
        trials_done: j.trials_done,
        trials_running: j.trials_running,
        trials_completed: j.trials_completed,
        trials_errored: j.trials_errored,
        best: j.best.map(trial),
        deploy_best: j.deploy_best.unwrap_or_default(),
        deployed_to: j.deployed_to.unwrap_or_default(),
    }
}

/// Empty strings and zeros stand for "not given".
fn given(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn nonzero<T: Default + PartialEq>(v: T) -> Option<T> {
    (v != T::default()).then_some(v)
}

fn create_request(r: pb::CreateJobRequest) -> Result<CreateJobRequest, ApiError> {
    let knobs = match r.knobs_json.trim() {
        "" => BTreeMap::new(),
        text => serde_json::from_str(text)
            .map_err(|e| ApiError::unprocessable(format!("knobs_json must map templates to knob overrides: {e}")))?,
    };
    let b = r.budget.unwrap_or_default();
    Ok(CreateJobRequest {
        app: r.app,
        task: r.task,
        train_dataset: r.train_dataset,
        validation_dataset: given(r.validation_dataset),
        templates: r.templates,
        budget: BudgetRequest {
            trials: nonzero(b.trials),
            minutes: nonzero(b.minutes),
            workers: nonzero(b.workers),
            cpus: nonzero(b.cpus),
            memory_mb: nonzero(b.memory_mb),
        },
        advisor: given(r.advisor),
        runtime: given(r.runtime),
        knobs,
        deploy_best: given(r.deploy_best),
        deploy_members: nonzero(r.deploy_members),
        deploy_rule: given(r.deploy_rule),
        seed: r.seed,
    })
}

fn limit(n: u32) -> usize {
    if n == 0 {
        1000
    } else {
        n as usize
    }
}

#[tonic::async_trait]
impl Training for TrainingService {
    async fn list_templates(&self, req: Request<pb::Empty>) -> Answered<pb::TemplateList> {
        let r = async {
            caller(&self.app, &req, ANYONE).await?;
            Ok(pb::TemplateList { templates: self.app.list_templates().into_iter().map(template).collect() })
        };
        answer(r.await)
    }

    async fn register_template(&self, req: Request<pb::RegisterTemplateRequest>) -> Answered<pb::Template> {
        let r = async {
            let who = writer(&self.app, &req, MODEL_WRITERS)?;
            let r = req.into_inner();
            let knob_config = serde_json::from_str(&r.knob_config_json)
                .map_err(|e| ApiError::unprocessable(format!("knob_config_json is not JSON: {e}")))?;
            let body = RegisterTemplateRequest {
                name: r.name,
                task: r.task,
                image: r.image,
                knob_config,
                description: r.description,
            };
            Ok(template(self.app.register_template(&who, body).await?))
        };
        answer(r.await)
    }

    async fn delete_template(&self, req: Request<pb::NameRef>) -> Answered<pb::Empty> {
        let r = async {
            let who = writer(&self.app, &req, MODEL_WRITERS)?;
            self.app.delete_template(&who, &req.into_inner().name).await?;
            Ok(pb::Empty {})
        };
        answer(r.await)
    }

    async fn create_job(&self, req: Request<pb::CreateJobRequest>) -> Answered<pb::Job> {
        let r = async {
            let who = writer(&self.app, &req, APP_WRITERS)?;
            let body = create_request(req.into_inner())?;
            Ok(job(self.app.create_job(&who, body).await?))
        };
        answer(r.await)
    }

    async fn list_jobs(&self, req: Request<pb::Empty>) -> Answered<pb::JobList> {
        let r = async {
            let who = caller(&self.app, &req, APP_WRITERS).await?;
            Ok(pb::JobList { jobs: self.app.list_jobs(&who).into_iter().map(job).collect() })
        };
        answer(r.await)
    }

    async fn get_job(&self, req: Request<pb::JobRef>) -> Answered<pb::Job> {
        let r = async {
            let who = caller(&self.app, &req, APP_WRITERS).await?;
            Ok(job(self.app.show_job(&who, req.get_ref().id)?))
        };
        answer(r.await)
    }

    async fn stop_job(&self, req: Request<pb::JobRef>) -> Answered<pb::Job> {
        let r = async {
            let who = writer(&self.app, &req, APP_WRITERS)?;
            Ok(job(self.app.stop_job(&who, req.get_ref().id).await?))
        };
        answer(r.await)
    }

    async fn list_trials(&self, req: Request<pb::JobRef>) -> Answered<pb::TrialList> {
        let r = async {
            let who = caller(&self.app, &req, APP_WRITERS).await?;
            Ok(pb::TrialList { trials: self.app.job_trials(&who, req.get_ref().id)?.into_iter().map(trial).collect() })
        };
        answer(r.await)
    }

    async fn best_trials(&self, req: Request<pb::BestRequest>) -> Answered<pb::TrialList> {
        let r = async {
            let who = caller(&self.app, &req, APP_WRITERS).await?;
            let (id, n) = (req.get_ref().id, req.get_ref().n.max(1) as usize);
            Ok(pb::TrialList { trials: self.app.best_trials(&who, id, n)?.into_iter().map(trial).collect() })
        };
        answer(r.await)
    }

    async fn trial_logs(&self, req: Request<pb::TrialLogRequest>) -> Answered<pb::TrialLog> {
        let r = async {
            let who = caller(&self.app, &req, APP_WRITERS).await?;
            let q = req.get_ref();
            let view = self.app.trial_logs(&who, &q.trial, q.since as usize, limit(q.limit)).await?;
            let entries = view
                .entries
                .into_iter()
                .map(|e| match e.body {
                    LogBody::Metrics { epoch, values } => pb::LogEntry {
                        ts_ms: e.ts_ms,
                        attempt: e.attempt,
                        kind: "metrics".into(),
                        epoch,
                        values: values.into_iter().collect(),
                        message: String::new(),
                    },
                    LogBody::Message { message } => pb::LogEntry {
                        ts_ms: e.ts_ms,
                        attempt: e.attempt,
                        kind: "message".into(),
                        epoch: 0,
                        values: Default::default(),
                        message,
                    },
                })
                .collect();
            Ok(pb::TrialLog { trial: view.trial, entries, next: view.next as u64, live: view.live })
        };
        answer(r.await)
    }

    async fn node_logs(&self, req: Request<pb::NodeLogRequest>) -> Answered<pb::NodeLog> {
        let r = async {
            caller(&self.app, &req, ADMINS).await?;
            let q = req.get_ref();
            let (lines, next) = self.app.node_logs(q.node, q.since as usize, limit(q.limit)).await?;
            Ok(pb::NodeLog { node: q.node, lines, next: next as u64 })
        };
        answer(r.await)
    }
}
