//! Training for Boat: what a train job tunes and how a trial runs.
//!
//! - [`knobs`]: knob spaces (fixed, categorical, integer, float with log
//!   scale), knob values, validation and the unit-cube mapping advisors use.
//! - [`advisor`]: deterministic advisors (random, TPE) that propose the knobs
//!   of a job's next trial from its results so far, plus search benchmarks.
//!
//! This crate knows nothing of Raft, HTTP or Docker: the replicated state
//! stores its types, the orchestrator drives it, and the worker process runs
//! one trial with it.

pub mod advisor;
pub mod knobs;
