//! The serving domain's accessors on a running node.

use super::executor::Executor;
use crate::node::RaftNode;

impl RaftNode {
    /// This node's ONNX Runtime models and the runner the state machine uses.
    pub fn executor(&self) -> &Executor {
        &self.inner().env.executor
    }
}
