//! The serving domain: predictions and the model catalog.
//!
//! - [`command`]: its commands and results;
//! - [`catalog`]: models, versions (by blob hash) and defaults;
//! - [`apps`]: named ensembles of model versions, served like models;
//! - [`records`]: prediction records for idempotency and async results;
//! - [`apply`]: applying its entries, predictions batched across entries;
//! - [`executor`]: runs predictions on this node's ONNX Runtime and keeps the
//!   loaded models in step with the catalog;
//! - [`batcher`]: the leader's packing of concurrent requests into entries.

pub mod app_predict;
pub mod apply;
pub mod apps;
pub mod batcher;
pub mod catalog;
pub mod command;
pub mod executor;
mod node;
pub mod records;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

pub use apply::Applier;
pub use apps::{App, AppMember, Apps};
pub use batcher::{BatchConfig, Batcher, Target, Ticket};
pub use catalog::Catalog;
pub use command::{
    AppPredictBatch, ModelChange, PredictBatch, PredictOutcome, PredictRequest, PredictResult, ServingCommand,
    ServingResult, UploadChunk, UploadModel, UPLOAD_CHUNK_BYTES,
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
    pub apps: Apps,
}

impl ServingState {
    /// A state of snapshot format 1, which had no apps.
    pub(crate) fn from_v1(catalog: Catalog, records: RecordWindow, predictions_run: u64, digest: String) -> Self {
        Self { catalog, records, predictions_run, digest, apps: Apps::default() }
    }

    /// Folds an app change into the digest.
    pub fn record_app_change(&mut self, index: u64, what: &str, app: &str, revision: u64) {
        self.digest = chain(&self.digest, index, &[b"app", what.as_bytes(), app.as_bytes(), &revision.to_be_bytes()]);
    }

    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Records a prediction outcome in `store`, folding it into the digest.
    /// A key conflict is answered but not recorded, so the original stays.
    /// The digest covers the record window too, so replicas that evicted
    /// differently are caught by the next checkpoint.
    pub fn record(
        &mut self,
        store: &RecordStore,
        fingerprint: String,
        outcome: PredictOutcome,
        proposed_at_ms: u64,
        retention: Retention,
    ) {
        let result = bincode::serialize(&outcome.result).unwrap_or_default();
        let (index, id) = (outcome.index, outcome.id.clone());
        if !matches!(outcome.result, PredictResult::KeyConflict(_)) {
            self.predictions_run += 1;
            store.insert(&mut self.records, fingerprint, outcome, proposed_at_ms, retention);
        }
        self.fold_outcome(index, &id, &result);
    }

    fn fold_outcome(&mut self, index: u64, id: &str, result: &[u8]) {
        let w = self.records;
        let parts: [&[u8]; 4] = [id.as_bytes(), result, &w.next_seq.to_be_bytes(), &w.first_live.to_be_bytes()];
        self.digest = chain(&self.digest, index, &parts);
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

    #[test]
    fn digest_depends_on_every_outcome_and_the_record_window() {
        let (mut a, mut b) = (ServingState::default(), ServingState::default());
        a.fold_outcome(1, "1", b"x");
        b.fold_outcome(1, "1", b"x");
        assert_eq!(a.digest(), b.digest());
        a.fold_outcome(2, "2", b"x");
        b.fold_outcome(2, "2", b"y");
        assert_ne!(a.digest(), b.digest());
        let (mut c, mut d) = (ServingState::default(), ServingState::default());
        d.records.first_live = 1;
        c.fold_outcome(1, "1", b"x");
        d.fold_outcome(1, "1", b"x");
        assert_ne!(c.digest(), d.digest(), "a replica that evicted differently differs");
    }
}
