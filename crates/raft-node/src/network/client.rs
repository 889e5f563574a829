//! Outbound Raft RPCs: one lazily connected tonic channel per peer for
//! openraft's replication, and the read-index client that followers use to
//! serve linearizable reads.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use super::addrs::ClientAddrs;
use super::beacon::{Beacon, Pulse};
use super::codec;
use super::faults::Faults;
use super::pb::raft_service_client::RaftServiceClient;
use super::pb::{RaftReply, RaftRequest};
use super::MAX_MESSAGE_BYTES;
use crate::types::{BoatNode, LogId, NodeId, TypeConfig};

/// Creates per-peer clients for openraft.
#[derive(Clone)]
pub struct NetworkFactory {
    self_id: NodeId,
    faults: Faults,
    addrs: Arc<ClientAddrs>,
    pulse: Pulse,
}

impl NetworkFactory {
    pub fn new(self_id: NodeId, faults: Faults, addrs: Arc<ClientAddrs>, pulse: Pulse) -> Self {
        Self { self_id, faults, addrs, pulse }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BoatNode) -> PeerClient {
        PeerClient {
            self_id: self.self_id,
            target,
            addr: node.raft_addr.clone(),
            faults: self.faults.clone(),
            addrs: self.addrs.clone(),
            pulse: self.pulse.clone(),
            client: None,
        }
    }
}

/// The connection to one peer.
pub struct PeerClient {
    self_id: NodeId,
    target: NodeId,
    addr: String,
    faults: Faults,
    addrs: Arc<ClientAddrs>,
    pulse: Pulse,
    client: Option<RaftServiceClient<Channel>>,
}

#[derive(Debug, thiserror::Error)]
enum TransportError {
    #[error("traffic to node {0} is cut by fault injection")]
    Partitioned(NodeId),
    #[error("bad peer address {0:?}: {1}")]
    BadAddress(String, String),
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

/// A lazily connected client for the peer at `addr`.
fn connect(addr: &str) -> Result<RaftServiceClient<Channel>, TransportError> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| TransportError::BadAddress(addr.to_string(), e.to_string()))?
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true);
    Ok(RaftServiceClient::new(endpoint.connect_lazy())
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

#[derive(Clone, Copy)]
enum Rpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, BoatNode, RaftError<NodeId, E>>>;

fn unreachable<E: std::error::Error>(e: &(impl std::error::Error + 'static)) -> RPCError<NodeId, BoatNode, E> {
    RPCError::Unreachable(Unreachable::new(e))
}

impl PeerClient {
    fn client(&mut self) -> Result<RaftServiceClient<Channel>, TransportError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let client = connect(&self.addr)?;
        self.client = Some(client.clone());
        Ok(client)
    }

    async fn call<Req, Resp, E>(&mut self, rpc: Rpc, body: &Req, ttl: Duration) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        if self.faults.is_cut(self.target) {
            return Err(unreachable(&TransportError::Partitioned(self.target)));
        }
        self.faults.apply_delay().await;
        let request = codec::request(self.self_id, self.addrs.own(), body)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut client = self.client().map_err(|e| unreachable(&e))?;
        let send = async move {
            match rpc {
                Rpc::AppendEntries => client.append_entries(request).await,
                Rpc::Vote => client.vote(request).await,
                Rpc::InstallSnapshot => client.install_snapshot(request).await,
            }
        };
        let reply = match tokio::time::timeout(ttl, send).await {
            Err(_) => return Err(RPCError::Network(NetworkError::new(&TransportError::TimedOut(ttl)))),
            Ok(Err(status)) => return Err(unreachable(&status)),
            Ok(Ok(reply)) => reply.into_inner(),
        };
        match codec::open_reply::<Resp, RaftError<NodeId, E>>(reply) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(remote)) => Err(RPCError::RemoteError(RemoteError::new(self.target, remote))),
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

/// How long openraft waits before calling a peer again after it could not
/// be reached. openraft's default is 500 ms; a restarted or healed follower
/// would by then have stood for election (see `election`), and its higher
/// term would depose the leader.
pub(crate) const RETRY_UNREACHABLE: Duration = Duration::from_millis(100);

impl RaftNetwork<TypeConfig> for PeerClient {
    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(RETRY_UNREACHABLE))
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        self.pulse.sent(self.target);
        self.call(Rpc::AppendEntries, &rpc, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(Rpc::InstallSnapshot, &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        self.call(Rpc::Vote, &rpc, option.hard_ttl()).await
    }
}

/// Why the leader's read index could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadIndexError {
    #[error("the leader cannot be reached: {0}")]
    Unreachable(String),
    #[error("node {asked} no longer leads")]
    NotLeader { asked: NodeId, leader: Option<NodeId> },
    #[error("the leader cannot confirm it still leads: {0}")]
    NoQuorum(String),
}

