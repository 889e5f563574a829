//! The outward face of a Boat node: its HTTP API.
//!
//! Modules:
//! - [`server`]: router, shared state, bind and graceful shutdown.
//! - [`inference`]: the one prediction service behind every surface.
//! - [`service`]: the read side of the serving domain (model resolution,
//!   metadata, readiness), shared by every surface.
//! - [`consistency`]: linearizable reads by default, `stale` on request.
//! - [`predict`]: Boat's `POST /predict`.
//! - [`v2`]: the Open Inference Protocol (KServe v2) over HTTP.
//! - [`grpc`]: the same protocol over gRPC, on the HTTP port; its message
//!   conversions are in [`grpc_convert`].
//! - [`predictions`]: `GET /predictions/{id}`, results of asynchronous requests.
//! - [`models`]: model upload, listing, default version and deletion.
//! - [`status`]: `GET /` and `GET /status`.
//! - [`control`]: `POST /control`, failure injection.
//! - [`metrics`]: `GET /metrics` and the metric descriptions.
//! - [`platform`]: the admin service (users, tokens, datasets, apps), one
//!   set of operations behind the REST routes in [`api`] and the gRPC admin
//!   service in [`admin_grpc`]; [`write`] appends their commands.
//! - [`training`]: train jobs: the service, the leader's orchestrator, the
//!   worker runtimes and the shared directory; REST in [`api_training`],
//!   gRPC in [`training_grpc`].
//! - [`openapi`]: the OpenAPI document of the REST API.
//! - [`auth`]: bearer tokens, roles, and the `/control` rule.
//! - [`extract`]: JSON body extraction with JSON errors.
//! - [`error`]: the one error model, rendered as HTTP and as gRPC.

pub mod admin_grpc;
pub mod api;
pub mod api_training;
pub mod auth;
pub mod consistency;
pub mod control;
pub mod error;
pub mod extract;
pub mod grpc;
pub mod grpc_convert;
pub mod inference;
pub mod metrics;
pub mod models;
pub mod openapi;
pub mod platform;
pub mod predict;
pub mod predictions;
pub mod server;
pub mod service;
pub mod status;
pub mod training;
pub mod training_grpc;
pub mod ui;
pub mod v2;
pub mod write;

pub use error::{ApiError, ErrorKind};
pub use server::{AppState, HttpConfig, HttpServer};
