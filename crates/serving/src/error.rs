//! The crate's one error type.

/// Everything that can go wrong while loading models or serving predictions.
///
/// Callers map these to transport codes: `InvalidInput` → 422 / `INVALID_ARGUMENT`,
/// `UnknownModel` → 404 / `NOT_FOUND`, `InvalidModel` → 400 / `INVALID_ARGUMENT` on upload,
/// `Runtime` and `Inference` → 500 / `INTERNAL`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServingError {
    /// ONNX Runtime could not be loaded or initialised (library missing, wrong version, ...).
    #[error("ONNX Runtime unavailable: {0}")]
    Runtime(String),

    /// The bytes are not a model ONNX Runtime can load, or the model uses inputs/outputs
    /// Boat cannot serve.
    #[error("invalid model: {0}")]
    InvalidModel(String),

    /// No model with this name and version is loaded on this node.
    #[error("unknown model '{name}' version {version}")]
    UnknownModel {
        /// Model name as requested.
        name: String,
        /// Model version as requested.
        version: u64,
    },

    /// The request does not fit the model (or is not a valid tensor); the message says how.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// ONNX Runtime failed while running a validated request.
    #[error("inference failed: {0}")]
    Inference(String),
}

impl ServingError {
    pub(crate) fn input(msg: impl Into<String>) -> Self {
        ServingError::InvalidInput(msg.into())
    }

    pub(crate) fn inference(err: impl std::fmt::Display) -> Self {
        ServingError::Inference(err.to_string())
    }
}
