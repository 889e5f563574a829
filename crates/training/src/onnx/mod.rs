//! ONNX export: the generated ONNX types, a small graph builder over them,
//! and the exporter of trained dense networks.
//!
//! - [`proto`]: Rust types generated at build time from `proto/onnx.proto`
//!   (the subset of the ONNX format Boat writes, with the format's own field
//!   numbers).
//! - [`builder`]: [`GraphBuilder`], which names values, adds initializers and
//!   nodes (Gemm, MatMul, Add, Sub, Mul, Div, Relu, Tanh, Softmax, ArgMax,
//!   Gather, Cast, Identity), and [`model_bytes`], which wraps a graph into a
//!   model file.
//! - [`dense`]: [`DenseNetwork`], a trained multi-layer perceptron (or linear
//!   model) with its standardisation, and [`DenseNetwork::to_onnx`].
//! - [`verify`]: runs an export in ONNX Runtime through boat-serving and
//!   compares it with what the trained network computed.
//!
//! # The model contract
//!
//! Every model the built-in templates export has the same shape, so a client
//! can call any of them alike:
//!
//! - one input, `input`: float32 `[batch, n_features]`, the raw features in
//!   the training file's column order (without the target); `batch` is a
//!   symbolic dimension, so any number of rows may be sent at once.
//!   Standardisation with the training set's mean and standard deviation
//!   happens inside the model.
//! - classifiers have two outputs:
//!   - `label`: int64 `[batch]`, the predicted class label itself (not its
//!     index), which is why a classifier's labels must all be integers;
//!   - `probabilities`: float32 `[batch, n_classes]`, the softmax of the
//!     scores, columns in the order of the sorted class labels.
//! - regressors have one output, `prediction`: float32 `[batch, 1]`, in the
//!   target's own units.
//!
//! Files use IR version [`IR_VERSION`] and the default operator set at
//! version [`OPSET_VERSION`].

pub mod builder;
pub mod dense;
pub mod verify;

/// Types generated from `proto/onnx.proto`.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

pub use builder::{model_bytes, Dim, GraphBuilder};
pub use dense::{Activation, DenseLayer, DenseNetwork, Head};

/// The ONNX IR version of exported files (8: the 2021 format, read by every
/// ONNX Runtime since 1.10).
pub const IR_VERSION: i64 = 8;

/// The version of the default operator set exported graphs use.
pub const OPSET_VERSION: i64 = 17;

/// Why a network could not be exported.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExportError {
    #[error("cannot export this model: {0}")]
    Invalid(String),
}
