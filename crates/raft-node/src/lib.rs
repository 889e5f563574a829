//! Raft replication for Boat.
//!
//! Every prediction, every model change and every checkpoint is an entry in
//! one replicated log; each node applies the committed entries to its own
//! state and its own ONNX Runtime (through `boat-serving`).
//!
//! Generic Raft plumbing, which knows no domain:
//! - [`types`]: openraft type configuration and the member record.
//! - [`payload`]: the versioned log entry payload (a command and a tag).
//! - [`format`]: format versions of everything written to disk or the wire.
//! - [`store`]: sled log and vote, the state machine and snapshot files.
//! - [`blobs`]: the content-addressed blob store on each node's disk.
//! - [`network`]: the tonic transport, the read-index client, fault injection.
//! - [`commit`]: tells a proposer when its entry commits.
//! - [`node`]: start-up, writes, status; [`reads`]: linearizable reads;
//!   [`leader`]: tasks that run only while this node leads; [`membership`]:
//!   adding (learner, then voter) and removing nodes; [`quorum`]: a
//!   leader that lost its majority stops taking writes.
//! - `background`: leader checkpoints and Raft metrics.
//!
//! The replicated state machine, by domain: [`domains`] (the command set,
//! the applied state and the dispatch), with [`domains::serving`]
//! (predictions, idempotency records, the model catalog, apps, batching),
//! [`domains::platform`] (users, roles, tokens, datasets) and
//! [`domains::integrity`] (state digest and checkpoints).

// openraft's storage traits fix `StorageError` (a large enum) as the error
// type; our helpers return the same type rather than box it twice.
#![allow(clippy::result_large_err)]

mod background;
pub mod blobs;
pub mod commit;
pub mod domains;
mod election;
#[cfg(test)]
mod fixtures;
pub mod format;
pub mod leader;
mod liveness;
pub mod membership;
pub mod network;
pub mod node;
pub mod payload;
pub mod quorum;
pub mod reads;
pub mod store;
pub mod types;

pub use domains::integrity::{Divergence, IntegrityCommand};
pub use domains::platform::{
    ColumnKind, Dataset, DatasetColumn, DatasetTask, PlatformCommand, PlatformResult, PlatformState, Role, TokenRecord,
    User,
};
pub use domains::serving::app_predict::MEMBERS_OUTPUT;
pub use domains::serving::command::sha256_hex;
pub use domains::serving::Batcher;
pub use domains::serving::{
    catalog, BatchConfig, Catalog, Executor, ModelChange, PredictOutcome, PredictRequest, PredictResult, Retention,
    ServingCommand, ServingResult, Target, Ticket, UploadChunk, UploadModel, ECHO_MODEL, UPLOAD_CHUNK_BYTES,
};
pub use domains::serving::{App, AppMember, AppPredictBatch, Apps};
pub use domains::{Command, CommandResult, Domains, Refusal, RefusalKind};
pub use membership::{Members, MembershipError};
pub use network::{FaultReport, Faults};
pub use node::{NodeConfig, NodeStatus, RaftNode, RaftTuning, StartError, WriteError};
pub use reads::ReadError;
pub use types::{check_host_port, BoatNode, NodeId};
