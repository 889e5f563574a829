//! A running Raft node: wires storage, network and openraft together, and
//! offers the generic operations the HTTP layer needs (write a command,
//! read status, inject faults). It knows no domain: the caller hands it the
//! domains' node-local parts (`Domains`), which it passes to the state
//! machine. Linearizable reads are in `reads`, leader-only tasks in
//! `leader`, and the serving domain's accessors in `domains::serving::node`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{Config, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::blobs::BlobStore;
use crate::commit::CommitTracker;
use crate::domains::integrity::Divergence;
use crate::domains::{ApplyEnv, Command, CommandResult, Domains};
use crate::election::ElectionClock;
use crate::network::{ClientAddrs, FaultReport, Faults, NetworkFactory, PeerCalls, Pulse, RaftGrpcService};
use crate::payload::LogPayload;
use crate::quorum::QuorumClock;
use crate::store::{LogStore, StateMachineStore, StateView};
use crate::types::{BoatNode, NodeId, Raft};

/// Timing and compaction knobs. openraft 0.9 gives every AppendEntries one
/// heartbeat interval to complete (send, store, flush, answer), so the
/// heartbeat must stay well above the worst append round trip. A follower
/// refuses votes for `election_max_ms` after it last heard from the leader
/// (the leader lease), and stands for election itself after that lease and a
/// random part of `election_max_ms - election_min_ms` (see `election`); a
/// leader that has not heard from a majority for `election_max_ms` refuses
/// writes. Word from the leader is its appends and its beacons, sent every
/// half heartbeat by a thread of their own (see `network::beacon`): on a
/// busy two-core machine openraft's core has gone 350 to 700 ms without a
/// heartbeat while it waited on a flush, which would depose the leader
/// under this lease if heartbeats were all followers heard.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftTuning {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// Build a snapshot after this many entries since the last one.
    pub snapshot_every: u64,
    /// Entries kept in the log below the snapshot, so that a follower that
    /// is only a little behind catches up from the log, not a snapshot.
    pub keep_after_snapshot: u64,
}

impl Default for RaftTuning {
    fn default() -> Self {
        Self {
            heartbeat_ms: 100,
            election_min_ms: 150,
            election_max_ms: 250,
            snapshot_every: 5000,
            keep_after_snapshot: 1000,
        }
    }
}

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: NodeId,
    /// Address the Raft gRPC service binds to.
    pub raft_listen: SocketAddr,
    /// Every voter of the cluster, this node included.
    pub members: BTreeMap<NodeId, BoatNode>,
    pub data_dir: PathBuf,
    pub tuning: RaftTuning,
    /// How often the leader proposes a checkpoint of its digest.
    pub checkpoint_every: Duration,
    /// Join a running cluster instead of founding one: an empty node does
    /// not propose `members` and waits for the leader to add it.
    pub join: bool,
    /// The HTTP address clients reach this node at, when it is not the one
    /// in `members` (a node in a container behind a published port).
    pub advertise_http: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the data directory {0}: {1}")]
    Storage(PathBuf, String),
    #[error("cannot use the data directory {0}: {1}")]
    Format(PathBuf, crate::format::FormatError),
    #[error("cannot bind the Raft address {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("invalid Raft configuration: {0}")]
    Config(String),
    #[error("node {0} is not in the member list")]
    NotAMember(NodeId),
    #[error("raft failed to start: {0}")]
    Raft(String),
    #[error("cannot start the beacon thread: {0}")]
    Thread(std::io::Error),
}

/// Why a write was not applied here.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("this node is not the leader")]
    NotLeader { leader_id: Option<NodeId>, leader_http: Option<String> },
    #[error("too many requests are queued")]
    Overloaded,
    #[error("leadership was lost before the entry committed")]
    Lost,
    #[error("this leader has not heard from a majority for {0:?}; it may be cut off from the cluster")]
    NoQuorum(Duration),
    #[error("this leader is handing its leadership to another node")]
    HandingOver,
    #[error("raft stopped: {0}")]
    Fatal(String),
}

