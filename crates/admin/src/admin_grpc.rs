//! The admin service over gRPC (`proto/admin.proto`, service
//! `boat.admin.v1.Admin`), on the HTTP port next to the Open Inference
//! Protocol (see `grpc` for how one port serves both).
//!
//! Each RPC reads the bearer token and the consistency choice from the
//! metadata, authorizes the caller for the same roles as the REST route,
//! calls the same method of the admin service (`crate::platform`,
//! `crate::models`) and converts its view into protobuf messages. Errors
//! are `ApiError`s rendered as gRPC statuses, so a follower's refusal of a
//! write names the leader in `x-boat-leader`.

use axum::http::HeaderMap;
use boat_raft::Role;
use serde_json::Value;
use tonic::service::Routes;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{bearer, ADMINS, ANYONE, APP_WRITERS, MODEL_WRITERS};
use crate::consistency::Consistency;
use crate::error::ApiError;
use crate::inference::{outcome_error, Answer, Call, Inputs, Mode};
use crate::platform::apps::{AppView, CreateAppRequest, MemberSpec};
use crate::platform::cluster::{AddNodeRequest, MembersView};
use crate::platform::datasets::{parse_task, DatasetView};
use crate::platform::users::{CreateUserRequest, LoginRequest, UserView};
use crate::predict::{outcome_json, request_key};
use crate::server::AppState;

/// Code generated from `proto/admin.proto`: messages, server and client
/// (the client serves the CLI and the tests).
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("boat.admin.v1");
}

use pb::admin_server::{Admin, AdminServer};

/// The admin service as axum routes, ready to merge into the HTTP router.
pub fn router(app: AppState) -> axum::Router {
    let max = app.config.max_body_bytes;
    let training = crate::training_grpc::server(app.clone()).max_decoding_message_size(max);
    let svc = AdminServer::new(AdminService { app }).max_decoding_message_size(max);
    Routes::new(svc).add_service(training).prepare().into_axum_router().reset_fallback()
}

struct AdminService {
    app: AppState,
}

pub(crate) type Answered<T> = Result<Response<T>, Status>;

pub(crate) fn answer<T>(r: Result<T, ApiError>) -> Answered<T> {
    r.map(Response::new).map_err(ApiError::into_status)
}

fn headers_of<T>(req: &Request<T>) -> HeaderMap {
    req.metadata().clone().into_headers()
}

/// Authorizes the caller of `req` for `roles`, after the read barrier
/// (so that a token issued through another node is known here).
pub(crate) async fn caller<T>(
    app: &AppState,
    req: &Request<T>,
    roles: &[Role],
) -> Result<crate::auth::Principal, ApiError> {
    let headers = headers_of(req);
    app.read_barrier(Consistency::from_request(None, &headers)?).await?;
    app.authorize(bearer(&headers), roles)
}

/// Authorizes the caller of a write: on a follower the answer is the
/// leader's address, before the token is looked at (the leader has
/// applied every token it issued; a follower may lag).
pub(crate) fn writer<T>(app: &AppState, req: &Request<T>, roles: &[Role]) -> Result<crate::auth::Principal, ApiError> {
    app.require_leader()?;
    app.authorize(bearer(&headers_of(req)), roles)
}

impl AdminService {
    async fn caller<T>(&self, req: &Request<T>, roles: &[Role]) -> Result<crate::auth::Principal, ApiError> {
        caller(&self.app, req, roles).await
    }

    fn writer<T>(&self, req: &Request<T>, roles: &[Role]) -> Result<crate::auth::Principal, ApiError> {
        writer(&self.app, req, roles)
    }

    /// The read barrier alone, for reads open to everyone.
    async fn barrier<T>(&self, req: &Request<T>) -> Result<(), ApiError> {
        self.app.read_barrier(Consistency::from_request(None, &headers_of(req))?).await
    }

