//! The node's transport, built in one place: TCP (optionally under a private network's
//! pnet handshake) + TLS or noise ([`super::security`]) + yamux, QUIC v1 (public networks
//! only), and the circuit relay client, every connection's streams counted by
//! [`super::bandwidth`]. Under all of them, names: a dial of a `/dns`, `/dns4`, `/dns6` or
//! `/dnsaddr` address (kubo's bootstrap peers are `/dnsaddr/bootstrap.libp2p.io/p2p/..`)
//! resolves it first, with the configured name servers or the system's ([`dns_config`]).
//!
//! | network | TCP | QUIC | relayed (`/p2p-circuit`) |
//! |---|---|---|---|
//! | public | TLS or noise + yamux | yes | TLS or noise + yamux |
//! | private (swarm key) | pnet + TLS or noise + yamux | no (no pnet layer) | pnet + TLS or noise + yamux, end to end |

use std::net::SocketAddr;
use std::sync::Arc;

use futures::future::Either;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::{upgrade::Version, Transport as _};
use libp2p::identity::Keypair;
use libp2p::pnet::{PnetConfig, PreSharedKey};
use libp2p::{dns, quic, relay, tcp, PeerId};

use super::bandwidth::{self, Bandwidth};
use super::security::Security;

/// Errors building the transport.
pub type TransportError = Box<dyn std::error::Error + Send + Sync>;

/// What goes into the transport.
pub struct TransportParts {
    /// A private network's key: TCP and relayed connections run pnet, QUIC is left out.
    pub psk: Option<PreSharedKey>,
    /// The relay client's transport half ([`relay::client::new`]).
    pub relay: Option<relay::client::Transport>,
    /// Where every connection counts its bytes.
    pub bandwidth: Arc<Bandwidth>,
    /// Concurrent streams per connection (yamux and QUIC).
    pub streams_per_connection_max: usize,
    /// Name servers (`dns.resolvers`); empty: the system's.
    pub dns_resolvers: Vec<SocketAddr>,
}

/// Where the system's name servers are listed.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The resolver for `/dns*` addresses: `servers` in order (each over UDP, then TCP), or with
/// none, the system's from [`RESOLV_CONF`]. Without a readable one, 127.0.0.1:53, as the C
/// library's resolver does then.
pub fn dns_config(servers: &[SocketAddr]) -> (ResolverConfig, ResolverOpts) {
    let configured = |servers: &[SocketAddr]| {
        let name_servers = servers
            .iter()
            .map(|a| {
                let (mut udp, mut tcp) = (ConnectionConfig::udp(), ConnectionConfig::tcp());
                udp.port = a.port();
                tcp.port = a.port();
                NameServerConfig::new(a.ip(), true, vec![udp, tcp])
            })
            .collect();
        (
            ResolverConfig::from_parts(None, Vec::new(), name_servers),
            ResolverOpts::default(),
        )
    };
    if !servers.is_empty() {
        return configured(servers);
    }
    match hickory_resolver::system_conf::read_system_conf() {
        Ok(system) => system,
        Err(e) => {
            tracing::warn!(file = RESOLV_CONF, error = %e, "no system name servers: asking 127.0.0.1:53");
            configured(&[SocketAddr::from(([127, 0, 0, 1], 53))])
        }
    }
}

/// The whole transport for `keypair`.
pub fn build(
    keypair: &Keypair,
    parts: TransportParts,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, TransportError> {
    let TransportParts {
        psk,
        relay,
        bandwidth,
        streams_per_connection_max: streams,
        dns_resolvers,
    } = parts;
    let security = Security::new(keypair)?;
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
    let direct: Boxed<(PeerId, StreamMuxerBox)> = match psk {
        Some(psk) => tcp
            .and_then(move |socket, _| PnetConfig::new(psk).handshake(socket))
            .upgrade(Version::V1Lazy)
            .authenticate(security.clone())
            .multiplex(super::muxer::Config::new(streams))
            .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
            .boxed(),
        None => {
            let mut quic_config = quic::Config::new(keypair);
            quic_config.max_concurrent_stream_limit = u32::try_from(streams).unwrap_or(u32::MAX);
            let quic = quic::tokio::Transport::new(quic_config)
                .map(|(peer, conn), _| (peer, StreamMuxerBox::new(conn)));
            tcp.upgrade(Version::V1Lazy)
                .authenticate(security.clone())
                .multiplex(super::muxer::Config::new(streams))
                .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
                .or_transport(quic)
                .map(|either, _| match either {
                    Either::Left(out) | Either::Right(out) => out,
                })
                .boxed()
        }
    };
    let all = match relay {
        Some(relay) => {
            let relayed: Boxed<(PeerId, StreamMuxerBox)> = match psk {
                Some(psk) => relay
                    .and_then(move |conn, _| PnetConfig::new(psk).handshake(conn))
                    .upgrade(Version::V1Lazy)
                    .authenticate(security)
                    .multiplex(super::muxer::Config::new(streams))
                    .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
                    .boxed(),
                None => relay
                    .upgrade(Version::V1Lazy)
                    .authenticate(security)
                    .multiplex(super::muxer::Config::new(streams))
                    .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
                    .boxed(),
            };
            direct
                .or_transport(relayed)
                .map(|either, _| match either {
                    Either::Left(out) | Either::Right(out) => out,
                })
                .boxed()
        }
        None => direct,
    };
    let (dns_config, dns_opts) = dns_config(&dns_resolvers);
    let all = dns::tokio::Transport::custom(all, dns_config, dns_opts);
    Ok(all
        .map(move |(peer, muxer), _| {
            let counted = bandwidth::count(muxer, bandwidth.clone(), peer);
            (peer, counted)
        })
        .boxed())
}
