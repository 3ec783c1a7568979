//! The bitswap [`ConnectionHandler`]: one per connection, it only moves frames.
//!
//! - Inbound: the remote opens streams on `/ipfs/bitswap/1.{2,1,0}.0` and writes
//!   length-prefixed messages; each stream is read frame by frame ([`read_frame_bytes`]). A
//!   declared length over [`MESSAGE_BYTES_MAX`](super::protocol::MESSAGE_BYTES_MAX) is refused
//!   before any of the body is buffered. Frames are decoded (which hashes every block) on
//!   the [`data_pool`](crate::data_pool), at most [`FRAMES_DECODING_MAX`] at once per
//!   connection, while the stream reads on (frames up to [`DECODE_INLINE_BYTES_MAX`] are
//!   decoded in place): the connection task only decrypts and demultiplexes, so it reads the next
//!   frame — and hands the sender more yamux window — while earlier ones are hashed on the
//!   other core. Decoded messages reach the behaviour in the order they were read. A message
//!   that does not decode is reported as [`HandlerOut::Malformed`] and its stream dropped (the
//!   framing cannot be trusted after it): frames of that stream read meanwhile are discarded.
//!   At most [`INBOUND_STREAMS_PER_CONNECTION_MAX`] streams are read at once; further ones
//!   wait, unread, for a read to end (at most [`INBOUND_STREAMS_WAITING_MAX`]; past that they
//!   are refused). Reading pauses while [`FRAMES_DECODING_MAX`] frames are being decoded or
//!   [`EVENTS_QUEUED_MAX`] decoded messages wait for the behaviour (backpressure: a flooding
//!   peer fills its own TCP window, not our memory).
//! - Outbound: one long-lived stream, opened on the first message, as kubo keeps one. Messages
//!   from the behaviour queue up (at most [`OUTBOUND_QUEUE_MESSAGES_MAX`]) and are written one
//!   at a time; each write reports [`HandlerOut::Sent`] with its block bytes, which releases the
//!   server's per-peer budget. The peer's version, learned in negotiation, picks the encoding.
//! - Serving: the server engine hands over an [`Outgoing`] (CIDs, not bytes). The handler reads
//!   its blocks from the store and encodes the frame on the data pool (on tokio's blocking
//!   pool when a read may wait on a remote storage tier), at most
//!   [`FRAMES_PREPARED_MAX`] messages ahead of the write, so reading and hashing run beside the
//!   write of the previous frame and never on the swarm task. Block bytes in memory per
//!   connection are bounded by those few frames, whatever the engine has scheduled.
//!
//! Every protocol decision (what to answer, whom to penalize) is made by the behaviour and the
//! pure ledger / session behind it.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, FuturesUnordered};
use futures::{
    AsyncReadExt as _, AsyncWriteExt as _, FutureExt as _, StreamExt as _, TryFutureExt as _,
};
use ipfs_kit_blockstore::Blockstore;
use libp2p::core::upgrade::{InboundUpgrade, OutboundUpgrade, UpgradeInfo};
use libp2p::swarm::handler::{
    ConnectionEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound,
};
use libp2p::swarm::{
    ConnectionHandler, ConnectionHandlerEvent, Stream, StreamProtocol, StreamUpgradeError,
    SubstreamProtocol,
};

use super::ledger::{NoBlocks, Outgoing, StoreSource};
use super::protocol::{read_length_prefix, Message, ProtocolError, ProtocolVersion};

