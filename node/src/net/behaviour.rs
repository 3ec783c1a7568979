//! The root [`NetworkBehaviour`]: resource limits first, then identify, ping, Kademlia (the
//! WAN DHT and, like kubo's dual DHT, the LAN one), bitswap, AutoNAT, the relay client and
//! server, and (optionally) mDNS.
//!
//! Limits are composed into the root behaviour from day one (CVE-2022-23486 was unbounded
//! resource use in go-libp2p): `connection_limits` caps pending and established connections,
//! `memory_connection_limits` refuses new connections once the process uses too much memory.
//! Both come first so that a refused connection never reaches the protocol behaviours.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use ipfs_kit_blockstore::Blockstore;
use libp2p::identity::Keypair;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    autonat, connection_limits, gossipsub, identify, kad, mdns, memory_connection_limits, ping,
    relay, StreamProtocol,
};

use crate::bitswap::protocol::ProtocolVersion;
use crate::bitswap::session::SessionConfig;

/// The Kademlia protocol of the public IPFS DHT (Amino).
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfs/kad/1.0.0");

/// The Kademlia protocol of kubo's LAN DHT (go-libp2p-kad-dht `dual`: the WAN protocol with
/// the `/lan` extension). A kubo node without a public address runs its WAN DHT as a client
/// and serves only this one.
pub const KAD_LAN_PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfs/lan/kad/1.0.0");

/// Kademlia bucket size and replication factor, k (`ipfs/specs` `src/routing/kad-dht.md`).
pub const KAD_K: usize = 20;

/// Largest Kademlia message read or written. rust-libp2p's default is 16 KiB, while go-libp2p
/// accepts 4 MiB and kubo's FIND_NODE / GET_PROVIDERS answers can exceed 16 KiB; raised for
/// interop (`LIMITS.md`). Stored values are bounded separately.
pub const KAD_PACKET_BYTES_MAX: usize = 256 * 1024;

/// Distinct keys the DHT record store keeps provider records for (ours and other peers');
/// rust-libp2p's default of 1024 would drop records as soon as a few peers sweep thousands
/// of keys to us. Each key keeps at most k providers.
pub const PROVIDER_KEYS_MAX: usize = 1 << 19;

/// Timeout of a whole Kademlia query.
pub const KAD_QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a node refreshes its DHT routing table by default (rust-libp2p's and kubo's
/// default refresh period, 5 min).
pub const KAD_BOOTSTRAP_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// The identify "protocol version" kubo sends (`ipfs/0.1.0`); the stream protocol itself is
/// `/ipfs/id/1.0.0`.
pub const IDENTIFY_PROTOCOL_VERSION: &str = "ipfs/0.1.0";

/// Fraction of physical memory past which new connections are refused.
pub const MEMORY_FRACTION_MAX: f64 = 0.9;

/// Our agent version, `ipfs-kit/<crate version>`, sent in identify and printed by `id`.
pub fn agent_version() -> String {
    format!("ipfs-kit/{}", env!("CARGO_PKG_VERSION"))
}

/// The protocols this behaviour serves with the default [`BehaviourConfig`] (the LAN DHT on),
/// in the order `ipfs-kit id` prints them (sorted, as kubo prints). Tested against what
/// identify actually announces to a remote peer.
pub fn protocols() -> Vec<StreamProtocol> {
    protocols_for(&BehaviourConfig::default())
}

/// The protocols served under `config` (sorted): [`protocols`], without the LAN DHT's when it
/// is off.
pub fn protocols_for(config: &BehaviourConfig) -> Vec<StreamProtocol> {
    let mut p = vec![
        StreamProtocol::new(ProtocolVersion::V1_0_0.protocol_name()),
        StreamProtocol::new(ProtocolVersion::V1_1_0.protocol_name()),
        StreamProtocol::new(ProtocolVersion::V1_2_0.protocol_name()),
        identify::PROTOCOL_NAME,
        identify::PUSH_PROTOCOL_NAME,
        KAD_PROTOCOL,
        ping::PROTOCOL_NAME,
        autonat::DEFAULT_PROTOCOL_NAME,
    ];
    if config.lan_dht {
        p.push(KAD_LAN_PROTOCOL);
    }
    p.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
    p
}

/// Whether this node answers DHT queries (server) or only asks (client). Set explicitly: left
/// to itself rust-libp2p switches on confirmed external addresses, which loopback tests and
/// NATed leechers never have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KadMode {
    Server,
    Client,
    /// Client until AutoNAT finds the node publicly reachable, then server; back to client
    /// if it turns private (kubo's `Routing.Type = dht`; [`super::autonat::kad_server_for`]).
    ByReachability,
}

