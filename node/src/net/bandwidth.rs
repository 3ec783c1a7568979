//! Transport-level byte counting: every byte read from or written to any stream of any
//! connection (TCP, QUIC, relayed), whatever the protocol — bitswap, Kademlia, identify,
//! ping, AutoNAT, relay, gossipsub. `stats/bw` and the Prometheus metrics read these totals.
//!
//! [`CountingMuxer`] wraps a connection's stream muxer and each of its substreams in a
//! [`CountingStream`] that adds what passes through to shared atomic counters: the node's
//! totals, the remote peer's, and the stream's protocol's. Counted are the bytes protocols
//! read and write on streams (after TLS or noise and the muxer's framing), which is what kubo's
//! `stats/bw` reports. A relayed connection is counted once as its own connection, and once
//! more on the relay's side as the stream it rides in (the bytes do cross the wire twice: to
//! the relay and from it).
//!
//! **Per protocol.** The muxer hands out substreams before multistream-select has run on
//! them, so a [`CountingStream`] learns its protocol by reading the negotiation as it passes:
//! the first protocol name the *listener* sends back (an echo of the dialer's proposal, after
//! the `/multistream/1.0.0` header and any `na`) is the stream's protocol. The listener's
//! messages are what we read on a stream we opened and what we write on one we accepted.
//! Bytes that pass before the answer are held as a count and added once it is known. At most
//! [`NEGOTIATION_SNIFF_BYTES_MAX`] bytes are looked at; a stream whose negotiation does not
//! parse within them counts in the totals and its peer's only.
//!
//! **Bounds.** At most [`BANDWIDTH_PEERS_MAX`] peers are tracked (a peer's counters outlive
//! its connections, as in kubo, until room is needed: then peers with no live connection are
//! dropped) and at most [`BANDWIDTH_PROTOCOLS_MAX`] protocol names of at most
//! [`PROTOCOL_NAME_BYTES_MAX`] bytes each; what does not fit counts in the totals only.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerBox, StreamMuxerEvent, SubstreamBox};
use libp2p::PeerId;
use parking_lot::Mutex;

/// Peers whose byte counts are kept.
pub const BANDWIDTH_PEERS_MAX: usize = 4096;
/// Protocol names whose byte counts are kept.
pub const BANDWIDTH_PROTOCOLS_MAX: usize = 128;
/// Longest protocol name counted (multistream-select's own limit in rust-libp2p is 140).
pub const PROTOCOL_NAME_BYTES_MAX: usize = 140;
/// Bytes of a stream's negotiation looked at to learn its protocol.
pub const NEGOTIATION_SNIFF_BYTES_MAX: usize = 512;

/// One pair of byte counters.
#[derive(Debug, Default)]
pub struct Counter {
    inbound: AtomicU64,
    outbound: AtomicU64,
}

impl Counter {
    fn add_in(&self, n: u64) {
        self.inbound.fetch_add(n, Ordering::Relaxed);
    }

    fn add_out(&self, n: u64) {
        self.outbound.fetch_add(n, Ordering::Relaxed);
    }

    fn totals(&self) -> BandwidthTotals {
        BandwidthTotals {
            total_in: self.inbound.load(Ordering::Relaxed),
            total_out: self.outbound.load(Ordering::Relaxed),
        }
    }
}

/// Byte totals of every connection of one node since it started, in all, per peer and per
/// protocol.
#[derive(Debug, Default)]
pub struct Bandwidth {
    total: Counter,
    peers: Mutex<HashMap<PeerId, Arc<Counter>>>,
    protocols: Mutex<HashMap<String, Arc<Counter>>>,
}

/// A reading of [`Bandwidth`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BandwidthTotals {
    /// Bytes received on every stream of every connection.
    pub total_in: u64,
    /// Bytes sent on every stream of every connection.
    pub total_out: u64,
}

impl Bandwidth {
    /// The totals now.
    pub fn totals(&self) -> BandwidthTotals {
        self.total.totals()
    }