/// Inbound bitswap streams read at once per connection. kubo's client keeps one open for its
/// wants, but its server writes every message on a stream of its own from up to 8 workers at
/// once (boxo's `SendMessage`), so more arrive at a time: they wait ([`INBOUND_STREAMS_WAITING_MAX`]).
pub const INBOUND_STREAMS_PER_CONNECTION_MAX: usize = 4;
/// Inbound streams waiting, unread, for one of the [`INBOUND_STREAMS_PER_CONNECTION_MAX`] reads
/// per connection (a stream's sender can write into it up to its flow-control window
/// meanwhile). Past it, a new stream is refused — a refused stream loses the message the
/// peer wrote on it.
pub const INBOUND_STREAMS_WAITING_MAX: usize = 32;
/// Decoded messages waiting for the behaviour before inbound reads pause.
pub const EVENTS_QUEUED_MAX: usize = 16;
/// Messages queued for sending on one connection. The server engine keeps at most ~1 MiB of
/// blocks outstanding per peer and sessions batch their wants, so this is never reached by a
/// well-behaved local side; past it, messages are dropped (and reported sent) with a warning.
pub const OUTBOUND_QUEUE_MESSAGES_MAX: usize = 1024;
/// Messages read from the store and encoded ahead of the one being written (each at most
/// [`OUTBOUND_BLOCK_BYTES_MAX`](super::protocol::OUTBOUND_BLOCK_BYTES_MAX) of blocks): the
/// read-ahead that keeps the stream busy, and the bound on block bytes a connection holds.
pub const FRAMES_PREPARED_MAX: usize = 2;
/// Inbound frames (each at most [`MESSAGE_BYTES_MAX`](super::protocol::MESSAGE_BYTES_MAX))
/// being decoded at once per connection, beside the read of the next one.
pub const FRAMES_DECODING_MAX: usize = 4;
/// Frames up to this size (wantlists, presences, small blocks) are decoded on the connection
/// task: hashing them costs less than a round trip through the data pool.
pub const DECODE_INLINE_BYTES_MAX: usize = 64 * 1024;
/// Broken inbound streams remembered per connection (their late frames are discarded).
const POISONED_STREAMS_MAX: usize = 16;
/// Failed outbound stream negotiations after which the handler stops trying.
pub const OUTBOUND_FAILURES_MAX: u32 = 3;

/// The stream protocols, newest first.
pub fn stream_protocols() -> [StreamProtocol; 3] {
    ProtocolVersion::ALL.map(|v| StreamProtocol::new(v.protocol_name()))
}

/// Negotiates one of the bitswap versions on a stream.
#[derive(Clone, Copy, Debug, Default)]
pub struct Upgrade;

impl UpgradeInfo for Upgrade {
    type Info = StreamProtocol;
    type InfoIter = [StreamProtocol; 3];
    fn protocol_info(&self) -> Self::InfoIter {
        stream_protocols()
    }
}

fn version_of(p: &StreamProtocol) -> ProtocolVersion {
    ProtocolVersion::from_protocol_name(p.as_ref()).unwrap_or(ProtocolVersion::V1_0_0)
}

impl InboundUpgrade<Stream> for Upgrade {
    type Output = (Stream, ProtocolVersion);
    type Error = Infallible;
    type Future = futures::future::Ready<Result<Self::Output, Infallible>>;
    fn upgrade_inbound(self, s: Stream, p: StreamProtocol) -> Self::Future {
        futures::future::ready(Ok((s, version_of(&p))))
    }
}