/// Connection caps, applied by `connection_limits`. `None` means no cap on that count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionCaps {
    pub max_pending_incoming: Option<u32>,
    pub max_pending_outgoing: Option<u32>,
    pub max_established_incoming: Option<u32>,
    pub max_established_outgoing: Option<u32>,
    pub max_established: Option<u32>,
    pub max_established_per_peer: Option<u32>,
}

impl Default for ConnectionCaps {
    /// Caps for a server node (kubo's connection manager aims at 32..96 peers; its resource
    /// manager allows a few hundred connections).
    fn default() -> Self {
        Self {
            max_pending_incoming: Some(64),
            max_pending_outgoing: Some(64),
            max_established_incoming: Some(256),
            max_established_outgoing: Some(256),
            max_established: Some(512),
            max_established_per_peer: Some(4),
        }
    }
}

impl ConnectionCaps {
    fn to_limits(&self) -> connection_limits::ConnectionLimits {
        connection_limits::ConnectionLimits::default()
            .with_max_pending_incoming(self.max_pending_incoming)
            .with_max_pending_outgoing(self.max_pending_outgoing)
            .with_max_established_incoming(self.max_established_incoming)
            .with_max_established_outgoing(self.max_established_outgoing)
            .with_max_established(self.max_established)
            .with_max_established_per_peer(self.max_established_per_peer)
    }
}

/// Settings of the behaviours that tests and roles tune.
#[derive(Clone, Debug)]
pub struct BehaviourConfig {
    pub caps: ConnectionCaps,
    pub kad_mode: KadMode,
    /// How often ping probes each connection.
    pub ping_interval: Duration,
    /// How often identify re-sends our info on each connection.
    pub identify_interval: Duration,
    /// How often Kademlia refreshes its routing table by itself (`None`: only when asked).
    pub kad_bootstrap_interval: Option<Duration>,
    /// Bitswap client sessions' settings (rebroadcast, wants in flight per peer).
    pub bitswap_session: SessionConfig,
    /// Speak the cluster protocols (gossipsub, cluster status requests): masters and workers
    /// in a cluster. Off for leechers and plain nodes, which then announce only the IPFS
    /// protocols of [`protocols`].
    pub cluster: bool,
    /// AutoNAT: the client always runs; whether dial-backs are served and from which peers.
    pub autonat: super::autonat::AutonatConfig,
    /// Run a circuit relay v2 server ([`super::relay`]; kubo's `Swarm.RelayService`).
    pub relay_server: bool,
    /// Find peers on the local network with mDNS (kubo's `Discovery.MDNS`). Off by default.
    pub mdns: bool,
    /// Also run kubo's LAN DHT ([`KAD_LAN_PROTOCOL`], a second Kademlia with its own routing
    /// table, see [`lan_admits`]). On by default, as in kubo (`routing.lan_dht`).
    pub lan_dht: bool,
}

impl Default for BehaviourConfig {
    fn default() -> Self {
        Self {
            caps: ConnectionCaps::default(),
            kad_mode: KadMode::Server,
            ping_interval: Duration::from_secs(15),
            identify_interval: Duration::from_secs(5 * 60),
            kad_bootstrap_interval: Some(KAD_BOOTSTRAP_INTERVAL),
            bitswap_session: SessionConfig::default(),
            cluster: false,
            autonat: super::autonat::AutonatConfig::default(),
            relay_server: false,
            mdns: false,
            lan_dht: true,
        }
    }
}

/// How long a cluster status request waits for its answer.
pub const CLUSTER_STATUS_TIMEOUT: Duration = Duration::from_secs(10);

