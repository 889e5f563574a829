//! Raft replication for Boat.
//!
//! Every prediction and every model change is an entry in one replicated
//! log; each node applies the committed entries to its own ONNX Runtime
//! (through `boat-serving`).
//!
//! Modules:
//! - [`types`]: openraft type configuration and the node address record.
//! - [`command`]: the replicated command set and its results.
//! - [`catalog`]: the replicated model catalog (versions and defaults).
//! - [`state`]: the deterministic applied state (records, digest, checkpoints).
//! - [`apply`]: applying committed entries, with batched inference.
//! - [`executor`]: runs predictions and keeps loaded models in step with the catalog.
//! - [`batcher`]: leader-side packing of concurrent requests into one entry.
//! - [`commit`]: tells a proposer when its entry commits.
//! - [`store`]: sled-backed log, vote and state machine with snapshots.
//! - [`network`]: the tonic transport and fault injection.
//! - [`node`]: a running node and the operations the HTTP layer calls.
//! - `background`: leader checkpoints and Raft metrics.

// openraft's storage traits fix `StorageError` (a large enum) as the error
// type; our helpers return the same type rather than box it twice.
#![allow(clippy::result_large_err)]

pub mod apply;
mod background;
pub mod batcher;
pub mod catalog;
pub mod command;
pub mod commit;
pub mod executor;
pub mod network;
pub mod node;
pub mod state;
pub mod store;
pub mod types;

pub use batcher::{BatchConfig, Ticket};
pub use catalog::Catalog;
pub use command::{
    Command, CommandResult, ModelChange, PredictOutcome, PredictRequest, PredictResult, Refusal, RefusalKind,
    UploadChunk, UploadModel, UPLOAD_CHUNK_BYTES,
};
pub use executor::{Executor, ECHO_MODEL};
pub use network::{FaultReport, Faults};
pub use node::{NodeConfig, NodeStatus, RaftNode, RaftTuning, StartError, WriteError};
pub use state::{Divergence, Retention};
pub use types::{BoatNode, NodeId};
