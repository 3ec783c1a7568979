//! The bitswap [`NetworkBehaviour`]: swarm-wide state, moving events between the per-connection
//! [`Handler`]s and the pure state machines.
//!
//! - the server side is one [`ServerEngine`] over every peer; it decides which blocks go to
//!   whom from their sizes alone, and each connection's [`Handler`] reads the blocks from the
//!   local blockstore (on the [`data_pool`](crate::data_pool)) just before writing them, so
//!   the swarm task never reads or hashes block data;
//! - the client side is a set of [`ClientSession`]s, one per fetch, opened and fed by the node
//!   ([`Behaviour::new_session`], [`Behaviour::want`], [`Behaviour::providers_found`]);
//! - connections come and go through swarm events; messages arrive from handlers and are split
//!   between the server (wantlists) and the sessions (blocks, presences);
//! - the actions of both state machines become handler notifications, dials and
//!   [`Event`]s for the node (blocks to store, provider searches to run).
//!
//! Malformed frames are penalized here: each one is reported ([`Event::Penalized`]) and after
//! [`MALFORMED_FRAMES_MAX`] the peer is disconnected; the server engine's own penalties (want
//! floods) end the same way.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use cid::Cid;
use ipfs_kit_blockstore::{Block, Blockstore};
use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{
    CloseConnection, ConnectionClosed, ConnectionDenied, ConnectionId, DialFailure, FromSwarm,
    NetworkBehaviour, NotifyHandler, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

use super::handler::{Handler, HandlerIn, HandlerOut};
use super::ledger::{NoBlocks, ServerAction, ServerEngine, ServerEvent, StoreSource};
use super::protocol::{Message, ProtocolError, ProtocolVersion};
use super::session::{ClientSession, SessionAction, SessionConfig, SessionError, SessionEvent};

/// Malformed frames from one peer after which it is disconnected.
pub const MALFORMED_FRAMES_MAX: u32 = 3;
/// How often sessions and the server see time pass (rebroadcasts are due on ticks).
pub const TICK_INTERVAL: Duration = Duration::from_millis(250);
/// Addresses kept per peer for dialing providers.
pub const PEER_ADDRS_MAX: usize = 16;
/// Peers whose addresses are kept for dialing; the oldest are forgotten first.
pub const ADDR_BOOK_PEERS_MAX: usize = 1024;
/// Concurrent client sessions.
pub const SESSIONS_MAX: usize = 1024;

/// Identifies a client session.
pub type SessionId = u64;

/// What the node hears from bitswap.
#[derive(Debug)]
pub enum Event {
    /// A block a session wanted arrived and matched its CID.
    BlockReceived {
        session: SessionId,
        block: Block,
        from: PeerId,
    },
    /// Every want of the session has been answered.
    SessionDone { session: SessionId },
    /// The session wants providers of `cid` (run a DHT search, then call
    /// [`Behaviour::providers_found`]).
    FindProviders { session: SessionId, cid: Cid },
    /// A peer broke the protocol.
    Penalized { peer: PeerId, reason: String },
}

/// Counters in the shape of kubo's `bitswap stat`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BitswapStat {
    pub blocks_received: u64,
    pub data_received: u64,
    pub blocks_sent: u64,
    pub data_sent: u64,
    /// Blocks received that no session wanted (any more).
    pub dup_blks_received: u64,
    pub dup_data_received: u64,
    pub messages_received: u64,
    /// What our sessions want now.
    pub wantlist: Vec<Cid>,
    /// Peers with an open connection that speak bitswap.
    pub peers: Vec<PeerId>,
    /// Penalties given to peers (malformed frames, floods, corrupt blocks).
    pub penalties: u64,
}

/// What we exchanged with one connected peer, in the shape of kubo's `bitswap ledger`
/// receipt. Zeros for a peer we have no connection with (kubo's ledgers go with the peer too).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LedgerReceipt {
    /// Block bytes we sent it.
    pub sent: u64,
    /// Block bytes it sent us.
    pub received: u64,
    /// Blocks sent and received.
    pub exchanged: u64,
}

impl LedgerReceipt {
    /// kubo's debt ratio: bytes sent over bytes received plus one.
    pub fn value(&self) -> f64 {
        self.sent as f64 / (self.received as f64 + 1.0)
    }
}

#[derive(Debug)]
struct PeerEntry {
    conns: Vec<ConnectionId>,
    version: ProtocolVersion,
    bitswap: bool,
    malformed: u32,
    blocks_received: u64,
    bytes_received: u64,
}

