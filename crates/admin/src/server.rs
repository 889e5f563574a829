//! The node's HTTP server: routes, shared state and graceful shutdown.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use boat_raft::{Batcher, RaftNode};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::{admin_grpc, error, grpc, openapi, ui};

/// HTTP settings of a node.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Address the HTTP server binds to.
    pub listen: SocketAddr,
    /// Largest accepted JSON request body.
    pub max_body_bytes: usize,
    /// Largest accepted model upload.
    pub max_model_bytes: usize,
    /// How long a write may wait for commit before the client gets 503.
    pub write_timeout: Duration,
    /// How long a linearizable read may wait for the leader's read index
    /// and for this node to apply it before the client gets 503.
    pub read_timeout: Duration,
    /// Bearer token for admin writes and for `/control` from non-loopback callers.
    pub admin_token: Option<String>,
    /// Predictions run inline, outside the log: nothing replicated, nothing
    /// durable, no idempotency. The reference that `boat bench serving`
    /// measures the cluster against; never for real use.
    pub unreplicated: bool,
}

impl HttpConfig {
    pub const DEFAULT_MAX_BODY: usize = 8 * 1024 * 1024;
    pub const DEFAULT_MAX_MODEL: usize = 256 * 1024 * 1024;
}

/// State shared by all handlers.
#[derive(Clone)]
pub struct AppState {
    pub node: RaftNode,
    /// The leader's packing of predictions into log entries.
    pub batcher: Arc<Batcher>,
    pub config: Arc<HttpConfig>,
    pub metrics: Option<PrometheusHandle>,
    /// Asynchronous requests this node accepted that are not applied yet.
    pub pending: Arc<Mutex<HashSet<String>>>,
    /// Request counts and recent latencies per app, on this node.
    pub latency: Arc<crate::platform::apps::LatencyBook>,
    /// The shared directory and the worker runtimes of train jobs.
    pub training: Arc<crate::training::TrainingEnv>,
    exit: watch::Sender<bool>,
}

impl AppState {
    /// Asks the process to stop (the `exit` control command).
    pub fn request_exit(&self) {
        let _ = self.exit.send(true);
    }
}

pub fn router(state: AppState) -> Router {
    // gRPC shares the HTTP port: see `grpc` for how.
    let grpc = grpc::router(state.clone()).merge(admin_grpc::router(state.clone()));
    let (documented, _) = openapi::documented();
    let api = Router::new()
        .merge(documented)
        .fallback(error::not_found)
        .layer(axum::middleware::from_fn(error::leader_location))
        .layer(axum::middleware::from_fn(error::json_errors))
        .with_state(state.clone());
    // The web admin's `/ui/api` calls `api` itself; its pages and assets
    // are outside the API's error middleware (they answer HTML and files).
    let ui = ui::router(state, api.clone());
    api.merge(ui).merge(grpc)
}

/// While this node leads, makes sure the bootstrap superadmin exists (a
/// new cluster's first leader creates it; later leaders find it there).
fn spawn_bootstrap(state: &AppState) {
    let app = state.clone();
    state.node.spawn_leader_task("bootstrap-superadmin", move |_, cancel| {
        let app = app.clone();
        async move {
            while !cancel.is_cancelled() {
                match app.bootstrap_superadmin().await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(error = %e.message, "cannot create the bootstrap superadmin yet; retrying")
                    }
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    });
}

/// A bound HTTP server, not yet serving.
pub struct HttpServer {
    listener: TcpListener,
    state: AppState,
    exit_requested: watch::Receiver<bool>,
}

impl HttpServer {
    pub async fn bind(
        node: RaftNode,
        batcher: Batcher,
        config: HttpConfig,
        metrics: Option<PrometheusHandle>,
        training: crate::training::TrainingEnv,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.listen).await?;
        let (exit, exit_requested) = watch::channel(false);
        let batcher = Arc::new(batcher);
        let state = AppState {
            node,
            batcher,
            config: Arc::new(config),
            metrics,
            pending: Arc::default(),
            latency: Arc::default(),
            training: Arc::new(training),
            exit,
        };
        spawn_bootstrap(&state);
        crate::training::orchestrator::spawn(&state, state.training.clone());
        Ok(Self { listener, state, exit_requested })
    }

    /// Serves until `shutdown` resolves or a client sends `exit` to
    /// `/control`; returns true in the second case.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<bool> {
        let mut exit_requested = self.exit_requested;
        let mut exit_seen = exit_requested.clone();
        let app = router(self.state).into_make_service_with_connect_info::<SocketAddr>();
        let stop = async move {
            tokio::select! {
                _ = shutdown => {}
                _ = exit_requested.wait_for(|e| *e) => {}
            }
        };
        axum::serve(self.listener, app).with_graceful_shutdown(stop).await?;
        let by_exit = *exit_seen.borrow_and_update();
        Ok(by_exit)
    }
}
