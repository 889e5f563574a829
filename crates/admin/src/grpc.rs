//! The Open Inference Protocol (KServe v2) over gRPC: package `inference`,
//! service `GRPCInferenceService` (`proto/grpc_predict_v2.proto`), with
//! ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata and
//! ModelInfer.
//!
//! **Same port as HTTP.** [`router`] turns the tonic service into axum routes
//! under `/inference.GRPCInferenceService/*`, which `server::router` merges
//! into the HTTP router. gRPC is HTTP/2 with `content-type:
//! application/grpc`; axum's server (with its `http2` feature) recognises an
//! HTTP/2 connection preface on a plain TCP connection (h2c, prior
//! knowledge), so one listener serves HTTP/1.1 clients and gRPC clients alike.
//! Unknown gRPC services fall through to the HTTP 404, which gRPC clients
//! report as `UNIMPLEMENTED`.
//!
//! **A thin adapter.** Inference goes through the same service as HTTP,
//! [`AppState::infer`], always waiting for the result (asynchronous
//! inference stays an HTTP feature: its result is fetched over HTTP).
//! Metadata and readiness call the `v2` handlers themselves and convert their
//! answers, so both surfaces say the same thing. The idempotency key comes
//! from the request parameter `idempotency_key` (string) or the
//! `idempotency-key` metadata entry, checked as over HTTP. All message
//! conversions and the error mapping live in [`crate::grpc_convert`].
//!
//! **Followers.** Writes go to the leader. A follower answers ModelInfer with
//! `UNAVAILABLE`, naming the leader's address (HTTP and gRPC alike) in the
//! message and in the `x-boat-leader` metadata entry. Metadata and readiness
//! are answered by any node.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use boat_raft::PredictResult;
use tonic::service::Routes;
use tonic::{Request, Response, Status};

use crate::error::ApiError;
use crate::grpc_convert as convert;
use crate::inference::{outcome_error, Answer, Call, Inputs, Mode};
use crate::predict::request_key;
use crate::server::AppState;
use crate::v2;

/// Code generated from `proto/grpc_predict_v2.proto`: messages, the server
/// and a client (used by tests and tools).
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("inference");
}

use pb::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};

/// The path a follower's redirect would name; gRPC clients only see the
/// leader's address, but the domain service wants a path.
const INFER_PATH: &str = "/inference.GRPCInferenceService/ModelInfer";

/// The gRPC service as axum routes, ready to merge into the HTTP router.
pub fn router(app: AppState) -> axum::Router {
    // The same request size limit as the HTTP API's JSON bodies (tonic's
    // own default is 4 MiB).
    let max = app.config.max_body_bytes;
    let svc = GrpcInferenceServiceServer::new(Inference { app }).max_decoding_message_size(max);
    // tonic's routes come with a gRPC `UNIMPLEMENTED` fallback; the HTTP
    // router has its own, and axum refuses to merge two fallbacks.
    Routes::new(svc).prepare().into_axum_router().reset_fallback()
}

struct Inference {
    app: AppState,
}

type Answered<T> = Result<Response<T>, Status>;

fn answer<T>(r: Result<T, ApiError>) -> Answered<T> {
    r.map(Response::new).map_err(convert::status)
}

#[tonic::async_trait]
impl GrpcInferenceService for Inference {
    async fn server_live(&self, _: Request<pb::ServerLiveRequest>) -> Answered<pb::ServerLiveResponse> {
        let v = v2::live().await.0;
        answer(Ok(pb::ServerLiveResponse { live: convert::flag(&v, "live") }))
    }

    /// Not ready is an answer (`ready: false`), not an error, as the
    /// protocol has it; HTTP says the same with a 503.
    async fn server_ready(&self, _: Request<pb::ServerReadyRequest>) -> Answered<pb::ServerReadyResponse> {
        let resp = v2::ready(State(self.app.clone())).await;
        answer(Ok(pb::ServerReadyResponse { ready: resp.status().is_success() }))
    }

    /// Ready when the model (version) resolves and is loaded; an unknown
    /// model is `NOT_FOUND`, as it is a 404 over HTTP.
    async fn model_ready(&self, req: Request<pb::ModelReadyRequest>) -> Answered<pb::ModelReadyResponse> {
        let req = req.into_inner();
        let app = State(self.app.clone());
        let v = match req.version.filter(|v| !v.is_empty()) {
            None => v2::model_ready(app, Path(req.name)).await,
            Some(version) => v2::version_ready(app, Path((req.name, version))).await,
        };
        answer(v.map(|v| pb::ModelReadyResponse { ready: convert::flag(&v.0, "ready") }))
    }

    async fn server_metadata(&self, _: Request<pb::ServerMetadataRequest>) -> Answered<pb::ServerMetadataResponse> {
        answer(convert::server_metadata(v2::server_metadata().await.0))
    }

    async fn model_metadata(&self, req: Request<pb::ModelMetadataRequest>) -> Answered<pb::ModelMetadataResponse> {
        let req = req.into_inner();
        let app = State(self.app.clone());
        let v = match req.version.filter(|v| !v.is_empty()) {
            None => v2::model_metadata(app, Path(req.name)).await,
            Some(version) => v2::version_metadata(app, Path((req.name, version))).await,
        };
        answer(v.and_then(|v| convert::model_metadata(v.0)))
    }

    async fn model_infer(&self, req: Request<pb::ModelInferRequest>) -> Answered<pb::ModelInferResponse> {
        // gRPC metadata are HTTP/2 headers; reading the idempotency key from
        // them goes through the same check as the HTTP header.
        let headers = req.metadata().clone().into_headers();
        answer(self.infer(headers, req.into_inner()).await)
    }
}

impl Inference {
    async fn infer(&self, headers: HeaderMap, req: pb::ModelInferRequest) -> Result<pb::ModelInferResponse, ApiError> {
        let version = convert::version(req.model_version.as_deref())?;
        if convert::wants_async(&req.parameters)? {
            return Err(ApiError::unprocessable(
                "asynchronous inference is offered over HTTP only (POST /v2/models/{name}/infer \
                 with parameters.async); over gRPC ModelInfer waits for the result",
            ));
        }
        let key = request_key(&headers, convert::idempotency_key(&req.parameters)?)?;
        let call = Call {
            model: req.model_name,
            version,
            outputs: convert::requested_outputs(&req.outputs),
            inputs: Inputs::Tensors(convert::infer_inputs(req.inputs, req.raw_input_contents)?),
            key,
            mode: Mode::Wait,
            path: INFER_PATH.to_string(),
        };
        match self.app.infer(call).await? {
            Answer::Done(o) => {
                if let Some(e) = outcome_error(&o) {
                    return Err(e);
                }
                let PredictResult::Output(outputs) = &o.result else {
                    return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "an outcome without outputs"));
                };
                Ok(convert::infer_response(&o, outputs, &req.id, self.app.node.id()))
            }
            // Mode::Wait never answers at commit time.
            Answer::Accepted { .. } => {
                Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "a waiting request was answered at commit time"))
            }
        }
    }
}