/// The bitswap behaviour.
pub struct Behaviour {
    store: Option<Arc<dyn Blockstore>>,
    /// A read of `store` may wait on a network (see [`Behaviour::reads_may_wait`]).
    reads_may_wait: bool,
    server: ServerEngine<PeerId>,
    sessions: HashMap<SessionId, ClientSession<PeerId>>,
    session_config: SessionConfig,
    next_session: SessionId,
    peers: HashMap<PeerId, PeerEntry>,
    addrs: crate::net::addr_book::AddrBook,
    events: VecDeque<ToSwarm<Event, HandlerIn>>,
    stat: BitswapStat,
    epoch: Instant,
    tick: Option<tokio::time::Interval>,
}

impl Behaviour {
    /// A behaviour serving the blocks of `store` (none when `None`).
    pub fn new(store: Option<Arc<dyn Blockstore>>, session_config: SessionConfig) -> Self {
        Self {
            store,
            reads_may_wait: false,
            server: ServerEngine::new(),
            sessions: HashMap::new(),
            session_config,
            next_session: 1,
            peers: HashMap::new(),
            addrs: crate::net::addr_book::AddrBook::new(ADDR_BOOK_PEERS_MAX, PEER_ADDRS_MAX),
            events: VecDeque::new(),
            stat: BitswapStat::default(),
            epoch: Instant::now(),
            tick: None,
        }
    }