    /// Collects an upload stream into one buffer, refusing more than the
    /// node's upload limit; returns the first message's header fields.
    async fn collect<M, F>(&self, mut stream: Streaming<M>, mut split: F) -> Result<(Option<M>, Vec<u8>), ApiError>
    where
        M: Default,
        F: FnMut(&mut M) -> Vec<u8>,
    {
        let limit = self.app.config.max_model_bytes;
        let mut first = None;
        let mut bytes = Vec::new();
        while let Some(msg) =
            stream.message().await.map_err(|s| ApiError::bad_request(format!("upload stream: {}", s.message())))?
        {
            let mut msg = msg;
            bytes.extend(split(&mut msg));
            if bytes.len() > limit {
                return Err(ApiError::new(
                    crate::ErrorKind::PayloadTooLarge,
                    format!("the upload is larger than {limit} bytes"),
                ));
            }
            if first.is_none() {
                first = Some(msg);
            }
        }
        Ok((first, bytes))
    }
}

fn user(u: UserView) -> pb::User {
    pb::User { id: u.id, email: u.email, role: u.role, banned: u.banned, created_at_ms: u.created_at_ms }
}

fn dataset(d: DatasetView) -> pb::Dataset {
    pb::Dataset {
        name: d.name,
        owner: d.owner,
        task: d.task,
        columns: d.columns.into_iter().map(|c| pb::Column { name: c.name, kind: c.kind }).collect(),
        target: d.target,
        rows: d.rows,
        size_bytes: d.size_bytes,
        sha256: d.sha256,
        class_counts: d.class_counts.into_iter().collect(),
        uploaded_at_ms: d.uploaded_at_ms,
        index: d.index,
    }
}

fn app_msg(a: AppView) -> pb::App {
    pb::App {
        name: a.name,
        owner: a.owner,
        members: a.members.into_iter().map(|m| pb::Member { model: m.model, version: m.version }).collect(),
        rule: a.rule,
        status: a.status,
        requires_token: a.requires_token,
        revision: a.revision,
        created_at_ms: a.created_at_ms,
        index: a.index,
        stats: Some(pb::AppStats {
            requests: a.stats.requests,
            errors: a.stats.errors,
            p50_ms: a.stats.p50_ms.unwrap_or(-1.0),
            p99_ms: a.stats.p99_ms.unwrap_or(-1.0),
        }),
    }
}

fn nodes(v: MembersView) -> pb::ClusterNodes {
    pb::ClusterNodes {
        leader_id: v.leader_id.unwrap_or(0),
        has_leader: v.leader_id.is_some(),
        nodes: v
            .nodes
            .into_iter()
            .map(|n| pb::ClusterNode {
                id: n.id,
                raft_addr: n.raft_addr,
                http_addr: n.http_addr,
                role: n.role,
                client_http: n.client_http,
            })
            .collect(),
    }
}

fn members(m: Vec<pb::Member>) -> Vec<MemberSpec> {
    m.into_iter().map(|m| MemberSpec { model: m.model, version: (m.version != 0).then_some(m.version) }).collect()
}

