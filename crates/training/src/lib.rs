//! Training for Boat: what a train job tunes and how a trial runs.
//!
//! - [`knobs`]: knob spaces (fixed, categorical, integer, float with log
//!   scale), knob values, validation and the unit-cube mapping advisors use.
//! - [`advisor`]: deterministic advisors (random, TPE) that propose the knobs
//!   of a job's next trial from its results so far, plus search benchmarks.
//! - [`data`]: CSV datasets read into dense feature matrices and targets,
//!   with the training set's standardisation.
//! - [`templates`]: the built-in model templates (MLP classifier and
//!   regressor, logistic regression), their knob spaces, and [`templates::train`],
//!   which trains one trial on the CPU and returns its checked ONNX model.
//! - [`onnx`]: ONNX types generated from `proto/onnx.proto`, a graph builder
//!   over them, the dense-network exporter, the model input/output contract,
//!   and the check of an export in ONNX Runtime.
//! - [`worker`]: the trial worker's environment-in, files-out contract, and
//!   [`worker::parse_log_line`] for reading any worker's stdout.
//!
//! This crate knows nothing of Raft, HTTP or Docker: the replicated state
//! stores its types, the orchestrator drives it, and the worker process runs
//! one trial with it.

pub mod advisor;
pub mod data;
pub mod knobs;
pub mod onnx;
pub mod templates;
pub mod worker;
