//! Raft replication for Boat.
//!
//! Every prediction is an entry in one replicated log; each node applies the
//! committed entries to its own ONNX Runtime (through `boat-serving`).
//!
//! Modules:
//! - [`types`]: openraft type configuration and the node address record.
//! - [`command`]: the replicated command set and its results.
//! - [`state`]: the deterministic applied state (idempotency records, digest).
//! - [`executor`]: runs predictions for the state machine.
//! - [`store`]: sled-backed log, vote and state machine with snapshots.
//! - [`network`]: the tonic transport and fault injection.
//! - [`node`]: a running node and the operations the HTTP layer calls.

pub mod command;
pub mod executor;
pub mod network;
pub mod node;
pub mod state;
pub mod store;
pub mod types;

pub use command::{Command, CommandResult, PredictCommand, PredictOutcome, PredictResult};
pub use executor::{Executor, ECHO_MODEL};
pub use network::{FaultReport, Faults};
pub use node::{NodeConfig, NodeStatus, RaftNode, RaftTuning, StartError, WriteError};
pub use state::Retention;
pub use types::{BoatNode, NodeId};
