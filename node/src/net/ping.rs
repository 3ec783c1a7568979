//! `ping` on demand: round trips to one peer on `/ipfs/ping/1.0.0`, as kubo's `ipfs ping`.
//!
//! The ping behaviour ([`libp2p::ping`]) answers every peer's pings and probes each connection
//! on a timer, but it cannot be asked for a ping. An on-demand ping therefore opens a stream of
//! its own through `libp2p-stream` ([`Streams`]; it accepts no protocol, so peers cannot open
//! anything new on us) and speaks the protocol itself: [`PING_PAYLOAD_BYTES`] random bytes
//! out, the same bytes back, on a new stream each time ([`Pinger`] says why). Opening a stream
//! dials the peer if it is not connected (with the addresses the node knows for it).

use std::time::{Duration, Instant};

use futures::{AsyncReadExt as _, AsyncWriteExt as _};
use libp2p::{PeerId, StreamProtocol};
use rand::RngCore as _;

use super::NetError;

/// The ping protocol's payload: 32 bytes, echoed.
pub const PING_PAYLOAD_BYTES: usize = 32;
/// Longest wait for the stream to open (a dial included) and for each echo, as go-libp2p's
/// ping (`pingTimeout`, 10 s).
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// The protocol, spoken by kubo, Helia and our own ping behaviour.
pub const PING_PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfs/ping/1.0.0");

/// The node's opener of outbound streams (a [`libp2p_stream::Control`]).
#[derive(Clone)]
pub struct Streams(pub(crate) libp2p_stream::Control);

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Streams")
    }
}

/// Pings to one peer: each [`Pinger::ping`] is one round trip on a stream of its own.
///
/// A stream per ping, not one for all: rust-libp2p's ping handler (ours included) answers
/// one inbound ping stream per connection and drops the older when a newer one arrives, and
/// the pinged peer's periodic pings of us open a new stream of theirs whenever one fails. A
/// long-lived stream of ours would be cut by the first of those; a fresh one is open for one
/// round trip only. go-libp2p and js-libp2p answer any number of streams.
pub struct Pinger {
    peer: PeerId,
    streams: Streams,
}

impl Streams {
    /// Pings to `peer`; the first [`Pinger::ping`] dials it if needed.
    pub fn pinger(&self, peer: PeerId) -> Pinger {
        Pinger {
            peer,
            streams: self.clone(),
        }
    }

    async fn open(&self, peer: PeerId) -> Result<libp2p::Stream, NetError> {
        let mut control = self.0.clone();
        tokio::time::timeout(PING_TIMEOUT, control.open_stream(peer, PING_PROTOCOL))
            .await
            .map_err(|_| NetError::Ping {
                peer,
                reason: format!("no stream within {PING_TIMEOUT:?}"),
            })?
            .map_err(|e| NetError::Ping {
                peer,
                reason: e.to_string(),
            })
    }
}

/// How one round trip on one stream ended.
enum RoundTrip {
    Echoed(Duration),
    /// The stream was closed or reset before the echo: the peer may have dropped it for a
    /// newer ping stream (see [`Pinger`]); worth one more try on a new stream.
    Cut(std::io::Error),
}

impl Pinger {
    /// The peer this pinger pings.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// One round trip: opens a stream, sends a fresh random payload and waits for its echo
    /// (the time measured is the echo's alone). A stream cut before the echo is tried once more
    /// on a new one.
    pub async fn ping(&mut self) -> Result<Duration, NetError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let stream = self.streams.open(self.peer).await?;
            match self.round_trip(stream).await? {
                RoundTrip::Echoed(rtt) => return Ok(rtt),
                RoundTrip::Cut(e) if tries >= 2 => {
                    return Err(NetError::Ping {
                        peer: self.peer,
                        reason: e.to_string(),
                    })
                }
                RoundTrip::Cut(e) => {
                    tracing::debug!(peer = %self.peer, error = %e, "ping stream cut, trying a new one");
                }
            }
        }
    }

    async fn round_trip(&self, mut stream: libp2p::Stream) -> Result<RoundTrip, NetError> {
        let mut payload = [0u8; PING_PAYLOAD_BYTES];
        rand::thread_rng().fill_bytes(&mut payload);
        let mut echo = [0u8; PING_PAYLOAD_BYTES];
        let started = Instant::now();
        let exchange = async {
            stream.write_all(&payload).await?;
            stream.flush().await?;
            stream.read_exact(&mut echo).await?;
            Ok::<_, std::io::Error>(started.elapsed())
        };
        let result = tokio::time::timeout(PING_TIMEOUT, exchange)
            .await
            .map_err(|_| NetError::Ping {
                peer: self.peer,
                reason: format!("no echo within {PING_TIMEOUT:?}"),
            })?;
        let _ = stream.close().await;
        let rtt = match result {
            Ok(rtt) => rtt,
            Err(e) => return Ok(RoundTrip::Cut(e)),
        };
        if echo != payload {
            return Err(NetError::Ping {
                peer: self.peer,
                reason: "the echo differs from what was sent".to_owned(),
            });
        }
        Ok(RoundTrip::Echoed(rtt))
    }
}
