//! The serving domain's commands (what goes into a log entry) and results
//! (what applying one yields).
//!
//! Everything here is encoded with bincode inside a versioned log payload,
//! so the types stay plain: tensors use the serving crate's compact encoding
//! and nothing holds a self-describing `serde_json::Value`.

use boat_serving::{Output, Tensor};
use serde::{Deserialize, Serialize};

pub use super::apps::{App, AppMember};
use sha2::{Digest, Sha256};

/// Commands of the serving domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServingCommand {
    /// Requests for one model, packed by the leader into one entry.
    PredictBatch(PredictBatch),
    /// One piece of a model file being uploaded (see `UploadModel`).
    UploadChunk(UploadChunk),
    /// A new version of a model, assembled from its staged chunks; it
    /// becomes the default at this entry.
    UploadModel(UploadModel),
    /// Make an existing version the default (a rollback or roll-forward).
    SetDefault {
        name: String,
        version: u64,
    },
    /// Remove a version that is not the default.
    DeleteVersion {
        name: String,
        version: u64,
    },
    /// A new app (see `apps`).
    CreateApp(App),
    /// Replace an app's members: one entry, so one index switches them.
    SetAppMembers {
        name: String,
        members: Vec<AppMember>,
    },
    /// Stop or start serving an app.
    SetAppRunning {
        name: String,
        running: bool,
    },
    DeleteApp {
        name: String,
    },
    /// Requests for one app, packed by the leader into one entry.
    AppPredict(AppPredictBatch),
}

/// Requests for an app that the leader packed into one log entry. Every
/// member runs all of them, and the app's rule combines the answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppPredictBatch {
    pub app: String,
    /// Leader wall clock at proposal (see `PredictBatch`).
    pub proposed_at_ms: u64,
    pub requests: Vec<PredictRequest>,
}

/// Requests the leader packed into one log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictBatch {
    pub model: String,
    /// A pinned version, or `None` for the default version at this entry.
    pub version: Option<u64>,
    /// Leader wall clock (ms since the Unix epoch) at proposal. Replicas use
    /// this, never their own clocks, to age out records.
    pub proposed_at_ms: u64,
    pub requests: Vec<PredictRequest>,
}

/// One prediction request, validated by the leader before it was proposed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictRequest {
    /// Request id; a client's idempotency key when it gave one.
    pub id: String,
    pub inputs: Vec<Tensor>,
    /// Outputs the client asked for (all when `None`).
    pub outputs: Option<Vec<String>>,
}

impl PredictRequest {
    /// Fingerprint of what the request asks for, to tell an honest retry from
    /// a different request that reuses an idempotency key.
    pub fn fingerprint(&self, model: &str, version: Option<u64>) -> String {
        let mut h = Sha256::new();
        h.update(model.as_bytes());
        h.update([0u8]);
        h.update(version.unwrap_or(0).to_be_bytes());
        // Encoding plain data with bincode cannot fail; an error would only
        // make the fingerprint coarser, never panic.
        h.update(bincode::serialize(&(&self.inputs, &self.outputs)).unwrap_or_default());
        hex::encode(h.finalize())
    }
}

/// Largest piece of a model file in one log entry. A model travels as
/// several entries so that no AppendEntries carries more than a few of them
/// (openraft gives an append one heartbeat interval to complete).
pub const UPLOAD_CHUNK_BYTES: usize = 1024 * 1024;

/// A piece of a model file. Applying it stores the bytes in the node's blob
/// store and stages their hash in the catalog until the `UploadModel` entry
/// that names its upload.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadChunk {
    /// Chosen by the leader for this upload.
    pub upload_id: u64,
    /// Position of this chunk, from 0; chunks are applied in order.
    pub seq: u32,
    /// Leader clock at proposal; abandoned uploads are dropped by age.
    pub at_ms: u64,
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for UploadChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadChunk")
            .field("upload_id", &self.upload_id)
            .field("seq", &self.seq)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// Completes an upload: the staged chunks, concatenated, are the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadModel {
    pub name: String,
    pub upload_id: u64,
    pub chunks: u32,
    /// Hex SHA-256 of the whole file, checked by every node before loading.
    pub sha256: String,
    pub uploaded_at_ms: u64,
}

/// What applying a serving command produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServingResult {
    /// One outcome per request of a `PredictBatch`, in order.
    Predicted(Vec<PredictOutcome>),
    /// A model change took effect.
    ModelChanged(ModelChange),
    /// An app change took effect; the app as it is now.
    AppChanged(App),
}

/// The effect of a model command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelChange {
    pub name: String,
    pub version: u64,
    /// The default version after the change.
    pub default_version: Option<u64>,
    pub index: u64,
}

/// The outcome of one prediction, as recorded in the replicated state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictOutcome {
    pub id: String,
    pub model: String,
    /// The version that ran (0 when none could be resolved).
    pub version: u64,
    /// Log index and term of the entry that first ran this request.
    pub index: u64,
    pub term: u64,
    pub result: PredictResult,
    /// True when this outcome was answered from the record of an earlier
    /// entry instead of being run again.
    pub duplicate: bool,
}

/// The model's answer, or why there is none. Every variant is a
/// deterministic function of the log, so all replicas record the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PredictResult {
    Output(Vec<Output>),
    /// The model rejected the input.
    InvalidInput(String),
    /// The model or version does not exist at this entry.
    UnknownModel(String),
    /// The idempotency key was already used for a different request.
    KeyConflict(String),
    /// The runtime failed while running the model on this input.
    ModelError(String),
}

impl PredictResult {
    /// A short, single-line rendering for logs.
    pub fn summary(&self) -> String {
        fn cut(s: &str) -> String {
            s.chars().take(120).collect()
        }
        match self {
            PredictResult::Output(outputs) => {
                let rendered = boat_serving::boat_output(outputs.clone()).to_string();
                format!("output {}", cut(&rendered))
            }
            PredictResult::InvalidInput(e) => format!("invalid input: {}", cut(e)),
            PredictResult::UnknownModel(e) => format!("unknown model: {}", cut(e)),
            PredictResult::KeyConflict(e) => format!("key conflict: {}", cut(e)),
            PredictResult::ModelError(e) => format!("model error: {}", cut(e)),
        }
    }
}

/// Hex SHA-256 of a byte string.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
