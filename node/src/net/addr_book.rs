//! A bounded address book: where to dial peers that are not connected, learned from provider
//! records and DHT lookups. Shared in shape by the behaviours that dial on their own (bitswap's
//! provider dials, the provide sender's batches): each keeps one, answers
//! `handle_pending_outbound_connection` from it, and never holds more than
//! `peers_max` peers (the oldest forgotten first) of `per_peer_max` addresses each.

use std::collections::{HashMap, VecDeque};

use libp2p::{Multiaddr, PeerId};

/// Peers and addresses, bounded; see the module documentation.
#[derive(Debug)]
pub struct AddrBook {
    addrs: HashMap<PeerId, Vec<Multiaddr>>,
    order: VecDeque<PeerId>,
    peers_max: usize,
    per_peer_max: usize,
}

impl AddrBook {
    /// An empty book of at most `peers_max` peers and `per_peer_max` addresses per peer.
    pub fn new(peers_max: usize, per_peer_max: usize) -> Self {
        Self {
            addrs: HashMap::new(),
            order: VecDeque::new(),
            peers_max,
            per_peer_max,
        }
    }

    /// Adds `addrs` for `peer` (new ones only, up to the per-peer cap), forgetting the oldest
    /// peer when the book is full.
    pub fn add(&mut self, peer: PeerId, addrs: impl IntoIterator<Item = Multiaddr>) {
        if !self.addrs.contains_key(&peer) {
            while self.order.len() >= self.peers_max.max(1) {
                match self.order.pop_front() {
                    Some(old) => {
                        self.addrs.remove(&old);
                    }
                    None => break,
                }
            }
            self.order.push_back(peer);
        }
        let known = self.addrs.entry(peer).or_default();
        for a in addrs {
            if known.len() < self.per_peer_max && !known.contains(&a) {
                known.push(a);
            }
        }
    }

    /// The addresses known for `peer`.
    pub fn get(&self, peer: &PeerId) -> Option<&Vec<Multiaddr>> {
        self.addrs.get(peer)
    }

    /// Forgets `peer` (connected now, or not reachable at what we knew).
    pub fn remove(&mut self, peer: &PeerId) {
        if self.addrs.remove(peer).is_some() {
            self.order.retain(|p| p != peer);
        }
    }

    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn addr(port: u16) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()
    }

    #[test]
    fn bounded_in_peers_and_addresses() {
        let mut book = AddrBook::new(2, 2);
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        book.add(a, [addr(1), addr(1), addr(2), addr(3)]);
        assert_eq!(
            book.get(&a).unwrap(),
            &vec![addr(1), addr(2)],
            "deduped, capped"
        );
        book.add(b, [addr(4)]);
        book.add(c, [addr(5)]);
        assert_eq!(book.len(), 2);
        assert!(book.get(&a).is_none(), "the oldest peer goes first");
        book.remove(&b);
        assert!(book.get(&b).is_none());
        book.add(a, [addr(6)]);
        assert_eq!(book.len(), 2, "{book:?}");
        assert!(book.get(&c).is_some());
    }
}
