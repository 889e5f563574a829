//! Where clients reach each node: its advertised HTTP address.
//!
//! The membership records the HTTP address peers use (`BoatNode::http_addr`).
//! Clients may need another one: a node in a container is reached by its
//! peers at the container's address and by clients at a port published on
//! the host. That address is the node's own setting, not replicated state:
//! it may change when the node restarts, and no replica needs to agree on
//! it. So every Raft message carries its sender's advertised address, and
//! the receiver remembers it. A follower hears from its leader at every
//! heartbeat, so it always knows where to redirect clients to.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::types::NodeId;

/// This node's advertised address and the ones its peers sent.
#[derive(Debug)]
pub struct ClientAddrs {
    own_id: NodeId,
    own: String,
    learned: Mutex<HashMap<NodeId, String>>,
}

impl ClientAddrs {
    pub fn new(own_id: NodeId, own: String) -> Self {
        Self { own_id, own, learned: Mutex::default() }
    }

    /// The address clients reach this node at.
    pub fn own(&self) -> &str {
        &self.own
    }

    /// Records what node `id` says its address is. The transport is
    /// internal, between members, so a sender's word is taken.
    pub(crate) fn learn(&self, id: NodeId, addr: &str) {
        if addr.is_empty() || id == self.own_id {
            return;
        }
        let mut learned = self.learned.lock().unwrap_or_else(|p| p.into_inner());
        if learned.get(&id).map(String::as_str) != Some(addr) {
            learned.insert(id, addr.to_string());
        }
    }

    /// Where clients reach node `id`, whose membership record says
    /// `member_http`: what it advertised, else that record.
    pub fn of(&self, id: NodeId, member_http: &str) -> String {
        if id == self.own_id {
            return self.own.clone();
        }
        let learned = self.learned.lock().unwrap_or_else(|p| p.into_inner());
        learned.get(&id).cloned().unwrap_or_else(|| member_http.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advertised_address_replaces_the_membership_one() {
        let addrs = ClientAddrs::new(0, "127.0.0.1:8080".into());
        assert_eq!(addrs.of(0, "boat-0:8080"), "127.0.0.1:8080");
        assert_eq!(addrs.of(1, "boat-1:8080"), "boat-1:8080");
        addrs.learn(1, "127.0.0.1:8081");
        addrs.learn(2, "");
        addrs.learn(0, "10.0.0.9:1");
        assert_eq!(addrs.of(1, "boat-1:8080"), "127.0.0.1:8081");
        assert_eq!(addrs.of(2, "boat-2:8080"), "boat-2:8080");
        assert_eq!(addrs.of(0, "boat-0:8080"), "127.0.0.1:8080");
    }
}
