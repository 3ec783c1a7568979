//! Outbound Kademlia streams that carry a batch of ADD_PROVIDER frames to one peer.
//!
//! rust-libp2p's kad behaviour opens one stream per request and offers no way to send a
//! provider record to a chosen peer, so the sweep has its own small behaviour: a job (frames
//! plus a reply channel) goes to a connection handler of the peer (dialing it first when not
//! connected, with the addresses the lookup learned), which opens one kad stream, writes
//! every frame, closes it and replies. It accepts no inbound streams: the kad behaviours
//! answer those.
//!
//! Which DHT a record goes to is the job's: its protocol list names the peer's DHT (the WAN
//! `/ipfs/kad/1.0.0` or kubo's LAN `/ipfs/lan/kad/1.0.0`) when identify told us, else both
//! in order of preference, and multistream-select settles on the first the peer serves.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{AsyncWriteExt as _, FutureExt as _, StreamExt as _};
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::{DeniedUpgrade, OutboundUpgrade, UpgradeInfo};
use libp2p::core::Endpoint;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::handler::{ConnectionEvent, DialUpgradeError, FullyNegotiatedOutbound};
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId,
    DialError, DialFailure, FromSwarm, NetworkBehaviour, NotifyHandler, Stream, StreamProtocol,
    SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::oneshot;

use crate::net::addr_book::AddrBook;

/// Time to open and negotiate one stream.
pub const STREAM_OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Time to write one batch and close its stream.
pub const BATCH_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Jobs waiting for a connection or a stream, per peer; more are refused.
pub const JOBS_PER_PEER_MAX: usize = 16;

/// Peers whose addresses are kept while their batches wait for a connection.
pub const DIAL_PEERS_MAX: usize = 1024;

/// Addresses kept per peer to dial.
pub const PEER_ADDRS_MAX: usize = 16;

/// Why a batch was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("no connection to the peer: {0}")]
    Dial(String),
    #[error("opening the kad stream: {0}")]
    Stream(String),
    #[error("writing the batch: {0}")]
    Write(String),
    #[error("too many batches queued for the peer")]
    Busy,
}

/// One batch: length-prefixed frames for one stream.
#[derive(Debug)]
pub struct Job {
    /// The kad protocols to offer, preferred first (at least one).
    pub protocols: Vec<StreamProtocol>,
    pub frames: Vec<Vec<u8>>,
    pub reply: oneshot::Sender<Result<usize, SendError>>,
}

/// An outbound stream of one of several protocols, first choice first.
#[derive(Clone, Debug)]
pub struct AnyOf(Vec<StreamProtocol>);

impl UpgradeInfo for AnyOf {
    type Info = StreamProtocol;
    type InfoIter = std::vec::IntoIter<StreamProtocol>;

    fn protocol_info(&self) -> Self::InfoIter {
        self.0.clone().into_iter()
    }
}

impl OutboundUpgrade<Stream> for AnyOf {
    type Output = Stream;
    type Error = Infallible;
    type Future = futures::future::Ready<Result<Stream, Infallible>>;

    fn upgrade_outbound(self, stream: Stream, _: StreamProtocol) -> Self::Future {
        futures::future::ready(Ok(stream))
    }
}

impl Job {
    fn fail(self, e: SendError) {
        let _ = self.reply.send(Err(e));
    }
}

/// The swarm-wide side: routes jobs to a connection of their peer.
pub struct Behaviour {
    connected: HashSet<PeerId>,
    waiting: HashMap<PeerId, Vec<Job>>,
    addrs: AddrBook,
    events: VecDeque<ToSwarm<Infallible, Job>>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            connected: HashSet::new(),
            waiting: HashMap::new(),
            addrs: AddrBook::new(DIAL_PEERS_MAX, PEER_ADDRS_MAX),
            events: VecDeque::new(),
        }
    }
}

impl Behaviour {
    /// Sends `job` to `peer`, dialing it at `addrs` first when not connected.
    pub fn send(&mut self, peer: PeerId, addrs: Vec<Multiaddr>, job: Job) {
        if self.connected.contains(&peer) {
            self.events.push_back(ToSwarm::NotifyHandler {
                peer_id: peer,
                handler: NotifyHandler::Any,
                event: job,
            });
            return;
        }
        let queue = self.waiting.entry(peer).or_default();
        queue.retain(|j| !j.reply.is_closed());
        if queue.len() >= JOBS_PER_PEER_MAX {
            job.fail(SendError::Busy);
            return;
        }
        queue.push(job);
        self.addrs.add(peer, addrs.iter().cloned());
        self.events.push_back(ToSwarm::Dial {
            opts: DialOpts::peer_id(peer)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .addresses(addrs)
                .build(),
        });
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _conn: ConnectionId,
        _peer: PeerId,
        _local: &Multiaddr,
        _remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(Handler::default())
    }

