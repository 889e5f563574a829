//! Leader-side dynamic batching: concurrent requests for one model are
//! packed into one `PredictBatch` log entry.
//!
//! Apps are batched the same way, into `AppPredict` entries.
//!
//! One queue per (model, pinned version) or app is drained by its own task. A batch
//! is proposed as soon as a proposal slot is free; while `max_in_flight`
//! proposals are still committing, requests accumulate and the next batch
//! takes up to `max_batch` of them (optionally waiting up to `max_wait` to
//! fill). Admission is bounded: when `queue_capacity` requests are waiting
//! or in flight, new ones are refused at once (HTTP 429).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::command::{AppPredictBatch, PredictBatch, PredictOutcome, PredictRequest, ServingCommand, ServingResult};
use crate::commit::CommitTracker;
use crate::domains::{Command, CommandResult};
use crate::node::{RaftNode, WriteError};
use crate::payload::LogPayload;
use crate::types::{LogId, Raft};

/// Dynamic batching knobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most requests in one log entry (1 turns batching off).
    pub max_batch: usize,
    /// How long a batch may wait to fill once a proposal slot is free.
    pub max_wait: Duration,
    /// Proposals per queue that may be committing at once.
    pub max_in_flight: usize,
    /// Requests waiting or in flight across all queues before 429.
    pub queue_capacity: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self { max_batch: 64, max_wait: Duration::ZERO, max_in_flight: 2, queue_capacity: 4096 }
    }
}

impl BatchConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_batch == 0 || self.max_in_flight == 0 || self.queue_capacity == 0 {
            return Err("max_batch, max_in_flight and queue_capacity must be positive".into());
        }
        Ok(())
    }
}

/// What a submitted request gets back: its commit, then its outcome.
pub struct Ticket {
    pub committed: oneshot::Receiver<Result<LogId, WriteError>>,
    pub outcome: oneshot::Receiver<Result<PredictOutcome, WriteError>>,
}

struct Job {
    request: PredictRequest,
    committed: oneshot::Sender<Result<LogId, WriteError>>,
    outcome: oneshot::Sender<Result<PredictOutcome, WriteError>>,
    enqueued: Instant,
    _admission: OwnedSemaphorePermit,
}

/// What a queue's requests are for: a model (with a pinned version or
/// the default), or an app.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Model { name: String, version: Option<u64> },
    App(String),
}

type QueueKey = Target;

