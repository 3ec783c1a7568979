//! Circuit relay v2: the client (kubo's `Swarm.RelayClient`) and the server (kubo's
//! `Swarm.RelayService`).
//!
//! - The client is a transport: it dials `/p2p-circuit` addresses through a relay, and
//!   "listens" on `<relay>/p2p-circuit` by holding a reservation there, so peers that cannot
//!   dial us directly reach us through the relay. Static relays come from the config.
//! - The server (masters by default) accepts reservations and relays circuits, every count,
//!   duration and byte total bounded by the constants below (libp2p's and kubo's limited
//!   relay: a circuit is for small exchanges and hole punching, not bulk transfer). A
//!   reservation hands out the relay's confirmed external addresses (AutoNAT's, or announced
//!   with `NodeHandle::add_external_address`); libp2p's client refuses one without any.
//!
//! Under a swarm key (private network) the relayed connection runs the pnet handshake end
//! to end before TLS or noise, exactly as a direct TCP connection does, so a circuit only
//! completes between holders of the key; the hop to the relay is itself a pnet connection.

use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{relay, Multiaddr, PeerId};

/// Reservations a relay server holds at once (libp2p's and kubo's default, 128).
pub const RELAY_RESERVATIONS_MAX: usize = 128;
/// Reservations one peer may hold on our relay (libp2p's default).
pub const RELAY_RESERVATIONS_PER_PEER_MAX: usize = 4;
/// How long a reservation lasts before the client must renew it (kubo's `ReservationTTL`).
pub const RELAY_RESERVATION_DURATION: Duration = Duration::from_secs(60 * 60);
/// Circuits relayed at once (kubo's `MaxCircuits`, 16).
pub const RELAY_CIRCUITS_MAX: usize = 16;
/// Circuits one peer may have through our relay at once (libp2p's default).
pub const RELAY_CIRCUITS_PER_PEER_MAX: usize = 4;
/// A circuit is closed after this long (kubo's `ConnectionDurationLimit`, 2 min).
pub const RELAY_CIRCUIT_DURATION_MAX: Duration = Duration::from_secs(2 * 60);
/// A circuit is closed after relaying this many bytes each way (kubo's
/// `ConnectionDataLimit`, 128 KiB).
pub const RELAY_CIRCUIT_BYTES_MAX: u64 = 128 * 1024;
/// Static relays a node reserves on, at most (`swarm.relays`).
pub const STATIC_RELAYS_MAX: usize = 16;
/// How long after a failed or closed reservation the client tries its relay again.
pub const RELAY_RESERVATION_RETRY: Duration = Duration::from_secs(30);

/// The relay server's settings: the constants above, with libp2p's reservation and circuit
/// rate limiters per peer and per IP.
pub fn server_config() -> relay::Config {
    relay::Config {
        max_reservations: RELAY_RESERVATIONS_MAX,
        max_reservations_per_peer: RELAY_RESERVATIONS_PER_PEER_MAX,
        reservation_duration: RELAY_RESERVATION_DURATION,
        max_circuits: RELAY_CIRCUITS_MAX,
        max_circuits_per_peer: RELAY_CIRCUITS_PER_PEER_MAX,
        max_circuit_duration: RELAY_CIRCUIT_DURATION_MAX,
        max_circuit_bytes: RELAY_CIRCUIT_BYTES_MAX,
        ..relay::Config::default()
    }
}

/// The relay server behaviour. It serves from the start: an operator who turned the relay
/// service on asked for it, whether or not AutoNAT has confirmed an external address yet.
pub fn server(peer_id: PeerId) -> relay::Behaviour {
    let mut b = relay::Behaviour::new(peer_id, server_config());
    b.set_status(Some(relay::Status::Enable));
    b
}

/// Errors in a relay address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RelayAddrError {
    #[error("relay address {0} does not end in /p2p/<relay peer id>")]
    NoPeerId(Multiaddr),
    #[error("relay address {0} already contains /p2p-circuit")]
    Circuit(Multiaddr),
}

/// The address to listen on for a reservation on `relay` (`<relay>/p2p/<id>/p2p-circuit`).
pub fn listen_addr(relay: &Multiaddr) -> Result<Multiaddr, RelayAddrError> {
    if relay.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
        return Err(RelayAddrError::Circuit(relay.clone()));
    }
    if !matches!(relay.iter().last(), Some(Protocol::P2p(_))) {
        return Err(RelayAddrError::NoPeerId(relay.clone()));
    }
    Ok(relay.clone().with(Protocol::P2pCircuit))
}

/// The address at which `target` is reached through `relay`:
/// `<relay>/p2p/<relay id>/p2p-circuit/p2p/<target>`.
pub fn circuit_addr(relay: &Multiaddr, target: PeerId) -> Result<Multiaddr, RelayAddrError> {
    Ok(listen_addr(relay)?.with(Protocol::P2p(target)))
}

/// Whether an address goes through a relay.
pub fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn circuit_addresses() {
        let relay_id = PeerId::random();
        let target = PeerId::random();
        let relay: Multiaddr = format!("/ip4/127.0.0.1/tcp/4001/p2p/{relay_id}")
            .parse()
            .unwrap();
        let a = circuit_addr(&relay, target).unwrap();
        assert_eq!(
            a.to_string(),
            format!("/ip4/127.0.0.1/tcp/4001/p2p/{relay_id}/p2p-circuit/p2p/{target}")
        );
        assert!(is_relayed(&a));
        assert!(!is_relayed(&relay));
        let bare: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        assert_eq!(listen_addr(&bare), Err(RelayAddrError::NoPeerId(bare)));
        assert!(matches!(
            listen_addr(&listen_addr(&relay).unwrap()),
            Err(RelayAddrError::Circuit(_))
        ));
    }

    #[test]
    fn server_limits_are_the_named_constants() {
        let c = server_config();
        assert_eq!(c.max_circuits, RELAY_CIRCUITS_MAX);
        assert_eq!(c.max_circuit_bytes, RELAY_CIRCUIT_BYTES_MAX);
        assert_eq!(c.max_reservations, RELAY_RESERVATIONS_MAX);
        assert!(!c.reservation_rate_limiters.is_empty());
    }
}
