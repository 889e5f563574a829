//! The training service over REST: templates, train jobs, trials and
//! logs under `/api/...`. Same rules as `api`: each handler authorizes its
//! route's roles, reads pass the read barrier, writes go to the leader.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::ErrorBody;
use crate::auth::{ADMINS, ANYONE, APP_WRITERS, MODEL_WRITERS};
use crate::consistency::Consistent;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::server::AppState;
use crate::training::jobs::{
    CreateJobRequest, JobView, RegisterTemplateRequest, TemplateView, TrialLogView, TrialView,
};

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateList {
    pub templates: Vec<TemplateView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrialList {
    pub trials: Vec<TrialView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeLogView {
    pub node: u64,
    pub lines: Vec<String>,
    /// Pass as `since` to read on from here.
    pub next: usize,
}

/// Where to read a log from.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Position (entries from the start of the kept files) to read from; the last answer's `next`.
    pub since: Option<usize>,
    /// Most entries to answer (default 1000).
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BestQuery {
    /// How many of the best trials (default 1).
    pub n: Option<usize>,
}

#[utoipa::path(get, path = "/api/templates", tag = "training",
    description = "Model templates: the built-in ones and registered container templates, each with its knob space. Required role: any signed-in user.",
    responses((status = 200, description = "the templates", body = TemplateList), (status = 401, description = "no or bad token", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN", "MODEL_DEVELOPER", "APP_DEVELOPER", "APP_USER"]))))]
pub async fn list_templates(
    State(app): State<AppState>,
    _: Consistent,
    headers: HeaderMap,
) -> Result<Json<TemplateList>, ApiError> {
    app.authorize_http(&headers, ANYONE)?;
    Ok(Json(TemplateList { templates: app.list_templates() }))
}

#[utoipa::path(post, path = "/api/templates", tag = "training", request_body = RegisterTemplateRequest,
    description = "Register a container template: a Docker image that follows the worker contract, with its knob space. Required role: SUPERADMIN, ADMIN or MODEL_DEVELOPER.",
    responses((status = 201, description = "registered", body = TemplateView), (status = 409, description = "the name is taken", body = ErrorBody),
              (status = 422, description = "a bad knob space or image", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN", "MODEL_DEVELOPER"]))))]
pub async fn register_template(
    State(app): State<AppState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<RegisterTemplateRequest>,
) -> Result<Response, ApiError> {
    let who = app.authorize_write(&headers, MODEL_WRITERS)?;
    let view = app.register_template(&who, req).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[utoipa::path(delete, path = "/api/templates/{name}", tag = "training", params(("name" = String, Path, description = "template name")),
    description = "Delete a container template (not while a running job uses it). Required role: SUPERADMIN, ADMIN or MODEL_DEVELOPER (owner).",
    responses((status = 204, description = "deleted"), (status = 404, description = "no such template", body = ErrorBody),
              (status = 409, description = "built in, or a running job uses it", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN", "MODEL_DEVELOPER"]))))]
pub async fn delete_template(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let who = app.authorize_write(&headers, MODEL_WRITERS)?;
    app.delete_template(&who, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/jobs", tag = "training",
    description = "Train jobs the caller may see (admins: all; others: their own). Required role: SUPERADMIN, ADMIN or APP_DEVELOPER.",
    responses((status = 200, description = "the jobs", body = JobList), (status = 403, description = "role too low", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN", "APP_DEVELOPER"]))))]
pub async fn list_jobs(
    State(app): State<AppState>,
    _: Consistent,
    headers: HeaderMap,
) -> Result<Json<JobList>, ApiError> {
    let who = app.authorize_http(&headers, APP_WRITERS)?;
    Ok(Json(JobList { jobs: app.list_jobs(&who) }))
}

#[utoipa::path(post, path = "/api/jobs", tag = "training", request_body = CreateJobRequest,
    description = "Create a train job: datasets, templates to try, a budget and an advisor. The leader's orchestrator runs its trials. Required role: SUPERADMIN, ADMIN or APP_DEVELOPER.",
    responses((status = 201, description = "created", body = JobView), (status = 404, description = "no such dataset or template", body = ErrorBody),
              (status = 422, description = "a task mismatch, an unknown knob, a value out of range, a bad budget", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN", "APP_DEVELOPER"]))))]
pub async fn create_job(
    State(app): State<AppState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<CreateJobRequest>,
) -> Result<Response, ApiError> {
    let who = app.authorize_write(&headers, APP_WRITERS)?;
    let view = app.create_job(&who, req).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[utoipa::path(get, path = "/api/jobs/{id}", tag = "training", params(("id" = u64, Path, description = "job id")),
    description = "A train job: status, budget used, best trial. Required role: SUPERADMIN, ADMIN or APP_DEVELOPER (owner).",
    responses((status = 200, description = "the job", body = JobView), (status = 404, description = "no such job", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN", "APP_DEVELOPER"]))))]
pub async fn show_job(
    State(app): State<AppState>,
    _: Consistent,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> Result<Json<JobView>, ApiError> {
    let who = app.authorize_http(&headers, APP_WRITERS)?;
    app.show_job(&who, id).map(Json)
}

#[utoipa::path(post, path = "/api/jobs/{id}/stop", tag = "training", params(("id" = u64, Path, description = "job id")),
    description = "Stop a train job: its running trials are stopped and no new one starts. Required role: SUPERADMIN, ADMIN or APP_DEVELOPER (owner).",
    responses((status = 200, description = "stopped", body = JobView), (status = 409, description = "it already ended", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN", "APP_DEVELOPER"]))))]
pub async fn stop_job(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> Result<Json<JobView>, ApiError> {
    let who = app.authorize_write(&headers, APP_WRITERS)?;
    app.stop_job(&who, id).await.map(Json)
}

#[utoipa::path(get, path = "/api/jobs/{id}/trials", tag = "training", params(("id" = u64, Path, description = "job id")),
    description = "A job's trials: knobs, status, score, timings, worker, model. Required role: SUPERADMIN, ADMIN or APP_DEVELOPER (owner).",
    responses((status = 200, description = "the trials", body = TrialList), (status = 404, description = "no such job", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN", "APP_DEVELOPER"]))))]
pub async fn job_trials(
    State(app): State<AppState>,
    _: Consistent,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> Result<Json<TrialList>, ApiError> {
    let who = app.authorize_http(&headers, APP_WRITERS)?;
    Ok(Json(TrialList { trials: app.job_trials(&who, id)? }))
}

#[utoipa::path(get, path = "/api/jobs/{id}/best", tag = "training", params(("id" = u64, Path, description = "job id"), BestQuery),
    description = "A job's best completed trials, best first. Required role: SUPERADMIN, ADMIN or APP_DEVELOPER (owner).",
    responses((status = 200, description = "the best trials", body = TrialList), (status = 404, description = "no such job", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN", "APP_DEVELOPER"]))))]
pub async fn best_trials(
    State(app): State<AppState>,
    _: Consistent,
    headers: HeaderMap,
    Path(id): Path<u64>,
    Query(q): Query<BestQuery>,
) -> Result<Json<TrialList>, ApiError> {
    let who = app.authorize_http(&headers, APP_WRITERS)?;
    Ok(Json(TrialList { trials: app.best_trials(&who, id, q.n.unwrap_or(1))? }))
}

#[utoipa::path(get, path = "/api/trials/{id}/logs", tag = "training", params(("id" = String, Path, description = "trial id, JOB-TRIAL (e.g. 3-2)"), LogQuery),
    description = "A trial's log from the shared directory: its messages and per-epoch metrics. Required role: SUPERADMIN, ADMIN or APP_DEVELOPER (owner).",
    responses((status = 200, description = "log entries", body = TrialLogView), (status = 404, description = "no such trial", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN", "APP_DEVELOPER"]))))]
pub async fn trial_logs(
    State(app): State<AppState>,
    _: Consistent,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Json<TrialLogView>, ApiError> {
    let who = app.authorize_http(&headers, APP_WRITERS)?;
    app.trial_logs(&who, &id, q.since.unwrap_or(0), q.limit.unwrap_or(1000)).await.map(Json)
}

#[utoipa::path(get, path = "/api/nodes/{id}/logs", tag = "training", params(("id" = u64, Path, description = "node id"), LogQuery),
    description = "A node's own log, from the shared directory. Required role: SUPERADMIN or ADMIN.",
    responses((status = 200, description = "log lines", body = NodeLogView), (status = 404, description = "no log for that node", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN"]))))]
pub async fn node_logs(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    Query(q): Query<LogQuery>,
) -> Result<Json<NodeLogView>, ApiError> {
    app.authorize_http(&headers, ADMINS)?;
    let (lines, next) = app.node_logs(id, q.since.unwrap_or(0), q.limit.unwrap_or(1000)).await?;
    Ok(Json(NodeLogView { node: id, lines, next }))
}
