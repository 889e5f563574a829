//! The Raft transport over tonic gRPC (`proto/raft.proto`): the outbound
//! client used by openraft (`client`), the inbound service (`server`), the
//! wire encoding (`codec`), the advertised client addresses every
//! message carries (`addrs`), the leader's beacons (`beacon`) and fault
//! injection shared by both (`faults`).

pub mod addrs;
pub mod beacon;
pub mod client;
pub mod codec;
pub mod faults;
pub mod server;

pub use addrs::ClientAddrs;
pub use beacon::{Beacon, Pulse};
pub use client::{Handover, NetworkFactory, PeerCalls, PreVote, ReadIndexError};
pub use faults::{FaultReport, Faults};
pub use server::RaftGrpcService;

/// Generated protobuf types and the tonic client and server.
pub mod pb {
    tonic::include_proto!("boat.raft.v1");
}

/// Largest gRPC message either side accepts: snapshots and large entries
/// (model uploads) travel as single messages.
pub const MAX_MESSAGE_BYTES: usize = 512 * 1024 * 1024;