/// Size of one InstallSnapshot message, and how long it may take.
const SNAPSHOT_CHUNK_BYTES: u64 = 1024 * 1024;
const INSTALL_SNAPSHOT_TIMEOUT_MS: u64 = 5_000;

/// Most bytes sled keeps cached in memory, per database. sled counts a
/// page by its size on disk, and its in-memory form is a few times larger,
/// so these are a fraction of the memory they cost. The log's database
/// holds only the commit and format markers (the entries are in segment
/// files, read back through the page cache); the records' cache holds the
/// buckets and runs of recent requests.
const META_CACHE_BYTES: u64 = 1024 * 1024;
const RECORDS_CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// Entries held in the log, from the last index and the purge point
/// (entries start at index 0, and purging removes everything up to and
/// including its index). Counting the sled tree instead is a full scan.
fn held_entries(last: Option<u64>, purged: Option<u64>) -> usize {
    match (last, purged) {
        (None, _) => 0,
        (Some(last), None) => last as usize + 1,
        (Some(last), Some(p)) => last.saturating_sub(p) as usize,
    }
}

/// Per-member line of `/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberStatus {
    pub id: NodeId,
    pub raft_addr: String,
    pub http_addr: String,
}

/// A node's view of itself and the cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node_id: NodeId,
    /// The HTTP address clients reach this node at (its advertised
    /// address, else its membership record).
    #[serde(default)]
    pub client_http: String,
    pub is_leader: bool,
    pub state: String,
    pub leader_id: Option<NodeId>,
    pub leader_http: Option<String>,
    pub term: u64,
    pub commit_index: u64,
    pub last_applied: u64,
    pub last_log_index: u64,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
    pub log_entries: usize,
    pub members: Vec<MemberStatus>,
    /// Ids of the members that vote (the others are learners).
    #[serde(default)]
    pub voters: Vec<NodeId>,
    /// The state digest at `last_applied`: a running SHA-256 over every
    /// domain's results (see `domains::integrity`).
    pub state_digest: String,
    pub predictions_run: u64,
    pub idempotency_records: usize,
    /// Set when a leader checkpoint showed this replica computed something
    /// different from the leader.
    pub divergence: Option<Divergence>,
    pub faults: FaultReport,
}

/// A started node. Cheap to clone.
#[derive(Clone)]
pub struct RaftNode {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) id: NodeId,
    pub(crate) raft: Raft,
    pub(crate) log: LogStore,
    pub(crate) state: StateView,
    pub(crate) env: ApplyEnv,
    pub(crate) tracker: CommitTracker,
    pub(crate) faults: Faults,
    pub(crate) peers: PeerCalls,
    pub(crate) addrs: Arc<ClientAddrs>,
    /// When this node last heard from a leader (see `election`).
    pub(crate) clock: Arc<ElectionClock>,
    /// While set and in the future, this leader is handing over its
    /// leadership and refuses writes (see `membership::transfer_leader`).
    pub(crate) handover_until: std::sync::Mutex<Option<Instant>>,
    pub(crate) quorum: QuorumClock,
    /// How long a leader may go without a majority's acknowledgement
    /// before it refuses writes (see `quorum`).
    pub(crate) check_quorum: Duration,
    /// Cancelled when the node shuts down; every background task and
    /// leader task stops with it.
    pub(crate) shutdown: CancellationToken,
}

