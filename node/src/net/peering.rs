//! Peering, as kubo's `Peering.Peers` and `ipfs swarm peering`: peers this node stays
//! connected to. Their connections are kept open even when idle ([`KeepAlive`]), and when the
//! last one closes the node dials the peer again after a backoff that doubles from
//! [`PEERING_BACKOFF_INITIAL`] up to [`PEERING_BACKOFF_MAX`] while dials fail ([`Peering`],
//! driven by the node's housekeeping). The set comes from `peering.peers` at start and changes
//! with `swarm peering add|rm` while the node runs (not written back, as in kubo).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::DeniedUpgrade;
use libp2p::core::Endpoint;
use libp2p::swarm::handler::ConnectionEvent;
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, NotifyHandler, SubstreamProtocol, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

/// First wait before dialing a peered peer whose last connection closed (kubo: 10 s).
pub const PEERING_BACKOFF_INITIAL: Duration = Duration::from_secs(10);
/// Longest wait between two dials of an unreachable peered peer (kubo: 10 min).
pub const PEERING_BACKOFF_MAX: Duration = Duration::from_secs(600);
/// Most peered peers (the config's list bound).
pub const PEERED_PEERS_MAX: usize = crate::config::LIST_ENTRIES_MAX;
/// Most addresses kept per peered peer.
pub const PEERED_ADDRS_MAX: usize = 16;

/// One peered peer's addresses and redial state.
#[derive(Clone, Debug)]
struct Peered {
    addrs: Vec<Multiaddr>,
    /// The wait before the next dial, doubled by each dial made.
    backoff: Duration,
    /// When to dial next; `None` while connected.
    dial_at: Option<Instant>,
}

/// The peered set and when to dial each peer (kept by the node's task).
#[derive(Debug)]
pub struct Peering {
    peers: HashMap<PeerId, Peered>,
    backoff_initial: Duration,
}

/// Why a peer could not be added.
#[derive(Debug, thiserror::Error)]
pub enum PeeringError {
    #[error("peering holds at most {PEERED_PEERS_MAX} peers")]
    Full,
}

impl Default for Peering {
    fn default() -> Self {
        Self::new(PEERING_BACKOFF_INITIAL)
    }
}

impl Peering {
    /// An empty set whose first redial waits `backoff_initial` ([`PEERING_BACKOFF_INITIAL`]
    /// outside tests).
    pub fn new(backoff_initial: Duration) -> Self {
        Self {
            peers: HashMap::new(),
            backoff_initial,
        }
    }

    /// Adds (or updates the addresses of) `peer`; `connected` says whether a connection is
    /// open now. A peer not connected is dialed at the next [`Peering::due`].
    pub fn add(
        &mut self,
        peer: PeerId,
        mut addrs: Vec<Multiaddr>,
        connected: bool,
    ) -> Result<(), PeeringError> {
        if !self.peers.contains_key(&peer) && self.peers.len() >= PEERED_PEERS_MAX {
            return Err(PeeringError::Full);
        }
        addrs.truncate(PEERED_ADDRS_MAX);
        let initial = self.backoff_initial;
        let p = self.peers.entry(peer).or_insert_with(|| Peered {
            addrs: Vec::new(),
            backoff: initial,
            dial_at: None,
        });
        for a in addrs {
            if !p.addrs.contains(&a) && p.addrs.len() < PEERED_ADDRS_MAX {
                p.addrs.push(a);
            }
        }
        if !connected {
            p.dial_at = Some(Instant::now());
        }
        Ok(())
    }

    /// Removes `peer`; false if it was not peered. Its connections stay until they idle out.
    pub fn remove(&mut self, peer: &PeerId) -> bool {
        self.peers.remove(peer).is_some()
    }

    pub fn contains(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer)
    }

    /// The peered peers and their addresses, by peer ID.
    pub fn list(&self) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let mut all: Vec<_> = self
            .peers
            .iter()
            .map(|(p, v)| (*p, v.addrs.clone()))
            .collect();
        all.sort_by_key(|(p, _)| *p);
        all
    }

    /// A connection to `peer` is open: no dial is due, and the next wait starts over.
    pub fn connected(&mut self, peer: &PeerId) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.dial_at = None;
            p.backoff = self.backoff_initial;
        }
    }

    /// The last connection to `peer` closed, or a dial of it failed while none was open: dial
    /// again after the current backoff.
    pub fn disconnected(&mut self, peer: &PeerId) {
        if let Some(p) = self.peers.get_mut(peer) {
            if p.dial_at.is_none() {
                p.dial_at = Some(Instant::now() + p.backoff);
            }
        }
    }

    /// The peers to dial now, with their addresses; each one's next dial is one (doubled)
    /// backoff later, unless a connection opens first.
    pub fn due(&mut self, now: Instant) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let mut due = Vec::new();
        for (peer, p) in &mut self.peers {
            if p.dial_at.is_some_and(|at| at <= now) {
                due.push((*peer, p.addrs.clone()));
                p.dial_at = Some(now + p.backoff);
                p.backoff = (p.backoff * 2).min(PEERING_BACKOFF_MAX);
            }
        }
        due
    }
}

