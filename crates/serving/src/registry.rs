//! The node's model registry: loaded models keyed by `(name, version)`.
//!
//! [`ModelRegistry`] is a cheap `Clone` handle (an `Arc` inside) and is `Send + Sync`.
//! Loading builds sessions outside the registry lock, so serving never waits on a load.
//! All calls that run a model block; async callers use `spawn_blocking`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::batch;
use crate::check;
use crate::error::ServingError;
use crate::model::{self, LoadedModel, ModelMeta, ModelSignature};
use crate::output::Output;
use crate::tensor::Tensor;

/// Registry settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// ONNX Runtime sessions kept per model, so that many requests can run one model at once
    /// (`Session::run` needs exclusive access). Default 1: a node's state machine applies
    /// entries one at a time, so a second session would only cost memory; callers that run
    /// one model from several threads (benchmarks, tools) raise it.
    pub sessions_per_model: usize,
    /// Most elements one request may carry, summed over its input tensors; no input's
    /// dimensions may multiply past it either (zero dimensions counted as 1). Applies to
    /// `check`, `infer`, each request of `infer_batch`, `boat_inputs` and `predict_json`.
    /// Default [`RegistryConfig::DEFAULT_MAX_ELEMENTS_PER_REQUEST`].
    pub max_elements_per_request: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig { sessions_per_model: 1, max_elements_per_request: Self::DEFAULT_MAX_ELEMENTS_PER_REQUEST }
    }
}

impl RegistryConfig {
    /// Largest accepted `sessions_per_model`.
    pub const MAX_SESSIONS_PER_MODEL: usize = 64;

    /// Default `max_elements_per_request`.
    pub const DEFAULT_MAX_ELEMENTS_PER_REQUEST: usize = 1_000_000;

    /// Checks the settings are usable.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=Self::MAX_SESSIONS_PER_MODEL).contains(&self.sessions_per_model) {
            return Err(format!(
                "sessions_per_model must be between 1 and {}, got {}",
                Self::MAX_SESSIONS_PER_MODEL,
                self.sessions_per_model
            ));
        }
        if self.max_elements_per_request == 0 {
            return Err("max_elements_per_request must be at least 1".into());
        }
        Ok(())
    }
}

type Key = (String, u64);

struct Inner {
    config: RegistryConfig,
    models: RwLock<HashMap<Key, Arc<LoadedModel>>>,
}

/// Loaded models on this node; clone freely.
#[derive(Clone)]
pub struct ModelRegistry {
    inner: Arc<Inner>,
}

impl fmt::Debug for ModelRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<Key> = self.read().keys().cloned().collect();
        f.debug_struct("ModelRegistry").field("config", &self.inner.config).field("models", &keys).finish()
    }
}

impl Default for ModelRegistry {
    fn default() -> Self {
        ModelRegistry::new(RegistryConfig::default())
    }
}

impl ModelRegistry {
    /// An empty registry. `sessions_per_model` is clamped into the valid range and
    /// `max_elements_per_request` raised to at least 1.
    pub fn new(mut config: RegistryConfig) -> ModelRegistry {
        config.sessions_per_model = config.sessions_per_model.clamp(1, RegistryConfig::MAX_SESSIONS_PER_MODEL);
        config.max_elements_per_request = config.max_elements_per_request.max(1);
        ModelRegistry { inner: Arc::new(Inner { config, models: RwLock::new(HashMap::new()) }) }
    }