/// gossipsub's heartbeat (mesh maintenance and gossip); rust-libp2p's default is 1 s.
pub const GOSSIPSUB_HEARTBEAT: Duration = Duration::from_millis(500);

/// The cluster's gossipsub: signed messages only (the signed `source` is the author of a
/// heads announcement or a metric), at most `BROADCAST_BYTES_MAX` per message (the 64 KiB
/// that cluster-sync's announcements are built to fit).
fn cluster_gossipsub(keypair: &Keypair) -> Option<gossipsub::Behaviour> {
    let config = gossipsub::ConfigBuilder::default()
        .max_transmit_size(ipfs_kit_cluster_sync::limits::BROADCAST_BYTES_MAX)
        .validation_mode(gossipsub::ValidationMode::Strict)
        .heartbeat_interval(GOSSIPSUB_HEARTBEAT)
        .build();
    let built = config.map_err(|e| e.to_string()).and_then(|c| {
        gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(keypair.clone()), c)
            .map_err(|e| e.to_string())
    });
    match built {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::error!(error = %e, "gossipsub not started");
            None
        }
    }
}

/// The root behaviour of an ipfs-kit node. Field order is poll order: limits first.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub limits: connection_limits::Behaviour,
    pub memory: memory_connection_limits::Behaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub kad: kad::Behaviour<super::provide::store::ProviderStore>,
    /// The LAN DHT (`/ipfs/lan/kad/1.0.0`); on with [`BehaviourConfig::lan_dht`]. Its routing
    /// table is filled by hand ([`lan_admits`]); our own provided keys are shared with `kad`.
    pub kad_lan: Toggle<kad::Behaviour<super::provide::store::ProviderStore>>,
    pub bitswap: crate::bitswap::behaviour::Behaviour,
    /// The cluster's topics (heads, metrics); on only with [`BehaviourConfig::cluster`].
    pub gossipsub: Toggle<gossipsub::Behaviour>,
    /// The cluster's status requests; on only with [`BehaviourConfig::cluster`].
    pub cluster_status: Toggle<crate::cluster::wire::StatusBehaviour>,
    /// Batches of ADD_PROVIDER records to one peer on one stream (the sweep).
    pub provide_sender: crate::net::provide::sender::Behaviour,
    /// AutoNAT v1 client (and server, by role): our reachability.
    pub autonat: autonat::Behaviour,
    /// The relay client, with its transport ([`crate::net::relay`]); on with the node's
    /// `relay_client`.
    pub relay_client: Toggle<relay::client::Behaviour>,
    /// A circuit relay v2 server; on with [`BehaviourConfig::relay_server`].
    pub relay_server: Toggle<relay::Behaviour>,
    /// Local network discovery; on with [`BehaviourConfig::mdns`].
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    /// Streams we open on demand (an on-demand ping, [`crate::net::ping`]). It accepts no
    /// protocol, so it adds nothing peers can open on us.
    pub streams: libp2p_stream::Behaviour,
    /// Keeps connections to peered peers open while idle ([`crate::net::peering`]).
    pub keep_alive: crate::net::peering::KeepAlive,
}

/// The DHT record store, holding up to [`PROVIDER_KEYS_MAX`] keys of other peers' provider
/// records; our own are in its shared set ([`super::provide::store`]).
fn provider_store(peer_id: libp2p::PeerId) -> super::provide::store::ProviderStore {
    super::provide::store::ProviderStore::new(peer_id, provider_store_config())
}

fn provider_store_config() -> kad::store::MemoryStoreConfig {
    kad::store::MemoryStoreConfig {
        max_provided_keys: PROVIDER_KEYS_MAX,
        ..Default::default()
    }
}

