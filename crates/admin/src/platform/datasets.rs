//! Datasets: CSV uploads validated on the leader, stored in the blob store
//! through the log (like models), listed with their schema and statistics.

use std::collections::BTreeMap;

use boat_raft::{Command, CommandResult, Dataset, DatasetTask, PlatformCommand, PlatformResult};
use serde::Serialize;
use utoipa::ToSchema;

use super::csv_check;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::inference::now_ms;
use crate::models::check_name;
use crate::server::AppState;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ColumnView {
    pub name: String,
    /// `numeric` or `categorical`.
    pub kind: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DatasetView {
    pub name: String,
    pub owner: u64,
    /// `classification` or `regression`.
    pub task: String,
    pub columns: Vec<ColumnView>,
    pub target: String,
    pub rows: u64,
    pub size_bytes: u64,
    pub sha256: String,
    /// Rows per class (classification only).
    pub class_counts: BTreeMap<String, u64>,
    pub uploaded_at_ms: u64,
    pub index: u64,
}

impl From<&Dataset> for DatasetView {
    fn from(d: &Dataset) -> Self {
        let kind = |k: boat_raft::ColumnKind| match k {
            boat_raft::ColumnKind::Numeric => "numeric",
            boat_raft::ColumnKind::Categorical => "categorical",
        };
        Self {
            name: d.name.clone(),
            owner: d.owner,
            task: d.task.as_str().into(),
            columns: d.columns.iter().map(|c| ColumnView { name: c.name.clone(), kind: kind(c.kind).into() }).collect(),
            target: d.target.clone(),
            rows: d.rows,
            size_bytes: d.size_bytes,
            sha256: d.sha256.clone(),
            class_counts: d.class_counts.clone(),
            uploaded_at_ms: d.uploaded_at_ms,
            index: d.index,
        }
    }
}

/// Parses a task name.
pub fn parse_task(task: Option<&str>) -> Result<DatasetTask, ApiError> {
    match task {
        None | Some("") => Ok(DatasetTask::Classification),
        Some(t) => DatasetTask::parse(t)
            .ok_or_else(|| ApiError::unprocessable(format!("task must be classification or regression, not {t:?}"))),
    }
}

impl AppState {
    /// Validates and stores a CSV dataset.
    pub async fn upload_dataset(
        &self,
        who: &Principal,
        name: &str,
        task: DatasetTask,
        target: Option<String>,
        bytes: Vec<u8>,
    ) -> Result<DatasetView, ApiError> {
        check_name(name)?;
        self.require_leader()?;
        if self.node.state().read().platform.datasets.contains_key(name) {
            return Err(ApiError::conflict(format!("a dataset named {name:?} exists")));
        }
        let (summary, bytes) =
            tokio::task::spawn_blocking(move || (csv_check::check(&bytes, task, target.as_deref()), bytes))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?;
        let summary = summary.map_err(ApiError::unprocessable)?;
        let sha256 = boat_raft::sha256_hex(&bytes);
        let (upload_id, chunks) = self.stage_upload(&bytes, "GET /api/datasets").await?;
        let dataset = Dataset {
            name: name.to_string(),
            owner: who.user_id,
            task,
            columns: summary.columns,
            target: summary.target,
            rows: summary.rows,
            size_bytes: bytes.len() as u64,
            sha256,
            class_counts: summary.class_counts,
            uploaded_at_ms: now_ms(),
            index: 0,
        };
        let cmd = PlatformCommand::CreateDataset { dataset, upload_id, chunks };
        match self.append(Command::Platform(cmd), "GET /api/datasets").await? {
            CommandResult::Platform(PlatformResult::Dataset(d)) => {
                tracing::info!(dataset = %d.name, rows = d.rows, by = %who.email, "dataset uploaded");
                Ok(DatasetView::from(&d))
            }
            other => Err(ApiError::internal(format!("unexpected result {other:?}"))),
        }
    }

    /// The datasets `who` may see.
    pub fn list_datasets(&self, who: &Principal) -> Vec<DatasetView> {
        let state = self.node.state().read();
        state.platform.datasets.values().filter(|d| who.sees(d.owner)).map(DatasetView::from).collect()
    }

    pub fn find_dataset(&self, who: &Principal, name: &str) -> Result<Dataset, ApiError> {
        let state = self.node.state().read();
        state
            .platform
            .datasets
            .get(name)
            // Someone else's dataset is as good as absent.
            .filter(|d| who.sees(d.owner))
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("no dataset {name:?}")))
    }

    pub async fn delete_dataset(&self, who: &Principal, name: &str) -> Result<DatasetView, ApiError> {
        let d = self.find_dataset(who, name)?;
        let cmd = PlatformCommand::DeleteDataset { name: name.to_string() };
        self.append(Command::Platform(cmd), "GET /api/datasets").await?;
        tracing::info!(dataset = %name, by = %who.email, "dataset deleted");
        Ok(DatasetView::from(&d))
    }
}
