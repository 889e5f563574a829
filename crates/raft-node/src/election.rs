//! When a follower stands for election. Boat decides this, not openraft's
//! timer.
//!
//! A follower refuses votes while its leader lease lasts (openraft: the
//! maximum election timeout since it last heard from the leader). That
//! refusal is what keeps a live leader from being deposed by a follower
//! that merely missed a heartbeat. But openraft 0.9 also lets a follower
//! stand only once the lease *and then* its own election timeout have
//! passed, so a dead leader is replaced after 1.5 to 2 maximum timeouts.
//! The second wait buys nothing: the other followers' leases have already
//! run out by then. So openraft's election timer is off
//! (`enable_elect = false`) and [`stand_for_election`] stands once the
//! lease has passed, plus a random spread (the difference between the
//! maximum and minimum timeouts) so that two followers rarely stand at the
//! same moment. A candidate that loses stands again after another lease and
//! spread.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use openraft::ServerState;
use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::network::{PeerCalls, PreVote};
use crate::types::{NodeId, Raft};

/// How often the follower looks at its clock.
const TICK: Duration = Duration::from_millis(10);

/// When this node last heard from a leader, and whether a leadership
/// handover has asked it not to stand for now.
#[derive(Debug)]
pub struct ElectionClock {
    lease: Duration,
    state: Mutex<ClockState>,
}

#[derive(Debug)]
struct ClockState {
    last_contact: Instant,
    /// Whether a leader has been heard from since this node started.
    heard: bool,
    /// A handover's pause: until when, and the term it was asked in. It
    /// ends early once a later term begins (the handover is over).
    paused_until: Option<(Instant, u64)>,
    /// A leader's messages being handled. A snapshot chunk that installs
    /// the snapshot (models loaded, records imported) may take longer than
    /// an election timeout, and so may an append whose flush waits on a busy
    /// disk; the leader sends nothing else to this node meanwhile.
    busy: usize,
}

