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

use crate::types::{NodeId, Raft};

/// How often the follower looks at its clock.
const TICK: Duration = Duration::from_millis(10);

/// When this node last heard from a leader, and whether a leadership
/// handover has asked it not to stand for now.
#[derive(Debug)]
pub struct ElectionClock {
    state: Mutex<ClockState>,
}

#[derive(Debug)]
struct ClockState {
    last_contact: Instant,
    /// Whether a leader has been heard from since this node started.
    heard: bool,
    paused_until: Option<Instant>,
    /// Snapshot chunks being written. The last one installs the snapshot
    /// (models loaded, records imported), which may take longer than an
    /// election timeout, and the leader sends nothing else meanwhile.
    installing: usize,
}

impl Default for ElectionClock {
    fn default() -> Self {
        Self {
            state: Mutex::new(ClockState {
                last_contact: Instant::now(),
                heard: false,
                paused_until: None,
                installing: 0,
            }),
        }
    }
}

impl ElectionClock {
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

    /// Holds elections off while the returned guard lives: a leader's
    /// snapshot chunk is being written.
    pub fn installing(self: &std::sync::Arc<Self>) -> Installing {
        self.lock().installing += 1;
        Installing(self.clone())
    }

    /// Starts the wait again without anything heard.
    fn restart(&self) {
        self.lock().last_contact = Instant::now();
    }

    /// Do not stand for `d` (a leadership handover in progress). A later
    /// pause replaces an earlier one.
    pub fn pause(&self, d: Duration) {
        self.lock().paused_until = Some(Instant::now() + d);
    }

    /// How long since the last contact, and whether any leader was ever
    /// heard; `None` while paused.
    fn silence(&self, now: Instant) -> Option<(Duration, bool)> {
        let s = self.lock();
        if s.installing > 0 || s.paused_until.is_some_and(|until| now < until) {
            return None;
        }
        Some((now.saturating_duration_since(s.last_contact), s.heard))
    }
}

/// See [`ElectionClock::installing`].
pub struct Installing(std::sync::Arc<ElectionClock>);

impl Drop for Installing {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.installing -= 1;
        s.last_contact = Instant::now();
    }
}

/// Runs until `stop`: stands this node for election whenever it is a voter,
/// not the leader, and has heard from no leader for `lease` plus a random
/// part of `spread` (one more `lease` until it first hears from a leader).
/// The only voter of a cluster stands at once.
pub(crate) async fn stand_for_election(
    raft: Raft,
    id: NodeId,
    clock: std::sync::Arc<ElectionClock>,
    lease: Duration,
    spread: Duration,
    stop: CancellationToken,
) {
    let pick = || lease + spread.mul_f64(rand::thread_rng().gen::<f64>());
    let mut wait = pick();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
        let (state, voters) = {
            let m = raft.metrics();
            let m = m.borrow();
            let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
            (m.state, voters)
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
        let Some((silence, heard)) = clock.silence(Instant::now()) else { continue };
        // Until it has heard from any leader, a node that just started
        // waits one more lease: a leader that could not reach it retries
        // only after its back-off (`network::client::RETRY_UNREACHABLE`).
        let due = if heard { wait } else { wait + lease };
        if !alone && silence < due {
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