    /// The settings in force.
    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    /// Loads (or replaces) model `name` version `version` from ONNX bytes.
    ///
    /// Loading the same bytes again under the same key is a cheap no-op returning the
    /// existing metadata, so replaying a log is idempotent. Different bytes replace the
    /// old model. Invalid bytes give [`ServingError::InvalidModel`] and change nothing.
    /// Loading runs the batch-invariance probe (see [`ModelRegistry::batch_invariant`]).
    pub fn load(&self, name: &str, version: u64, onnx_bytes: &[u8]) -> Result<ModelMeta, ServingError> {
        if name.is_empty() {
            return Err(ServingError::InvalidModel("model name must not be empty".into()));
        }
        let key = (name.to_string(), version);
        let sha = hex::encode(Sha256::digest(onnx_bytes));
        if let Some(existing) = self.read().get(&key) {
            if existing.meta().sha256 == sha {
                return Ok(existing.meta().clone());
            }
        }
        let loaded = LoadedModel::load(name, version, onnx_bytes, self.inner.config.sessions_per_model)?;
        let meta = loaded.meta().clone();
        if self.write().insert(key, Arc::new(loaded)).is_some() {
            tracing::warn!(model = name, version, sha256 = %meta.sha256, "replaced a loaded model with different bytes");
        } else {
            tracing::info!(model = name, version, sha256 = %meta.sha256, "model loaded");
        }
        Ok(meta)
    }

    /// Checks ONNX bytes load and can be served, without registering them.
    pub fn validate(&self, onnx_bytes: &[u8]) -> Result<ModelSignature, ServingError> {
        model::validate(onnx_bytes)
    }

    /// Removes a model, returning its metadata if it was loaded. Requests already running
    /// on it finish normally.
    pub fn unload(&self, name: &str, version: u64) -> Option<ModelMeta> {
        let removed = self.write().remove(&(name.to_string(), version));
        removed.map(|m| m.meta().clone())
    }

    /// Metadata of one loaded model.
    pub fn meta(&self, name: &str, version: u64) -> Option<ModelMeta> {
        self.read().get(&(name.to_string(), version)).map(|m| m.meta().clone())
    }

    /// Whether a model is loaded.
    pub fn contains(&self, name: &str, version: u64) -> bool {
        self.read().contains_key(&(name.to_string(), version))
    }

    /// All loaded models, sorted by name then version.
    pub fn list(&self) -> Vec<ModelMeta> {
        let mut all: Vec<ModelMeta> = self.read().values().map(|m| m.meta().clone()).collect();
        all.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
        all
    }

    /// How many times ONNX Runtime has run this model since it was loaded (a combined
    /// batch counts once), or `None` if it is not loaded.
    pub fn run_count(&self, name: &str, version: u64) -> Option<u64> {
        self.read().get(&(name.to_string(), version)).map(|m| m.runs())
    }

    /// Highest loaded version of `name`.
    pub fn latest_version(&self, name: &str) -> Option<u64> {
        self.read().keys().filter(|(n, _)| n == name).map(|&(_, v)| v).max()
    }

    /// Whether model `name` version `version` gives every row bit-identical outputs whatever
    /// batch it runs in, as found by the probe run at load: for batch sizes 1, 2, 3, 8 and
    /// 17 of seeded pseudo-random inputs (the same on every node), each row's outputs from
    /// the batch are compared bit for bit with that row run alone (sequence and map outputs
    /// by their JSON text). `false` for models whose inputs do not all have a dynamic first
    /// dimension, for models that failed the probe, and for models not loaded.
    ///
    /// When `false`, grouping requests differently (as [`ModelRegistry::infer_batch`] does)
    /// may change results in the last bits, so replicas that must agree bit for bit should
    /// run such a model's requests one by one.
    pub fn batch_invariant(&self, name: &str, version: u64) -> bool {
        self.read().get(&(name.to_string(), version)).is_some_and(|m| m.meta().batch_invariant)
    }