/// One Kademlia behaviour speaking `protocol`, with our limits and k.
fn kad_config(protocol: StreamProtocol, config: &BehaviourConfig) -> kad::Config {
    let mut kad_config = kad::Config::new(protocol);
    kad_config
        .set_max_packet_size(KAD_PACKET_BYTES_MAX)
        .set_query_timeout(KAD_QUERY_TIMEOUT)
        .set_periodic_bootstrap_interval(config.kad_bootstrap_interval)
        // The sweeping reprovider (`net::provide`) republishes our records, by region.
        .set_provider_publication_interval(None);
    if let Some(k) = NonZeroUsize::new(KAD_K) {
        kad_config.set_replication_factor(k).set_kbucket_size(k);
    }
    kad_config
}

/// Whether `addr` is on a private network as kubo's LAN DHT counts it (go-libp2p-kad-dht's
/// `PrivateRoutingTableFilter`): loopback, RFC 1918, link-local, CGNAT (100.64/10), IPv6
/// unique-local and link-local. DNS names and relayed addresses are not.
pub fn is_lan_addr(addr: &libp2p::Multiaddr) -> bool {
    use libp2p::multiaddr::Protocol;
    if addr.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
        return false;
    }
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => {
            let o = ip.octets();
            ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        Some(Protocol::Ip6(ip)) => {
            let first = ip.segments()[0];
            ip.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
        _ => false,
    }
}

/// Whether the LAN DHT admits a peer to its routing table: it serves the LAN protocol, does
/// not serve the WAN one, and we reach it at a private address (`connected`). kubo's LAN
/// table needs only the last two; we leave out peers that speak the WAN protocol because our
/// WAN table, unlike kubo's, admits peers at any address: such a peer is already routed
/// through the WAN DHT, and holding it twice would run every lookup twice among our own
/// nodes. The LAN table thus holds the peers we could not route to otherwise: kubo and JS
/// nodes without a public address, whose WAN DHT is a client.
pub fn lan_admits(protocols: &[StreamProtocol], connected: &libp2p::Multiaddr) -> bool {
    protocols.contains(&KAD_LAN_PROTOCOL)
        && !protocols.contains(&KAD_PROTOCOL)
        && is_lan_addr(connected)
}