    fn handle_established_outbound_connection(
        &mut self,
        _conn: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(Handler::default())
    }

    fn handle_pending_outbound_connection(
        &mut self,
        _conn: ConnectionId,
        peer: Option<PeerId>,
        _addrs: &[Multiaddr],
        _role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        Ok(peer
            .and_then(|p| self.addrs.get(&p).cloned())
            .unwrap_or_default())
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        match event {
            FromSwarm::ConnectionEstablished(c) => {
                self.connected.insert(c.peer_id);
                self.addrs.remove(&c.peer_id);
                for job in self.waiting.remove(&c.peer_id).unwrap_or_default() {
                    self.events.push_back(ToSwarm::NotifyHandler {
                        peer_id: c.peer_id,
                        handler: NotifyHandler::One(c.connection_id),
                        event: job,
                    });
                }
            }
            FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id,
                remaining_established: 0,
                ..
            }) => {
                self.connected.remove(&peer_id);
            }
            FromSwarm::DialFailure(DialFailure {
                peer_id: Some(peer),
                error,
                ..
            }) => {
                // Another dial to the peer is under way: its outcome decides.
                if matches!(error, DialError::DialPeerConditionFalse(_)) {
                    return;
                }
                if !self.connected.contains(&peer) {
                    self.addrs.remove(&peer);
                    for job in self.waiting.remove(&peer).unwrap_or_default() {
                        job.fail(SendError::Dial(error.to_string()));
                    }
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _conn: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _cx: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        match self.events.pop_front() {
            Some(e) => Poll::Ready(e),
            None => Poll::Pending,
        }
    }
}

/// The per-connection side: one outbound stream per job.
#[derive(Default)]
pub struct Handler {
    queue: VecDeque<Job>,
    opening: usize,
    writes: FuturesUnordered<BoxFuture<'static, ()>>,
}

async fn write_batch(mut stream: Stream, job: Job) {
    let frames = job.frames;
    let write = async {
        for f in &frames {
            stream.write_all(f).await?;
        }
        stream.flush().await?;
        stream.close().await?;
        Ok::<usize, std::io::Error>(frames.len())
    };
    let result = match tokio::time::timeout(BATCH_WRITE_TIMEOUT, write).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(SendError::Write(e.to_string())),
        Err(_) => Err(SendError::Write(format!(
            "timed out after {BATCH_WRITE_TIMEOUT:?}"
        ))),
    };
    let _ = job.reply.send(result);
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Job;
    type ToBehaviour = Infallible;
    type InboundProtocol = DeniedUpgrade;
    type OutboundProtocol = AnyOf;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = Job;

    fn listen_protocol(&self) -> SubstreamProtocol<DeniedUpgrade, ()> {
        SubstreamProtocol::new(DeniedUpgrade, ())
    }

    fn connection_keep_alive(&self) -> bool {
        !self.queue.is_empty() || self.opening > 0 || !self.writes.is_empty()
    }

    fn on_behaviour_event(&mut self, job: Job) {
        self.queue.push_back(job);
    }

    fn on_connection_event(&mut self, event: ConnectionEvent<'_, DeniedUpgrade, AnyOf, (), Job>) {
        match event {
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: stream,
                info: job,
            }) => {
                self.opening = self.opening.saturating_sub(1);
                self.writes.push(write_batch(stream, job).boxed());
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { info: job, error }) => {
                self.opening = self.opening.saturating_sub(1);
                job.fail(SendError::Stream(error.to_string()));
            }
            _ => {}
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<AnyOf, Job, Infallible>> {
        while let Poll::Ready(Some(())) = self.writes.poll_next_unpin(cx) {}
        if let Some(job) = self.queue.pop_front() {
            self.opening += 1;
            let offer = AnyOf(job.protocols.clone());
            return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                protocol: SubstreamProtocol::new(offer, job).with_timeout(STREAM_OPEN_TIMEOUT),
            });
        }
        Poll::Pending
    }
}
