//! Yamux for TCP connections, with stream receive windows of up to [`STREAM_WINDOW_BYTES_MAX`]
//! while the yamux frame decoder only accepts [`FRAME_BODY_BYTES_MAX`].
//!
//! rust-yamux refuses (and closes the whole connection on) a data frame whose body exceeds
//! 1 MiB, yet auto-tunes a stream's receive window past that (doubling up to the connection's
//! budget). js-libp2p's yamux (Helia) sends one data frame as large as the whole window it was
//! granted, so once a stream's window grew past 1 MiB, Helia's next large bitswap message (its
//! 1 MiB blocks) arrived as one oversize frame and the connection died mid-fetch: the "stalled"
//! Helia fetches of issue 3. go-yamux (kubo) and rust-yamux cut their frames small, which is why
//! only Helia showed it.
//!
//! Capping every window at 1 MiB avoided that but capped the transfer too: a stream can have
//! no more than its window in flight, and a 1 MiB window is refilled every 1.7 ms at 600 MB/s,
//! quicker than a window update makes its way back through both connection tasks on a busy
//! 2-core machine (measured: both cores 20% idle during node-to-node transfers). So instead
//! [`FrameSplitter`] sits between the secure channel and the yamux decoder and cuts any inbound
//! data frame larger than [`FRAME_BODY_BYTES_MAX`] into several frames of the same stream (the
//! first keeps `SYN`/`ACK`, the last `FIN`/`RST`); yamux counts the window in bytes, so a cut
//! frame means exactly what the whole one did. The windows may then grow to
//! [`STREAM_WINDOW_BYTES_MAX`], and yamux still closes a connection whose peer sends more than
//! the window it was granted, which bounds what a connection buffers.
//!
//! On the way out, [`FrameSplitter`] holds yamux's small writes (frame headers, control
//! frames) so that a header reaches the secure channel with its body, in one vectored write:
//! one TLS record run and one `writev` per frame rather than two, and a 12-byte record less.
//!
//! libp2p-yamux 0.48 offers neither, hence this small [`StreamMuxer`] over the `yamux` crate,
//! equivalent to libp2p-yamux's otherwise.

use std::collections::VecDeque;
use std::io;
use std::iter;
use std::pin::Pin;
use std::task::{ready, Context, Poll, Waker};

use futures::future;
use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade, UpgradeInfo};

/// The largest data frame body rust-yamux decodes (its `MAX_FRAME_BODY_LEN`): inbound data
/// frames are cut to this size by [`FrameSplitter`].
pub const FRAME_BODY_BYTES_MAX: usize = 1024 * 1024;
/// The yamux default stream window, every stream's guaranteed minimum.
pub const STREAM_WINDOW_BYTES_DEFAULT: usize = 256 * 1024;
/// How far one stream's receive window may grow (yamux doubles it while the sender keeps up).
/// Node to node over loopback, 1 GiB went 565-614 MB/s with 1 MiB and 618-670 MB/s with 4-8
/// MiB (benches/README, session 12).
pub const STREAM_WINDOW_BYTES_MAX: usize = 8 * 1024 * 1024;
/// How far the windows of one connection may grow beyond the default, in total: a single
/// stream then never exceeds [`STREAM_WINDOW_BYTES_MAX`].
pub const STREAM_WINDOW_GROWTH_BYTES_MAX: usize =
    STREAM_WINDOW_BYTES_MAX - STREAM_WINDOW_BYTES_DEFAULT;
