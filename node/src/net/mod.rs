//! The libp2p network node: identity, the root behaviour and the swarm task.
//!
//! - [`identity`]: the persistent Ed25519 keypair in the repository;
//! - [`behaviour`]: the root `NetworkBehaviour` (connection and memory limits, identify, ping,
//!   Kademlia) and its constants;
//! - [`node`]: [`Node`], the swarm on a tokio task behind a command channel;
//! - [`fetch`]: fetching blocks and DAGs over bitswap into the repository;
//! - [`muxer`]: yamux with receive windows the yamux frame decoder can always take;
//! - [`transport`]: TCP/QUIC/relayed connections, pnet under a swarm key, byte counting
//!   ([`bandwidth`]); [`security`]: TLS 1.3 with AES-GCM first, or noise;
//! - [`autonat`]: reachability and the DHT mode that follows it; [`relay`]: circuit relay v2.
//!
//! Architecture invariant: this module moves bytes between peers; the blockstore below it never
//! does network I/O. Besides the identity file, the only writes to the repository are fetched
//! blocks, made through a write session (a temporary pin).

pub mod addr_book;
pub mod autonat;
pub mod bandwidth;
pub mod behaviour;
pub mod features;
pub mod fetch;
pub mod identity;
pub mod muxer;
pub mod node;
pub mod on_demand;
pub mod peering;
pub mod ping;
pub mod provide;
pub mod psk;
pub mod relay;
pub mod security;
pub mod transport;

pub use crate::bitswap::BitswapStat;
pub use behaviour::{agent_version, protocols, BehaviourConfig, ConnectionCaps, KadMode};
pub use fetch::FetchStats;
pub use identity::{load_or_create, IdentityError};
pub use libp2p::{identity::Keypair, Multiaddr, PeerId};
pub use node::{NetError, Node, NodeConfig, NodeHandle, PeerInfo};
pub use on_demand::OnDemandStore;

/// Default listen addresses of a daemon, as kubo's: TCP and QUIC v1 on port 4001, all
/// interfaces.
pub fn default_listen_addrs() -> Vec<Multiaddr> {
    ["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"]
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect()
}