impl Behaviour {
    /// Builds the behaviour for `keypair`; bitswap serves the blocks of `store` (whose reads
    /// may wait on a network when `reads_may_wait`: a remote storage tier); `relay_client` is
    /// the behaviour half of the relay transport, when the node has one.
    pub fn new(
        keypair: &Keypair,
        config: &BehaviourConfig,
        store: Option<Arc<dyn Blockstore>>,
        reads_may_wait: bool,
        relay_client: Option<relay::client::Behaviour>,
    ) -> Self {
        let peer_id = keypair.public().to_peer_id();
        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL_VERSION.to_owned(), keypair.public())
                .with_agent_version(agent_version())
                .with_interval(config.identify_interval),
        );
        let ping = ping::Behaviour::new(ping::Config::new().with_interval(config.ping_interval));
        let kad_store = provider_store(peer_id);
        let own_keys = kad_store.own_keys();
        let mut kad =
            kad::Behaviour::with_config(peer_id, kad_store, kad_config(KAD_PROTOCOL, config));
        kad.set_mode(Some(match config.kad_mode {
            KadMode::Server => kad::Mode::Server,
            // Following reachability starts as a client, as kubo's `dht` mode does.
            KadMode::Client | KadMode::ByReachability => kad::Mode::Client,
        }));
        let kad_lan = config.lan_dht.then(|| {
            let mut c = kad_config(KAD_LAN_PROTOCOL, config);
            // Admission by `lan_admits`, from the node's identify handler.
            c.set_kbucket_inserts(kad::BucketInserts::Manual);
            let store = super::provide::store::ProviderStore::with_own_keys(
                peer_id,
                provider_store_config(),
                own_keys,
            );
            let mut lan = kad::Behaviour::with_config(peer_id, store, c);
            // Peers on the LAN reach us directly: a server whatever AutoNAT says (kubo and
            // js-libp2p run their LAN DHT as a server); a DHT client (leecher) stays one.
            lan.set_mode(Some(match config.kad_mode {
                KadMode::Client => kad::Mode::Client,
                KadMode::Server | KadMode::ByReachability => kad::Mode::Server,
            }));
            lan
        });
        let mdns = if config.mdns {
            match mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id) {
                Ok(b) => Some(b),
                Err(e) => {
                    tracing::warn!(error = %e, "mDNS not started");
                    None
                }
            }
        } else {
            None
        };
        Self {
            limits: connection_limits::Behaviour::new(config.caps.to_limits()),
            memory: memory_connection_limits::Behaviour::with_max_percentage(MEMORY_FRACTION_MAX),
            identify,
            ping,
            kad,
            kad_lan: Toggle::from(kad_lan),
            bitswap: crate::bitswap::behaviour::Behaviour::new(
                store,
                config.bitswap_session.clone(),
            )
            .reads_may_wait(reads_may_wait),
            gossipsub: Toggle::from(config.cluster.then(|| cluster_gossipsub(keypair)).flatten()),
            cluster_status: Toggle::from(
                config
                    .cluster
                    .then(|| crate::cluster::wire::status_behaviour(CLUSTER_STATUS_TIMEOUT)),
            ),
            provide_sender: Default::default(),
            autonat: config.autonat.behaviour(peer_id),
            relay_client: Toggle::from(relay_client),
            relay_server: Toggle::from(
                config
                    .relay_server
                    .then(|| crate::net::relay::server(peer_id)),
            ),
            mdns: Toggle::from(mdns),
            streams: libp2p_stream::Behaviour::new(),
            keep_alive: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn protocols_are_the_ipfs_ones_sorted() {
        let p: Vec<String> = protocols().iter().map(|p| p.to_string()).collect();
        assert_eq!(
            p,
            [
                "/ipfs/bitswap/1.0.0",
                "/ipfs/bitswap/1.1.0",
                "/ipfs/bitswap/1.2.0",
                "/ipfs/id/1.0.0",
                "/ipfs/id/push/1.0.0",
                "/ipfs/kad/1.0.0",
                "/ipfs/lan/kad/1.0.0",
                "/ipfs/ping/1.0.0",
                "/libp2p/autonat/1.0.0"
            ]
        );
        let wan_only = BehaviourConfig {
            lan_dht: false,
            ..BehaviourConfig::default()
        };
        assert!(!protocols_for(&wan_only).contains(&KAD_LAN_PROTOCOL));
        assert!(agent_version().starts_with("ipfs-kit/"));
    }

    #[test]
    fn lan_addresses_and_admission() {
        for (a, lan) in [
            ("/ip4/127.0.0.1/tcp/1", true),
            ("/ip4/10.1.2.3/tcp/1", true),
            ("/ip4/172.16.0.1/udp/1/quic-v1", true),
            ("/ip4/192.168.1.1/tcp/1", true),
            ("/ip4/169.254.1.1/tcp/1", true),
            ("/ip4/100.64.0.1/tcp/1", true),
            ("/ip4/100.128.0.1/tcp/1", false),
            ("/ip4/8.8.8.8/tcp/1", false),
            ("/ip6/::1/tcp/1", true),
            ("/ip6/fd00::1/tcp/1", true),
            ("/ip6/fe80::1/tcp/1", true),
            ("/ip6/2001:db8::1/tcp/1", false),
            ("/dns4/localhost/tcp/1", false),
            ("/ip4/127.0.0.1/tcp/1/p2p-circuit", false),
        ] {
            let addr: libp2p::Multiaddr = a.parse().unwrap();
            assert_eq!(is_lan_addr(&addr), lan, "{a}");
        }
        let local: libp2p::Multiaddr = "/ip4/192.168.1.1/tcp/1".parse().unwrap();
        let public: libp2p::Multiaddr = "/ip4/8.8.8.8/tcp/1".parse().unwrap();
        let lan_only = [KAD_LAN_PROTOCOL, ping::PROTOCOL_NAME];
        let both = [KAD_LAN_PROTOCOL, KAD_PROTOCOL];
        assert!(lan_admits(&lan_only, &local));
        assert!(
            !lan_admits(&lan_only, &public),
            "a public peer is not on the LAN"
        );
        assert!(!lan_admits(&both, &local), "routed by the WAN DHT already");
        assert!(!lan_admits(&[KAD_PROTOCOL], &local));
    }
}