    /// Validates one request without running it: the same checks [`ModelRegistry::infer`]
    /// makes (unknown model → [`ServingError::UnknownModel`]; the size limit, unknown,
    /// duplicate or missing inputs, wrong datatype, rank or fixed dimension →
    /// [`ServingError::InvalidInput`]). Returns the inputs as `infer` would run them (in the
    /// model's input order), so a caller can check before committing a request and run it
    /// later. Inputs may come in any order.
    pub fn check(&self, name: &str, version: u64, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ServingError> {
        let model = self.get(name, version)?;
        self.check_for(&model, inputs)
    }

    /// Runs one request (blocking): [`ModelRegistry::check`], then one ONNX Runtime run.
    pub fn infer(&self, name: &str, version: u64, inputs: Vec<Tensor>) -> Result<Vec<Output>, ServingError> {
        let model = self.get(name, version)?;
        let checked = self.check_for(&model, inputs)?;
        model.run(checked)
    }

    /// Runs several requests for one model (blocking), in one ONNX Runtime call where the
    /// model allows it. Results come back in request order, each as
    /// [`ModelRegistry::infer`] would have returned it; a request that fails validation
    /// (including the size limit, which applies per request) fails alone.
    ///
    /// Requests are concatenated along dimension 0 and run once when every model input and
    /// tensor output has a dynamic first dimension (sequence outputs also qualify) and the
    /// requests agree on every other dimension; outputs are then split back by each
    /// request's row count (a sequence output by element). Otherwise, or if the combined
    /// run fails or returns outputs that cannot be split, requests run one by one.
    pub fn infer_batch(
        &self,
        name: &str,
        version: u64,
        requests: Vec<Vec<Tensor>>,
    ) -> Vec<Result<Vec<Output>, ServingError>> {
        match self.get(name, version) {
            Ok(model) => batch::run_batch(&model, requests, self.max_elements()),
            Err(e) => requests.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    /// [`ModelRegistry::check`] against an already looked-up model, so that a check and the
    /// run after it see the same model even if it is replaced in between.
    pub(crate) fn check_for(&self, model: &LoadedModel, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ServingError> {
        check::check_inputs(model.meta(), inputs, self.max_elements())
    }

    fn max_elements(&self) -> usize {
        self.inner.config.max_elements_per_request
    }

    pub(crate) fn get(&self, name: &str, version: u64) -> Result<Arc<LoadedModel>, ServingError> {
        self.read()
            .get(&(name.to_string(), version))
            .cloned()
            .ok_or_else(|| ServingError::UnknownModel { name: name.to_string(), version })
    }

    // The map only ever has whole entries inserted or removed, so a panic elsewhere while a
    // guard was held cannot leave it inconsistent: recovering from poisoning is sound.
    fn read(&self) -> RwLockReadGuard<'_, HashMap<Key, Arc<LoadedModel>>> {
        self.inner.models.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<Key, Arc<LoadedModel>>> {
        self.inner.models.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_send_sync_clone() {
        fn assert_traits<T: Send + Sync + Clone + 'static>() {}
        assert_traits::<ModelRegistry>();
    }

    #[test]
    fn config_validation_and_defaults() {
        let def = RegistryConfig::default();
        assert_eq!(def.sessions_per_model, 1);
        assert_eq!(def.max_elements_per_request, 1_000_000);
        let with = |sessions, max| RegistryConfig { sessions_per_model: sessions, max_elements_per_request: max };
        assert!(with(0, 10).validate().is_err());
        assert!(with(4, 10).validate().is_ok());
        assert!(with(4, 0).validate().is_err());
        let cfg: RegistryConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(cfg, def);
        let cfg: RegistryConfig = serde_json::from_str(r#"{"max_elements_per_request": 5}"#).unwrap();
        assert_eq!(cfg, with(1, 5));
        assert!(serde_json::from_str::<RegistryConfig>(r#"{"bogus": 1}"#).is_err());
        let reg = ModelRegistry::new(with(0, 0));
        assert_eq!(reg.config(), &with(1, 1));
    }

    #[test]
    fn unknown_model_without_runtime() {
        let reg = ModelRegistry::default();
        let err = reg.infer("nope", 1, vec![]).unwrap_err();
        assert_eq!(err, ServingError::UnknownModel { name: "nope".into(), version: 1 });
        let errs = reg.infer_batch("nope", 1, vec![vec![], vec![]]);
        assert_eq!(errs.len(), 2);
        assert!(errs.iter().all(|r| matches!(r, Err(ServingError::UnknownModel { .. }))));
        assert!(matches!(reg.check("nope", 1, vec![]), Err(ServingError::UnknownModel { .. })));
        assert!(!reg.batch_invariant("nope", 1));
        assert!(reg.list().is_empty());
        assert_eq!(reg.unload("nope", 1), None);
    }
}
