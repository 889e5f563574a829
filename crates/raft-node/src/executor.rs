//! Runs predictions for the state machine on this node's ONNX Runtime.
//!
//! The executor turns a command's JSON text into a call on the serving
//! crate's registry and maps every failure to a deterministic
//! `PredictResult`, so that all replicas record the same outcome.

use boat_serving::{ModelRegistry, ServingError};

use crate::command::PredictResult;

/// Name of the model every node carries from its first start.
pub const ECHO_MODEL: &str = "echo";

/// Cheap to clone; shares the registry.
#[derive(Clone)]
pub struct Executor {
    registry: ModelRegistry,
}

impl Executor {
    /// Creates an executor and loads the built-in echo model.
    pub fn new(registry: ModelRegistry) -> Result<Self, ServingError> {
        registry.load(ECHO_MODEL, 1, boat_serving::ECHO_ONNX)?;
        Ok(Self { registry })
    }

    pub fn registry(&self) -> &ModelRegistry {
        &self.registry
    }

    /// Whether a model of that name can be served.
    pub fn has_model(&self, model: &str) -> bool {
        self.registry.meta(model, 1).is_some()
    }

    /// Runs one prediction. Blocking: call it off the async runtime.
    pub fn predict(&self, model: &str, input_json: &str) -> PredictResult {
        let input: serde_json::Value = match serde_json::from_str(input_json) {
            Ok(v) => v,
            Err(e) => return PredictResult::InvalidInput(format!("input is not JSON: {e}")),
        };
        match self.registry.predict_json(model, 1, &input) {
            Ok(out) => PredictResult::Output(out.to_string()),
            Err(ServingError::UnknownModel { name, .. }) => PredictResult::UnknownModel(name),
            Err(ServingError::InvalidInput(m)) => PredictResult::InvalidInput(m),
            Err(other) => PredictResult::ModelError(other.to_string()),
        }
    }
}