/// A model from its JSON view (`models::entry_json`).
fn model(v: &Value) -> pb::Model {
    let u = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let name = v.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    let versions = v
        .get("versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .map(|r| pb::ModelVersion {
                    name: name.clone(),
                    version: u(r, "version"),
                    is_default: r.get("default").and_then(Value::as_bool).unwrap_or(false),
                    sha256: r.get("sha256").and_then(Value::as_str).unwrap_or_default().to_string(),
                    size_bytes: u(r, "size_bytes"),
                    uploaded_at_ms: u(r, "uploaded_at_ms"),
                    index: u(r, "index"),
                    loaded: r.get("loaded").and_then(Value::as_bool).unwrap_or(false),
                    signature_json: serde_json::json!({"inputs": r["inputs"], "outputs": r["outputs"]}).to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    pb::Model { name, default_version: u(v, "default_version"), versions }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn login(&self, req: Request<pb::LoginRequest>) -> Answered<pb::LoginReply> {
        let r = req.into_inner();
        let ttl_seconds = (r.ttl_seconds != 0).then_some(r.ttl_seconds);
        answer(
            self.app
                .login(LoginRequest { email: r.email, password: r.password, ttl_seconds })
                .await
                .map(|l| pb::LoginReply { token: l.token, expires_at_ms: l.expires_at_ms, user: Some(user(l.user)) }),
        )
    }

    async fn logout(&self, req: Request<pb::Empty>) -> Answered<pb::Empty> {
        let r = async {
            self.writer(&req, ANYONE)?;
            let headers = headers_of(&req);
            self.app.revoke(bearer(&headers).unwrap_or_default()).await?;
            Ok(pb::Empty {})
        };
        answer(r.await)
    }

    async fn who_am_i(&self, req: Request<pb::Empty>) -> Answered<pb::User> {
        let r = async {
            let who = self.caller(&req, ANYONE).await?;
            Ok(user(UserView::from(&self.app.find_user(&who.email)?)))
        };
        answer(r.await)
    }

    async fn create_user(&self, req: Request<pb::CreateUserRequest>) -> Answered<pb::User> {
        let r = async {
            let who = self.writer(&req, ADMINS)?;
            let r = req.into_inner();
            let view = self
                .app
                .create_user(&who, CreateUserRequest { email: r.email, password: r.password, role: r.role })
                .await?;
            Ok(user(view))
        };
        answer(r.await)
    }

    async fn list_users(&self, req: Request<pb::Empty>) -> Answered<pb::UserList> {
        let r = async {
            self.caller(&req, ADMINS).await?;
            Ok(pb::UserList { users: self.app.list_users().into_iter().map(user).collect() })
        };
        answer(r.await)
    }

    async fn set_banned(&self, req: Request<pb::SetBannedRequest>) -> Answered<pb::User> {
        let r = async {
            let who = self.writer(&req, ADMINS)?;
            let r = req.into_inner();
            Ok(user(self.app.set_banned(&who, &r.user, r.banned).await?))
        };
        answer(r.await)
    }

    async fn delete_user(&self, req: Request<pb::UserRef>) -> Answered<pb::User> {
        let r = async {
            let who = self.writer(&req, ADMINS)?;
            Ok(user(self.app.delete_user(&who, &req.into_inner().user).await?))
        };
        answer(r.await)
    }

    async fn upload_dataset(&self, req: Request<Streaming<pb::DatasetChunk>>) -> Answered<pb::Dataset> {
        let r = async {
            let who = self.writer(&req, APP_WRITERS)?;
            let (first, bytes) =
                self.collect(req.into_inner(), |m: &mut pb::DatasetChunk| std::mem::take(&mut m.data)).await?;
            let first = first.ok_or_else(|| ApiError::bad_request("an empty upload stream"))?;
            let task = parse_task(Some(first.task.as_str()))?;
            let target = (!first.target.is_empty()).then_some(first.target);
            Ok(dataset(self.app.upload_dataset(&who, &first.name, task, target, bytes).await?))
        };
        answer(r.await)
    }

    async fn list_datasets(&self, req: Request<pb::Empty>) -> Answered<pb::DatasetList> {
        let r = async {
            let who = self.caller(&req, APP_WRITERS).await?;
            Ok(pb::DatasetList { datasets: self.app.list_datasets(&who).into_iter().map(dataset).collect() })
        };
        answer(r.await)
    }

    async fn get_dataset(&self, req: Request<pb::NameRef>) -> Answered<pb::Dataset> {
        let r = async {
            let who = self.caller(&req, APP_WRITERS).await?;
            Ok(dataset(DatasetView::from(&self.app.find_dataset(&who, &req.into_inner().name)?)))
        };
        answer(r.await)
    }

    async fn delete_dataset(&self, req: Request<pb::NameRef>) -> Answered<pb::Dataset> {
        let r = async {
            let who = self.writer(&req, APP_WRITERS)?;
            Ok(dataset(self.app.delete_dataset(&who, &req.into_inner().name).await?))
        };
        answer(r.await)
    }

    async fn upload_model(&self, req: Request<Streaming<pb::ModelChunk>>) -> Answered<pb::ModelVersion> {
        let r = async {
            self.writer(&req, MODEL_WRITERS)?;
            let (first, bytes) =
                self.collect(req.into_inner(), |m: &mut pb::ModelChunk| std::mem::take(&mut m.data)).await?;
            let first = first.ok_or_else(|| ApiError::bad_request("an empty upload stream"))?;
            let up = self.app.upload_model(&first.name, bytes).await?;
            let u = |k: &str| up.get(k).and_then(Value::as_u64).unwrap_or(0);
            Ok(pb::ModelVersion {
                name: first.name,
                version: u("version"),
                is_default: u("default_version") == u("version"),
                sha256: up["sha256"].as_str().unwrap_or_default().to_string(),
                size_bytes: u("size_bytes"),
                uploaded_at_ms: 0,
                index: u("index"),
                loaded: true,
                signature_json: serde_json::json!({"inputs": up["inputs"], "outputs": up["outputs"]}).to_string(),
            })
        };
        answer(r.await)
    }

    async fn list_models(&self, req: Request<pb::Empty>) -> Answered<pb::ModelList> {
        let r = async {
            self.barrier(&req).await?;
            Ok(pb::ModelList { models: self.app.models_json().iter().map(model).collect() })
        };
        answer(r.await)
    }

    async fn get_model(&self, req: Request<pb::NameRef>) -> Answered<pb::Model> {
        let r = async {
            self.barrier(&req).await?;
            Ok(model(&self.app.model_json(&req.into_inner().name)?))
        };
        answer(r.await)
    }

    async fn set_default_version(&self, req: Request<pb::VersionRef>) -> Answered<pb::Model> {
        let r = async {
            self.writer(&req, MODEL_WRITERS)?;
            let r = req.into_inner();
            self.app.set_default_version(&r.name, r.version).await?;
            Ok(model(&self.app.model_json(&r.name)?))
        };
        answer(r.await)
    }

    async fn delete_version(&self, req: Request<pb::VersionRef>) -> Answered<pb::Model> {
        let r = async {
            self.writer(&req, MODEL_WRITERS)?;
            let r = req.into_inner();
            self.app.delete_model_version(&r.name, r.version).await?;
            Ok(model(&self.app.model_json(&r.name)?))
        };
        answer(r.await)
    }

    async fn create_app(&self, req: Request<pb::CreateAppRequest>) -> Answered<pb::App> {
        let r = async {
            let who = self.writer(&req, APP_WRITERS)?;
            let r = req.into_inner();
            let rule = (!r.rule.is_empty()).then_some(r.rule);
            let create =
                CreateAppRequest { name: r.name, members: members(r.members), rule, requires_token: r.requires_token };
            Ok(app_msg(self.app.create_app(&who, create).await?))
        };
        answer(r.await)
    }

    async fn list_apps(&self, req: Request<pb::Empty>) -> Answered<pb::AppList> {
        let r = async {
            let who = self.caller(&req, APP_WRITERS).await?;
            Ok(pb::AppList { apps: self.app.list_apps(&who).into_iter().map(app_msg).collect() })
        };
        answer(r.await)
    }

    async fn get_app(&self, req: Request<pb::NameRef>) -> Answered<pb::App> {
        let r = async {
            let who = self.caller(&req, APP_WRITERS).await?;
            let found = self.app.find_app(&who, &req.into_inner().name)?;
            Ok(app_msg(self.app.app_view(&found)))
        };
        answer(r.await)
    }

    async fn set_app_members(&self, req: Request<pb::SetAppMembersRequest>) -> Answered<pb::App> {
        let r = async {
            let who = self.writer(&req, APP_WRITERS)?;
            let r = req.into_inner();
            Ok(app_msg(self.app.set_app_members(&who, &r.name, members(r.members)).await?))
        };
        answer(r.await)
    }

    async fn start_app(&self, req: Request<pb::NameRef>) -> Answered<pb::App> {
        let r = async {
            let who = self.writer(&req, APP_WRITERS)?;
            Ok(app_msg(self.app.set_app_running(&who, &req.into_inner().name, true).await?))
        };
        answer(r.await)
    }

    async fn stop_app(&self, req: Request<pb::NameRef>) -> Answered<pb::App> {
        let r = async {
            let who = self.writer(&req, APP_WRITERS)?;
            Ok(app_msg(self.app.set_app_running(&who, &req.into_inner().name, false).await?))
        };
        answer(r.await)
    }

    async fn delete_app(&self, req: Request<pb::NameRef>) -> Answered<pb::App> {
        let r = async {
            let who = self.writer(&req, APP_WRITERS)?;
            Ok(app_msg(self.app.delete_app(&who, &req.into_inner().name).await?))
        };
        answer(r.await)
    }

    async fn predict(&self, req: Request<pb::PredictRequest>) -> Answered<pb::PredictReply> {
        let r = async {
            let headers = headers_of(&req);
            let r = req.into_inner();
            let input: Value = serde_json::from_str(&r.input_json)
                .map_err(|e| ApiError::bad_request(format!("input_json is not JSON: {e}")))?;
            let key = request_key(&headers, (!r.id.is_empty()).then_some(r.id))?;
            let call = Call {
                model: if r.model.is_empty() { boat_raft::ECHO_MODEL.to_string() } else { r.model },
                version: (r.version != 0).then_some(r.version),
                inputs: Inputs::Boat(input),
                outputs: None,
                key,
                mode: Mode::Wait,
                token: bearer(&headers).map(str::to_string),
            };
            match self.app.infer(call).await? {
                Answer::Done(o) => {
                    if let Some(e) = outcome_error(&o) {
                        return Err(e);
                    }
                    let body = outcome_json(&o, self.app.node.id());
                    Ok(pb::PredictReply {
                        id: o.id,
                        model: o.model,
                        version: o.version,
                        output_json: body["output"].to_string(),
                        index: o.index,
                        term: o.term,
                        duplicate: o.duplicate,
                    })
                }
                Answer::Accepted { .. } => Err(ApiError::internal("a waiting prediction was answered as accepted")),
            }
        };
        answer(r.await)
    }

    async fn cluster_members(&self, req: Request<pb::Empty>) -> Answered<pb::ClusterNodes> {
        let r = async {
            self.caller(&req, ADMINS).await?;
            Ok(nodes(self.app.members_view()))
        };
        answer(r.await)
    }

    async fn add_node(&self, req: Request<pb::AddNodeRequest>) -> Answered<pb::ClusterNodes> {
        let r = async {
            let who = self.writer(&req, ADMINS)?;
            let r = req.into_inner();
            let add = AddNodeRequest {
                id: r.id,
                raft_addr: r.raft_addr,
                http_addr: r.http_addr,
                catch_up_seconds: (r.catch_up_seconds != 0).then_some(r.catch_up_seconds),
            };
            Ok(nodes(self.app.add_node(&who, add).await?))
        };
        answer(r.await)
    }

    async fn remove_node(&self, req: Request<pb::NodeRef>) -> Answered<pb::ClusterNodes> {
        let r = async {
            let who = self.writer(&req, ADMINS)?;
            Ok(nodes(self.app.remove_node(&who, req.into_inner().id).await?))
        };
        answer(r.await)
    }

    async fn transfer_leader(&self, req: Request<pb::NodeRef>) -> Answered<pb::ClusterNodes> {
        let r = async {
            let who = self.writer(&req, ADMINS)?;
            Ok(nodes(self.app.transfer_leader(&who, req.into_inner().id).await?))
        };
        answer(r.await)
    }

    async fn control(&self, req: Request<pb::ControlRequest>) -> Answered<pb::ControlReply> {
        let r = async {
            // Without the caller's address the loopback rule cannot apply:
            // the token decides.
            let peer = req
                .extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0)
                .or_else(|| req.remote_addr())
                .unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
            crate::auth::require_control(&self.app, peer, &headers_of(&req))?;
            use crate::control::ControlCommand as C;
            let r = req.into_inner();
            let cmd = match r.cmd.as_str() {
                "exit" => C::Exit,
                "crash" => C::Crash,
                "partition" => {
                    C::Partition { peers: r.peers, duration_ms: (r.duration_ms != 0).then_some(r.duration_ms) }
                }
                "heal" => C::Heal,
                "delay" => C::Delay { ms: r.ms },
                "slow_disk" => C::SlowDisk { ms: r.ms },
                "diverge" => C::Diverge,
                other => return Err(ApiError::unprocessable(format!("unknown control command {other:?}"))),
            };
            Ok(pb::ControlReply { result_json: self.app.control(cmd)?.to_string() })
        };
        answer(r.await)
    }

    async fn status(&self, _: Request<pb::Empty>) -> Answered<pb::NodeStatus> {
        answer(Ok(pb::NodeStatus { status_json: serde_json::to_string(&self.app.node.status()).unwrap_or_default() }))
    }
}
