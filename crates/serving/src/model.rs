//! One loaded model: its metadata, a small pool of ONNX Runtime sessions and a single run.
//! Loading also runs the batch-invariance probe (the private `probe` module); requests are
//! checked against the metadata (the private `check` module) before they reach `run`.
//!
//! Sessions are built with `GraphOptimizationLevel::All`, one intra-op and one inter-op
//! thread, sequential execution and deterministic compute, so every replica computes
//! bit-identical outputs for the same inputs. `Session::run` needs `&mut`, so each model keeps
//! `sessions_per_model` sessions behind mutexes and a request takes whichever is free.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};

use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::Session;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::convert;
use crate::error::ServingError;
use crate::output::Output;
use crate::probe;
use crate::runtime;
use crate::tensor::{DataType, Tensor};

/// What kind of value a model input or output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IoKind {
    /// A tensor (the only kind an input can be).
    Tensor,
    /// An ONNX sequence (of maps or tensors), returned in the JSON form.
    Sequence,
    /// An ONNX map, returned in the JSON form.
    Map,
}

/// A model input or output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoMeta {
    /// Name in the ONNX graph.
    pub name: String,
    /// Element type for tensors; `None` for sequences and maps.
    pub datatype: Option<DataType>,
    /// Dimensions, `-1` where dynamic. `[-1]` for a sequence, `[]` for a map.
    pub shape: Vec<i64>,
    /// Tensor, sequence or map.
    pub kind: IoKind,
}

/// What validating an ONNX file tells us, before it has a name and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSignature {
    /// Lower-case hex SHA-256 of the ONNX bytes.
    pub sha256: String,
    /// Size of the ONNX bytes.
    pub size_bytes: u64,
    /// Inputs, in graph order (all tensors).
    pub inputs: Vec<IoMeta>,
    /// Outputs, in graph order.
    pub outputs: Vec<IoMeta>,
}

impl ModelSignature {
    /// Attaches a name and version.
    pub fn into_meta(self, name: impl Into<String>, version: u64) -> ModelMeta {
        ModelMeta {
            name: name.into(),
            version,
            sha256: self.sha256,
            size_bytes: self.size_bytes,
            inputs: self.inputs,
            outputs: self.outputs,
            batch_invariant: false,
        }
    }
}

/// A loaded model's description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// Model name.
    pub name: String,
    /// Model version.
    pub version: u64,
    /// Lower-case hex SHA-256 of the ONNX bytes.
    pub sha256: String,
    /// Size of the ONNX bytes.
    pub size_bytes: u64,
    /// Inputs, in graph order (all tensors).
    pub inputs: Vec<IoMeta>,
    /// Outputs, in graph order.
    pub outputs: Vec<IoMeta>,
    /// Whether the load-time probe found every row's outputs bit-identical whatever batch
    /// it ran in (see [`crate::ModelRegistry::batch_invariant`]). `false` when not probed,
    /// when the model cannot take a batch (fixed first dimension) and when absent from old
    /// serialised metadata.
    #[serde(default)]
    pub batch_invariant: bool,
}

/// Loads `onnx_bytes` into a throwaway session to check ONNX Runtime accepts it and that
/// Boat can serve its inputs and outputs, without registering anything.
pub fn validate(onnx_bytes: &[u8]) -> Result<ModelSignature, ServingError> {
    let session = build_session(onnx_bytes)?;
    signature(onnx_bytes, &session)
}

fn build_session(onnx_bytes: &[u8]) -> Result<Session, ServingError> {
    if onnx_bytes.is_empty() {
        return Err(ServingError::InvalidModel("the model file is empty".into()));
    }
    let env = runtime::environment()?;
    let opt =
        |e: ort::Error<SessionBuilder>| ServingError::Runtime(format!("configuring an ONNX Runtime session: {e}"));
    let mut builder = Session::builder(env)
        .map_err(|e| ServingError::Runtime(e.to_string()))?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(opt)?
        .with_intra_threads(1)
        .map_err(opt)?
        .with_inter_threads(1)
        .map_err(opt)?
        .with_parallel_execution(false)
        .map_err(opt)?
        .with_deterministic_compute(true)
        .map_err(opt)?;
    builder.commit_from_memory(onnx_bytes).map_err(|e| ServingError::InvalidModel(e.to_string()))
}

fn signature(onnx_bytes: &[u8], session: &Session) -> Result<ModelSignature, ServingError> {
    let describe = |outlets: &[ort::value::Outlet], is_input| {
        outlets
            .iter()
            .map(|o| convert::io_meta(o.name(), o.dtype(), is_input))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ServingError::InvalidModel)
    };
    Ok(ModelSignature {
        sha256: hex::encode(Sha256::digest(onnx_bytes)),
        size_bytes: onnx_bytes.len() as u64,
        inputs: describe(session.inputs(), true)?,
        outputs: describe(session.outputs(), false)?,
    })
}

/// A model ready to serve.
pub(crate) struct LoadedModel {
    meta: ModelMeta,
    sessions: Vec<Mutex<Session>>,
    next: AtomicUsize,
    runs: AtomicU64,
}

impl LoadedModel {
    /// Builds `sessions` sessions (at least one) for the model.
    pub(crate) fn load(
        name: &str,
        version: u64,
        onnx_bytes: &[u8],
        sessions: usize,
    ) -> Result<LoadedModel, ServingError> {
        let first = build_session(onnx_bytes)?;
        let meta = signature(onnx_bytes, &first)?.into_meta(name, version);
        let mut pool = vec![Mutex::new(first)];
        for _ in 1..sessions.max(1) {
            pool.push(Mutex::new(build_session(onnx_bytes)?));
        }
        let mut model = LoadedModel { meta, sessions: pool, next: AtomicUsize::new(0), runs: AtomicU64::new(0) };
        model.meta.batch_invariant = probe::batch_invariant(&model);
        // The probe's runs are not requests; nobody else holds the model yet.
        model.runs.store(0, Ordering::Relaxed);
        Ok(model)
    }

    pub(crate) fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    /// ONNX Runtime session runs so far (a combined batch counts once).
    pub(crate) fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// Runs checked inputs (from `check::check_inputs`) once and converts the outputs.
    pub(crate) fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Output>, ServingError> {
        let values = inputs.into_iter().map(convert::to_ort).collect::<Result<Vec<_>, _>>()?;
        let mut session = self.session();
        self.runs.fetch_add(1, Ordering::Relaxed);
        let outputs = session.run(values).map_err(ServingError::inference)?;
        outputs.into_iter().map(|(name, value)| convert::from_ort(name, &value)).collect()
    }

    /// A free session if there is one (round-robin start), else waits for one.
    fn session(&self) -> MutexGuard<'_, Session> {
        // `load` always builds at least one session, so `n >= 1`, the modulo is defined and
        // every index below is in bounds.
        let n = self.sessions.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        // A poisoned mutex only means a panic happened while it was held; the session keeps
        // no half-updated Rust state, so it is safe to keep using.
        for i in 0..n {
            match self.sessions[(start + i) % n].try_lock() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        self.sessions[start].lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