    /// Says whether a read of the served store may wait on a network (a remote storage tier
    /// behind the local one): such reads run on tokio's blocking pool instead of the
    /// [`data_pool`](crate::data_pool), whose few threads hash and write for every transfer.
    pub fn reads_may_wait(mut self, may_wait: bool) -> Self {
        self.reads_may_wait = may_wait;
        self
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Opens a client session that knows every connected bitswap peer; `None` when
    /// [`SESSIONS_MAX`] are open.
    pub fn new_session(&mut self) -> Option<SessionId> {
        if self.sessions.len() >= SESSIONS_MAX {
            return None;
        }
        let id = self.next_session;
        self.next_session += 1;
        let mut cfg = self.session_config.clone();
        cfg.seed ^= id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut s = ClientSession::new(cfg);
        let now = self.now_ms();
        for (peer, e) in &self.peers {
            if e.bitswap {
                // No wants yet: nothing to send.
                let _ = s.handle(
                    SessionEvent::PeerConnected {
                        peer: *peer,
                        version: e.version,
                    },
                    now,
                );
            }
        }
        self.sessions.insert(id, s);
        Some(id)
    }

    /// Adds wants to a session and sends them.
    pub fn want(&mut self, session: SessionId, cids: &[Cid]) -> Result<(), SessionError> {
        let now = self.now_ms();
        let Some(s) = self.sessions.get_mut(&session) else {
            return Ok(());
        };
        let actions = s.want(cids, now)?;
        self.on_session_actions(session, actions);
        Ok(())
    }

    /// Closes a session; its outstanding wants are cancelled at every peer.
    pub fn close_session(&mut self, session: SessionId) {
        let Some(s) = self.sessions.remove(&session) else {
            return;
        };
        let wanted = s.wanted();
        if wanted.is_empty() {
            return;
        }
        let still: BTreeSet<Cid> = self.sessions.values().flat_map(|s| s.wanted()).collect();
        let cancels: Vec<_> = wanted
            .into_iter()
            .filter(|c| !still.contains(c))
            .map(super::protocol::WantEntry::cancel)
            .collect();
        if cancels.is_empty() {
            return;
        }
        let peers: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, e)| e.bitswap)
            .map(|(p, _)| *p)
            .collect();
        for chunk in cancels.chunks(super::ledger::WANTLIST_ENTRIES_PER_PEER_MAX) {
            for p in &peers {
                let msg = Message {
                    wantlist: Some(super::protocol::Wantlist {
                        entries: chunk.to_vec(),
                        full: false,
                    }),
                    ..Message::default()
                };
                self.send(*p, HandlerIn::Send(msg));
            }
        }
    }

    /// The answer to an [`Event::FindProviders`].
    pub fn providers_found(&mut self, session: SessionId, cid: Cid, providers: Vec<PeerId>) {
        let now = self.now_ms();
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        let actions = s.handle(SessionEvent::ProvidersFound { cid, providers }, now);
        self.on_session_actions(session, actions);
    }

    /// Remembers addresses to dial `peer` at (from a provider record or the DHT).
    pub fn add_addresses(&mut self, peer: PeerId, addrs: impl IntoIterator<Item = Multiaddr>) {
        self.addrs.add(peer, addrs);
    }

    /// A block was stored locally: peers waiting for it are served.
    pub fn block_added(&mut self, cid: Cid) {
        self.server_event(ServerEvent::BlockAdded { cid });
    }

    /// `bitswap stat`.
    pub fn stat(&self) -> BitswapStat {
        let mut s = self.stat.clone();
        let mut wl: Vec<Cid> = self
            .sessions
            .values()
            .flat_map(|s| s.wanted())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        wl.truncate(super::ledger::WANTLIST_ENTRIES_PER_PEER_MAX * 16);
        s.wantlist = wl;
        let mut peers: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, e)| e.bitswap)
            .map(|(p, _)| *p)
            .collect();
        peers.sort();
        s.peers = peers;
        s
    }

    /// What we exchanged with `peer` while connected (`bitswap ledger`).
    pub fn ledger(&self, peer: &PeerId) -> LedgerReceipt {
        let (blocks_received, received) = self
            .peers
            .get(peer)
            .map_or((0, 0), |e| (e.blocks_received, e.bytes_received));
        let (blocks_sent, sent) = self
            .server
            .peer_stats(peer)
            .map_or((0, 0), |s| (s.blocks_sent, s.bytes_sent));
        LedgerReceipt {
            sent,
            received,
            exchanged: blocks_sent + blocks_received,
        }
    }

    /// Our wants (`None`), or the wants `peer` sent us.
    pub fn wantlist(&self, peer: Option<PeerId>) -> Vec<Cid> {
        match peer {
            None => self.stat().wantlist,
            Some(p) => self
                .server
                .wantlist_of(&p)
                .into_iter()
                .map(|(c, _, _)| c)
                .collect(),
        }
    }

    /// Writes raw bytes to `peer`'s bitswap stream (fault injection for tests); false if not
    /// connected.
    pub fn send_raw(&mut self, peer: PeerId, bytes: Vec<u8>) -> bool {
        if !self.peers.contains_key(&peer) {
            return false;
        }
        self.send(peer, HandlerIn::SendRaw(bytes));
        true
    }

    fn send(&mut self, peer: PeerId, event: HandlerIn) {
        if tracing::enabled!(tracing::Level::TRACE) {
            match &event {
                HandlerIn::Send(m) => trace_message("sending", &peer, m),
                HandlerIn::Serve(o) => {
                    let blocks: Vec<String> = o.blocks.iter().map(|(c, _)| c.to_string()).collect();
                    let presences: Vec<String> = o
                        .presences
                        .iter()
                        .map(|p| format!("{:?} {}", p.kind, p.cid))
                        .collect();
                    tracing::trace!(%peer, ?blocks, ?presences, "bitswap: serving");
                }
                HandlerIn::SendRaw(_) => {}
            }
        }
        let Some(conn) = self.peers.get(&peer).and_then(|e| e.conns.first().copied()) else {
            // Release the server's budget for a message that cannot go anywhere.
            let block_bytes = match &event {
                HandlerIn::Send(m) => m.block_bytes(),
                HandlerIn::Serve(o) => o.block_bytes(),
                HandlerIn::SendRaw(_) => 0,
            };
            if block_bytes > 0 {
                self.server_event(ServerEvent::MessageSent { peer, block_bytes });
            }
            return;
        };
        self.events.push_back(ToSwarm::NotifyHandler {
            peer_id: peer,
            handler: NotifyHandler::One(conn),
            event,
        });
    }

    fn server_event(&mut self, event: ServerEvent<PeerId>) {
        let actions = match &self.store {
            Some(store) => self.server.handle(event, &StoreSource(store.as_ref())),
            None => self.server.handle(event, &NoBlocks),
        };
        for a in actions {
            match a {
                ServerAction::SendMessage { peer, msg } => {
                    self.stat.blocks_sent += msg.blocks.len() as u64;
                    self.stat.data_sent += msg.block_bytes() as u64;
                    // The handler reads the blocks, off the swarm task.
                    self.send(peer, HandlerIn::Serve(msg));
                }
                ServerAction::Penalize { peer, reason } => {
                    self.stat.penalties += 1;
                    tracing::debug!(%peer, ?reason, "bitswap: peer penalized");
                    self.events
                        .push_back(ToSwarm::GenerateEvent(Event::Penalized {
                            peer,
                            reason: format!("{reason:?}"),
                        }));
                }
                ServerAction::Disconnect { peer } => {
                    tracing::info!(%peer, "bitswap: disconnecting peer");
                    self.events.push_back(ToSwarm::CloseConnection {
                        peer_id: peer,
                        connection: CloseConnection::All,
                    });
                }
            }
        }
    }

    fn session_event_all(&mut self, make: impl Fn() -> SessionEvent<PeerId>) {
        let now = self.now_ms();
        let ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        for id in ids {
            if let Some(s) = self.sessions.get_mut(&id) {
                let actions = s.handle(make(), now);
                self.on_session_actions(id, actions);
            }
        }
    }

    fn on_session_actions(&mut self, session: SessionId, actions: Vec<SessionAction<PeerId>>) {
        for a in actions {
            match a {
                SessionAction::SendMessage { peer, msg } => self.send(peer, HandlerIn::Send(msg)),
                SessionAction::FindProviders { cid } => {
                    self.events
                        .push_back(ToSwarm::GenerateEvent(Event::FindProviders {
                            session,
                            cid,
                        }))
                }
                SessionAction::Dial { peer } => {
                    let addrs = self.addrs.get(&peer).cloned().unwrap_or_default();
                    self.events.push_back(ToSwarm::Dial {
                        opts: DialOpts::peer_id(peer)
                            .condition(PeerCondition::DisconnectedAndNotDialing)
                            .addresses(addrs)
                            .build(),
                    });
                }
                SessionAction::Penalize { peer, reason } => {
                    self.stat.penalties += 1;
                    self.events
                        .push_back(ToSwarm::GenerateEvent(Event::Penalized {
                            peer,
                            reason: format!("{reason:?}"),
                        }));
                }
                SessionAction::BlockReceived { block, from } => {
                    self.events
                        .push_back(ToSwarm::GenerateEvent(Event::BlockReceived {
                            session,
                            block,
                            from,
                        }));
                }
                SessionAction::Done => self
                    .events
                    .push_back(ToSwarm::GenerateEvent(Event::SessionDone { session })),
            }
        }
    }

    fn set_version(&mut self, peer: PeerId, version: ProtocolVersion) {
        let Some(e) = self.peers.get_mut(&peer) else {
            return;
        };
        if e.version == version && e.bitswap {
            return;
        }
        e.version = version;
        e.bitswap = true;
        self.server_event(ServerEvent::PeerConnected { peer, version });
        // Sessions learn the version by forgetting and re-adding the peer.
        self.session_event_all(|| SessionEvent::PeerDisconnected { peer });
        self.session_event_all(|| SessionEvent::PeerConnected { peer, version });
    }

    fn on_message(&mut self, peer: PeerId, msg: Message) {
        self.stat.messages_received += 1;
        if tracing::enabled!(tracing::Level::TRACE) {
            trace_message("received", &peer, &msg);
        }
        let mut bytes = 0u64;
        for b in &msg.blocks {
            let len = b.data().len() as u64;
            bytes += len;
            self.stat.blocks_received += 1;
            self.stat.data_received += len;
            if !self.sessions.values().any(|s| s.wants(b.cid())) {
                self.stat.dup_blks_received += 1;
                self.stat.dup_data_received += len;
            }
        }
        // The peer's ledger (`bitswap ledger`): one lookup per message.
        if let Some(e) = self.peers.get_mut(&peer) {
            e.blocks_received += msg.blocks.len() as u64;
            e.bytes_received += bytes;
        }
        let Message {
            wantlist,
            blocks,
            presences,
            pending_bytes,
        } = msg;
        if wantlist.is_some() {
            self.server_event(ServerEvent::MessageReceived {
                peer,
                msg: Message {
                    wantlist,
                    ..Message::default()
                },
            });
        }
        if blocks.is_empty() && presences.is_empty() {
            return;
        }
        let client = Message {
            wantlist: None,
            blocks,
            presences,
            pending_bytes,
        };
        let now = self.now_ms();
        let ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        for id in ids {
            let Some(s) = self.sessions.get_mut(&id) else {
                continue;
            };
            if !client.blocks.iter().any(|b| s.wants(b.cid()))
                && !client.presences.iter().any(|p| s.wants(&p.cid))
            {
                continue;
            }
            let actions = s.handle(
                SessionEvent::MessageReceived {
                    peer,
                    msg: client.clone(),
                },
                now,
            );
            self.on_session_actions(id, actions);
        }
    }

    fn on_malformed(&mut self, peer: PeerId, error: ProtocolError) {
        self.stat.penalties += 1;
        let Some(e) = self.peers.get_mut(&peer) else {
            return;
        };
        e.malformed += 1;
        tracing::debug!(%peer, %error, count = e.malformed, "bitswap: malformed frame");
        let disconnect = e.malformed >= MALFORMED_FRAMES_MAX;
        self.events
            .push_back(ToSwarm::GenerateEvent(Event::Penalized {
                peer,
                reason: error.to_string(),
            }));
        if disconnect {
            tracing::info!(%peer, "bitswap: too many malformed frames, disconnecting");
            self.events.push_back(ToSwarm::CloseConnection {
                peer_id: peer,
                connection: CloseConnection::All,
            });
        }
    }

    fn on_tick(&mut self) {
        let now = self.now_ms();
        self.server_event(ServerEvent::Tick { now_ms: now });
        self.session_event_all(|| SessionEvent::Tick);
    }

    fn connection_opened(&mut self, peer: PeerId, conn: ConnectionId) -> Handler {
        let e = self.peers.entry(peer).or_insert_with(|| PeerEntry {
            conns: Vec::new(),
            version: ProtocolVersion::V1_2_0,
            bitswap: false,
            malformed: 0,
            blocks_received: 0,
            bytes_received: 0,
        });
        if !e.conns.contains(&conn) {
            e.conns.push(conn);
        }
        Handler::new(self.store.clone(), self.reads_may_wait)
    }
}