    /// The bytes exchanged with `peer` (zero for a peer never seen, as kubo answers).
    pub fn of_peer(&self, peer: &PeerId) -> BandwidthTotals {
        self.peers
            .lock()
            .get(peer)
            .map(|c| c.totals())
            .unwrap_or_default()
    }

    /// The bytes of every stream that negotiated `protocol` (zero for one never seen).
    pub fn of_protocol(&self, protocol: &str) -> BandwidthTotals {
        self.protocols
            .lock()
            .get(protocol)
            .map(|c| c.totals())
            .unwrap_or_default()
    }

    /// `peer`'s counters, created if there is room; peers without a live connection make
    /// room.
    fn peer_counter(&self, peer: PeerId) -> Option<Arc<Counter>> {
        let mut peers = self.peers.lock();
        if let Some(c) = peers.get(&peer) {
            return Some(c.clone());
        }
        if peers.len() >= BANDWIDTH_PEERS_MAX {
            // Only this map holds the counters of a peer with no live connection.
            peers.retain(|_, c| Arc::strong_count(c) > 1);
            if peers.len() >= BANDWIDTH_PEERS_MAX {
                return None;
            }
        }
        let c = Arc::new(Counter::default());
        peers.insert(peer, c.clone());
        Some(c)
    }

    fn protocol_counter(&self, protocol: &str) -> Option<Arc<Counter>> {
        let mut protocols = self.protocols.lock();
        if let Some(c) = protocols.get(protocol) {
            return Some(c.clone());
        }
        if protocols.len() >= BANDWIDTH_PROTOCOLS_MAX {
            return None;
        }
        let c = Arc::new(Counter::default());
        protocols.insert(protocol.to_owned(), c.clone());
        Some(c)
    }
}

/// Wraps the muxer of a connection to `peer` so that every substream it opens or accepts is
/// counted.
pub fn count(muxer: StreamMuxerBox, counters: Arc<Bandwidth>, peer: PeerId) -> StreamMuxerBox {
    let peer = counters.peer_counter(peer);
    StreamMuxerBox::new(CountingMuxer {
        inner: muxer,
        counters,
        peer,
    })
}

/// A stream muxer whose substreams count their bytes into a [`Bandwidth`].
pub struct CountingMuxer {
    inner: StreamMuxerBox,
    counters: Arc<Bandwidth>,
    peer: Option<Arc<Counter>>,
}

impl CountingMuxer {
    fn wrap(&self, inner: SubstreamBox, opened_here: bool) -> CountingStream {
        CountingStream {
            inner,
            counters: self.counters.clone(),
            peer: self.peer.clone(),
            protocol: Protocol::Negotiating(Box::new(Negotiation::new(opened_here))),
        }
    }
}

impl StreamMuxer for CountingMuxer {
    type Substream = CountingStream;
    type Error = io::Error;

    fn poll_inbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let polled = Pin::new(&mut self.inner).poll_inbound(cx);
        polled.map_ok(|inner| self.wrap(inner, false))
    }

    fn poll_outbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let polled = Pin::new(&mut self.inner).poll_outbound(cx);
        polled.map_ok(|inner| self.wrap(inner, true))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

/// What a stream knows of its protocol.
enum Protocol {
    /// Still reading the negotiation.
    Negotiating(Box<Negotiation>),
    /// Settled: the protocol's counters, or none (not parsed, or no room).
    Known(Option<Arc<Counter>>),
}

/// The listener's side of a multistream-select negotiation, as seen passing by.
struct Negotiation {
    /// The listener's messages are the bytes we read (a stream we opened), else the bytes
    /// we write.
    listener_is_remote: bool,
    /// The listener's bytes so far (at most [`NEGOTIATION_SNIFF_BYTES_MAX`]).
    seen: Vec<u8>,
    /// Bytes that passed before the protocol was known.
    held_in: u64,
    held_out: u64,
}

/// What the listener's bytes so far say.
#[derive(Debug, PartialEq, Eq)]
enum Sniffed {
    /// Not enough bytes yet.
    More,
    /// The protocol the listener accepted.
    Protocol(String),
    /// Not a negotiation we understand (or too long).
    Unknown,
}

