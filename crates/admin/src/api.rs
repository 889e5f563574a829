//! The admin service over REST: users, tokens, datasets and apps under
//! `/api/...`, and app predictions at `/apps/{app}/predict`.
//!
//! Every handler authorizes the caller for its route's roles (declared in
//! its OpenAPI entry as `x-required-roles`), calls the one service in
//! `crate::platform` and renders its view as JSON. Reads pass the read
//! barrier first (`Consistent`), so a token or a record written through any
//! node is seen here.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::{bearer, ADMINS, ANYONE, APP_WRITERS};
use crate::consistency::Consistent;
use crate::error::ApiError;
use crate::extract::{read_body, JsonBody};
use crate::inference::{outcome_error, Answer, Call, Inputs};
use crate::platform::apps::{AppView, CreateAppRequest, SetMembersRequest};
use crate::platform::cluster::{AddNodeRequest, ClusterStatusView, LeaderRequest, MembersView};
use crate::platform::datasets::{parse_task, DatasetView};
use crate::platform::users::{CreateUserRequest, LoginRequest, LoginResponse, UserView};
use crate::predict::{accepted, async_mode, outcome_json, request_key};
use crate::server::AppState;

/// Every error answer: a message, and sometimes more fields.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<UserView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DatasetList {
    pub datasets: Vec<DatasetView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppList {
    pub apps: Vec<AppView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Done {
    pub ok: bool,
}

#[utoipa::path(post, path = "/api/tokens", tag = "tokens", request_body = LoginRequest,
    description = "Log in with email and password; returns a bearer token. Required role: none.",
    responses((status = 200, description = "a new token", body = LoginResponse),
              (status = 401, description = "wrong email or password", body = ErrorBody),
              (status = 307, description = "not the leader; Location names it")),
    extensions(("x-required-roles" = json!([]))))]
pub async fn login(
    State(app): State<AppState>,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    app.login(req).await.map(Json)
}

#[utoipa::path(delete, path = "/api/tokens/current", tag = "tokens",
    description = "Revoke the bearer token of this request (log out). Required role: any.",
    responses((status = 200, description = "revoked", body = Done), (status = 401, description = "no valid token", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["ANY"]))))]
pub async fn logout(State(app): State<AppState>, headers: HeaderMap) -> Result<Json<Done>, ApiError> {
    app.authorize_write(&headers, ANYONE)?;
    let token = bearer(&headers).unwrap_or_default();
    app.revoke(token).await?;
    Ok(Json(Done { ok: true }))
}

#[utoipa::path(get, path = "/api/users/me", tag = "users",
    description = "The caller's own user. Required role: any.",
    responses((status = 200, description = "the caller", body = UserView), (status = 401, description = "no valid token", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["ANY"]))))]
pub async fn me(State(app): State<AppState>, _: Consistent, headers: HeaderMap) -> Result<Json<UserView>, ApiError> {
    let who = app.authorize_http(&headers, ANYONE)?;
    let user = app.find_user(&who.email)?;
    Ok(Json(UserView::from(&user)))
}