/// The size of a yamux frame header.
const HEADER_BYTES: usize = 12;
/// The yamux frame type of data frames (the only type with a body).
const TYPE_DATA: u8 = 0;
/// The flags that close or reset a stream (`FIN`, `RST`): they go on the last piece of a cut
/// frame, the others (`SYN`, `ACK`) stay on the first.
const FLAGS_CLOSING: u16 = 0x4 | 0x8;
/// Largest data frame we send (rust-yamux cuts writes at 16 KiB by default). Each frame costs
/// the sender a body copy, a channel send and a wake-up of the connection task, so 16 KiB
/// frames meant 64 of each per 1 MiB bitswap message. A frame never exceeds the window the
/// remote granted (256 KiB by default for go-yamux, js-yamux and rust-yamux), so every yamux
/// accepts it.
pub const FRAME_SEND_BYTES_MAX: usize = 256 * 1024;
/// Most bytes of small writes [`FrameSplitter`] holds before it writes them down (at the next
/// flush, or with the next write that would not fit).
pub const WRITE_HOLD_BYTES_MAX: usize = 16 * 1024;
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
    type Output = Muxer<FrameSplitter<C>>;
    type Error = io::Error;
    type Future = future::Ready<Result<Self::Output, Self::Error>>;

    fn upgrade_inbound(self, io: C, _: Self::Info) -> Self::Future {
        future::ready(Ok(Muxer::new(yamux::Connection::new(
            FrameSplitter::new(io),
            self.yamux(),
            yamux::Mode::Server,
        ))))
    }
}

impl<C> OutboundConnectionUpgrade<C> for Config
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = Muxer<FrameSplitter<C>>;
    type Error = io::Error;
    type Future = future::Ready<Result<Self::Output, Self::Error>>;

    fn upgrade_outbound(self, io: C, _: Self::Info) -> Self::Future {
        future::ready(Ok(Muxer::new(yamux::Connection::new(
            FrameSplitter::new(io),
            self.yamux(),
            yamux::Mode::Client,
        ))))
    }
}

/// A yamux byte stream passed through unchanged, except that an inbound data frame longer than
/// [`FRAME_BODY_BYTES_MAX`] comes out as several data frames of at most that size (see the
/// module docs). Writes go straight through. It keeps no more than one frame header.
#[derive(Debug)]
pub struct FrameSplitter<C> {
    io: C,
    /// The last frame header read from `io` (the one being cut, if a frame is).
    header: [u8; HEADER_BYTES],
    /// Bytes of the next header read from `io` so far.
    header_read: usize,
    /// A header to give out (as read, or that of a piece of a cut frame): `out[given..len]`.
    out: [u8; HEADER_BYTES],
    out_len: usize,
    out_given: usize,
    /// Body bytes of the current data frame (or piece) still to pass through.
    body_left: usize,
    /// Body bytes of a cut frame after the current piece.
    rest: usize,
    /// The closing flags of the frame being cut, for its last piece.
    closing: u16,
    /// Small writes not yet given to `io` (see the `AsyncWrite` impl).
    held: Vec<u8>,
}

impl<C> FrameSplitter<C> {
    pub fn new(io: C) -> Self {
        Self {
            io,
            header: [0; HEADER_BYTES],
            header_read: 0,
            out: [0; HEADER_BYTES],
            out_len: 0,
            out_given: 0,
            body_left: 0,
            rest: 0,
            closing: 0,
            held: Vec::new(),
        }
    }

    /// Queues `header` with `flags` and a body length of `len` to be given out next.
    fn give_header(&mut self, flags: u16, len: usize) {
        self.out = self.header;
        self.out[2..4].copy_from_slice(&flags.to_be_bytes());
        // At most the length of the frame read, itself a u32.
        self.out[8..12].copy_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
        self.out_len = HEADER_BYTES;
        self.out_given = 0;
        self.body_left = len;
    }
}

