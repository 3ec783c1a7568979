//! The node's transport, built in one place: TCP (optionally under a private network's
//! pnet handshake) + TLS or noise ([`super::security`]) + yamux, QUIC v1 (public networks
//! only), and the circuit relay client, every connection's streams counted by
//! [`super::bandwidth`].
//!
//! | network | TCP | QUIC | relayed (`/p2p-circuit`) |
//! |---|---|---|---|
//! | public | TLS or noise + yamux | yes | TLS or noise + yamux |
//! | private (swarm key) | pnet + TLS or noise + yamux | no (no pnet layer) | pnet + TLS or noise + yamux, end to end |

use std::sync::Arc;

use futures::future::Either;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::{upgrade::Version, Transport as _};
use libp2p::identity::Keypair;
use libp2p::pnet::{PnetConfig, PreSharedKey};
use libp2p::{quic, relay, tcp, PeerId};

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
    Ok(all
        .map(move |(peer, muxer), _| {
            let counted = bandwidth::count(muxer, bandwidth.clone(), peer);
            (peer, counted)
        })
        .boxed())
}