/// One trace line per message: its wants, blocks and presences by CID.
fn trace_message(what: &str, peer: &PeerId, m: &Message) {
    let wants: Vec<String> = m
        .wantlist
        .iter()
        .flat_map(|w| &w.entries)
        .map(|e| {
            let kind = if e.cancel {
                "cancel"
            } else if e.want_type == super::protocol::WantType::Have {
                "have?"
            } else {
                "block?"
            };
            format!("{kind} {}", e.cid)
        })
        .collect();
    let blocks: Vec<String> = m.blocks.iter().map(|b| b.cid().to_string()).collect();
    let presences: Vec<String> = m
        .presences
        .iter()
        .map(|p| format!("{:?} {}", p.kind, p.cid))
        .collect();
    tracing::trace!(%peer, ?wants, ?blocks, ?presences, "bitswap: {what}");
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Event;

    fn handle_established_inbound_connection(
        &mut self,
        conn: ConnectionId,
        peer: PeerId,
        _local: &Multiaddr,
        _remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.connection_opened(peer, conn))
    }

    fn handle_established_outbound_connection(
        &mut self,
        conn: ConnectionId,
        peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.connection_opened(peer, conn))
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
            FromSwarm::ConnectionEstablished(c) if c.other_established == 0 => {
                // Assume bitswap 1.2 until the outbound negotiation says otherwise; a peer
                // that speaks no bitswap is dropped again on `Unsupported`.
                if let Some(e) = self.peers.get_mut(&c.peer_id) {
                    e.bitswap = true;
                    let (peer, version) = (c.peer_id, e.version);
                    self.server_event(ServerEvent::PeerConnected { peer, version });
                    self.session_event_all(|| SessionEvent::PeerConnected { peer, version });
                }
            }
            FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id,
                connection_id,
                remaining_established,
                ..
            }) => {
                if let Some(e) = self.peers.get_mut(&peer_id) {
                    e.conns.retain(|c| *c != connection_id);
                }
                if remaining_established == 0 {
                    self.peers.remove(&peer_id);
                    self.server_event(ServerEvent::PeerDisconnected { peer: peer_id });
                    self.session_event_all(|| SessionEvent::PeerDisconnected { peer: peer_id });
                }
            }
            FromSwarm::DialFailure(DialFailure {
                peer_id: Some(peer),
                ..
            }) => {
                if !self.peers.contains_key(&peer) {
                    self.session_event_all(|| SessionEvent::DialFailed { peer });
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        _conn: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {
            HandlerOut::Received { msg, version } => {
                self.set_version(peer, version);
                self.on_message(peer, msg);
            }
            HandlerOut::Sent { block_bytes } => {
                if block_bytes > 0 {
                    self.server_event(ServerEvent::MessageSent { peer, block_bytes });
                }
            }
            HandlerOut::Negotiated(v) => self.set_version(peer, v),
            HandlerOut::Unsupported => {
                if let Some(e) = self.peers.get_mut(&peer) {
                    if e.bitswap {
                        e.bitswap = false;
                        self.server_event(ServerEvent::PeerDisconnected { peer });
                        self.session_event_all(|| SessionEvent::PeerDisconnected { peer });
                    }
                }
            }
            HandlerOut::Malformed(e) => self.on_malformed(peer, e),
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        let tick = self.tick.get_or_insert_with(|| {
            let mut i = tokio::time::interval(TICK_INTERVAL);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        let mut due = false;
        // Poll until Pending so the next tick wakes us.
        while tick.poll_tick(cx).is_ready() {
            due = true;
        }
        if due {
            self.on_tick();
        }
        if let Some(e) = self.events.pop_front() {
            return Poll::Ready(e);
        }
        Poll::Pending
    }
}