impl OutboundUpgrade<Stream> for Upgrade {
    type Output = (Stream, ProtocolVersion);
    type Error = Infallible;
    type Future = futures::future::Ready<Result<Self::Output, Infallible>>;
    fn upgrade_outbound(self, s: Stream, p: StreamProtocol) -> Self::Future {
        futures::future::ready(Ok((s, version_of(&p))))
    }
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The bytes break the protocol (oversize, bad varint, undecodable message): penalized.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The stream failed or closed mid-frame: not the peer's fault as far as we can tell.
    #[error("bitswap stream: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads and decodes one length-prefixed message; `Ok(None)` on a clean end of stream between
/// frames. The declared length is checked against
/// [`MESSAGE_BYTES_MAX`](super::protocol::MESSAGE_BYTES_MAX) before the body is allocated.
pub async fn read_frame<R: futures::AsyncRead + Unpin>(
    r: &mut R,
    version: ProtocolVersion,
) -> Result<Option<Message>, FrameError> {
    match read_frame_bytes(r).await? {
        // Blocks are slices of the frame's buffer, not copies.
        Some(body) => Ok(Some(Message::decode_owned(body.into(), version)?)),
        None => Ok(None),
    }
}

/// Reads one length-prefixed frame's body, undecoded; `Ok(None)` on a clean end of stream
/// between frames. The declared length is checked against
/// [`MESSAGE_BYTES_MAX`](super::protocol::MESSAGE_BYTES_MAX) before the body is allocated.
pub async fn read_frame_bytes<R: futures::AsyncRead + Unpin>(
    r: &mut R,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut prefix = [0u8; 10];
    let mut n = 0;
    let len = loop {
        let mut byte = [0u8; 1];
        if r.read(&mut byte).await? == 0 {
            if n == 0 {
                return Ok(None);
            }
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        prefix[n] = byte[0];
        n += 1;
        if let Some((len, _)) = read_length_prefix(&prefix[..n])? {
            break len;
        }
        if n == prefix.len() {
            return Err(ProtocolError::VarintOverflow.into());
        }
    };
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(Some(body))
}

/// From the behaviour to the handler.
#[derive(Debug)]
pub enum HandlerIn {
    Send(Message),
    /// A message of the server engine: its blocks are read from the store here.
    Serve(Outgoing),
    /// Raw bytes written as they are on the outbound stream: fault injection for tests (a
    /// malformed or oversize frame from a real peer).
    SendRaw(Vec<u8>),
}

/// From the handler to the behaviour.
#[derive(Debug)]
pub enum HandlerOut {
    Received {
        msg: Message,
        version: ProtocolVersion,
    },
    /// A queued message was written (or dropped); `block_bytes` of its blocks are released.
    Sent { block_bytes: usize },
    /// The outbound stream was negotiated at this version.
    Negotiated(ProtocolVersion),
    /// The peer does not speak bitswap.
    Unsupported,
    /// The peer sent a frame that breaks the protocol.
    Malformed(ProtocolError),
}

/// An inbound stream's next frame, undecoded, with the stream's number in this handler.
type ReadFuture = BoxFuture<
    'static,
    (
        u64,
        Stream,
        ProtocolVersion,
        Result<Option<Vec<u8>>, FrameError>,
    ),
>;
/// A frame being decoded, with the number of the stream it came from.
type DecodeFuture = BoxFuture<'static, (u64, ProtocolVersion, Result<Message, FrameError>)>;
type WriteFuture = BoxFuture<'static, (Stream, std::io::Result<()>)>;
/// A frame being made ready to write (its parts, see [`Message::encode_frame_parts`]), with
/// the block bytes it releases once written.
type PrepareFuture = BoxFuture<'static, (Vec<Bytes>, usize)>;

/// A message waiting for its turn.
#[derive(Debug)]
enum Queued {
    /// Encoded already, in parts.
    Frame(Vec<Bytes>, usize),
    /// Blocks still to be read.
    Serve(Outgoing),
}

impl Queued {
    fn block_bytes(&self) -> usize {
        match self {
            Queued::Frame(_, b) => *b,
            Queued::Serve(o) => o.block_bytes(),
        }
    }
}

/// Where a handler's jobs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Offload {
    /// In place, on the connection's task (frames too small to be worth a hand-off).
    Inline,
    /// On the [`data_pool`](crate::data_pool): work that computes (hashing, framing, reads
    /// from local storage).
    DataPool,
    /// On tokio's blocking pool: reads that may wait on a network (a remote storage tier),
    /// so they do not hold up the data pool's few threads.
    Blocking,
}

/// Runs `work` where `offload` says, started now rather than on first poll (tokio's blocking
/// pool only inside a runtime; in place otherwise). `Err` only when the job did not complete
/// (a panic in `work`, or a runtime shutting down).
fn run_offloaded<T: Send + 'static>(
    offload: Offload,
    work: impl FnOnce() -> T + Send + 'static,
) -> BoxFuture<'static, Result<T, String>> {
    match offload {
        Offload::DataPool => crate::data_pool::spawn(work)
            .map_err(|e| e.to_string())
            .boxed(),
        Offload::Blocking => match tokio::runtime::Handle::try_current() {
            Ok(rt) => rt.spawn_blocking(work).map_err(|e| e.to_string()).boxed(),
            Err(_) => futures::future::ready(Ok(work())).boxed(),
        },
        Offload::Inline => futures::future::ready(Ok(work())).boxed(),
    }
}