impl<C: AsyncRead + Unpin> AsyncRead for FrameSplitter<C> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            if this.out_given < this.out_len {
                let n = (this.out_len - this.out_given).min(buf.len());
                buf[..n].copy_from_slice(&this.out[this.out_given..this.out_given + n]);
                this.out_given += n;
                return Poll::Ready(Ok(n));
            }
            if this.body_left > 0 {
                // Straight into the caller's buffer; an early end of `io` reaches yamux as is.
                let n = this.body_left.min(buf.len());
                let read = ready!(Pin::new(&mut this.io).poll_read(cx, &mut buf[..n]))?;
                this.body_left -= read.min(this.body_left);
                return Poll::Ready(Ok(read));
            }
            if this.rest > 0 {
                let len = this.rest.min(FRAME_BODY_BYTES_MAX);
                this.rest -= len;
                let flags = if this.rest == 0 { this.closing } else { 0 };
                this.give_header(flags, len);
                continue;
            }
            let read =
                ready!(Pin::new(&mut this.io).poll_read(cx, &mut this.header[this.header_read..]))?;
            if read == 0 {
                // The end of `io`: a partial header goes out as it came, so yamux sees the same
                // (unexpected) end.
                if this.header_read == 0 {
                    return Poll::Ready(Ok(0));
                }
                this.out = this.header;
                this.out_len = this.header_read;
                this.out_given = 0;
                this.header_read = 0;
                continue;
            }
            this.header_read += read;
            if this.header_read < HEADER_BYTES {
                continue;
            }
            this.header_read = 0;
            let h = this.header;
            let flags = u16::from_be_bytes([h[2], h[3]]);
            let len = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as usize;
            if h[1] != TYPE_DATA {
                // Window updates, pings and go-aways carry no body: their length field is not one.
                this.give_header(flags, len);
                this.body_left = 0;
            } else if len <= FRAME_BODY_BYTES_MAX {
                this.give_header(flags, len);
            } else {
                tracing::trace!(len, "yamux: cutting an inbound data frame");
                this.closing = flags & FLAGS_CLOSING;
                this.rest = len - FRAME_BODY_BYTES_MAX;
                this.give_header(flags & !FLAGS_CLOSING, FRAME_BODY_BYTES_MAX);
            }
        }
    }
}

impl<C: AsyncWrite + Unpin> FrameSplitter<C> {
    /// Writes the held bytes down to `io`.
    fn poll_write_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.held))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