pub struct Batcher {
    node: RaftNode,
    raft: Raft,
    tracker: CommitTracker,
    config: BatchConfig,
    admission: Arc<Semaphore>,
    queues: Mutex<HashMap<QueueKey, mpsc::UnboundedSender<Job>>>,
    next_tag: Arc<AtomicU64>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Batcher {
    /// The batcher of `node`'s serving domain; it proposes only while
    /// `node` leads.
    pub fn new(node: &RaftNode, config: BatchConfig) -> Result<Self, String> {
        config.validate()?;
        let (raft, tracker) = (node.raft().clone(), node.commit_tracker().clone());
        let admission = Arc::new(Semaphore::new(config.queue_capacity));
        // Random high bits: tags from an earlier run of this node never
        // match this run's. Never 0, which means "untracked".
        let next_tag = Arc::new(AtomicU64::new((rand::random::<u64>() & !0xffff_ffff) | (1 << 32)));
        Ok(Self { node: node.clone(), raft, tracker, config, admission, queues: Mutex::new(HashMap::new()), next_tag })
    }

    /// Queues a validated request. Fails at once with `NotLeader` when this
    /// node does not lead, `NoQuorum` when it lost its majority, and
    /// `Overloaded` when the queues are full.
    pub fn submit(&self, model: &str, version: Option<u64>, request: PredictRequest) -> Result<Ticket, WriteError> {
        self.submit_to(Target::Model { name: model.to_string(), version }, request)
    }

    /// Queues a validated request for an app.
    pub fn submit_app(&self, app: &str, request: PredictRequest) -> Result<Ticket, WriteError> {
        self.submit_to(Target::App(app.to_string()), request)
    }

    /// Queues a validated request for `key`.
    pub fn submit_to(&self, key: Target, request: PredictRequest) -> Result<Ticket, WriteError> {
        self.node.check_writable()?;
        let permit = self.admission.clone().try_acquire_owned().map_err(|_| WriteError::Overloaded)?;
        let (committed_tx, committed) = oneshot::channel();
        let (outcome_tx, outcome) = oneshot::channel();
        let job =
            Job { request, committed: committed_tx, outcome: outcome_tx, enqueued: Instant::now(), _admission: permit };
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        let tx = queues.entry(key.clone()).or_insert_with(|| self.spawn_queue(key));
        tx.send(job).map_err(|_| WriteError::Fatal("the batching queue stopped".into()))?;
        Ok(Ticket { committed, outcome })
    }

    fn spawn_queue(&self, key: QueueKey) -> mpsc::UnboundedSender<Job> {
        let (tx, rx) = mpsc::unbounded_channel();
        let queue = Queue {
            key,
            rx,
            raft: self.raft.clone(),
            tracker: self.tracker.clone(),
            config: self.config.clone(),
            in_flight: Arc::new(Semaphore::new(self.config.max_in_flight)),
            next_tag: self.next_tag.clone(),
            node: self.node.clone(),
        };
        tokio::spawn(queue.run());
        tx
    }
}

struct Queue {
    key: QueueKey,
    rx: mpsc::UnboundedReceiver<Job>,
    raft: Raft,
    tracker: CommitTracker,
    config: BatchConfig,
    in_flight: Arc<Semaphore>,
    next_tag: Arc<AtomicU64>,
    /// Maps a refused write to where the leader is.
    node: RaftNode,
}

impl Queue {
    async fn run(mut self) {
        while let Some(first) = self.rx.recv().await {
            let Ok(slot) = self.in_flight.clone().acquire_owned().await else {
                return;
            };
            let mut jobs = vec![first];
            while jobs.len() < self.config.max_batch {
                match self.rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            if jobs.len() < self.config.max_batch && !self.config.max_wait.is_zero() {
                let deadline = tokio::time::Instant::now() + self.config.max_wait;
                while jobs.len() < self.config.max_batch {
                    match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                        Ok(Some(j)) => jobs.push(j),
                        _ => break,
                    }
                }
            }
            let tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
            let (raft, tracker, node) = (self.raft.clone(), self.tracker.clone(), self.node.clone());
            tokio::spawn(propose(raft, tracker, node, self.key.clone(), tag, jobs, slot));
        }
    }
}

/// Proposes one batch and hands every job its commit and its outcome.
async fn propose(
    raft: Raft,
    tracker: CommitTracker,
    node: RaftNode,
    key: QueueKey,
    tag: u64,
    jobs: Vec<Job>,
    _slot: OwnedSemaphorePermit,
) {
    let mut requests = Vec::with_capacity(jobs.len());
    let mut waiters = Vec::with_capacity(jobs.len());
    for job in jobs {
        metrics::histogram!("boat_queue_seconds").record(job.enqueued.elapsed().as_secs_f64());
        requests.push(job.request);
        waiters.push((job.committed, job.outcome, job._admission));
    }
    metrics::histogram!("boat_entry_requests").record(requests.len() as f64);
    let proposed_at_ms = now_ms();
    let command = match key {
        Target::Model { name, version } => {
            ServingCommand::PredictBatch(PredictBatch { model: name, version, proposed_at_ms, requests })
        }
        Target::App(app) => ServingCommand::AppPredict(AppPredictBatch { app, proposed_at_ms, requests }),
    };
    let commit_rx = tracker.register(tag);
    let (commit_senders, outcome_senders): (Vec<_>, Vec<_>) =
        waiters.into_iter().map(|(c, o, permit)| (c, (o, permit))).unzip();
    // Report the commit as soon as it happens (asynchronous requests answer
    // then); hand the senders back when the tracker had nothing to say.
    let notify_commit = tokio::spawn(async move {
        let report = match commit_rx.await {
            Ok(Ok(log_id)) => Ok(log_id),
            Ok(Err(_)) => Err(WriteError::Lost),
            Err(_) => return Some(commit_senders),
        };
        for tx in commit_senders {
            let _ = tx.send(report.clone());
        }
        None
    });

    let payload = LogPayload::tagged(tag, Command::Serving(command));
    let written = raft.client_write(payload).await;
    tracker.forget(tag);
    let result: Result<Vec<PredictOutcome>, WriteError> = match written {
        Ok(resp) => match resp.data {
            CommandResult::Serving(ServingResult::Predicted(outcomes)) if outcomes.len() == outcome_senders.len() => {
                Ok(outcomes)
            }
            other => Err(WriteError::Fatal(format!("a prediction entry produced {other:?}"))),
        },
        Err(e) => Err(node.write_error(e)),
    };
    if let Ok(Some(unreported)) = notify_commit.await {
        let report = match &result {
            Ok(outcomes) => outcomes
                .first()
                .map(|o| LogId::new(openraft::CommittedLeaderId::new(o.term, 0), o.index))
                .ok_or(WriteError::Lost),
            Err(e) => Err(e.clone()),
        };
        for tx in unreported {
            let _ = tx.send(report.clone());
        }
    }
    match result {
        Ok(outcomes) => {
            for ((tx, _permit), outcome) in outcome_senders.into_iter().zip(outcomes) {
                let _ = tx.send(Ok(outcome));
            }
        }
        Err(e) => {
            for (tx, _permit) in outcome_senders {
                let _ = tx.send(Err(e.clone()));
            }
        }
    }
}
