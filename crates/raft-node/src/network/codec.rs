//! Conversion between openraft's types and the protobuf envelope. The only
//! place that knows how payloads are encoded.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::pb::{raft_reply, RaftReply, RaftRequest};
use crate::types::NodeId;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("cannot encode payload: {0}")]
    Encode(String),
    #[error("cannot decode payload: {0}")]
    Decode(String),
    #[error("reply has no result")]
    Empty,
}

pub fn request<T: Serialize>(from: NodeId, client_addr: &str, body: &T) -> Result<RaftRequest, CodecError> {
    let payload = bincode::serialize(body).map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(RaftRequest { from, payload, client_addr: client_addr.to_string() })
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    bincode::deserialize(bytes).map_err(|e| CodecError::Decode(e.to_string()))
}

/// Encodes the receiving Raft's answer: a value, or the RaftError it raised.
pub fn reply<T: Serialize, E: Serialize>(result: Result<T, E>) -> Result<RaftReply, CodecError> {
    let result = match result {
        Ok(v) => raft_reply::Result::Ok(bincode::serialize(&v).map_err(|e| CodecError::Encode(e.to_string()))?),
        Err(e) => {
            raft_reply::Result::RaftError(serde_json::to_string(&e).map_err(|e| CodecError::Encode(e.to_string()))?)
        }
    };
    Ok(RaftReply { result: Some(result) })
}

/// Decodes a reply into the value or the remote RaftError.
pub fn open_reply<T: DeserializeOwned, E: DeserializeOwned>(reply: RaftReply) -> Result<Result<T, E>, CodecError> {
    match reply.result {
        Some(raft_reply::Result::Ok(bytes)) => Ok(Ok(decode(&bytes)?)),
        Some(raft_reply::Result::RaftError(json)) => {
            Ok(Err(serde_json::from_str(&json).map_err(|e| CodecError::Decode(e.to_string()))?))
        }
        None => Err(CodecError::Empty),
    }
}