/// Reads an [`Outgoing`]'s blocks and encodes the frame off the connection's task (see
/// [`Offload`]): the read starts while earlier frames are written.
fn prepare(
    store: Option<Arc<dyn Blockstore>>,
    out: Outgoing,
    version: ProtocolVersion,
    offload: Offload,
) -> PrepareFuture {
    let block_bytes = out.block_bytes();
    let job = run_offloaded(offload, move || {
        let msg = match &store {
            Some(s) => out.load(&StoreSource(s.as_ref())),
            None => out.load(&NoBlocks),
        };
        msg.encode_frame_parts(version)
    });
    async move {
        match job.await {
            Ok(frame) => (frame, block_bytes),
            Err(e) => {
                tracing::warn!(error = %e, "bitswap: reading blocks to serve failed");
                (Vec::new(), block_bytes)
            }
        }
    }
    .boxed()
}

/// Decodes a frame read from stream `id` (hashing its blocks): on the data pool when the
/// frame is larger than [`DECODE_INLINE_BYTES_MAX`], in place otherwise.
fn decode(id: u64, body: Vec<u8>, version: ProtocolVersion) -> DecodeFuture {
    let offload = if body.len() > DECODE_INLINE_BYTES_MAX {
        Offload::DataPool
    } else {
        Offload::Inline
    };
    let job = run_offloaded(offload, move || {
        Message::decode_owned(body.into(), version).map_err(FrameError::from)
    });
    async move {
        let r = match job.await {
            Ok(r) => r,
            // A panic in the decoder (a bug): not the peer's fault.
            Err(e) => Err(FrameError::Io(std::io::Error::other(e))),
        };
        (id, version, r)
    }
    .boxed()
}

enum Outbound {
    None,
    Requested,
    Idle(Stream),
    Writing(WriteFuture, usize),
    Gone,
}

/// The per-connection handler.
pub struct Handler {
    store: Option<Arc<dyn Blockstore>>,
    /// Where reads of `store` for serving run.
    serve_reads: Offload,
    reads: FuturesUnordered<ReadFuture>,
    /// Inbound streams waiting for a read (at most [`INBOUND_STREAMS_WAITING_MAX`]), oldest
    /// first.
    waiting: VecDeque<(Stream, ProtocolVersion)>,
    /// Frames being decoded, in the order they were read (at most [`FRAMES_DECODING_MAX`]).
    decoding: FuturesOrdered<DecodeFuture>,
    /// Number for the next inbound stream.
    next_stream: u64,
    /// Inbound streams that sent a malformed message: frames of theirs still being read or
    /// decoded are discarded, and the stream is dropped when its read returns.
    poisoned: Vec<u64>,
    outbound: Outbound,
    version: ProtocolVersion,
    queue: VecDeque<Queued>,
    /// Frames being read and encoded, in queue order (at most [`FRAMES_PREPARED_MAX`]).
    prepared: FuturesOrdered<PrepareFuture>,
    /// The block bytes of the frames in `prepared`.
    prepared_block_bytes: usize,
    pending: VecDeque<Message>,
    events: VecDeque<HandlerOut>,
    failures: u32,
}

