//! Tells a proposing leader when its entry commits, before it is applied.
//!
//! A proposer registers a tag before proposing an entry whose payload
//! carries it. When the log store appends an entry carrying a registered
//! tag it remembers the entry's log id; when the commit index reaches it,
//! the waiter learns the id (and the commit latency is recorded). If the entry is truncated away
//! (leadership lost before commit), the waiter learns that instead. This is
//! what lets an asynchronous prediction answer 202 at commit time.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use openraft::EntryPayload;
use tokio::sync::oneshot;

use crate::payload::LogPayload;
use crate::types::{Entry, LogId};

/// Why a tracked entry will never commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the entry was removed from the log before it committed")]
pub struct Truncated;

pub type CommitReceiver = oneshot::Receiver<Result<LogId, Truncated>>;

#[derive(Default)]
struct Inner {
    waiting: HashMap<u64, (Instant, oneshot::Sender<Result<LogId, Truncated>>)>,
    appended: BTreeMap<u64, (u64, LogId)>,
}

/// Shared between the log store and the batcher.
#[derive(Clone, Default)]
pub struct CommitTracker(Arc<Mutex<Inner>>);

impl CommitTracker {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Plain maps; a poisoned lock still holds usable data.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn register(&self, tag: u64) -> CommitReceiver {
        let (tx, rx) = oneshot::channel();
        self.lock().waiting.insert(tag, (Instant::now(), tx));
        rx
    }

    /// Drops a registration (the proposal finished or failed).
    pub fn forget(&self, tag: u64) {
        let mut inner = self.lock();
        inner.waiting.remove(&tag);
        inner.appended.retain(|_, (t, _)| *t != tag);
    }

    pub(crate) fn on_append(&self, entries: &[Entry]) {
        let mut inner = self.lock();
        if inner.waiting.is_empty() {
            return;
        }
        for e in entries {
            if let EntryPayload::Normal(LogPayload { tag, .. }) = &e.payload {
                if *tag != 0 && inner.waiting.contains_key(tag) {
                    inner.appended.insert(e.log_id.index, (*tag, e.log_id));
                }
            }
        }
    }

    pub(crate) fn on_commit(&self, committed: u64) {
        let mut inner = self.lock();
        while let Some(entry) = inner.appended.first_entry() {
            if *entry.key() > committed {
                break;
            }
            let (tag, log_id) = entry.remove();
            if let Some((since, tx)) = inner.waiting.remove(&tag) {
                metrics::histogram!("boat_commit_seconds").record(since.elapsed().as_secs_f64());
                let _ = tx.send(Ok(log_id));
            }
        }
    }

    pub(crate) fn on_truncate(&self, from: u64) {
        let mut inner = self.lock();
        let lost = inner.appended.split_off(&from);
        for (_, (tag, _)) in lost {
            if let Some((_, tx)) = inner.waiting.remove(&tag) {
                let _ = tx.send(Err(Truncated));
            }
        }
    }
}