/// Writes pass through, except that small ones ([`WRITE_HOLD_BYTES_MAX`] in all) are held and
/// go down with the next larger write or at the next flush. yamux writes each frame as two
/// writes, its 12-byte header then its body, and flushes once it has no frame left to write;
/// each write reaching the secure channel became a TLS record of its own and a `writev` of its
/// own (a loopback delivery and a wake-up of the reader). Held, the header goes down in one
/// vectored write with its body, and a burst of small frames (window updates, wantlists) as
/// one write.
impl<C: AsyncWrite + Unpin> AsyncWrite for FrameSplitter<C> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.held.len() + buf.len() <= WRITE_HOLD_BYTES_MAX {
            this.held.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        while !this.held.is_empty() {
            let both = [io::IoSlice::new(&this.held), io::IoSlice::new(buf)];
            let n = ready!(Pin::new(&mut this.io).poll_write_vectored(cx, &both))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if n > this.held.len() {
                let of_buf = n - this.held.len();
                this.held.clear();
                return Poll::Ready(Ok(of_buf));
            }
            this.held.drain(..n);
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_held(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_held(cx))?;
        Pin::new(&mut this.io).poll_close(cx)
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

    use futures::AsyncReadExt as _;

    #[test]
    fn one_stream_window_grows_to_the_cap_and_our_frames_fit_every_decoder() {
        // The budget beyond the per-stream minimum is what one stream may add to its 256 KiB.
        let n = 256;
        let total = n * STREAM_WINDOW_BYTES_DEFAULT + STREAM_WINDOW_GROWTH_BYTES_MAX;
        assert_eq!(
            total - (n - 1) * STREAM_WINDOW_BYTES_DEFAULT,
            STREAM_WINDOW_BYTES_MAX
        );
        // The frames we send fit the smallest window any yamux grants, and rust-yamux's decoder.
        assert!(FRAME_SEND_BYTES_MAX <= STREAM_WINDOW_BYTES_DEFAULT);
        assert!(FRAME_SEND_BYTES_MAX <= FRAME_BODY_BYTES_MAX);
        // And yamux accepts the configuration (it asserts the per-stream minimum).
        let _ = Config::new(n).yamux();
    }

    fn header(ty: u8, flags: u16, stream: u32, len: usize) -> Vec<u8> {
        let mut h = vec![0, ty];
        h.extend(flags.to_be_bytes());
        h.extend(stream.to_be_bytes());
        h.extend(u32::try_from(len).unwrap().to_be_bytes());
        h
    }

    /// A data frame whose body is `len` bytes of a pattern of its own.
    fn data(flags: u16, stream: u32, len: usize) -> Vec<u8> {
        let mut f = header(TYPE_DATA, flags, stream, len);
        f.extend((0..len).map(|i| (i % 251) as u8 ^ stream as u8));
        f
    }

    /// Everything `input` gives through a [`FrameSplitter`], read with buffers of ever
    /// changing sizes.
    fn through_splitter(input: Vec<u8>) -> Vec<u8> {
        let mut r = FrameSplitter::new(futures::io::Cursor::new(input));
        let sizes = [1, 7, 12, 13, 4096, FRAME_BODY_BYTES_MAX + 3, 100_000, 2];
        let mut out = Vec::new();
        for i in 0.. {
            let mut buf = vec![0u8; sizes[i % sizes.len()]];
            let n = futures::executor::block_on(r.read(&mut buf)).unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    const SYN: u16 = 0x1;
    const ACK: u16 = 0x2;
    const FIN: u16 = 0x4;
    const RST: u16 = 0x8;
    const MIB: usize = FRAME_BODY_BYTES_MAX;

    #[test]
    fn oversize_data_frames_are_cut_and_everything_else_passes_unchanged() {
        let mut input = Vec::new();
        input.extend(data(SYN, 1, 2 * MIB + 5));
        input.extend(header(1, ACK, 1, 300_000)); // a window update
        input.extend(data(ACK | FIN, 2, 2 * MIB));
        input.extend(data(RST, 3, MIB));
        input.extend(header(2, SYN, 0, 7)); // a ping
        input.extend(data(FIN, 1, 0));
        let out = through_splitter(input.clone());

        // The frames that came out: (type, flags, stream, body length) and the bodies.
        let mut frames = Vec::new();
        let mut bodies: std::collections::BTreeMap<u32, Vec<u8>> = Default::default();
        let mut rest = &out[..];
        while !rest.is_empty() {
            let (h, tail) = rest.split_at(HEADER_BYTES);
            let flags = u16::from_be_bytes([h[2], h[3]]);
            let stream = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
            let len = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as usize;
            let body = if h[1] == TYPE_DATA { len } else { 0 };
            bodies
                .entry(stream)
                .or_default()
                .extend_from_slice(&tail[..body]);
            frames.push((h[1], flags, stream, len));
            rest = &tail[body..];
        }
        assert_eq!(
            frames,
            [
                (TYPE_DATA, SYN, 1, MIB),
                (TYPE_DATA, 0, 1, MIB),
                (TYPE_DATA, 0, 1, 5),
                (1, ACK, 1, 300_000),
                (TYPE_DATA, ACK, 2, MIB),
                (TYPE_DATA, FIN, 2, MIB),
                (TYPE_DATA, RST, 3, MIB),
                (2, SYN, 0, 7),
                (TYPE_DATA, FIN, 1, 0),
            ]
        );
        // The bodies are the same bytes, in order.
        assert_eq!(bodies[&1], data(0, 1, 2 * MIB + 5)[HEADER_BYTES..]);
        assert_eq!(bodies[&2], data(0, 2, 2 * MIB)[HEADER_BYTES..]);
        assert_eq!(bodies[&3], data(0, 3, MIB)[HEADER_BYTES..]);
        // Nothing was cut that fits: the same input without the large frames is unchanged.
        let small = [data(SYN, 5, MIB), header(1, 0, 5, 9), data(FIN, 5, 3)].concat();
        assert_eq!(through_splitter(small.clone()), small);
    }

    #[test]
    fn an_early_end_reaches_yamux_as_it_came() {
        // Inside a header: the partial header, then the end.
        let h = header(TYPE_DATA, SYN, 1, 10);
        assert_eq!(through_splitter(h[..5].to_vec()), h[..5]);
        // Inside the body of a frame being cut: what arrived, then the end.
        let f = data(SYN, 1, 3 * MIB);
        let got = through_splitter(f[..HEADER_BYTES + MIB + 100].to_vec());
        assert_eq!(got.len(), HEADER_BYTES + MIB + HEADER_BYTES + 100);
        assert_eq!(
            got[HEADER_BYTES + MIB + HEADER_BYTES..],
            f[HEADER_BYTES + MIB..][..100]
        );
    }

    /// A writer that records each call it gets, takes at most `accept_max` bytes a call, and
    /// (with `stall`) answers every other call with `Pending` first.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<Vec<u8>>,
        flushes: usize,
        accept_max: usize,
        stall: bool,
        stalled: bool,
    }

    impl Recorder {
        fn take(&mut self, cx: &mut Context<'_>, bytes: Vec<u8>) -> Poll<io::Result<usize>> {
            if self.stall && !self.stalled {
                self.stalled = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.stalled = false;
            let n = bytes.len().min(self.accept_max);
            self.calls.push(bytes[..n].to_vec());
            Poll::Ready(Ok(n))
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().take(cx, buf.to_vec())
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.get_mut()
                .take(cx, bufs.iter().flat_map(|b| b.iter().copied()).collect())
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().flushes += 1;
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn a_header_goes_down_with_its_body_and_small_writes_wait_for_the_flush() {
        use futures::AsyncWriteExt as _;
        let mut w = FrameSplitter::new(Recorder {
            accept_max: usize::MAX,
            ..Default::default()
        });
        let frame = data(0, 1, FRAME_SEND_BYTES_MAX);
        let update = header(1, 0, 1, 300_000);
        futures::executor::block_on(async {
            // yamux's two writes of a frame: the header is held, then goes with the body.
            w.write_all(&frame[..HEADER_BYTES]).await.unwrap();
            assert!(w.io.calls.is_empty());
            w.write_all(&frame[HEADER_BYTES..]).await.unwrap();
            assert_eq!(w.io.calls, [frame.clone()]);
            // A control frame waits for the flush, which writes it before flushing below.
            w.write_all(&update).await.unwrap();
            assert_eq!(w.io.calls.len(), 1);
            w.flush().await.unwrap();
            assert_eq!(w.io.calls, [frame.clone(), update.clone()]);
            assert_eq!(w.io.flushes, 1);
            // Closing writes what is held too.
            w.write_all(&update).await.unwrap();
            w.close().await.unwrap();
            assert_eq!(w.io.calls, [frame, update.clone(), update]);
        });
    }

    #[test]
    fn every_byte_goes_down_once_in_order_through_short_and_pending_writes() {
        use futures::AsyncWriteExt as _;
        for accept_max in [1, 7, 1000, 20_000, usize::MAX] {
            let mut w = FrameSplitter::new(Recorder {
                accept_max,
                stall: true,
                ..Default::default()
            });
            let sizes = [12, 5, 300_000, 12, 16_000, 12, 40_000, 3, 0, 16_384, 9];
            let mut sent = Vec::new();
            futures::executor::block_on(async {
                for (i, size) in sizes.into_iter().enumerate() {
                    let bytes: Vec<u8> = (0..size).map(|j| (i * 31 + j) as u8).collect();
                    w.write_all(&bytes).await.unwrap();
                    sent.extend(bytes);
                }
                w.flush().await.unwrap();
            });
            assert!(w.held.is_empty());
            assert_eq!(w.io.calls.concat(), sent, "accept_max {accept_max}");
        }
    }
}