impl ElectionClock {
    /// A clock for a node whose leader lease is `lease`.
    pub fn new(lease: Duration) -> Self {
        Self {
            lease,
            state: Mutex::new(ClockState { last_contact: Instant::now(), heard: false, paused_until: None, busy: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClockState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A leader's append or snapshot was accepted, or this node granted a
    /// vote: there is, or soon will be, a leader to follow.
    pub fn heard_from_leader(&self) {
        let mut s = self.lock();
        s.last_contact = Instant::now();
        s.heard = true;
    }

    /// Holds elections off while the returned guard lives: a message from
    /// the current leader is being handled. Dropping the guard counts as
    /// hearing from the leader, also when the handler is dropped because
    /// the leader stopped waiting (openraft gives an append one heartbeat
    /// interval): the message still arrived, and the work goes on.
    pub fn leader_work(self: &std::sync::Arc<Self>) -> LeaderWork {
        self.lock().busy += 1;
        LeaderWork(self.clone())
    }

    /// Starts the wait again without anything heard.
    fn restart(&self) {
        self.lock().last_contact = Instant::now();
    }

    /// Do not stand for `d`, or until a term after `term` begins (a
    /// leadership handover in progress). A later pause replaces an earlier
    /// one.
    pub fn pause(&self, d: Duration, term: u64) {
        self.lock().paused_until = Some((Instant::now() + d, term));
    }

    /// Whether a whole lease has passed without a leader's message (and
    /// none is being handled): the test for granting a pre-vote.
    pub fn lease_expired(&self) -> bool {
        let s = self.lock();
        s.busy == 0 && s.last_contact.elapsed() >= self.lease
    }

    /// How long since the last contact, and whether any leader was ever
    /// heard; `None` while paused or busy with a leader's message. `term`
    /// is this node's current term.
    fn silence(&self, now: Instant, term: u64) -> Option<(Duration, bool)> {
        let s = self.lock();
        if s.busy > 0 || s.paused_until.is_some_and(|(until, asked)| now < until && term <= asked) {
            return None;
        }
        Some((now.saturating_duration_since(s.last_contact), s.heard))
    }
}

/// See [`ElectionClock::leader_work`].
pub struct LeaderWork(std::sync::Arc<ElectionClock>);

impl Drop for LeaderWork {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.busy -= 1;
        s.last_contact = Instant::now();
        s.heard = true;
    }
}

/// How long a pre-vote waits for answers, and how soon a follower whose
/// pre-vote failed asks again (its wait has passed: only the answers are
/// missing, and a peer's lease may run out a moment after its own).
const PRE_VOTE_TTL: Duration = Duration::from_millis(100);
const PRE_VOTE_RETRY: Duration = Duration::from_millis(50);

/// Runs until `stop`: stands this node for election whenever it is a voter,
/// not the leader, has heard from no leader for `lease` plus a random part
/// of `spread` (one more `lease` until it first hears from a leader), and a
/// majority of the voters would vote for it (the pre-vote). The only voter
/// of a cluster stands at once.
pub(crate) async fn stand_for_election(
    raft: Raft,
    id: NodeId,
    clock: std::sync::Arc<ElectionClock>,
    peers: PeerCalls,
    spread: Duration,
    stop: CancellationToken,
) {
    let lease = clock.lease;
    let pick = || lease + spread.mul_f64(rand::thread_rng().gen::<f64>());
    let mut wait = pick();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
        let (state, term, voters) = {
            let m = raft.metrics();
            let m = m.borrow();
            let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
            (m.state, m.current_term, voters)
        };
        let standing = matches!(state, ServerState::Follower | ServerState::Candidate) && voters.contains(&id);
        if !standing {
            // A leader (or learner) that turns follower must not stand at
            // once on a stale clock: that would raise the term and depose
            // the leader that has just replaced it.
            clock.restart();
            continue;
        }
        let alone = voters.len() == 1;
        let Some((silence, heard)) = clock.silence(Instant::now(), term) else { continue };
        // Until it has heard from any leader, a node that just started
        // waits one more lease: a leader that could not reach it retries
        // only after its back-off (`network::client::RETRY_UNREACHABLE`).
        let due = if heard { wait } else { wait + lease };
        if !alone && silence < due {
            continue;
        }
        if !alone && !majority_would_vote(&raft, id, &peers).await {
            tracing::debug!(
                silent_ms = silence.as_millis() as u64,
                "no word from a leader, but no majority would vote"
            );
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(PRE_VOTE_RETRY) => {}
            }
            continue;
        }
        tracing::info!(silent_ms = silence.as_millis() as u64, "no word from a leader: standing for election");
        clock.restart();
        wait = pick();
        if let Err(e) = raft.trigger().elect().await {
            tracing::warn!(error = %e, "could not stand for election");
            return;
        }
        if alone {
            // Give the election a moment before asking again.
            tokio::time::sleep(lease).await;
        }
    }
}

/// Asks the other voters for a pre-vote at once and answers as soon as a
/// majority of all voters, this node (`id`) included, is decided either way.
async fn majority_would_vote(raft: &Raft, id: NodeId, calls: &PeerCalls) -> bool {
    let (voters, peers) = {
        let m = raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        let voters = membership.voter_ids().count();
        let peers: Vec<(NodeId, String)> = membership
            .voter_ids()
            .filter(|v| *v != id)
            .filter_map(|v| membership.get_node(&v).map(|n| (v, n.raft_addr.clone())))
            .collect();
        (voters, peers)
    };
    let ask = PreVote { last_log: raft.data_metrics().borrow().last_log };
    let needed = voters / 2 + 1;
    let mut yes = 1;
    let mut pending = peers.len();
    let mut answers = tokio::task::JoinSet::new();
    for (peer, addr) in peers {
        let (calls, ask) = (calls.clone(), ask.clone());
        answers.spawn(async move { calls.pre_vote(peer, &addr, &ask, PRE_VOTE_TTL).await });
    }
    while yes < needed && yes + pending >= needed {
        let Some(answer) = answers.join_next().await else { break };
        pending -= 1;
        if answer.unwrap_or(false) {
            yes += 1;
        }
    }
    yes >= needed
}