impl RaftNode {
    /// Opens storage, binds the Raft transport, starts openraft and, on a
    /// node with an empty log, proposes the static membership.
    pub async fn start(cfg: NodeConfig, domains: Domains) -> Result<Self, StartError> {
        if !cfg.members.contains_key(&cfg.id) {
            return Err(StartError::NotAMember(cfg.id));
        }
        let storage_err = |e: &dyn std::fmt::Display| StartError::Storage(cfg.data_dir.clone(), e.to_string());
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| storage_err(&e))?;
        let db = sled::Config::new()
            .path(cfg.data_dir.join(crate::store::SLED_DIR))
            .cache_capacity(META_CACHE_BYTES)
            .open()
            .map_err(|e| storage_err(&e))?;
        let found = crate::store::check_format(&db).map_err(|e| match e {
            crate::store::OpenError::Format(f) => StartError::Format(cfg.data_dir.clone(), f),
            crate::store::OpenError::Sled(s) => storage_err(&s),
        })?;
        let tracker = CommitTracker::default();
        let faults = Faults::default();
        let log =
            LogStore::open(&db, &cfg.data_dir, found, tracker.clone(), faults.clone()).map_err(|e| storage_err(&e))?;
        // A node without a stored vote is new or was wiped (all of it, or
        // only its log); see `RaftGrpcService`'s
        // `refuse_votes_until`.
        let fresh = !log.has_vote();
        let blobs = BlobStore::open(cfg.data_dir.join("blobs")).map_err(|e| storage_err(&e))?;
        // Domain records live in a database of their own, so that the log's
        // flush before every acknowledgement does not carry them: they need
        // to be on disk only when a snapshot refers to them, and the state
        // machine flushes them then.
        let records_db = sled::Config::new()
            .path(cfg.data_dir.join(crate::store::RECORDS_DIR))
            .cache_capacity(RECORDS_CACHE_BYTES)
            .open()
            .map_err(|e| storage_err(&e))?;
        let records = crate::domains::serving::RecordStore::open(&records_db).map_err(|e| storage_err(&e))?;
        let env = ApplyEnv::new(domains, blobs, records);
        let sm = StateMachineStore::open(&cfg.data_dir, &records_db, env.clone()).map_err(|e| storage_err(&e))?;
        let state = sm.view();

        let t = &cfg.tuning;
        let config = Config {
            cluster_name: "boat".into(),
            heartbeat_interval: t.heartbeat_ms,
            election_timeout_min: t.election_min_ms,
            election_timeout_max: t.election_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(t.snapshot_every),
            max_in_snapshot_log_to_keep: t.keep_after_snapshot,
            // Snapshots carry model files: send them in 1 MiB pieces, each
            // with time to spare on a busy machine. A piece that times out
            // makes openraft start the whole transfer again.
            snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
            install_snapshot_timeout: INSTALL_SNAPSHOT_TIMEOUT_MS,
            // `election::stand_for_election` decides when to stand.
            enable_elect: false,
            ..Default::default()
        }
        .validate()
        .map_err(|e| StartError::Config(e.to_string()))?;

        let own_http = cfg.advertise_http.clone().unwrap_or_else(|| cfg.members[&cfg.id].http_addr.clone());
        let addrs = Arc::new(ClientAddrs::new(cfg.id, own_http));
        let pulse = Pulse::default();
        let network = NetworkFactory::new(cfg.id, faults.clone(), addrs.clone(), pulse.clone());
        let raft = Raft::new(cfg.id, Arc::new(config), network, log.clone(), sm)
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;

