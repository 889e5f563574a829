//! The replicated command set: what goes into a log entry (`Command`) and what
//! applying it yields (`CommandResult`).
//!
//! Everything here is encoded with bincode both on disk and on the wire, so
//! the types stay plain: JSON payloads travel as canonical JSON *text*, never
//! as `serde_json::Value` (bincode cannot decode self-describing values).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One entry's application payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Run one prediction on every replica.
    Predict(PredictCommand),
}

/// A prediction request as the leader accepted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PredictCommand {
    /// Request id. When the client gave an idempotency key this is that key,
    /// and a second command with the same id returns the first one's outcome.
    pub id: String,
    /// Model name the request is for.
    pub model: String,
    /// The request's `input`, as canonical JSON text.
    pub input_json: String,
    /// Leader's wall clock (ms since the Unix epoch) when it proposed the
    /// entry. Replicas use this, never their own clocks, to age out
    /// idempotency records, so that every replica evicts the same ones.
    pub proposed_at_ms: u64,
}

impl PredictCommand {
    /// Fingerprint of what the request asks for, to tell an honest retry from
    /// a different request that reuses an idempotency key.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.model.as_bytes());
        h.update([0u8]);
        h.update(self.input_json.as_bytes());
        hex::encode(h.finalize())
    }
}

/// What applying an entry produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    /// Blank and membership entries produce nothing.
    #[default]
    None,
    Predicted(PredictOutcome),
}

/// The outcome of one prediction, as recorded in the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PredictOutcome {
    pub id: String,
    pub model: String,
    /// Log index and term of the entry that first ran this request.
    pub index: u64,
    pub term: u64,
    pub result: PredictResult,
    /// True when this outcome was answered from the idempotency record of
    /// an earlier entry instead of being run again.
    pub duplicate: bool,
}

/// The model's answer, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PredictResult {
    /// Output as JSON text.
    Output(String),
    /// The model rejected the input (a client error, deterministic on every
    /// replica).
    InvalidInput(String),
    /// The request names a model this cluster does not have.
    UnknownModel(String),
    /// The idempotency key was already used for a different request.
    KeyConflict(String),
    /// The runtime failed while running the model on this input.
    ModelError(String),
}

impl PredictResult {
    /// A short, single-line rendering for logs (outputs are cut at 120 bytes).
    pub fn summary(&self) -> String {
        fn cut(s: &str) -> &str {
            match s.char_indices().nth(120) {
                Some((i, _)) => &s[..i],
                None => s,
            }
        }
        match self {
            PredictResult::Output(o) => format!("output {}", cut(o)),
            PredictResult::InvalidInput(e) => format!("invalid input: {}", cut(e)),
            PredictResult::UnknownModel(e) => format!("unknown model: {}", cut(e)),
            PredictResult::KeyConflict(e) => format!("key conflict: {}", cut(e)),
            PredictResult::ModelError(e) => format!("model error: {}", cut(e)),
        }
    }
}
