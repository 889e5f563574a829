//! Training for Boat: what a train job tunes and how a trial runs.
//!
//! - [`knobs`]: knob spaces (fixed, categorical, integer, float with log
//!   scale), knob values, validation and the unit-cube mapping advisors use.
//!
//! This crate knows nothing of Raft, HTTP or Docker: the replicated state
//! stores its types, the orchestrator drives it, and the worker process runs
//! one trial with it.

pub mod knobs;
