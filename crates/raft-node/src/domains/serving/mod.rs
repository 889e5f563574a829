//! The serving domain: predictions and the model catalog.
//!
//! - [`command`]: its commands and results;
//! - [`catalog`]: models, versions (by blob hash) and defaults;
//! - [`records`]: prediction records for idempotency and async results;
//! - [`apply`]: applying its entries, predictions batched across entries;
//! - [`executor`]: runs predictions on this node's ONNX Runtime and keeps the
//!   loaded models in step with the catalog;
//! - [`batcher`]: the leader's packing of concurrent requests into entries.

pub mod apply;
pub mod batcher;
pub mod catalog;
pub mod command;
pub mod executor;
mod node;
pub mod records;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

pub use apply::Applier;
pub use batcher::{BatchConfig, Batcher, Ticket};
pub use catalog::Catalog;
pub use command::{
    ModelChange, PredictBatch, PredictOutcome, PredictRequest, PredictResult, ServingCommand, ServingResult,
    UploadChunk, UploadModel, UPLOAD_CHUNK_BYTES,
};
pub use executor::{Executor, ECHO_MODEL};
pub use records::{Decision, ExportedRecord, RecordStore, RecordWindow, Retention};

use super::integrity::chain;

/// The serving domain's part of the applied state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServingState {
    pub catalog: Catalog,
    /// Which prediction records (held in the node's `RecordStore`) are live.
    pub records: RecordWindow,
    /// Predictions run (not counting replays of idempotent retries).
    pub predictions_run: u64,
    /// Running SHA-256 chain over every prediction outcome and model change.
    digest: String,
}

impl ServingState {
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Records a prediction outcome in `store`, folding it into the digest.
    /// A key conflict is answered but not recorded, so the original stays.
    pub fn record(
        &mut self,
        store: &RecordStore,
        fingerprint: String,
        outcome: PredictOutcome,
        proposed_at_ms: u64,
        retention: Retention,
    ) {
        self.fold_outcome(&outcome);
        if !matches!(outcome.result, PredictResult::KeyConflict(_)) {
            self.predictions_run += 1;
            store.insert(&mut self.records, fingerprint, outcome, proposed_at_ms, retention);
        }
    }

    fn fold_outcome(&mut self, outcome: &PredictOutcome) {
        let result = bincode::serialize(&outcome.result).unwrap_or_default();
        self.digest = chain(&self.digest, outcome.index, &[outcome.id.as_bytes(), &result]);
    }

    /// Folds a model change into the digest.
    pub fn record_model_change(&mut self, index: u64, what: &str, name: &str, version: u64) {
        self.digest = chain(&self.digest, index, &[what.as_bytes(), name.as_bytes(), &version.to_be_bytes()]);
    }

    /// Blobs the catalog refers to: model files and staged chunks.
    pub fn blob_refs(&self) -> BTreeSet<String> {
        self.catalog.blob_refs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(id: &str, index: u64, out: &str) -> PredictOutcome {
        PredictOutcome {
            id: id.into(),
            model: "echo".into(),
            version: 1,
            index,
            term: 1,
            result: PredictResult::InvalidInput(out.into()),
            duplicate: false,
        }
    }

    #[test]
    fn digest_depends_on_every_outcome() {
        let (mut a, mut b) = (ServingState::default(), ServingState::default());
        a.fold_outcome(&outcome("1", 1, "x"));
        b.fold_outcome(&outcome("1", 1, "x"));
        assert_eq!(a.digest(), b.digest());
        a.fold_outcome(&outcome("2", 2, "x"));
        b.fold_outcome(&outcome("2", 2, "y"));
        assert_ne!(a.digest(), b.digest());
    }
}
