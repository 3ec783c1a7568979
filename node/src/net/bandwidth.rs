//! Transport-level byte counting: every byte read from or written to any stream of any
//! connection (TCP, QUIC, relayed), whatever the protocol — bitswap, Kademlia, identify,
//! ping, AutoNAT, relay, gossipsub. `stats/bw` and the Prometheus metrics read these totals.
//!
//! [`CountingMuxer`] wraps a connection's stream muxer and each of its substreams in a
//! [`CountingStream`] that adds what passes through to two shared atomic counters. Counted
//! are the bytes protocols read and write on streams (after noise and the muxer's framing),
//! which is what kubo's `stats/bw` reports. A relayed connection is counted once as its own
//! connection, and once more on the relay's side as the stream it rides in (the bytes do
//! cross the wire twice: to the relay and from it).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerBox, StreamMuxerEvent, SubstreamBox};

/// Byte totals of every connection of one node since it started.
#[derive(Debug, Default)]
pub struct Bandwidth {
    inbound: AtomicU64,
    outbound: AtomicU64,
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
        BandwidthTotals {
            total_in: self.inbound.load(Ordering::Relaxed),
            total_out: self.outbound.load(Ordering::Relaxed),
        }
    }

    fn add_in(&self, n: usize) {
        self.inbound.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn add_out(&self, n: usize) {
        self.outbound.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Wraps a connection's muxer so that every substream it opens or accepts is counted.
pub fn count(muxer: StreamMuxerBox, counters: Arc<Bandwidth>) -> StreamMuxerBox {
    StreamMuxerBox::new(CountingMuxer {
        inner: muxer,
        counters,
    })
}

/// A stream muxer whose substreams count their bytes into a [`Bandwidth`].
pub struct CountingMuxer {
    inner: StreamMuxerBox,
    counters: Arc<Bandwidth>,
}

impl StreamMuxer for CountingMuxer {
    type Substream = CountingStream;
    type Error = io::Error;

    fn poll_inbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let counters = self.counters.clone();
        Pin::new(&mut self.inner)
            .poll_inbound(cx)
            .map_ok(|inner| CountingStream { inner, counters })
    }

    fn poll_outbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let counters = self.counters.clone();
        Pin::new(&mut self.inner)
            .poll_outbound(cx)
            .map_ok(|inner| CountingStream { inner, counters })
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

/// A substream that counts the bytes read from and written to it.
pub struct CountingStream {
    inner: SubstreamBox,
    counters: Arc<Bandwidth>,
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
            this.counters.add_in(*n);
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
            this.counters.add_in(*n);
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
            this.counters.add_out(*n);
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
            this.counters.add_out(*n);
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

    #[test]
    fn a_stream_counts_what_passes_both_ways() {
        futures::executor::block_on(async {
            let counters = Arc::new(Bandwidth::default());
            let mut w = CountingStream {
                inner: SubstreamBox::new(futures::io::Cursor::new(Vec::new())),
                counters: counters.clone(),
            };
            w.write_all(b"hello").await.unwrap();
            assert_eq!(counters.totals().total_out, 5);
            assert_eq!(counters.totals().total_in, 0);
            let mut r = CountingStream {
                inner: SubstreamBox::new(futures::io::Cursor::new(b"abcdefg".to_vec())),
                counters: counters.clone(),
            };
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
