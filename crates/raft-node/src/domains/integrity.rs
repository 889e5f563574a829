//! The integrity domain: the state digest that replicas compare, and the
//! leader's checkpoints that compare it.
//!
//! Every domain keeps a running digest of its own results. After each
//! applied entry the digests of all domains are folded into one chain, the
//! state digest shown in `/status`; an entry that changed no domain leaves
//! it as it was. The leader periodically proposes a `Checkpoint` with its
//! state digest at its last applied index; every replica compares it with
//! its own digest at that index and remembers the first divergence.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::CommandResult;

/// Commands of the integrity domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum IntegrityCommand {
    /// The leader's state digest after applying every entry up to `upto`.
    Checkpoint { upto: u64, digest: String },
}

/// A replica's digest disagreed with the leader's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Divergence {
    pub index: u64,
    pub local_digest: String,
    pub leader_digest: String,
    /// Log index of the checkpoint entry that revealed it.
    pub detected_at: u64,
}

/// Digests kept for comparison with the leader's checkpoints.
const DIGEST_HISTORY: usize = 4096;

/// The state digest, its recent history and the first divergence seen.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Integrity {
    /// Hex SHA-256 chain; empty before any domain produced a result.
    pub digest: String,
    /// First divergence from the leader this replica has seen, if any.
    pub divergence: Option<Divergence>,
    /// The domain digests last folded in, to tell whether an entry changed any.
    seen: Vec<String>,
    /// (index, state digest after that index) for recent indexes that changed it.
    history: VecDeque<(u64, String)>,
    history_truncated: bool,
}

impl Integrity {
    /// Folds the domains' digests after applying `index`, when any changed.
    pub(crate) fn observe(&mut self, index: u64, domains: &[(&str, &str)]) {
        // A domain not seen before counts as having had an empty digest.
        let seen = |i: usize| self.seen.get(i).map_or("", String::as_str);
        let changed = domains.iter().enumerate().any(|(i, (_, d))| *d != seen(i));
        if !changed {
            return;
        }
        self.seen = domains.iter().map(|(_, d)| d.to_string()).collect();
        let mut parts: Vec<&[u8]> = Vec::with_capacity(domains.len() * 2);
        for (name, d) in domains {
            parts.push(name.as_bytes());
            parts.push(d.as_bytes());
        }
        self.fold(index, &parts);
    }

    /// Compares the leader's digest at `upto` with ours. Returns the
    /// divergence when they differ (and remembers the first one).
    pub fn check(&mut self, upto: u64, leader_digest: &str, checkpoint_index: u64) -> Option<Divergence> {
        let local = self.digest_at(upto)?;
        if local == leader_digest {
            return None;
        }
        let d = Divergence {
            index: upto,
            local_digest: local,
            leader_digest: leader_digest.to_string(),
            detected_at: checkpoint_index,
        };
        if self.divergence.is_none() {
            self.divergence = Some(d.clone());
        }
        Some(d)
    }

    /// Our digest after applying every entry up to `index`, when known.
    fn digest_at(&self, index: u64) -> Option<String> {
        match self.history.iter().rev().find(|(i, _)| *i <= index) {
            Some((_, d)) => Some(d.clone()),
            None if !self.history_truncated => Some(String::new()),
            None => None,
        }
    }

    /// Simulates a replica that computed something different (fault
    /// injection for testing the divergence check).
    pub fn perturb(&mut self, index: u64) {
        self.fold(index, &[b"injected divergence"]);
    }

    fn fold(&mut self, index: u64, parts: &[&[u8]]) {
        self.digest = chain(&self.digest, index, parts);
        match self.history.back_mut() {
            Some((i, d)) if *i == index => d.clone_from(&self.digest),
            _ => self.history.push_back((index, self.digest.clone())),
        }
        if self.history.len() > DIGEST_HISTORY {
            self.history.pop_front();
            self.history_truncated = true;
        }
    }
}

/// One link of a digest chain: SHA-256 over the previous digest, the index
/// and length-prefixed parts. Domains use it for their own chains too.
pub fn chain(previous: &str, index: u64, parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    h.update(previous.as_bytes());
    h.update(index.to_be_bytes());
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// Applies an integrity command.
pub(crate) fn apply(integrity: &mut Integrity, index: u64, cmd: IntegrityCommand) -> CommandResult {
    match cmd {
        IntegrityCommand::Checkpoint { upto, digest } => {
            if let Some(d) = integrity.check(upto, &digest, index) {
                metrics::counter!("boat_divergence_total").increment(1);
                tracing::error!(
                    upto,
                    local = %d.local_digest,
                    leader = %d.leader_digest,
                    "this replica's state differs from the leader's: it computed different results"
                );
            }
            CommandResult::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_digest_moves_only_when_a_domain_digest_does() {
        let mut a = Integrity::default();
        a.observe(1, &[("serving", "")]);
        assert_eq!(a.digest, "", "no domain has produced anything yet");
        a.observe(2, &[("serving", "x")]);
        let after_2 = a.digest.clone();
        assert!(!after_2.is_empty());
        a.observe(3, &[("serving", "x")]);
        assert_eq!(a.digest, after_2, "an entry that changed nothing keeps the digest");
        a.observe(4, &[("serving", "y")]);
        assert_ne!(a.digest, after_2);
    }

    #[test]
    fn checkpoints_find_a_replica_that_differs() {
        let (mut a, mut b) = (Integrity::default(), Integrity::default());
        for s in [&mut a, &mut b] {
            s.observe(5, &[("serving", "x")]);
        }
        let leader_digest = a.digest.clone();
        assert_eq!(b.check(5, &leader_digest, 6), None);
        assert_eq!(b.check(7, &leader_digest, 8), None, "digest unchanged after 5");
        b.perturb(9);
        a.observe(9, &[("serving", "y")]);
        let d = b.check(9, &a.digest, 10).expect("divergence detected");
        assert_eq!(d.index, 9);
        assert_eq!(b.divergence.as_ref(), Some(&d));
        assert_eq!(b.check(4, "", 11), None, "before the first fold both are empty");
    }
}
