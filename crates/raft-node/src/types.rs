//! The openraft type configuration and the node address record.

use serde::{Deserialize, Serialize};

use crate::domains::CommandResult;
use crate::payload::LogPayload;

/// Raft node ids are small integers: `0`, `1`, `2`, ...
pub type NodeId = u64;

/// What the cluster membership records about each node: where its peers
/// reach its Raft transport and its HTTP API (also where clients are
/// redirected, unless the node advertises another address; see
/// `network::addrs`). Hosts may be names (a container's, on its network)
/// or IP addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoatNode {
    pub raft_addr: String,
    pub http_addr: String,
}

/// Checks that `addr` is `HOST:PORT`, the host an IP address (IPv6 in
/// brackets) or a DNS name.
pub fn check_host_port(addr: &str) -> Result<(), String> {
    let bad = || format!("{addr:?} is not HOST:PORT");
    if addr.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    port.parse::<u16>().map_err(|_| bad())?;
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(bad());
    }
    Ok(())
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