impl Handler {
    /// A handler serving blocks from `store` (none when `None`). `reads_may_wait`: a read of
    /// `store` may wait on a network (a remote storage tier), so reads run on tokio's
    /// blocking pool rather than the data pool.
    pub fn new(store: Option<Arc<dyn Blockstore>>, reads_may_wait: bool) -> Self {
        Self {
            store,
            serve_reads: if reads_may_wait {
                Offload::Blocking
            } else {
                Offload::DataPool
            },
            reads: FuturesUnordered::new(),
            waiting: VecDeque::new(),
            decoding: FuturesOrdered::new(),
            next_stream: 0,
            poisoned: Vec::new(),
            outbound: Outbound::None,
            version: ProtocolVersion::V1_2_0,
            queue: VecDeque::new(),
            prepared: FuturesOrdered::new(),
            prepared_block_bytes: 0,
            pending: VecDeque::new(),
            events: VecDeque::new(),
            failures: 0,
        }
    }

    fn queued_messages(&self) -> usize {
        self.queue.len() + self.pending.len() + self.prepared.len()
    }

    /// Starts preparing queued messages, up to [`FRAMES_PREPARED_MAX`] ahead (only once the
    /// stream's version is known).
    fn fill_prepared(&mut self) {
        while self.prepared.len() < FRAMES_PREPARED_MAX {
            let Some(q) = self.queue.pop_front() else {
                return;
            };
            self.prepared_block_bytes += q.block_bytes();
            let fut = match q {
                Queued::Frame(f, b) => futures::future::ready((f, b)).boxed(),
                Queued::Serve(o) => prepare(self.store.clone(), o, self.version, self.serve_reads),
            };
            self.prepared.push_back(fut);
        }
    }

    /// Starts reading a new inbound stream.
    fn read_new(&mut self, s: Stream, v: ProtocolVersion) {
        let id = self.next_stream;
        self.next_stream += 1;
        self.read_next(id, s, v);
    }

    /// Starts reading waiting streams while reads are free.
    fn read_waiting(&mut self) {
        while self.reads.len() < INBOUND_STREAMS_PER_CONNECTION_MAX {
            let Some((s, v)) = self.waiting.pop_front() else {
                return;
            };
            self.read_new(s, v);
        }
    }

    fn read_next(&mut self, id: u64, mut s: Stream, v: ProtocolVersion) {
        self.reads.push(
            async move {
                let r = read_frame_bytes(&mut s).await;
                (id, s, v, r)
            }
            .boxed(),
        );
    }

    /// Marks stream `id` as broken; a later frame of it is discarded. The list is bounded: a
    /// peer is disconnected after a few malformed messages anyway.
    fn poison(&mut self, id: u64) {
        if !self.poisoned.contains(&id) {
            if self.poisoned.len() >= POISONED_STREAMS_MAX {
                self.poisoned.remove(0);
            }
            self.poisoned.push(id);
        }
    }

    /// Moves messages waiting for a negotiated version into the byte queue.
    fn encode_pending(&mut self) {
        while let Some(m) = self.pending.pop_front() {
            let bytes = m.block_bytes();
            self.queue
                .push_back(Queued::Frame(m.encode_frame_parts(self.version), bytes));
        }
    }

    fn drop_queued(&mut self) {
        for m in self.pending.drain(..) {
            self.events.push_back(HandlerOut::Sent {
                block_bytes: m.block_bytes(),
            });
        }
        for q in self.queue.drain(..) {
            self.events.push_back(HandlerOut::Sent {
                block_bytes: q.block_bytes(),
            });
        }
        if !self.prepared.is_empty() {
            self.prepared = FuturesOrdered::new();
            self.events.push_back(HandlerOut::Sent {
                block_bytes: std::mem::take(&mut self.prepared_block_bytes),
            });
        }
    }
}

impl ConnectionHandler for Handler {
    type FromBehaviour = HandlerIn;
    type ToBehaviour = HandlerOut;
    type InboundProtocol = Upgrade;
    type OutboundProtocol = Upgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Upgrade, ()> {
        SubstreamProtocol::new(Upgrade, ())
    }

    fn connection_keep_alive(&self) -> bool {
        self.queued_messages() > 0
            || matches!(self.outbound, Outbound::Writing(..) | Outbound::Requested)
    }

