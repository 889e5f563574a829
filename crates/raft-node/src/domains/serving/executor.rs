//! Runs predictions for the state machine on this node's ONNX Runtime, and
//! keeps the node's loaded models in step with the replicated catalog.
//!
//! Every failure is mapped to a deterministic `PredictResult`, so that all
//! replicas record the same outcome for the same entry.

use boat_serving::{ModelMeta, ModelRegistry, Output, ServingError, Tensor};

use super::catalog::{Catalog, VersionRecord};
use super::command::PredictResult;
use crate::blobs::BlobStore;

/// Name of the model every cluster starts with.
pub const ECHO_MODEL: &str = "echo";

/// Cheap to clone; shares the registry.
#[derive(Clone)]
pub struct Executor {
    registry: ModelRegistry,
}

impl Executor {
    pub fn new(registry: ModelRegistry) -> Self {
        Self { registry }
    }

    pub fn registry(&self) -> &ModelRegistry {
        &self.registry
    }

    /// Loads one catalog version from the blob store (which checks the
    /// bytes against their hash).
    pub fn load_version(
        &self,
        blobs: &BlobStore,
        name: &str,
        version: u64,
        record: &VersionRecord,
    ) -> Result<ModelMeta, ServingError> {
        if record.builtin {
            return self.registry.load(name, version, boat_serving::ECHO_ONNX);
        }
        let bytes = blobs
            .read(&record.sha256)
            .map_err(|e| ServingError::InvalidModel(format!("{name} version {version}: {e}")))?;
        self.registry.load(name, version, &bytes)
    }

    /// Makes the loaded models match the catalog: loads what is missing and
    /// unloads what the catalog no longer has. Used after a snapshot is
    /// restored or installed. Returns the versions that failed to load.
    pub fn sync_catalog(&self, catalog: &Catalog, blobs: &BlobStore) -> Vec<(String, u64, ServingError)> {
        let mut failures = Vec::new();
        for (name, version, record) in catalog.versions() {
            if self.registry.contains(name, version) {
                continue;
            }
            match self.load_version(blobs, name, version, record) {
                Ok(_) => tracing::info!(model = name, version, "loaded model"),
                Err(e) => {
                    tracing::error!(model = name, version, error = %e, "cannot load a model of the catalog");
                    failures.push((name.to_string(), version, e));
                }
            }
        }
        for meta in self.registry.list() {
            let kept = catalog.models.get(&meta.name).is_some_and(|e| e.versions.contains_key(&meta.version));
            if !kept {
                self.registry.unload(&meta.name, meta.version);
            }
        }
        failures
    }

    /// Whether a request's outputs never depend on which other requests
    /// share its batch, so batching across entries cannot change results.
    pub fn batch_invariant(&self, name: &str, version: u64) -> bool {
        self.registry.batch_invariant(name, version)
    }

    /// Runs several requests for one model version, batched where the model
    /// allows. Blocking: call it off the async runtime.
    pub fn run_batch(&self, name: &str, version: u64, requests: Vec<Vec<Tensor>>) -> Vec<PredictResult> {
        self.registry.infer_batch(name, version, requests).into_iter().map(to_result).collect()
    }

    /// One request run at once, outside the log: the unreplicated reference
    /// mode of benchmarks. Blocking, like [`Executor::run_batch`].
    pub fn run_one(&self, name: &str, version: u64, inputs: Vec<Tensor>, wanted: Option<&[String]>) -> PredictResult {
        keep_wanted(to_result(self.registry.infer(name, version, inputs)), wanted)
    }
}

/// A result with only the `wanted` outputs; asking for an output the
/// model lacks makes it invalid input.
pub fn keep_wanted(result: PredictResult, wanted: Option<&[String]>) -> PredictResult {
    match result {
        PredictResult::Output(o) => match select_outputs(o, wanted) {
            Ok(o) => PredictResult::Output(o),
            Err(e) => PredictResult::InvalidInput(e),
        },
        other => other,
    }
}

/// Keeps only the requested outputs (all when `None`), in the order asked.
pub fn select_outputs(outputs: Vec<Output>, wanted: Option<&[String]>) -> Result<Vec<Output>, String> {
    let Some(wanted) = wanted else {
        return Ok(outputs);
    };
    let mut out = Vec::with_capacity(wanted.len());
    for w in wanted {
        match outputs.iter().find(|o| o.name() == w) {
            Some(o) => out.push(o.clone()),
            None => return Err(format!("the model has no output {w:?}")),
        }
    }
    Ok(out)
}

fn to_result(r: Result<Vec<Output>, ServingError>) -> PredictResult {
    match r {
        Ok(outputs) => PredictResult::Output(outputs),
        Err(ServingError::UnknownModel { name, version }) => {
            PredictResult::UnknownModel(format!("model {name:?} version {version} is not loaded"))
        }
        Err(ServingError::InvalidInput(m)) => PredictResult::InvalidInput(m),
        Err(other) => PredictResult::ModelError(other.to_string()),
    }
}
