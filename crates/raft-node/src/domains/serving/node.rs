//! The serving domain's operations on a running node.

use super::batcher::Ticket;
use super::command::PredictRequest;
use super::executor::Executor;
use crate::node::{RaftNode, WriteError};

impl RaftNode {
    /// Queues a validated prediction for the next batch entry.
    pub fn submit(&self, model: &str, version: Option<u64>, request: PredictRequest) -> Result<Ticket, WriteError> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        self.inner().batcher.submit(model, version, request)
    }

    /// This node's ONNX Runtime models and the runner the state machine uses.
    pub fn executor(&self) -> &Executor {
        &self.inner().executor
    }
}