/// Keeps every connection to a peered peer open while idle (other connections close after the
/// node's idle timeout, as before).
#[derive(Default)]
pub struct KeepAlive {
    peered: HashSet<PeerId>,
    connections: HashMap<PeerId, HashSet<ConnectionId>>,
    pending: Vec<(PeerId, ConnectionId, bool)>,
}

impl KeepAlive {
    /// Keeps `peer`'s connections open (`true`) or lets them idle out (`false`).
    pub fn set(&mut self, peer: PeerId, keep: bool) {
        let changed = if keep {
            self.peered.insert(peer)
        } else {
            self.peered.remove(&peer)
        };
        if changed {
            for c in self.connections.get(&peer).into_iter().flatten() {
                self.pending.push((peer, *c, keep));
            }
        }
    }

    fn handler(&self, peer: &PeerId) -> KeepAliveHandler {
        KeepAliveHandler {
            keep: self.peered.contains(peer),
        }
    }
}

impl NetworkBehaviour for KeepAlive {
    type ConnectionHandler = KeepAliveHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(&peer))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(&peer))
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                self.connections
                    .entry(e.peer_id)
                    .or_default()
                    .insert(e.connection_id);
            }
            FromSwarm::ConnectionClosed(e) => {
                if let Some(set) = self.connections.get_mut(&e.peer_id) {
                    set.remove(&e.connection_id);
                    if set.is_empty() {
                        self.connections.remove(&e.peer_id);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        e: THandlerOutEvent<Self>,
    ) {
        match e {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        match self.pending.pop() {
            Some((peer_id, connection, keep)) => Poll::Ready(ToSwarm::NotifyHandler {
                peer_id,
                handler: NotifyHandler::One(connection),
                event: keep,
            }),
            None => Poll::Pending,
        }
    }
}

/// Handles no protocol; only says whether to keep its connection open.
pub struct KeepAliveHandler {
    keep: bool,
}

impl ConnectionHandler for KeepAliveHandler {
    type FromBehaviour = bool;
    type ToBehaviour = Infallible;
    type InboundProtocol = DeniedUpgrade;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<DeniedUpgrade> {
        SubstreamProtocol::new(DeniedUpgrade, ())
    }

    fn connection_keep_alive(&self) -> bool {
        self.keep
    }

    fn on_behaviour_event(&mut self, keep: bool) {
        self.keep = keep;
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<DeniedUpgrade, (), Infallible>> {
        Poll::Pending
    }

    fn on_connection_event(&mut self, _: ConnectionEvent<'_, DeniedUpgrade, DeniedUpgrade>) {}
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn peer() -> PeerId {
        libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id()
    }

    #[test]
    fn backoff_doubles_while_dials_fail_and_starts_over_when_connected() {
        let second = Duration::from_secs(1);
        let mut p = Peering::new(second);
        let a = peer();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        p.add(a, vec![addr.clone(), addr.clone()], false).unwrap();
        let t0 = Instant::now();
        // Not connected: due at once, once.
        assert_eq!(p.due(t0), vec![(a, vec![addr.clone()])]);
        assert!(p.due(t0).is_empty());
        // Then 1 s, 2 s, 4 s later ...
        assert_eq!(p.due(t0 + second).len(), 1);
        assert!(p.due(t0 + second * 2).is_empty());
        assert_eq!(p.due(t0 + second * 3).len(), 1);
        assert!(p.due(t0 + second * 6).is_empty());
        assert_eq!(p.due(t0 + second * 7).len(), 1);
        // ... until a connection opens; its close waits the initial backoff again.
        p.connected(&a);
        assert!(p.due(t0 + second * 100).is_empty());
        p.disconnected(&a);
        let t1 = Instant::now();
        assert!(p.due(t1).is_empty());
        assert_eq!(p.due(t1 + second).len(), 1);
        // The backoff stops growing at its maximum.
        for i in 0..20 {
            p.due(t1 + PEERING_BACKOFF_MAX * (i + 2));
        }
        assert_eq!(p.peers[&a].backoff, PEERING_BACKOFF_MAX);
        assert!(p.remove(&a));
        assert!(!p.remove(&a));
        assert!(p.due(t1 + PEERING_BACKOFF_MAX * 100).is_empty());
    }

    #[test]
    fn the_set_is_bounded() {
        let mut p = Peering::new(PEERING_BACKOFF_INITIAL);
        for _ in 0..PEERED_PEERS_MAX {
            p.add(peer(), Vec::new(), true).unwrap();
        }
        assert!(matches!(
            p.add(peer(), Vec::new(), true),
            Err(PeeringError::Full)
        ));
        let many: Vec<Multiaddr> = (0..100)
            .map(|i| format!("/ip4/127.0.0.1/tcp/{}", i + 1).parse().unwrap())
            .collect();
        let known = p.list()[0].0;
        p.add(known, many, true).unwrap();
        assert_eq!(p.list()[0].1.len(), PEERED_ADDRS_MAX);
    }
}
