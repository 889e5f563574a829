//! Inbound Raft RPCs: decode, check fault injection, hand to openraft.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, VoteRequest, VoteResponse};
use tonic::{Request, Response, Status};

use super::addrs::ClientAddrs;
use super::beacon::Beacon;
use super::client::{Handover, PreVote};
use super::codec;
use super::faults::Faults;
use super::pb::raft_service_server::{RaftService, RaftServiceServer};
use super::pb::{RaftReply, RaftRequest};
use super::MAX_MESSAGE_BYTES;
use crate::election::ElectionClock;
use crate::types::{NodeId, Raft, TypeConfig};

/// The tonic service a node exposes on its Raft address.
#[derive(Clone)]
pub struct RaftGrpcService {
    raft: Raft,
    faults: Faults,
    /// Until then, vote requests are refused (see `new`).
    refuse_votes_until: Option<Instant>,
    /// Told of every accepted append, snapshot and granted vote, which
    /// keep this node from standing for election.
    clock: Arc<ElectionClock>,
    /// Learns every sender's advertised client address.
    addrs: Arc<ClientAddrs>,
}

impl RaftGrpcService {
    /// `refuse_votes_until` is set for a node that started without a
    /// stored vote. A wiped node has forgotten whom it voted for, so it
    /// could grant a second vote in a term where it already voted; refusing
    /// votes for two election timeouts after start outlasts any election
    /// that was running when it was wiped (a candidate moves to a new term
    /// when its election times out). A brand-new cluster merely elects its
    /// first leader a little later.
    pub(crate) fn new(
        raft: Raft,
        faults: Faults,
        refuse_votes_until: Option<Instant>,
        clock: Arc<ElectionClock>,
        addrs: Arc<ClientAddrs>,
    ) -> Self {
        Self { raft, faults, refuse_votes_until, clock, addrs }
    }

    /// The service wrapped with the message size limits both sides use.
    pub fn into_server(self) -> RaftServiceServer<Self> {
        RaftServiceServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// The pre-vote answer: yes only if this node would grant the real vote
    /// now. It does not while its own leader lease lasts (it heard from a
    /// leader lately, or leads), while it refuses votes after starting
    /// empty, or when the asker's log is behind its own.
    fn would_vote(&self, ask: &PreVote) -> bool {
        if self.refuse_votes_until.is_some_and(|until| Instant::now() < until) {
            return false;
        }
        if self.raft.metrics().borrow().state == openraft::ServerState::Leader || !self.clock.lease_expired() {
            return false;
        }
        let mine = self.raft.data_metrics().borrow().last_log;
        ask.last_log >= mine
    }

    /// Refuses traffic from a partitioned peer and adds injected delay.
    async fn admit(&self, req: Request<RaftRequest>) -> Result<RaftRequest, Status> {
        let req = req.into_inner();
        if self.faults.is_cut(req.from as NodeId) {
            return Err(Status::unavailable(format!("traffic from node {} is cut by fault injection", req.from)));
        }
        self.faults.apply_delay().await;
        self.addrs.learn(req.from as NodeId, &req.client_addr);
        Ok(req)
    }
}

fn bad_request(e: codec::CodecError) -> Status {
    Status::invalid_argument(e.to_string())
}

fn encode_failed(e: codec::CodecError) -> Status {
    Status::internal(e.to_string())
}

#[tonic::async_trait]
impl RaftService for RaftGrpcService {
    async fn append_entries(&self, req: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let req = self.admit(req).await?;
        let rpc: AppendEntriesRequest<TypeConfig> = codec::decode(&req.payload).map_err(bad_request)?;
        // A leader at least as new as the one this node follows is talking
        // to it: that is contact, however long the append then takes. (An
        // append whose flush outlasts the leader's timeout would otherwise
        // never count, and a follower on a slow disk would depose a leader
        // that is sending it entries all the time.)
        let current = rpc.vote >= self.raft.metrics().borrow().vote;
        let _work = current.then(|| self.clock.leader_work());
        let res = self.raft.append_entries(rpc).await;
        if matches!(
            res,
            Ok(AppendEntriesResponse::Success
                | AppendEntriesResponse::PartialSuccess(_)
                | AppendEntriesResponse::Conflict)
        ) {
            self.clock.heard_from_leader();
        }
        Ok(Response::new(codec::reply(res).map_err(encode_failed)?))
    }

