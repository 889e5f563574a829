//! Durable storage: the Raft log and vote in sled (`log`), and the state
//! machine with its snapshots (`state_machine`). Both share one sled database
//! per node, at `<data-dir>/raft.sled`.

pub mod log;
pub mod state_machine;

pub use log::LogStore;
pub use state_machine::{StateMachineStore, StateView};