/// The node's own calls to one peer outside openraft's replication: the
/// leader's read index, the steps of a leadership handover, the pre-vote
/// and the leader's beacons. They honour
/// fault injection like the rest of the transport. Keeps one channel per
/// peer address.
#[derive(Clone)]
pub struct PeerCalls {
    self_id: NodeId,
    faults: Faults,
    addrs: Arc<ClientAddrs>,
    clients: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, RaftServiceClient<Channel>>>>,
}

impl PeerCalls {
    pub fn new(self_id: NodeId, faults: Faults, addrs: Arc<ClientAddrs>) -> Self {
        Self { self_id, faults, addrs, clients: Default::default() }
    }

    fn client(&self, addr: &str) -> Result<RaftServiceClient<Channel>, TransportError> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(addr) {
            return Ok(c.clone());
        }
        let c = connect(addr)?;
        clients.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    pub async fn read_index(&self, leader: NodeId, addr: &str, ttl: Duration) -> Result<u64, ReadIndexError> {
        use openraft::error::CheckIsLeaderError;
        let unreachable = |e: &dyn std::fmt::Display| ReadIndexError::Unreachable(e.to_string());
        if self.faults.is_cut(leader) {
            return Err(unreachable(&TransportError::Partitioned(leader)));
        }
        self.faults.apply_delay().await;
        let request = codec::request(self.self_id, self.addrs.own(), &()).map_err(|e| unreachable(&e))?;
        let mut client = self.client(addr).map_err(|e| unreachable(&e))?;
        let reply = match tokio::time::timeout(ttl, client.read_index(request)).await {
            Err(_) => return Err(unreachable(&TransportError::TimedOut(ttl))),
            Ok(Err(status)) => return Err(unreachable(&status)),
            Ok(Ok(reply)) => reply.into_inner(),
        };
        match codec::open_reply::<u64, RaftError<NodeId, CheckIsLeaderError<NodeId, BoatNode>>>(reply) {
            Ok(Ok(index)) => Ok(index),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                Err(ReadIndexError::NotLeader { asked: leader, leader: f.leader_id })
            }
            Ok(Err(other)) => Err(ReadIndexError::NoQuorum(other.to_string())),
            Err(e) => Err(unreachable(&e)),
        }
    }

    /// Asks a voter whether it would vote for this node now; any failure
    /// to get an answer counts as no.
    pub async fn pre_vote(&self, peer: NodeId, addr: &str, ask: &PreVote, ttl: Duration) -> bool {
        let answer = self.ask(peer, addr, ask, ttl, |mut c, r| async move { c.pre_vote(r).await }).await;
        matches!(answer, Ok(true))
    }

    /// Sends the leader's beacon to a peer: whether the peer follows it.
    pub async fn beacon(&self, peer: NodeId, addr: &str, beacon: &Beacon, ttl: Duration) -> bool {
        let answer = self.ask(peer, addr, beacon, ttl, |mut c, r| async move { c.beacon(r).await }).await;
        matches!(answer, Ok(true))
    }

    /// Sends one handover step to a peer and waits for its answer.
    pub async fn handover(&self, peer: NodeId, addr: &str, step: &Handover, ttl: Duration) -> Result<(), String> {
        self.ask(peer, addr, step, ttl, |mut c, r| async move { c.handover(r).await }).await
    }

    /// One of Boat's own calls (`rpc`) to a peer, within `ttl`: the answer
    /// is a bincode `Result<T, String>`, and every failure on the way
    /// becomes the `String`.
    async fn ask<B, T, F, Fut>(&self, peer: NodeId, addr: &str, body: &B, ttl: Duration, rpc: F) -> Result<T, String>
    where
        B: Serialize,
        T: DeserializeOwned,
        F: FnOnce(RaftServiceClient<Channel>, RaftRequest) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<RaftReply>, tonic::Status>>,
    {
        if self.faults.is_cut(peer) {
            return Err(TransportError::Partitioned(peer).to_string());
        }
        self.faults.apply_delay().await;
        let request = codec::request(self.self_id, self.addrs.own(), body).map_err(|e| e.to_string())?;
        let client = self.client(addr).map_err(|e| e.to_string())?;
        let reply = match tokio::time::timeout(ttl, rpc(client, request)).await {
            Err(_) => return Err(TransportError::TimedOut(ttl).to_string()),
            Ok(Err(status)) => return Err(status.message().to_string()),
            Ok(Ok(reply)) => reply.into_inner(),
        };
        codec::open_reply::<T, String>(reply).map_err(|e| e.to_string())?
    }
}

/// A follower's question before it stands for election (see
/// `election::stand_for_election`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PreVote {
    /// The asker's last log id: a peer with a longer log would refuse the
    /// real vote, so it refuses this one too.
    pub last_log: Option<LogId>,
}

/// One step of a leadership handover, sent by the leader to a peer.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Handover {
    /// Do not start an election of your own for this long: the leader is
    /// about to go quiet so that the chosen voter can win one.
    PauseElections { ms: u64 },
    /// Stand for election now.
    Elect,
}
