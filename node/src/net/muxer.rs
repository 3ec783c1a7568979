//! Yamux for TCP connections, with every stream's receive window kept within what the yamux
//! frame decoder accepts.
//!
//! rust-yamux refuses (and closes the whole connection on) a data frame whose body exceeds
//! [`FRAME_BODY_BYTES_MAX`] (1 MiB), yet it auto-tunes a stream's receive window past that
//! (doubling up to the connection's budget, 1 GiB by default). js-libp2p's yamux (Helia) sends
//! one data frame as large as the whole window it was granted, so once a stream's window grew
//! past 1 MiB, Helia's next large bitswap message (its 1 MiB blocks) arrived as one oversize
//! frame and the connection died mid-fetch: the "stalled" Helia fetches of issue 3. go-yamux
//! (kubo) and rust-yamux cut their frames small, which is why only Helia showed it.
//!
//! The fix is the connection's receive budget: `max_num_streams` × the 256 KiB yamux default
//! plus [`STREAM_WINDOW_GROWTH_BYTES_MAX`], so a window can grow to 1 MiB and no further —
//! a grant the remote can fill with a single frame is never more than the decoder accepts.
//! libp2p-yamux 0.48 does not expose that setting, hence this small [`StreamMuxer`] over the
//! `yamux` crate, equivalent to libp2p-yamux's otherwise.

use std::collections::VecDeque;
use std::io;
use std::iter;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures::future;
use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade, UpgradeInfo};

/// The largest data frame body rust-yamux decodes (its `MAX_FRAME_BODY_LEN`).
pub const FRAME_BODY_BYTES_MAX: usize = 1024 * 1024;
/// The yamux default stream window, every stream's guaranteed minimum.
pub const STREAM_WINDOW_BYTES_DEFAULT: usize = 256 * 1024;
/// How far the windows of one connection may grow beyond the default, in total: a single
/// stream then never exceeds [`FRAME_BODY_BYTES_MAX`].
pub const STREAM_WINDOW_GROWTH_BYTES_MAX: usize =
    FRAME_BODY_BYTES_MAX - STREAM_WINDOW_BYTES_DEFAULT;
/// Largest data frame we send (rust-yamux cuts writes at 16 KiB by default). Each frame costs
/// the sender a body copy, a channel send and a wake-up of the connection task, so 16 KiB
/// frames meant 64 of each per 1 MiB bitswap message. A frame never exceeds the window the
/// remote granted (256 KiB by default for go-yamux, js-yamux and rust-yamux), so every yamux
/// accepts it.
pub const FRAME_SEND_BYTES_MAX: usize = 256 * 1024;
/// Inbound streams buffered while the swarm is busy (libp2p-yamux's value); more are dropped.
pub const BUFFERED_INBOUND_STREAMS_MAX: usize = 256;

/// The yamux upgrade with a bounded receive window.
#[derive(Clone, Debug)]
pub struct Config {
    streams_max: usize,
}

impl Config {
    /// At most `streams_max` concurrent streams per connection.
    pub fn new(streams_max: usize) -> Self {
        Self { streams_max }
    }

    fn yamux(&self) -> yamux::Config {
        let mut c = yamux::Config::default();
        c.set_max_num_streams(self.streams_max);
        c.set_split_send_size(FRAME_SEND_BYTES_MAX);
        c.set_max_connection_receive_window(Some(
            self.streams_max * STREAM_WINDOW_BYTES_DEFAULT + STREAM_WINDOW_GROWTH_BYTES_MAX,
        ));
        c
    }
}

impl UpgradeInfo for Config {
    type Info = &'static str;
    type InfoIter = iter::Once<Self::Info>;

    fn protocol_info(&self) -> Self::InfoIter {
        iter::once("/yamux/1.0.0")
    }
}

impl<C> InboundConnectionUpgrade<C> for Config
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = Muxer<C>;
    type Error = io::Error;
    type Future = future::Ready<Result<Self::Output, Self::Error>>;

    fn upgrade_inbound(self, io: C, _: Self::Info) -> Self::Future {
        future::ready(Ok(Muxer::new(yamux::Connection::new(
            io,
            self.yamux(),
            yamux::Mode::Server,
        ))))
    }
}

impl<C> OutboundConnectionUpgrade<C> for Config
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = Muxer<C>;
    type Error = io::Error;
    type Future = future::Ready<Result<Self::Output, Self::Error>>;

    fn upgrade_outbound(self, io: C, _: Self::Info) -> Self::Future {
        future::ready(Ok(Muxer::new(yamux::Connection::new(
            io,
            self.yamux(),
            yamux::Mode::Client,
        ))))
    }
}

/// A yamux connection as a libp2p [`StreamMuxer`].
#[derive(Debug)]
pub struct Muxer<C> {
    connection: yamux::Connection<C>,
    /// Inbound streams that arrived while [`StreamMuxer::poll`] drove the connection.
    inbound: VecDeque<yamux::Stream>,
    inbound_waker: Option<Waker>,
}

impl<C> Muxer<C> {
    fn new(connection: yamux::Connection<C>) -> Self {
        Self {
            connection,
            inbound: VecDeque::new(),
            inbound_waker: None,
        }
    }
}

impl<C> StreamMuxer for Muxer<C>
where
    C: AsyncRead + AsyncWrite + Unpin + 'static,
{
    type Substream = yamux::Stream;
    type Error = yamux::ConnectionError;

    fn poll_inbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        if let Some(s) = this.inbound.pop_front() {
            return Poll::Ready(Ok(s));
        }
        match this.connection.poll_next_inbound(cx) {
            Poll::Ready(Some(r)) => Poll::Ready(r),
            Poll::Ready(None) => Poll::Ready(Err(yamux::ConnectionError::Closed)),
            Poll::Pending => {
                this.inbound_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn poll_outbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        self.get_mut().connection.poll_new_outbound(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().connection.poll_close(cx)
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        let this = self.get_mut();
        let stream = match this.connection.poll_next_inbound(cx) {
            Poll::Ready(Some(Ok(s))) => s,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
            Poll::Ready(None) => return Poll::Ready(Err(yamux::ConnectionError::Closed)),
            Poll::Pending => return Poll::Pending,
        };
        if this.inbound.len() >= BUFFERED_INBOUND_STREAMS_MAX {
            tracing::warn!(stream = %stream, "yamux: inbound stream buffer full, stream dropped");
            drop(stream);
        } else {
            this.inbound.push_back(stream);
            if let Some(w) = this.inbound_waker.take() {
                w.wake();
            }
        }
        // Let other work run, then come back for more.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_stream_window_never_outgrows_a_frame() {
        // The budget beyond the per-stream minimum is what one stream may add to its 256 KiB:
        // exactly up to the decoder's frame limit.
        let n = 256;
        let total = n * STREAM_WINDOW_BYTES_DEFAULT + STREAM_WINDOW_GROWTH_BYTES_MAX;
        assert_eq!(
            total - (n - 1) * STREAM_WINDOW_BYTES_DEFAULT,
            FRAME_BODY_BYTES_MAX
        );
        // The frames we send fit the smallest window any yamux grants, and our own decoder.
        assert!(FRAME_SEND_BYTES_MAX <= STREAM_WINDOW_BYTES_DEFAULT);
        assert!(FRAME_SEND_BYTES_MAX <= FRAME_BODY_BYTES_MAX);
        // And yamux accepts the configuration (it asserts the per-stream minimum).
        let _ = Config::new(n).yamux();
    }
}