    async fn vote(&self, req: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let req = self.admit(req).await?;
        let rpc: VoteRequest<NodeId> = codec::decode(&req.payload).map_err(bad_request)?;
        if self.refuse_votes_until.is_some_and(|until| Instant::now() < until) {
            tracing::info!(candidate = %rpc.vote, "refusing to vote: this node started without a stored vote moments ago");
            let vote = self.raft.metrics().borrow().vote;
            let refusal = VoteResponse { vote, vote_granted: false, last_log_id: None };
            let reply: Result<_, openraft::error::RaftError<NodeId>> = Ok(refusal);
            return Ok(Response::new(codec::reply(reply).map_err(encode_failed)?));
        }
        let res = self.raft.vote(rpc).await;
        if res.as_ref().is_ok_and(|r| r.vote_granted) {
            self.clock.heard_from_leader();
        }
        Ok(Response::new(codec::reply(res).map_err(encode_failed)?))
    }

    async fn read_index(&self, req: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        self.admit(req).await?;
        let res = self.raft.get_read_log_id().await.map(|(read, _applied)| read.map_or(0, |l| l.index));
        Ok(Response::new(codec::reply(res).map_err(encode_failed)?))
    }

    async fn handover(&self, req: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let req = self.admit(req).await?;
        let step: Handover = codec::decode(&req.payload).map_err(bad_request)?;
        let leader = self.raft.metrics().borrow().current_leader;
        // Only the current leader hands its leadership over.
        if leader != Some(req.from as NodeId) {
            let refusal: Result<(), String> = Err(format!("node {} is not this node's leader ({leader:?})", req.from));
            return Ok(Response::new(codec::reply(refusal).map_err(encode_failed)?));
        }
        let result: Result<(), String> = match step {
            Handover::PauseElections { ms } => {
                // Bounded, so a lost leader cannot leave this node unable to
                // ever start an election.
                let ms = ms.min(10_000);
                self.clock.pause(Duration::from_millis(ms), self.raft.metrics().borrow().current_term);
                tracing::info!(from = req.from, ms, "elections paused for a leadership handover");
                Ok(())
            }
            Handover::Elect => {
                tracing::info!(from = req.from, "standing for election: the leader hands over to this node");
                self.raft.trigger().elect().await.map_err(|e| e.to_string())
            }
        };
        Ok(Response::new(codec::reply(result).map_err(encode_failed)?))
    }

    async fn pre_vote(&self, req: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let req = self.admit(req).await?;
        let ask: PreVote = codec::decode(&req.payload).map_err(bad_request)?;
        let yes = self.would_vote(&ask);
        tracing::debug!(from = req.from, yes, "pre-vote");
        let answer: Result<bool, String> = Ok(yes);
        Ok(Response::new(codec::reply(answer).map_err(encode_failed)?))
    }

    async fn beacon(&self, req: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let req = self.admit(req).await?;
        let beacon: Beacon = codec::decode(&req.payload).map_err(bad_request)?;
        // Word from a leader this node follows, or from one of a later term
        // it has not heard an append from yet. (Votes of two nodes in one
        // term are not comparable: a candidate of the same term ignores it.)
        let follows = beacon.vote.is_committed() && beacon.vote >= self.raft.metrics().borrow().vote;
        if follows {
            self.clock.heard_from_leader();
        }
        let answer: Result<bool, String> = Ok(follows);
        Ok(Response::new(codec::reply(answer).map_err(encode_failed)?))
    }

    async fn install_snapshot(&self, req: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let req = self.admit(req).await?;
        let rpc: InstallSnapshotRequest<TypeConfig> = codec::decode(&req.payload).map_err(bad_request)?;
        // openraft writes the chunk into the snapshot file inside this call.
        // If the sender gives up and this handler is dropped halfway through
        // a write, openraft's idea of the file offset and the file's own
        // position disagree, and the retried chunk lands in the wrong place.
        // Run it as its own task, so it always completes.
        let raft = self.raft.clone();
        let sender = rpc.vote;
        // A chunk from a deposed leader is refused at once and holds nothing off.
        let work = (sender >= self.raft.metrics().borrow().vote).then(|| self.clock.leader_work());
        let res = tokio::spawn(async move {
            let _work = work;
            raft.install_snapshot(rpc).await
        })
        .await
        .map_err(|e| Status::internal(format!("installing a snapshot chunk: {e}")))?;
        // A leader is sending this node its state: no time to stand.
        // (openraft answers a stale leader Ok too, with its higher vote.)
        if res.as_ref().is_ok_and(|r| r.vote <= sender) {
            self.clock.heard_from_leader();
        }
        Ok(Response::new(codec::reply(res).map_err(encode_failed)?))
    }
}