    fn on_behaviour_event(&mut self, event: HandlerIn) {
        if matches!(self.outbound, Outbound::Gone) {
            let block_bytes = match &event {
                HandlerIn::Send(m) => m.block_bytes(),
                HandlerIn::Serve(o) => o.block_bytes(),
                HandlerIn::SendRaw(_) => 0,
            };
            self.events.push_back(HandlerOut::Sent { block_bytes });
            return;
        }
        if self.queued_messages() >= OUTBOUND_QUEUE_MESSAGES_MAX {
            tracing::warn!("bitswap: outbound queue full, message dropped");
            let block_bytes = match &event {
                HandlerIn::Send(m) => m.block_bytes(),
                HandlerIn::Serve(o) => o.block_bytes(),
                HandlerIn::SendRaw(_) => 0,
            };
            self.events.push_back(HandlerOut::Sent { block_bytes });
            return;
        }
        match event {
            HandlerIn::Send(m) => match self.outbound {
                // The encoding depends on the version, known once the stream is negotiated.
                Outbound::None | Outbound::Requested => self.pending.push_back(m),
                _ => {
                    let bytes = m.block_bytes();
                    self.queue
                        .push_back(Queued::Frame(m.encode_frame_parts(self.version), bytes));
                }
            },
            // Encoded when prepared, after negotiation.
            HandlerIn::Serve(o) => self.queue.push_back(Queued::Serve(o)),
            HandlerIn::SendRaw(b) => self.queue.push_back(Queued::Frame(vec![Bytes::from(b)], 0)),
        }
    }