        let listener = TcpListener::bind(cfg.raft_listen).await.map_err(|e| StartError::Bind(cfg.raft_listen, e))?;
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let grace = fresh.then(|| Instant::now() + Duration::from_millis(2 * t.election_max_ms));
        let clock = Arc::new(ElectionClock::new(Duration::from_millis(t.election_max_ms)));
        let service =
            RaftGrpcService::new(raft.clone(), faults.clone(), grace, clock.clone(), addrs.clone()).into_server();
        tokio::spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            let signal = async move { stop.cancelled().await };
            if let Err(e) = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, signal)
                .await
            {
                tracing::error!(error = %e, "raft transport stopped");
            }
        });

        let initialized = raft.is_initialized().await.map_err(|e| StartError::Raft(e.to_string()))?;
        if !initialized && cfg.join {
            tracing::info!("empty node joining a running cluster: waiting for the leader to add it");
        } else if !initialized {
            // Every node of a fresh cluster proposes the same membership at
            // log index 0; openraft treats identical proposals as one. A node
            // whose data was wiped does the same and then follows the leader,
            // which has a longer log and a higher term.
            match raft.initialize(cfg.members.clone()).await {
                Ok(()) => {
                    tracing::info!(members = ?cfg.members.keys().collect::<Vec<_>>(), "initialized membership")
                }
                Err(e) => tracing::info!(error = %e, "membership already initialized elsewhere"),
            }
        }

        let peers = PeerCalls::new(cfg.id, faults.clone(), addrs.clone());
        let check_quorum = Duration::from_millis(cfg.tuning.election_max_ms);
        let quorum = QuorumClock::default();
        let inner = Inner {
            id: cfg.id,
            raft,
            log,
            state,
            env,
            tracker,
            faults,
            peers,
            addrs,
            clock: clock.clone(),
            handover_until: Default::default(),
            quorum,
            check_quorum,
            shutdown,
        };
        let node = Self { inner: Arc::new(inner) };
        tokio::spawn(crate::election::stand_for_election(
            node.inner.raft.clone(),
            cfg.id,
            clock,
            node.inner.peers.clone(),
            Duration::from_millis(t.election_max_ms - t.election_min_ms),
            node.inner.shutdown.clone(),
        ));
        crate::liveness::Beacons {
            raft: node.inner.raft.clone(),
            id: cfg.id,
            faults: node.inner.faults.clone(),
            addrs: node.inner.addrs.clone(),
            pulse,
            quorum: node.inner.quorum.clone(),
            every: Duration::from_millis((t.heartbeat_ms / 2).max(10)),
            allowance: Duration::from_millis((4 * t.election_max_ms).max(1000)),
        }
        .spawn(node.inner.shutdown.clone())
        .map_err(StartError::Thread)?;
        let every = cfg.checkpoint_every;
        node.spawn_leader_task("checkpoints", move |node, stop| crate::background::checkpoints(node, every, stop));
        tokio::spawn(crate::background::raft_metrics(node.clone()));
        Ok(node)
    }

    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// Shared with proposers that wait for their entry's commit.
    pub fn commit_tracker(&self) -> &CommitTracker {
        &self.inner.tracker
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    pub(crate) fn log_store(&self) -> &LogStore {
        &self.inner.log
    }

    /// Resolves when the node is shutting down.
    pub(crate) async fn stopped(&self) {
        self.inner.shutdown.cancelled().await
    }

    pub fn is_leader(&self) -> bool {
        self.inner.raft.metrics().borrow().state == ServerState::Leader
    }

    /// The error for a write sent here while another node leads.
    pub fn not_leader(&self) -> WriteError {
        let (leader_id, leader_http) = match self.leader() {
            Some((id, http)) => (Some(id), http),
            None => (None, None),
        };
        WriteError::NotLeader { leader_id, leader_http }
    }

    /// Refuses a write here: another node leads, or this leader has lost
    /// its majority.
    pub fn check_writable(&self) -> Result<(), WriteError> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        if self.handing_over() {
            return Err(WriteError::HandingOver);
        }
        if !self.has_quorum() {
            return Err(WriteError::NoQuorum(self.inner.check_quorum));
        }
        Ok(())
    }

    /// Whether this leader is in the quiet window of a leadership handover.
    pub fn handing_over(&self) -> bool {
        let until = *self.inner.handover_until.lock().unwrap_or_else(|p| p.into_inner());
        until.is_some_and(|u| Instant::now() < u)
    }

    /// Appends a command and waits until it is applied here.
    pub async fn write(&self, cmd: Command) -> Result<CommandResult, WriteError> {
        self.check_writable()?;
        self.inner.raft.client_write(LogPayload::new(cmd)).await.map(|r| r.data).map_err(|e| self.write_error(e))
    }

    /// What a refused write tells the client: where the leader is, at the
    /// address clients reach it at, if this node still hears from it.
    pub(crate) fn write_error(&self, e: RaftError<NodeId, ClientWriteError<NodeId, BoatNode>>) -> WriteError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                let leader = f.leader_id.zip(f.leader_node).filter(|(id, _)| self.still_leads(*id));
                let leader_http = leader.as_ref().map(|(id, n)| self.inner.addrs.of(*id, &n.http_addr));
                WriteError::NotLeader { leader_id: leader.map(|(id, _)| id), leader_http }
            }
            RaftError::APIError(e) => WriteError::Fatal(e.to_string()),
            RaftError::Fatal(e) => WriteError::Fatal(e.to_string()),
        }
    }

    /// Whether `leader`, the leader openraft names, is one to send clients
    /// to. openraft keeps naming a follower's last leader until another is
    /// elected, and with the pre-vote a follower that cannot win an election
    /// never stands, so it would name a dead leader for ever. Once a whole
    /// lease has passed without word from it, the leader is unknown.
    fn still_leads(&self, leader: NodeId) -> bool {
        leader == self.inner.id || !self.inner.clock.lease_expired()
    }

    /// openraft's current leader, unless it has gone quiet (`still_leads`).
    fn known_leader(&self, current: Option<NodeId>) -> Option<NodeId> {
        current.filter(|l| self.still_leads(*l))
    }

    /// The node's content-addressed store of model files and datasets.
    pub fn blobs(&self) -> &BlobStore {
        &self.inner.env.blobs
    }

    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    pub fn state(&self) -> &StateView {
        &self.inner.state
    }

    /// The leader as this node knows it: id and the HTTP address clients
    /// reach it at.
    pub fn leader(&self) -> Option<(NodeId, Option<String>)> {
        let m = self.inner.raft.metrics();
        let m = m.borrow();
        let id = self.known_leader(m.current_leader)?;
        let http = m.membership_config.membership().get_node(&id).map(|n| self.inner.addrs.of(id, &n.http_addr));
        Some((id, http))
    }

    /// Where clients reach this node and its peers (see `network::addrs`).
    pub fn client_addrs(&self) -> &Arc<ClientAddrs> {
        &self.inner.addrs
    }

    pub fn status(&self) -> NodeStatus {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow().clone();
        let membership = m.membership_config.membership();
        let members = membership
            .nodes()
            .map(|(id, n)| MemberStatus { id: *id, raft_addr: n.raft_addr.clone(), http_addr: n.http_addr.clone() })
            .collect();
        let leader = self.known_leader(m.current_leader);
        let leader_http = leader.and_then(|l| membership.get_node(&l).map(|n| self.inner.addrs.of(l, &n.http_addr)));
        let (last_applied, digest, predictions_run, records, divergence) = {
            let s = self.inner.state.read();
            (
                s.last_applied.map(|l| l.index).unwrap_or(0),
                s.digest().to_string(),
                s.serving.predictions_run,
                s.serving.records.len() as usize,
                s.integrity.divergence.clone(),
            )
        };
        NodeStatus {
            node_id: self.inner.id,
            client_http: self.inner.addrs.own().to_string(),
            is_leader: m.state == ServerState::Leader,
            state: format!("{:?}", m.state),
            leader_id: leader,
            leader_http,
            term: m.current_term,
            // A node that caught up from a snapshot may not have stored a
            // commit marker yet; what it applied is committed.
            commit_index: self.inner.log.committed_index().max(last_applied),
            last_applied,
            last_log_index: m.last_log_index.unwrap_or(0),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            log_entries: held_entries(m.last_log_index, m.purged.map(|l| l.index)),
            members,
            voters: membership.voter_ids().collect(),
            state_digest: digest,
            predictions_run,
            idempotency_records: records,
            divergence,
            faults: self.inner.faults.report(),
        }
    }

    /// Stops openraft, the transport and every background task.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
    }
}
