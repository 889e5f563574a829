//! Datasets: CSV files in the blob store, with what the leader learned
//! validating them.

use std::collections::BTreeMap;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use super::{PlatformCommand, PlatformResult};
use crate::blobs::BlobError;
use crate::domains::{write, AppliedState, ApplyEnv, CommandResult, Refusal};

/// What a dataset's target column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DatasetTask {
    Classification,
    Regression,
}

impl DatasetTask {
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetTask::Classification => "classification",
            DatasetTask::Regression => "regression",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "classification" => Some(Self::Classification),
            "regression" => Some(Self::Regression),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColumnKind {
    /// Every value parses as a number.
    Numeric,
    /// Labels (allowed only in a classification target).
    Categorical,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetColumn {
    pub name: String,
    pub kind: ColumnKind,
}

/// One dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset {
    pub name: String,
    /// The user who uploaded it.
    pub owner: u64,
    pub task: DatasetTask,
    pub columns: Vec<DatasetColumn>,
    pub target: String,
    pub rows: u64,
    pub size_bytes: u64,
    /// Hex SHA-256 of the file, which is also its blob name.
    pub sha256: String,
    /// Rows per class label (classification only).
    pub class_counts: BTreeMap<String, u64>,
    pub uploaded_at_ms: u64,
    /// Log index of the entry that created it (set when applied).
    pub index: u64,
}

/// Applies `CreateDataset`: the staged chunks are concatenated into one
/// blob, whose hash must be the one the leader computed.
pub(crate) fn complete(
    state: &RwLock<AppliedState>,
    env: &ApplyEnv,
    index: u64,
    cmd: PlatformCommand,
) -> CommandResult {
    let PlatformCommand::CreateDataset { mut dataset, upload_id, chunks } = cmd else {
        return CommandResult::Refused(Refusal::conflict("internal: not a dataset upload"));
    };
    let _guard = env.blobs.guard();
    let parts = {
        let mut s = write(state);
        if s.platform.datasets.contains_key(&dataset.name) {
            // Drop the staged chunks too, so they are not kept for an hour.
            let _ = s.serving.catalog.take_staged(upload_id, chunks);
            return CommandResult::Refused(Refusal::conflict(format!("a dataset named {:?} exists", dataset.name)));
        }
        match s.serving.catalog.take_staged(upload_id, chunks) {
            Ok(parts) => parts,
            Err(e) => return CommandResult::Refused(Refusal::conflict(e)),
        }
    };
    match env.blobs.concat(&parts, &dataset.sha256) {
        Ok(size) => dataset.size_bytes = size,
        Err(BlobError::Mismatch { actual, .. }) => {
            return CommandResult::Refused(Refusal::conflict(format!(
                "sha256 of the file is {actual}, the upload said {}",
                dataset.sha256
            )))
        }
        Err(e) => {
            tracing::error!(index, dataset = %dataset.name, error = %e, "cannot assemble an uploaded dataset");
            return CommandResult::Refused(Refusal::conflict(format!("cannot assemble the file: {e}")));
        }
    }
    dataset.index = index;
    let mut s = write(state);
    s.platform.fold(index, &[b"dataset", dataset.name.as_bytes(), dataset.sha256.as_bytes()]);
    s.platform.datasets.insert(dataset.name.clone(), dataset.clone());
    tracing::info!(index, dataset = %dataset.name, rows = dataset.rows, "dataset created");
    CommandResult::Platform(PlatformResult::Dataset(dataset))
}
