//! The serving domain's accessors on a running node.

use super::command::PredictOutcome;
use super::executor::Executor;
use crate::node::RaftNode;

impl RaftNode {
    /// This node's ONNX Runtime models and the runner the state machine uses.
    pub fn executor(&self) -> &Executor {
        &self.inner().env.executor
    }

    /// The recorded outcome of request `id`, from this node's state.
    pub fn prediction(&self, id: &str) -> Option<PredictOutcome> {
        let window = self.state().read().serving.records;
        self.inner().env.records.outcome(&window, id)
    }
}
