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
//! Metadata and readiness call the same domain functions as the `v2`
//! handlers (`service`), after the same read barrier: linearizable unless
//! the `x-boat-consistency: stale` metadata entry asks otherwise. Errors
//! are [`ApiError`]s rendered by [`ApiError::into_status`]. The idempotency key comes
//! from the request parameter `idempotency_key` (string) or the
//! `idempotency-key` metadata entry, checked as over HTTP. All message
//! conversions and the error mapping live in [`crate::grpc_convert`].
//!
//! **Followers.** Writes go to the leader. A follower answers ModelInfer with
//! `UNAVAILABLE`, naming the leader's address (HTTP and gRPC alike) in the
//! message and in the `x-boat-leader` (address) and `x-boat-leader-id`
//! metadata entries. Metadata and readiness are answered by any node.

use axum::http::HeaderMap;
use boat_raft::PredictResult;
use tonic::service::Routes;
use tonic::{Request, Response, Status};

use crate::consistency::Consistency;
use crate::error::ApiError;
use crate::grpc_convert as convert;
use crate::inference::{outcome_error, Answer, Call, Inputs, Mode};
use crate::predict::request_key;
use crate::server::AppState;
use crate::service::{SERVER_EXTENSIONS, SERVER_NAME};

/// Code generated from `proto/grpc_predict_v2.proto`: messages, the server
/// and a client (used by tests and tools).
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("inference");
}

use pb::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};

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
    r.map(Response::new).map_err(ApiError::into_status)
}

/// A requested version: absent or empty means the default.
fn version_of(v: Option<String>) -> Result<Option<u64>, ApiError> {
    convert::version(v.as_deref())
}

impl Inference {
    /// The read barrier for metadata and readiness, with the consistency
    /// the `x-boat-consistency` metadata entry asks for.
    async fn barrier(&self, metadata: &tonic::metadata::MetadataMap) -> Result<(), ApiError> {
        let headers = metadata.clone().into_headers();
        self.app.read_barrier(Consistency::from_request(None, &headers)?).await
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for Inference {
    async fn server_live(&self, _: Request<pb::ServerLiveRequest>) -> Answered<pb::ServerLiveResponse> {
        answer(Ok(pb::ServerLiveResponse { live: true }))
    }

    /// Not ready is an answer (`ready: false`), not an error, as the
    /// protocol has it; HTTP says the same with a 503.
    async fn server_ready(&self, _: Request<pb::ServerReadyRequest>) -> Answered<pb::ServerReadyResponse> {
        answer(Ok(pb::ServerReadyResponse { ready: self.app.server_ready().is_ok() }))
    }

    /// Ready when the model (version) resolves and is loaded; an unknown
    /// model is `NOT_FOUND`, as it is a 404 over HTTP.
    async fn model_ready(&self, req: Request<pb::ModelReadyRequest>) -> Answered<pb::ModelReadyResponse> {
        let ready = async {
            self.barrier(req.metadata()).await?;
            let req = req.get_ref();
            self.app.model_ready(&req.name, version_of(req.version.clone())?)
        };
        answer(ready.await.map(|_| pb::ModelReadyResponse { ready: true }))
    }

    async fn server_metadata(&self, _: Request<pb::ServerMetadataRequest>) -> Answered<pb::ServerMetadataResponse> {
        answer(Ok(pb::ServerMetadataResponse {
            name: SERVER_NAME.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            extensions: SERVER_EXTENSIONS.iter().map(|e| e.to_string()).collect(),
        }))
    }

    async fn model_metadata(&self, req: Request<pb::ModelMetadataRequest>) -> Answered<pb::ModelMetadataResponse> {
        let metadata = async {
            self.barrier(req.metadata()).await?;
            let req = req.get_ref();
            self.app.model_metadata(&req.name, version_of(req.version.clone())?)
        };
        answer(metadata.await.map(convert::model_metadata))
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
            token: crate::auth::bearer(&headers).map(str::to_string),
        };
        match self.app.infer(call).await? {
            Answer::Done(o) => {
                if let Some(e) = outcome_error(&o) {
                    return Err(e);
                }
                let PredictResult::Output(outputs) = &o.result else {
                    return Err(ApiError::internal("an outcome without outputs"));
                };
                Ok(convert::infer_response(&o, outputs, &req.id, self.app.node.id()))
            }
            // Mode::Wait never answers at commit time.
            Answer::Accepted { .. } => Err(ApiError::internal("a waiting request was answered at commit time")),
        }
    }
}
