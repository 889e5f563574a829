//! The openraft type configuration and the node address record.

use serde::{Deserialize, Serialize};

use crate::domains::CommandResult;
use crate::payload::LogPayload;

/// Raft node ids are small integers: `0`, `1`, `2`, ...
pub type NodeId = u64;

/// What the cluster membership records about each node: where its Raft
/// transport listens and where its public HTTP API listens (used to redirect
/// clients to the leader).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoatNode {
    pub raft_addr: String,
    pub http_addr: String,
}

openraft::declare_raft_types!(
    /// Type configuration for Boat's Raft group. Snapshots are files on
    /// disk, streamed in chunks (see `store::snapshot`).
    pub TypeConfig:
        D = LogPayload,
        R = CommandResult,
        NodeId = NodeId,
        Node = BoatNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type Vote = openraft::Vote<NodeId>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, BoatNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<NodeId, BoatNode>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type RaftMetrics = openraft::RaftMetrics<NodeId, BoatNode>;