    fn on_connection_event(&mut self, event: ConnectionEvent<'_, Upgrade, Upgrade, (), ()>) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: (s, v),
                ..
            }) => {
                if self.reads.len() < INBOUND_STREAMS_PER_CONNECTION_MAX {
                    self.read_new(s, v);
                } else if self.waiting.len() < INBOUND_STREAMS_WAITING_MAX {
                    self.waiting.push_back((s, v));
                } else {
                    tracing::debug!("bitswap: too many inbound streams, one refused");
                    drop(s);
                }
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: (s, v),
                ..
            }) => {
                self.version = v;
                self.failures = 0;
                self.outbound = Outbound::Idle(s);
                self.encode_pending();
                self.events.push_back(HandlerOut::Negotiated(v));
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { error, .. }) => {
                self.failures += 1;
                let unsupported = matches!(error, StreamUpgradeError::NegotiationFailed);
                if unsupported || self.failures >= OUTBOUND_FAILURES_MAX {
                    tracing::debug!(?error, "bitswap: no outbound stream");
                    self.outbound = Outbound::Gone;
                    self.drop_queued();
                    self.events.push_back(HandlerOut::Unsupported);
                } else {
                    self.outbound = Outbound::None;
                }
            }
            _ => {}
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Upgrade, (), HandlerOut>> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(e));
            }
            // Outbound first: finish local work before accepting more remote work.
            match std::mem::replace(&mut self.outbound, Outbound::Gone) {
                Outbound::Writing(mut fut, bytes) => match fut.poll_unpin(cx) {
                    Poll::Ready((s, Ok(()))) => {
                        self.outbound = Outbound::Idle(s);
                        self.events
                            .push_back(HandlerOut::Sent { block_bytes: bytes });
                        continue;
                    }
                    Poll::Ready((_, Err(e))) => {
                        tracing::debug!(error = %e, "bitswap: outbound stream failed");
                        self.events
                            .push_back(HandlerOut::Sent { block_bytes: bytes });
                        self.failures += 1;
                        if self.failures >= OUTBOUND_FAILURES_MAX {
                            self.drop_queued();
                        } else {
                            self.outbound = Outbound::None;
                            // Re-encode nothing: queued frames keep the version they had.
                        }
                        continue;
                    }
                    Poll::Pending => {
                        self.outbound = Outbound::Writing(fut, bytes);
                        // Read the next messages' blocks while this one is written.
                        self.fill_prepared();
                    }
                },
                Outbound::Idle(mut s) => {
                    self.fill_prepared();
                    if let Poll::Ready(Some((frame, bytes))) = self.prepared.poll_next_unpin(cx) {
                        self.prepared_block_bytes = self.prepared_block_bytes.saturating_sub(bytes);
                        self.fill_prepared();
                        self.outbound = Outbound::Writing(
                            async move {
                                let r = async {
                                    for part in &frame {
                                        s.write_all(part).await?;
                                    }
                                    s.flush().await
                                }
                                .await;
                                (s, r)
                            }
                            .boxed(),
                            bytes,
                        );
                        continue;
                    }
                    self.outbound = Outbound::Idle(s);
                }
                Outbound::None => {
                    if self.queued_messages() > 0 {
                        self.outbound = Outbound::Requested;
                        return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                            protocol: SubstreamProtocol::new(Upgrade, ()),
                        });
                    }
                    self.outbound = Outbound::None;
                }
                other => self.outbound = other,
            }
            if self.events.len() >= EVENTS_QUEUED_MAX {
                return Poll::Pending;
            }
            // Decoded messages first, in the order their frames were read.
            if let Poll::Ready(Some((id, v, r))) = self.decoding.poll_next_unpin(cx) {
                if self.poisoned.contains(&id) {
                    continue;
                }
                match r {
                    Ok(msg) => self
                        .events
                        .push_back(HandlerOut::Received { msg, version: v }),
                    Err(FrameError::Protocol(e)) => {
                        tracing::debug!(error = %e, "bitswap: malformed message, stream dropped");
                        self.poison(id);
                        self.events.push_back(HandlerOut::Malformed(e));
                    }
                    Err(FrameError::Io(e)) => {
                        tracing::debug!(error = %e, "bitswap: decoding failed, stream dropped");
                        self.poison(id);
                    }
                }
                continue;
            }
            if self.decoding.len() >= FRAMES_DECODING_MAX {
                return Poll::Pending;
            }
            // A stream that ended (below, on an earlier turn) freed a read.
            self.read_waiting();
            match self.reads.poll_next_unpin(cx) {
                Poll::Ready(Some((id, s, v, r))) => {
                    if self.poisoned.contains(&id) {
                        // The stream already broke the protocol: drop it and what it sent.
                        self.poisoned.retain(|p| *p != id);
                        drop(s);
                        continue;
                    }
                    match r {
                        Ok(Some(body)) => {
                            self.decoding.push_back(decode(id, body, v));
                            self.read_next(id, s, v);
                        }
                        Ok(None) => {}
                        Err(FrameError::Protocol(e)) => {
                            tracing::debug!(error = %e, "bitswap: malformed frame, stream dropped");
                            self.events.push_back(HandlerOut::Malformed(e));
                        }
                        Err(FrameError::Io(e)) => {
                            tracing::trace!(error = %e, "bitswap: inbound stream ended");
                        }
                    }
                }
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitswap::protocol::{WantEntry, Wantlist, MESSAGE_BYTES_MAX};
    use futures::io::Cursor;

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or("").to_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn jobs_run_where_their_offload_says() {
        let here = std::thread::current().id();
        let on_pool = run_offloaded(Offload::DataPool, thread_name).await.unwrap();
        assert!(on_pool.starts_with("ipfs-kit-data-"), "{on_pool}");
        // tokio's blocking threads: neither the pool nor this one.
        let (name, id) = run_offloaded(Offload::Blocking, || {
            (thread_name(), std::thread::current().id())
        })
        .await
        .unwrap();
        assert!(!name.starts_with("ipfs-kit-data-"), "{name}");
        assert_ne!(id, here);
        let inline = run_offloaded(Offload::Inline, || std::thread::current().id())
            .await
            .unwrap();
        assert_eq!(inline, here);
        // A repository with a remote tier reads on tokio's blocking pool.
        assert_eq!(Handler::new(None, true).serve_reads, Offload::Blocking);
        assert_eq!(Handler::new(None, false).serve_reads, Offload::DataPool);
    }

    fn wants_message(n: usize) -> Message {
        let cid: cid::Cid = "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n"
            .parse()
            .unwrap();
        Message {
            wantlist: Some(Wantlist {
                entries: (0..n).map(|_| WantEntry::want_have(cid, 1, true)).collect(),
                full: false,
            }),
            ..Message::default()
        }
    }

    #[test]
    fn frames_round_trip_and_end_cleanly() {
        let m = wants_message(3);
        let mut bytes = m.encode_frame(ProtocolVersion::V1_2_0);
        bytes.extend(m.encode_frame(ProtocolVersion::V1_2_0));
        let mut r = Cursor::new(bytes);
        futures::executor::block_on(async {
            for _ in 0..2 {
                let got = read_frame(&mut r, ProtocolVersion::V1_2_0).await.unwrap();
                assert_eq!(got, Some(m.clone()));
            }
            assert!(read_frame(&mut r, ProtocolVersion::V1_2_0)
                .await
                .unwrap()
                .is_none());
        });
    }

    #[test]
    fn oversize_frame_is_refused_before_reading_the_body() {
        // Declares MESSAGE_BYTES_MAX + 1 and sends no body: the error must come from the prefix.
        let mut bytes = Vec::new();
        crate::dag::pb::put_varint(&mut bytes, (MESSAGE_BYTES_MAX + 1) as u64);
        let mut r = Cursor::new(bytes);
        let e =
            futures::executor::block_on(read_frame(&mut r, ProtocolVersion::V1_2_0)).unwrap_err();
        assert!(
            matches!(
                e,
                FrameError::Protocol(ProtocolError::FrameTooLarge { size_bytes, max_bytes })
                    if size_bytes == (MESSAGE_BYTES_MAX + 1) as u64 && max_bytes == MESSAGE_BYTES_MAX
            ),
            "{e:?}"
        );
    }

    #[test]
    fn limit_sized_frame_is_read() {
        // A frame of exactly MESSAGE_BYTES_MAX bytes (one unknown length-delimited field) is
        // accepted.
        let mut body = vec![0x32u8]; // field 6, wire type 2
        let payload = MESSAGE_BYTES_MAX - 1 - crate::dag::pb::varint_len(MESSAGE_BYTES_MAX as u64);
        crate::dag::pb::put_varint(&mut body, payload as u64);
        body.resize(MESSAGE_BYTES_MAX, 0);
        let mut bytes = Vec::new();
        crate::dag::pb::put_varint(&mut bytes, body.len() as u64);
        bytes.extend(body);
        let mut r = Cursor::new(bytes);
        let got = futures::executor::block_on(read_frame(&mut r, ProtocolVersion::V1_2_0));
        assert!(matches!(got, Ok(Some(_))), "{got:?}");
    }

    #[test]
    fn garbage_and_truncation_are_typed_errors() {
        // A valid prefix followed by a body that is not a message.
        let mut r = Cursor::new(vec![3u8, 0xff, 0xff, 0xff]);
        let e = futures::executor::block_on(read_frame(&mut r, ProtocolVersion::V1_2_0));
        assert!(matches!(e, Err(FrameError::Protocol(_))), "{e:?}");
        // A varint that never ends.
        let mut r = Cursor::new(vec![0xffu8; 12]);
        let e = futures::executor::block_on(read_frame(&mut r, ProtocolVersion::V1_2_0));
        assert!(matches!(e, Err(FrameError::Protocol(_))), "{e:?}");
        // A body cut short.
        let mut r = Cursor::new(vec![10u8, 1, 2]);
        let e = futures::executor::block_on(read_frame(&mut r, ProtocolVersion::V1_2_0));
        assert!(matches!(e, Err(FrameError::Io(_))), "{e:?}");
    }
}
