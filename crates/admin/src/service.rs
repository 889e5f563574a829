//! The read side of the serving domain, shared by every surface (the REST
//! model registry, the Open Inference Protocol over HTTP and over gRPC):
//! model resolution, metadata and readiness. Callers pass the read barrier
//! first (see `consistency`); these functions read local state.

use boat_serving::oip::{self, ModelMetadata};
use boat_serving::ModelMeta;

use crate::error::ApiError;
use crate::server::AppState;

/// A resolved model version with its metadata and every stored version.
pub struct Resolved {
    pub version: u64,
    pub meta: ModelMeta,
    pub versions: Vec<u64>,
}

impl AppState {
    /// The version a request for `name` (optionally pinned) would run, and
    /// its metadata; 404 when unknown or not loaded here.
    pub fn resolve_model(&self, name: &str, version: Option<u64>) -> Result<Resolved, ApiError> {
        let (v, versions) = {
            let state = self.node.state().read();
            let catalog = &state.serving.catalog;
            let v = catalog.resolve(name, version).map_err(ApiError::not_found)?;
            let versions = catalog.models.get(name).map(|e| e.versions.keys().copied().collect()).unwrap_or_default();
            (v, versions)
        };
        let meta = self
            .node
            .executor()
            .registry()
            .meta(name, v)
            .ok_or_else(|| ApiError::not_found(format!("model {name:?} version {v} is not loaded on this node")))?;
        Ok(Resolved { version: v, meta, versions })
    }

    pub fn model_metadata(&self, name: &str, version: Option<u64>) -> Result<ModelMetadata, ApiError> {
        let r = self.resolve_model(name, version)?;
        Ok(oip::metadata_of(&r.meta, &r.versions))
    }

    /// The version that is ready to serve, or why none is.
    pub fn model_ready(&self, name: &str, version: Option<u64>) -> Result<u64, ApiError> {
        self.resolve_model(name, version).map(|r| r.version)
    }

    /// Ready when a leader is known and this replica has not diverged;
    /// otherwise the reason. Local: probes never wait for the leader.
    pub fn server_ready(&self) -> Result<(), &'static str> {
        let s = self.node.status();
        if s.leader_id.is_none() {
            Err("no leader is known")
        } else if s.divergence.is_some() {
            Err("this replica's state differs from the leader's")
        } else {
            Ok(())
        }
    }
}

/// What `GET /v2` and gRPC ServerMetadata say about the server.
pub const SERVER_NAME: &str = "boat";
pub const SERVER_EXTENSIONS: &[&str] = &["async", "idempotency", "consistency"];
