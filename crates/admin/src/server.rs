//! The node's HTTP server: routes, shared state and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use boat_raft::RaftNode;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::{control, error, predict, status};

/// HTTP settings of a node.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Address the HTTP server binds to.
    pub listen: SocketAddr,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How long a write may wait for commit before the client gets 503.
    pub write_timeout: Duration,
    /// Bearer token for `/control` from non-loopback callers.
    pub admin_token: Option<String>,
}

impl HttpConfig {
    pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
}

/// State shared by all handlers.
#[derive(Clone)]
pub struct AppState {
    pub node: RaftNode,
    pub config: Arc<HttpConfig>,
    exit: watch::Sender<bool>,
}

impl AppState {
    /// Asks the process to stop (the `exit` control command).
    pub fn request_exit(&self) {
        let _ = self.exit.send(true);
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(status::greeting))
        .route("/status", get(status::status))
        .route("/predict", post(predict::predict))
        .route("/control", post(control::control))
        .fallback(error::not_found)
        .with_state(state)
}

/// A bound HTTP server, not yet serving.
pub struct HttpServer {
    listener: TcpListener,
    state: AppState,
    exit_requested: watch::Receiver<bool>,
}

impl HttpServer {
    pub async fn bind(node: RaftNode, config: HttpConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.listen).await?;
        let (exit, exit_requested) = watch::channel(false);
        Ok(Self { listener, state: AppState { node, config: Arc::new(config), exit }, exit_requested })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves or a client sends `exit` to
    /// `/control`; returns true in the second case.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> std::io::Result<bool> {
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