impl Negotiation {
    fn new(opened_here: bool) -> Self {
        Negotiation {
            listener_is_remote: opened_here,
            seen: Vec::new(),
            held_in: 0,
            held_out: 0,
        }
    }

    /// Adds listener bytes; says what they give.
    fn feed(&mut self, bytes: &[u8]) -> Sniffed {
        let room = NEGOTIATION_SNIFF_BYTES_MAX - self.seen.len();
        self.seen.extend_from_slice(&bytes[..bytes.len().min(room)]);
        match sniff(&self.seen) {
            Sniffed::More if self.seen.len() >= NEGOTIATION_SNIFF_BYTES_MAX => Sniffed::Unknown,
            other => other,
        }
    }
}

/// Parses multistream-select messages (`uvarint length ‖ message`) from the listener: skips
/// the header and refusals, returns the first protocol name.
fn sniff(mut bytes: &[u8]) -> Sniffed {
    loop {
        let (len, rest) = match unsigned_varint_u64(bytes) {
            Some(v) => v,
            None if bytes.len() < 10 => return Sniffed::More,
            None => return Sniffed::Unknown,
        };
        let Ok(len) = usize::try_from(len) else {
            return Sniffed::Unknown;
        };
        if len > NEGOTIATION_SNIFF_BYTES_MAX {
            return Sniffed::Unknown;
        }
        if rest.len() < len {
            return Sniffed::More;
        }
        let (message, next) = rest.split_at(len);
        match message {
            b"/multistream/1.0.0\n" | b"na\n" => bytes = next,
            [b'/', name @ .., b'\n'] if name.len() < PROTOCOL_NAME_BYTES_MAX => {
                return match std::str::from_utf8(message.get(..len - 1).unwrap_or_default()) {
                    Ok(name) => Sniffed::Protocol(name.to_owned()),
                    Err(_) => Sniffed::Unknown,
                };
            }
            _ => return Sniffed::Unknown,
        }
    }
}

/// An unsigned LEB128 varint of at most 9 bytes at the start of `bytes`, and what follows.
fn unsigned_varint_u64(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate().take(9) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

/// A substream that counts the bytes read from and written to it.
pub struct CountingStream {
    inner: SubstreamBox,
    counters: Arc<Bandwidth>,
    peer: Option<Arc<Counter>>,
    protocol: Protocol,
}

impl CountingStream {
    /// Counts `n` bytes passing in (`inbound`) or out; `bytes` are those bytes, looked at
    /// while the protocol is being negotiated.
    fn counted(&mut self, inbound: bool, n: usize, bytes: &dyn Fn(&mut Negotiation) -> Sniffed) {
        if n == 0 {
            return;
        }
        let n64 = n as u64;
        let add = |c: &Counter| {
            if inbound {
                c.add_in(n64)
            } else {
                c.add_out(n64)
            }
        };
        add(&self.counters.total);
        if let Some(peer) = &self.peer {
            add(peer);
        }
        match &mut self.protocol {
            Protocol::Known(Some(c)) => add(c),
            Protocol::Known(None) => {}
            Protocol::Negotiating(neg) => {
                if inbound {
                    neg.held_in += n64;
                } else {
                    neg.held_out += n64;
                }
                if neg.listener_is_remote != inbound {
                    return;
                }
                let settled = match bytes(neg) {
                    Sniffed::More => return,
                    Sniffed::Unknown => None,
                    Sniffed::Protocol(name) => self.counters.protocol_counter(&name),
                };
                if let Some(c) = &settled {
                    c.add_in(neg.held_in);
                    c.add_out(neg.held_out);
                }
                self.protocol = Protocol::Known(settled);
            }
        }
    }
}

/// Feeds the first `n` bytes of `bufs` to a negotiation.
fn feed_vectored<'a>(
    neg: &mut Negotiation,
    bufs: impl Iterator<Item = &'a [u8]>,
    mut n: usize,
) -> Sniffed {
    let mut last = Sniffed::More;
    for buf in bufs {
        if n == 0 {
            break;
        }
        let take = buf.len().min(n);
        n -= take;
        last = neg.feed(&buf[..take]);
        if last != Sniffed::More {
            break;
        }
    }
    last
}