#[utoipa::path(get, path = "/api/users", tag = "users", description = "Every user. Required role: SUPERADMIN or ADMIN.",
    responses((status = 200, description = "the users", body = UserList), (status = 401, description = "no valid token", body = ErrorBody),
              (status = 403, description = "role too low", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN"]))))]
pub async fn list_users(
    State(app): State<AppState>,
    _: Consistent,
    headers: HeaderMap,
) -> Result<Json<UserList>, ApiError> {
    app.authorize_http(&headers, ADMINS)?;
    Ok(Json(UserList { users: app.list_users() }))
}

#[utoipa::path(post, path = "/api/users", tag = "users", request_body = CreateUserRequest,
    description = "Create a user. Required role: SUPERADMIN or ADMIN (only the superadmin creates admins).",
    responses((status = 201, description = "created", body = UserView), (status = 409, description = "email taken", body = ErrorBody),
              (status = 403, description = "role too low", body = ErrorBody), (status = 422, description = "invalid", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN"]))))]
pub async fn create_user(
    State(app): State<AppState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<CreateUserRequest>,
) -> Result<Response, ApiError> {
    let who = app.authorize_write(&headers, ADMINS)?;
    let user = app.create_user(&who, req).await?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

#[utoipa::path(post, path = "/api/users/{user}/ban", tag = "users",
    params(("user" = String, Path, description = "user id or email")),
    description = "Ban a user and revoke their tokens. Required role: SUPERADMIN or ADMIN (only the superadmin bans admins; nobody bans themselves).",
    responses((status = 200, description = "banned", body = UserView), (status = 404, description = "no such user", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN"]))))]
pub async fn ban_user(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(user): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let who = app.authorize_write(&headers, ADMINS)?;
    app.set_banned(&who, &user, true).await.map(Json)
}

#[utoipa::path(post, path = "/api/users/{user}/unban", tag = "users",
    params(("user" = String, Path, description = "user id or email")),
    description = "Lift a ban. Required role: SUPERADMIN or ADMIN.",
    responses((status = 200, description = "unbanned", body = UserView), (status = 404, description = "no such user", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN"]))))]
pub async fn unban_user(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(user): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let who = app.authorize_write(&headers, ADMINS)?;
    app.set_banned(&who, &user, false).await.map(Json)
}

#[utoipa::path(delete, path = "/api/users/{user}", tag = "users",
    params(("user" = String, Path, description = "user id or email")),
    description = "Delete a user and their tokens. Required role: SUPERADMIN or ADMIN.",
    responses((status = 200, description = "deleted", body = UserView), (status = 404, description = "no such user", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN"]))))]
pub async fn delete_user(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(user): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let who = app.authorize_write(&headers, ADMINS)?;
    app.delete_user(&who, &user).await.map(Json)
}

#[utoipa::path(get, path = "/api/datasets", tag = "datasets",
    description = "Datasets the caller may see (admins: all; others: their own). Required role: SUPERADMIN, ADMIN or APP_DEVELOPER.",
    responses((status = 200, description = "the datasets", body = DatasetList), (status = 403, description = "role too low", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN", "APP_DEVELOPER"]))))]
pub async fn list_datasets(
    State(app): State<AppState>,
    _: Consistent,
    headers: HeaderMap,
) -> Result<Json<DatasetList>, ApiError> {
    let who = app.authorize_http(&headers, APP_WRITERS)?;
    Ok(Json(DatasetList { datasets: app.list_datasets(&who) }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UploadDatasetQuery {
    /// `classification` (default) or `regression`.
    pub task: Option<String>,
    /// The target column; the last column when absent.
    pub target: Option<String>,
}

#[utoipa::path(post, path = "/api/datasets/{name}", tag = "datasets",
    params(("name" = String, Path, description = "dataset name"), UploadDatasetQuery),
    request_body(content = String, content_type = "text/csv", description = "CSV with a header row"),
    description = "Upload a CSV dataset. Required role: SUPERADMIN, ADMIN or APP_DEVELOPER.",
    responses((status = 201, description = "stored", body = DatasetView),
              (status = 422, description = "malformed file; the message names the line", body = ErrorBody),
              (status = 409, description = "name taken", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN", "APP_DEVELOPER"]))))]
pub async fn upload_dataset(
    State(app): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<UploadDatasetQuery>,
    req: Request<Body>,
) -> Result<Response, ApiError> {
    let who = app.authorize_write(req.headers(), APP_WRITERS)?;
    let task = parse_task(q.task.as_deref())?;
    let bytes = read_body(req.into_body(), app.config.max_model_bytes, "dataset").await?;
    let view = app.upload_dataset(&who, &name, task, q.target, bytes.to_vec()).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[utoipa::path(get, path = "/api/datasets/{name}", tag = "datasets", params(("name" = String, Path, description = "dataset name")),
    description = "A dataset's columns, types, rows, size and class counts. Required role: SUPERADMIN, ADMIN or APP_DEVELOPER (owner).",
    responses((status = 200, description = "the dataset", body = DatasetView), (status = 404, description = "no such dataset", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN", "APP_DEVELOPER"]))))]
pub async fn show_dataset(
    State(app): State<AppState>,
    _: Consistent,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<DatasetView>, ApiError> {
    let who = app.authorize_http(&headers, APP_WRITERS)?;
    Ok(Json(DatasetView::from(&app.find_dataset(&who, &name)?)))
}

#[utoipa::path(delete, path = "/api/datasets/{name}", tag = "datasets", params(("name" = String, Path, description = "dataset name")),
    description = "Delete a dataset. Required role: SUPERADMIN, ADMIN or APP_DEVELOPER (owner).",
    responses((status = 200, description = "deleted", body = DatasetView), (status = 404, description = "no such dataset", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN", "APP_DEVELOPER"]))))]
pub async fn delete_dataset(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<DatasetView>, ApiError> {
    let who = app.authorize_write(&headers, APP_WRITERS)?;
    app.delete_dataset(&who, &name).await.map(Json)
}

#[utoipa::path(get, path = "/api/apps", tag = "apps",
    description = "Apps the caller may see. Required role: SUPERADMIN, ADMIN or APP_DEVELOPER.",
    responses((status = 200, description = "the apps", body = AppList), (status = 403, description = "role too low", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN", "APP_DEVELOPER"]))))]
pub async fn list_apps(
    State(app): State<AppState>,
    _: Consistent,
    headers: HeaderMap,
) -> Result<Json<AppList>, ApiError> {
    let who = app.authorize_http(&headers, APP_WRITERS)?;
    Ok(Json(AppList { apps: app.list_apps(&who) }))
}

#[utoipa::path(post, path = "/api/apps", tag = "apps", request_body = CreateAppRequest,
    description = "Create an app from model versions and an ensemble rule. Required role: SUPERADMIN, ADMIN or APP_DEVELOPER.",
    responses((status = 201, description = "created", body = AppView), (status = 404, description = "a member does not exist", body = ErrorBody),
              (status = 409, description = "name taken", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN", "APP_DEVELOPER"]))))]
pub async fn create_app(
    State(app): State<AppState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<CreateAppRequest>,
) -> Result<Response, ApiError> {
    let who = app.authorize_write(&headers, APP_WRITERS)?;
    let view = app.create_app(&who, req).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Where an app's request statistics come from.
#[derive(Debug, Deserialize)]
pub struct ShowAppQuery {
    /// `leader`: answer only on the leader (which runs every prediction),
    /// redirecting there from a follower.
    #[serde(default)]
    pub stats: Option<String>,
}

#[utoipa::path(get, path = "/api/apps/{name}", tag = "apps",
    params(("name" = String, Path, description = "app name"),
           ("stats" = Option<String>, Query, description = "`leader`: answer on the leader only (a follower redirects), so the request counts and latency are those of the node that serves predictions")),
    description = "An app: members, rule, status, request counts and latency on the answering node, per 10-second bucket over the last ten minutes. Required role: SUPERADMIN, ADMIN or APP_DEVELOPER (owner).",
    responses((status = 200, description = "the app", body = AppView), (status = 404, description = "no such app", body = ErrorBody),
              (status = 307, description = "`stats=leader` on a follower: ask the leader")),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN", "APP_DEVELOPER"]))))]
pub async fn show_app(
    State(app): State<AppState>,
    _: Consistent,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(query): Query<ShowAppQuery>,
) -> Result<Json<AppView>, ApiError> {
    let who = app.authorize_http(&headers, APP_WRITERS)?;
    match query.stats.as_deref() {
        None | Some("local") => {}
        Some("leader") => app.require_leader()?,
        Some(other) => return Err(ApiError::bad_request(format!("stats={other:?}: use leader or local"))),
    }
    let found = app.find_app(&who, &name)?;
    Ok(Json(app.app_view(&found)))
}

#[utoipa::path(put, path = "/api/apps/{name}/members", tag = "apps", params(("name" = String, Path, description = "app name")),
    request_body = SetMembersRequest,
    description = "Replace an app's members in one log entry. Required role: SUPERADMIN, ADMIN or APP_DEVELOPER (owner).",
    responses((status = 200, description = "replaced", body = AppView), (status = 404, description = "no such app or member", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN", "APP_DEVELOPER"]))))]
pub async fn set_members(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<SetMembersRequest>,
) -> Result<Json<AppView>, ApiError> {
    let who = app.authorize_write(&headers, APP_WRITERS)?;
    app.set_app_members(&who, &name, req.members).await.map(Json)
}

#[utoipa::path(post, path = "/api/apps/{name}/start", tag = "apps", params(("name" = String, Path, description = "app name")),
    description = "Start serving an app. Required role: SUPERADMIN, ADMIN or APP_DEVELOPER (owner).",
    responses((status = 200, description = "running", body = AppView), (status = 404, description = "no such app", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN", "APP_DEVELOPER"]))))]
pub async fn start_app(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<AppView>, ApiError> {
    let who = app.authorize_write(&headers, APP_WRITERS)?;
    app.set_app_running(&who, &name, true).await.map(Json)
}

#[utoipa::path(post, path = "/api/apps/{name}/stop", tag = "apps", params(("name" = String, Path, description = "app name")),
    description = "Stop serving an app (predictions get 409). Required role: SUPERADMIN, ADMIN or APP_DEVELOPER (owner).",
    responses((status = 200, description = "stopped", body = AppView), (status = 404, description = "no such app", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN", "APP_DEVELOPER"]))))]
pub async fn stop_app(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<AppView>, ApiError> {
    let who = app.authorize_write(&headers, APP_WRITERS)?;
    app.set_app_running(&who, &name, false).await.map(Json)
}

#[utoipa::path(delete, path = "/api/apps/{name}", tag = "apps", params(("name" = String, Path, description = "app name")),
    description = "Delete an app. Required role: SUPERADMIN, ADMIN or APP_DEVELOPER (owner).",
    responses((status = 200, description = "deleted", body = AppView), (status = 404, description = "no such app", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN", "APP_DEVELOPER"]))))]
pub async fn delete_app(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<AppView>, ApiError> {
    let who = app.authorize_write(&headers, APP_WRITERS)?;
    app.delete_app(&who, &name).await.map(Json)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppPredictBody {
    /// The input, in the form the app's members take (Boat's `{"input": ...}`).
    #[schema(value_type = Object)]
    pub input: Value,
    /// Idempotency key, as an alternative to the `Idempotency-Key` header.
    #[serde(default)]
    pub id: Option<String>,
}

#[utoipa::path(post, path = "/apps/{app}/predict", tag = "predict", params(("app" = String, Path, description = "app name")),
    request_body = AppPredictBody,
    description = "Predict with an app: every member runs in one log entry and the app's rule combines the answers; `output.members` names the member versions. Required role: none, unless the app requires a token (then any).",
    responses((status = 200, description = "the combined answer"), (status = 409, description = "the app is stopped", body = ErrorBody),
              (status = 404, description = "no such app", body = ErrorBody), (status = 422, description = "input does not fit a member", body = ErrorBody)),
    extensions(("x-required-roles" = json!([]))))]
pub async fn app_predict(
    State(app): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<AppPredictBody>,
) -> Result<Response, ApiError> {
    if !app.node.state().read().serving.apps.apps.contains_key(&name) {
        return Err(ApiError::not_found(format!("no app {name:?}")));
    }
    let call = Call {
        model: name,
        version: None,
        inputs: Inputs::Boat(body.input),
        outputs: None,
        key: request_key(&headers, body.id)?,
        mode: async_mode(&query)?,
        token: bearer(&headers).map(str::to_string),
    };
    match app.infer(call).await? {
        Answer::Accepted { id, index, term } => Ok(accepted(id, index, term)),
        Answer::Done(o) => match outcome_error(&o) {
            Some(e) => Err(e),
            None => Ok(Json(outcome_json(&o, app.node.id())).into_response()),
        },
    }
}

#[utoipa::path(get, path = "/api/cluster", tag = "cluster",
    description = "The cluster's members (voters and learners) and its leader. Required role: SUPERADMIN or ADMIN.",
    responses((status = 200, description = "the members", body = MembersView), (status = 403, description = "role too low", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN"]))))]
pub async fn members(
    State(app): State<AppState>,
    _: Consistent,
    headers: HeaderMap,
) -> Result<Json<MembersView>, ApiError> {
    app.authorize_http(&headers, ADMINS)?;
    Ok(Json(app.members_view()))
}

#[utoipa::path(get, path = "/api/cluster/status", tag = "cluster",
    description = "Every member's own status (asked by this node, one second each), its lag behind the leader, and the verdict of `boat status`: healthy, degraded (with the reasons) or no quorum. Not linearizable: each member answers for itself. Required role: any signed-in user.",
    responses((status = 200, description = "the members' status", body = ClusterStatusView), (status = 401, description = "no valid token", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN", "MODEL_DEVELOPER", "APP_DEVELOPER", "APP_USER"]))))]
pub async fn cluster_status(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<ClusterStatusView>, ApiError> {
    app.authorize_http(&headers, ANYONE)?;
    app.cluster_status().await.map(Json)
}

#[utoipa::path(post, path = "/api/cluster/nodes", tag = "cluster", request_body = AddNodeRequest,
    description = "Add a node: it joins as a learner, catches up (from a snapshot when the log is purged), then becomes a voter. Start it first with `boat node --join`. Required role: SUPERADMIN or ADMIN.",
    responses((status = 200, description = "added", body = MembersView), (status = 409, description = "already a voter, or a change in progress", body = ErrorBody),
              (status = 503, description = "it did not catch up in time", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN"]))))]
pub async fn add_node(
    State(app): State<AppState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<AddNodeRequest>,
) -> Result<Json<MembersView>, ApiError> {
    let who = app.authorize_write(&headers, ADMINS)?;
    app.add_node(&who, req).await.map(Json)
}

#[utoipa::path(post, path = "/api/cluster/leader", tag = "cluster", request_body = LeaderRequest,
    description = "Hand the leadership to another voter and wait until it leads. Writes answer 503 (retryable) for about one election timeout meanwhile. Required role: SUPERADMIN or ADMIN.",
    responses((status = 200, description = "the new leader leads", body = MembersView), (status = 404, description = "not a voter", body = ErrorBody),
              (status = 409, description = "the handover did not happen", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN"]))))]
pub async fn transfer_leader(
    State(app): State<AppState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<LeaderRequest>,
) -> Result<Json<MembersView>, ApiError> {
    let who = app.authorize_write(&headers, ADMINS)?;
    app.transfer_leader(&who, req.id).await.map(Json)
}

#[utoipa::path(delete, path = "/api/cluster/nodes/{id}", tag = "cluster", params(("id" = u64, Path, description = "node id")),
    description = "Remove a node from the cluster (a removed leader steps down). Required role: SUPERADMIN or ADMIN.",
    responses((status = 200, description = "removed", body = MembersView), (status = 404, description = "not a member", body = ErrorBody)),
    security(("bearer" = [])), extensions(("x-required-roles" = json!(["SUPERADMIN", "ADMIN"]))))]
pub async fn remove_node(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> Result<Json<MembersView>, ApiError> {
    let who = app.authorize_write(&headers, ADMINS)?;
    app.remove_node(&who, id).await.map(Json)
}