impl AsyncRead for CountingStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = &read {
            let got = &buf[..*n];
            this.counted(true, *n, &|neg| neg.feed(got));
        }
        read
    }

    fn poll_read_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [io::IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let read = Pin::new(&mut this.inner).poll_read_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &read {
            let n = *n;
            this.counted(true, n, &|neg| {
                feed_vectored(neg, bufs.iter().map(|b| &b[..]), n)
            });
        }
        read
    }
}

impl AsyncWrite for CountingStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &written {
            let sent = &buf[..*n];
            this.counted(false, *n, &|neg| neg.feed(sent));
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &written {
            let n = *n;
            this.counted(false, n, &|neg| {
                feed_vectored(neg, bufs.iter().map(|b| &b[..]), n)
            });
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// Bytes per second between two readings `secs` apart (0 when no time passed).
pub fn rates(prev: BandwidthTotals, now: BandwidthTotals, secs: f64) -> (f64, f64) {
    if secs <= 0.0 || !secs.is_finite() {
        return (0.0, 0.0);
    }
    (
        now.total_in.saturating_sub(prev.total_in) as f64 / secs,
        now.total_out.saturating_sub(prev.total_out) as f64 / secs,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use futures::{AsyncReadExt as _, AsyncWriteExt as _};

    /// Reads `data`; writes go nowhere.
    struct Duplex(futures::io::Cursor<Vec<u8>>);

    impl AsyncRead for Duplex {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Duplex {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn stream(data: Vec<u8>, counters: &Arc<Bandwidth>, opened_here: bool) -> CountingStream {
        CountingStream {
            inner: SubstreamBox::new(Duplex(futures::io::Cursor::new(data))),
            counters: counters.clone(),
            peer: counters.peer_counter(PeerId::random()),
            protocol: Protocol::Negotiating(Box::new(Negotiation::new(opened_here))),
        }
    }

    /// One multistream-select message.
    fn msg(text: &str) -> Vec<u8> {
        let mut m = vec![u8::try_from(text.len()).unwrap()];
        m.extend_from_slice(text.as_bytes());
        m
    }

    #[test]
    fn a_stream_counts_what_passes_both_ways() {
        futures::executor::block_on(async {
            let counters = Arc::new(Bandwidth::default());
            let mut w = stream(Vec::new(), &counters, true);
            w.write_all(b"hello").await.unwrap();
            assert_eq!(counters.totals().total_out, 5);
            assert_eq!(counters.totals().total_in, 0);
            let mut r = stream(b"abcdefg".to_vec(), &counters, true);
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"abcdefg");
            assert_eq!(
                counters.totals(),
                BandwidthTotals {
                    total_in: 7,
                    total_out: 5
                }
            );
        });
    }

    #[test]
    fn sniffing_skips_the_header_and_refusals_and_waits_for_whole_messages() {
        let header = msg("/multistream/1.0.0\n");
        let mut all = header.clone();
        all.extend(msg("na\n"));
        all.extend(msg("/ipfs/kad/1.0.0\n"));
        all.extend(b"payload");
        assert_eq!(sniff(&all), Sniffed::Protocol("/ipfs/kad/1.0.0".into()));
        for cut in 0..all.len() - b"payload".len() {
            assert_eq!(sniff(&all[..cut]), Sniffed::More, "cut at {cut}");
        }
        assert_eq!(sniff(b"\x05hello"), Sniffed::Unknown);
        assert_eq!(sniff(&[0xff; 12]), Sniffed::Unknown);
        let long = format!("/{}\n", "x".repeat(PROTOCOL_NAME_BYTES_MAX));
        let mut too_long = header;
        too_long.extend([
            u8::try_from(long.len() & 0x7f).unwrap() | 0x80,
            u8::try_from(long.len() >> 7).unwrap(),
        ]);
        too_long.extend(long.as_bytes());
        assert_eq!(sniff(&too_long), Sniffed::Unknown);
    }

    #[test]
    fn a_stream_we_opened_learns_its_protocol_from_what_it_reads() {
        futures::executor::block_on(async {
            let counters = Arc::new(Bandwidth::default());
            let mut answer = msg("/multistream/1.0.0\n");
            answer.extend(msg("/ipfs/bitswap/1.2.0\n"));
            answer.extend([7u8; 100]);
            let mut s = stream(answer.clone(), &counters, true);
            // The proposal and early data (V1Lazy) go out before the answer is read.
            s.write_all(&[1u8; 40]).await.unwrap();
            assert_eq!(
                counters.of_protocol("/ipfs/bitswap/1.2.0"),
                Default::default()
            );
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            s.write_all(&[2u8; 10]).await.unwrap();
            let want = BandwidthTotals {
                total_in: answer.len() as u64,
                total_out: 50,
            };
            assert_eq!(counters.of_protocol("/ipfs/bitswap/1.2.0"), want);
            assert_eq!(counters.totals(), want);
        });
    }

    #[test]
    fn a_stream_we_accepted_learns_its_protocol_from_what_it_writes() {
        futures::executor::block_on(async {
            let counters = Arc::new(Bandwidth::default());
            let mut s = stream(vec![3u8; 30], &counters, false);
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            // Our answer, written in two pieces.
            let mut answer = msg("/multistream/1.0.0\n");
            answer.extend(msg("/ipfs/id/1.0.0\n"));
            let (a, b) = answer.split_at(5);
            s.write_all(a).await.unwrap();
            assert_eq!(counters.of_protocol("/ipfs/id/1.0.0"), Default::default());
            s.write_all(b).await.unwrap();
            assert_eq!(
                counters.of_protocol("/ipfs/id/1.0.0"),
                BandwidthTotals {
                    total_in: 30,
                    total_out: answer.len() as u64
                }
            );
        });
    }

    #[test]
    fn a_stream_that_is_not_multistream_counts_in_the_totals_only() {
        futures::executor::block_on(async {
            let counters = Arc::new(Bandwidth::default());
            let mut s = stream(
                vec![0xffu8; 2 * NEGOTIATION_SNIFF_BYTES_MAX],
                &counters,
                true,
            );
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            assert!(matches!(s.protocol, Protocol::Known(None)));
            assert_eq!(counters.totals().total_in, got.len() as u64);
            assert!(counters.protocols.lock().is_empty());
        });
    }

    #[test]
    fn peers_and_protocols_are_bounded_and_idle_peers_make_room() {
        let counters = Bandwidth::default();
        let live: Vec<Arc<Counter>> = (0..BANDWIDTH_PEERS_MAX)
            .map(|_| counters.peer_counter(PeerId::random()).unwrap())
            .collect();
        // Limit + 1 with every peer still connected: not tracked.
        assert!(counters.peer_counter(PeerId::random()).is_none());
        // Once a peer's connections are gone, its counters give way.
        drop(live);
        let p = PeerId::random();
        assert!(counters.peer_counter(p).is_some());
        assert!(counters.peers.lock().contains_key(&p));
        for i in 0..BANDWIDTH_PROTOCOLS_MAX {
            assert!(counters.protocol_counter(&format!("/p/{i}")).is_some());
        }
        assert!(counters.protocol_counter("/p/one-too-many").is_none());
        assert!(counters.protocol_counter("/p/0").is_some());
    }

    #[test]
    fn rates_are_never_negative() {
        let a = BandwidthTotals {
            total_in: 100,
            total_out: 50,
        };
        let b = BandwidthTotals {
            total_in: 300,
            total_out: 40,
        };
        assert_eq!(rates(a, b, 2.0), (100.0, 0.0));
        assert_eq!(rates(a, b, 0.0), (0.0, 0.0));
    }
}
