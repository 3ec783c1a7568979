//! The bitswap server as a pure state machine: per-peer ledgers and fair scheduling.
//!
//! [`ServerEngine::handle`] takes one [`ServerEvent`] (a peer came or went, a message arrived,
//! a block was added locally, a message finished sending, time passed) plus read-only access to
//! the local blocks ([`BlockSource`]) and returns the [`ServerAction`]s to carry out. It does no
//! I/O and keeps no clock: the libp2p handler moves the messages and reports `MessageSent`.
//!
//! Behaviour (after boxo's decision engine, written from its documented behaviour):
//! - each peer's wantlist holds at most [`WANTLIST_ENTRIES_PER_PEER_MAX`] wants; when full, a
//!   new want evicts the lowest-priority (then oldest) one if its priority is higher, else it is
//!   dropped (CVE-2023-25568 was an unbounded wantlist);
//! - want-have: HAVE, or the block itself when it is at most [`INLINE_BLOCK_BYTES_MAX`];
//!   missing → DONT_HAVE if asked for; want-block: the block, missing → DONT_HAVE if asked
//!   for. Unanswered wants wait in the ledger and are served on `BlockAdded` (blocks the node
//!   itself stored) or at the next `Tick` (blocks written into the store by anyone else, such
//!   as an `add` through the API: each tick re-checks up to [`WAITING_RECHECKS_PER_TICK_MAX`]
//!   waiting wants against the store, round-robin over peers);
//! - cancel removes a want; a full wantlist replaces the peer's ledger;
//! - peers are served round-robin, one message per peer per round, highest priority first;
//!   a peer with [`OUTSTANDING_BYTES_PER_PEER_MAX`] unacknowledged bytes waits (backpressure);
//!   one message carries at most [`MESSAGE_BLOCK_BYTES_TARGET`] of blocks (a single larger
//!   block, up to [`OUTBOUND_BLOCK_BYTES_MAX`], goes alone) and at most
//!   [`BLOCKS_PER_MESSAGE_MAX`] blocks (so kubo does not give up on a whole wide want at once);
//! - the engine decides *which* blocks go out, not their bytes: a [`ServerAction::SendMessage`]
//!   carries an [`Outgoing`] (presences plus the CIDs and sizes of the blocks), and the I/O
//!   layer reads the blocks ([`Outgoing::load`]) off the swarm task, just before writing. So
//!   the per-peer budget bounds scheduled work, and block bytes are held in memory only for
//!   the few messages the connection is about to write;
//! - 1.0 / 1.1 peers get no presences; everything they want is a want-block.
//!
//! Memory per peer is bounded by the wantlist cap (the schedule queue only holds wanted CIDs),
//! and the number of peers by [`PEERS_MAX`].

use super::protocol::{
    BlockPresence, Message, PresenceType, ProtocolVersion, WantEntry, WantType,
    OUTBOUND_BLOCK_BYTES_MAX,
};
use bytes::Bytes;
use cid::Cid;
use ipfs_kit_blockstore::{Block, Blockstore};
use multihash::Multihash;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

/// Most wants kept per peer (boxo's `MaxQueuedWantlistEntriesPerPeer`).
pub const WANTLIST_ENTRIES_PER_PEER_MAX: usize = 1024;
/// Scheduled but not yet written block bytes per peer before we stop scheduling more for it.
/// Scheduled messages hold CIDs, not block data (see [`Outgoing`]), so this is the depth of
/// the per-peer send pipeline, not memory: it must cover a round trip through the swarm and
/// the connection's write of the messages ahead: eight whole messages.
pub const OUTSTANDING_BYTES_PER_PEER_MAX: usize = 8 * MESSAGE_BLOCK_BYTES_TARGET;
/// Block bytes one outbound message is filled up to. Smaller messages let the receiver verify
/// and store the first blocks while the next are still on the wire. Four of kubo's default
/// leaves fit (262,158 bytes each: 256 KiB of file and the dag-pb/UnixFS wrapping; at exactly
/// 1 MiB only three did): the receiver hashes a message's blocks two at a time
/// (`HashFn::digest_many`), and a third block ran alone.
pub const MESSAGE_BLOCK_BYTES_TARGET: usize = 4 * (256 + 1) * 1024;
/// Most blocks in one outbound message, whatever their size. A wide want (a file's first layer
/// of links, ~8 KiB each) is then answered in several messages rather than one. kubo v0.22
/// stores a message's blocks (an fsync each) before it takes them as answers, and meanwhile
/// counts each of its want-blocks unanswered after twice its measured latency (~2 ms on
/// loopback) as a DONT_HAVE; after 16 in a row it drops the peer from its session, and only a
/// later block or HAVE from that peer brings it back. When every block it wanted arrived in
/// the one message that it had already given up on, nothing came later, and the session never
/// asked anyone again (a transfer hung for good, about one in twenty from us). Blocks in a few
/// messages arrive over several stores: fewer wants time out at once, and a later message
/// brings the peer back.
pub const BLOCKS_PER_MESSAGE_MAX: usize = 8;
/// Blocks up to this size are sent in reply to a want-have instead of a HAVE.
pub const INLINE_BLOCK_BYTES_MAX: usize = 1024;
/// Most presences in one outbound message.
pub const PRESENCES_PER_MESSAGE_MAX: usize = 1024;
/// Most peers with a ledger; further peers are disconnected.
pub const PEERS_MAX: usize = 4096;
/// Penalties after which a peer is disconnected.
pub const PENALTIES_BEFORE_DISCONNECT: u32 = 8;
/// Waiting wants (wants we could not answer yet) looked up in the store again per `Tick`,
/// across all peers. A lookup is an index probe, so this bounds a tick's work to a fraction
/// of a millisecond however many peers wait.
pub const WAITING_RECHECKS_PER_TICK_MAX: usize = 4096;

/// Read-only access to local blocks.
pub trait BlockSource {
    /// The block's size if we have it.
    fn block_size(&self, cid: &Cid) -> Option<usize>;
    /// The block's bytes if we have them.
    fn block(&self, cid: &Cid) -> Option<Bytes>;
}

/// A [`BlockSource`] with no blocks (a node without a repository serves nothing).
pub struct NoBlocks;

impl BlockSource for NoBlocks {
    fn block_size(&self, _: &Cid) -> Option<usize> {
        None
    }
    fn block(&self, _: &Cid) -> Option<Bytes> {
        None
    }
}

/// A [`BlockSource`] over a [`Blockstore`]; store errors read as "absent" (and are logged).
pub struct StoreSource<'a>(pub &'a dyn Blockstore);

impl BlockSource for StoreSource<'_> {
    fn block_size(&self, cid: &Cid) -> Option<usize> {
        match self.0.size_of(cid) {
            Ok(s) => s.and_then(|s| usize::try_from(s).ok()),
            Err(e) => {
                tracing::warn!(%cid, error = %e, "bitswap: blockstore size_of failed");
                None
            }
        }
    }
    fn block(&self, cid: &Cid) -> Option<Bytes> {
        // Served bytes are hashed by the peer that receives them, so the store's own integrity
        // check (the pack store's crc) is enough here: corruption is still an error, not data.
        match self.0.get_trusted(cid) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(%cid, error = %e, "bitswap: blockstore get failed");
                None
            }
        }
    }
}

#[derive(Clone, Debug)]
pub enum ServerEvent<P> {
    PeerConnected {
        peer: P,
        version: ProtocolVersion,
    },
    PeerDisconnected {
        peer: P,
    },
    MessageReceived {
        peer: P,
        msg: Message,
    },
    /// A message we emitted has been written; releases its block bytes from the peer's
    /// outstanding budget.
    MessageSent {
        peer: P,
        block_bytes: usize,
    },
    BlockAdded {
        cid: Cid,
    },
    Tick {
        now_ms: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PenaltyReason {
    /// One message carried more wants than a peer's whole wantlist may hold.
    WantlistFlood { entries: usize },
}

/// A message the engine scheduled: its presences, and the blocks to read from the store and
/// attach when it is about to be written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outgoing {
    pub presences: Vec<BlockPresence>,
    /// The blocks by CID, with the size the store reported when they were scheduled.
    pub blocks: Vec<(Cid, usize)>,
}

impl Outgoing {
    /// Block bytes scheduled: what the peer's budget was charged, and what the
    /// [`ServerEvent::MessageSent`] for this message must release.
    pub fn block_bytes(&self) -> usize {
        self.blocks.iter().map(|(_, s)| s).sum()
    }

    /// Reads the blocks and builds the message. A block deleted from the store since it was
    /// scheduled is left out (the peer asks again); the want is gone from the ledger either
    /// way.
    pub fn load(self, store: &dyn BlockSource) -> Message {
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for (cid, _) in self.blocks {
            match store.block(&cid) {
                Some(data) => blocks.push(Block::new_unchecked(cid, data)),
                None => tracing::debug!(%cid, "bitswap: scheduled block gone from the store"),
            }
        }
        Message {
            wantlist: None,
            blocks,
            presences: self.presences,
            pending_bytes: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerAction<P> {
    SendMessage { peer: P, msg: Outgoing },
    Penalize { peer: P, reason: PenaltyReason },
    Disconnect { peer: P },
}

#[derive(Clone, Debug)]
struct Want {
    cid: Cid,
    priority: i32,
    want_type: WantType,
    send_dont_have: bool,
    seq: u64,
    dont_have_sent: bool,
}

type QueueKey = (Reverse<i32>, u64, Cid);

#[derive(Debug)]
struct PeerLedger {
    version: ProtocolVersion,
    /// Wants by the CID the peer used.
    wants: HashMap<Cid, Want>,
    /// Multihash → wanted CID: a block added under another CID version or codec still matches.
    by_hash: HashMap<Multihash<64>, Cid>,
    /// (priority, seq, cid): the eviction order, lowest first.
    by_priority: BTreeSet<(i32, u64, Cid)>,
    /// Wants to evaluate against the store, highest priority first.
    queue: BTreeSet<QueueKey>,
    outstanding_bytes: usize,
    penalties: u32,
    blocks_sent: u64,
    bytes_sent: u64,
}

impl PeerLedger {
    /// Whether a new message may be built: a whole one fits in the send pipeline, or nothing is
    /// in it. Starting one as soon as any bytes were free cut the pipeline's last message short
    /// (three 256 KiB leaves, then one), and the receiver hashes a message's blocks in pairs.
    fn has_room_for_a_message(&self) -> bool {
        self.outstanding_bytes == 0
            || self.outstanding_bytes + MESSAGE_BLOCK_BYTES_TARGET <= OUTSTANDING_BYTES_PER_PEER_MAX
    }

    fn new(version: ProtocolVersion) -> Self {
        Self {
            version,
            wants: HashMap::new(),
            by_hash: HashMap::new(),
            by_priority: BTreeSet::new(),
            queue: BTreeSet::new(),
            outstanding_bytes: 0,
            penalties: 0,
            blocks_sent: 0,
            bytes_sent: 0,
        }
    }

    fn remove(&mut self, cid: &Cid) -> Option<Want> {
        let w = self.wants.remove(cid)?;
        if self.by_hash.get(cid.hash()) == Some(cid) {
            self.by_hash.remove(cid.hash());
        }
        self.by_priority.remove(&(w.priority, w.seq, w.cid));
        self.queue.remove(&(Reverse(w.priority), w.seq, w.cid));
        Some(w)
    }

    fn clear(&mut self) {
        self.wants.clear();
        self.by_hash.clear();
        self.by_priority.clear();
        self.queue.clear();
    }

    /// Adds or updates a want; returns false if it was dropped because the ledger is full.
    fn add(&mut self, e: &WantEntry, seq: u64) -> bool {
        let mut want_type = e.want_type;
        if let Some(old) = self.remove(&e.cid) {
            // A want-have never downgrades a want-block.
            if old.want_type == WantType::Block {
                want_type = WantType::Block;
            }
        } else if self.wants.len() >= WANTLIST_ENTRIES_PER_PEER_MAX {
            let Some(&lowest) = self.by_priority.first() else {
                return false;
            };
            if e.priority <= lowest.0 {
                return false;
            }
            self.remove(&lowest.2);
        }
        let w = Want {
            cid: e.cid,
            priority: e.priority,
            want_type,
            send_dont_have: e.send_dont_have,
            seq,
            dont_have_sent: false,
        };
        self.by_priority.insert((w.priority, seq, w.cid));
        self.queue.insert((Reverse(w.priority), seq, w.cid));
        self.by_hash.insert(*w.cid.hash(), w.cid);
        self.wants.insert(w.cid, w);
        true
    }

    fn requeue(&mut self, cid: &Cid) {
        if let Some(w) = self.wants.get(cid) {
            self.queue.insert((Reverse(w.priority), w.seq, w.cid));
        }
    }
}

/// Statistics of one peer's ledger.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerStats {
    pub wants: usize,
    pub outstanding_bytes: usize,
    pub blocks_sent: u64,
    pub bytes_sent: u64,
}

/// The server side of bitswap for all peers. `P` is the peer identity (a libp2p `PeerId` in
/// the node, a small integer in tests).
#[derive(Debug)]
pub struct ServerEngine<P> {
    peers: BTreeMap<P, PeerLedger>,
    seq: u64,
    /// The peer served last: the next round starts after it.
    cursor: Option<P>,
    /// The peer whose waiting wants the last tick re-checked last.
    recheck_cursor: Option<P>,
    now_ms: u64,
}

impl<P: Clone + Ord + std::fmt::Debug> Default for ServerEngine<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Clone + Ord + std::fmt::Debug> ServerEngine<P> {
    pub fn new() -> Self {
        Self {
            peers: BTreeMap::new(),
            seq: 0,
            cursor: None,
            recheck_cursor: None,
            now_ms: 0,
        }
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    pub fn peer_stats(&self, peer: &P) -> Option<PeerStats> {
        self.peers.get(peer).map(|l| PeerStats {
            wants: l.wants.len(),
            outstanding_bytes: l.outstanding_bytes,
            blocks_sent: l.blocks_sent,
            bytes_sent: l.bytes_sent,
        })
    }

    /// A peer's wantlist as we hold it, highest priority first (for `bitswap wantlist -p`).
    pub fn wantlist_of(&self, peer: &P) -> Vec<(Cid, i32, WantType)> {
        let Some(l) = self.peers.get(peer) else {
            return Vec::new();
        };
        l.by_priority
            .iter()
            .rev()
            .filter_map(|(_, _, c)| l.wants.get(c))
            .map(|w| (w.cid, w.priority, w.want_type))
            .collect()
    }

    /// The time last seen in a [`ServerEvent::Tick`].
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Handles one event and returns what to do.
    pub fn handle(
        &mut self,
        event: ServerEvent<P>,
        store: &dyn BlockSource,
    ) -> Vec<ServerAction<P>> {
        let mut actions = Vec::new();
        match event {
            ServerEvent::PeerConnected { peer, version } => {
                if let Some(l) = self.peers.get_mut(&peer) {
                    l.version = version;
                } else if self.peers.len() >= PEERS_MAX {
                    actions.push(ServerAction::Disconnect { peer });
                    return actions;
                } else {
                    self.peers.insert(peer, PeerLedger::new(version));
                }
            }
            ServerEvent::PeerDisconnected { peer } => {
                self.peers.remove(&peer);
            }
            ServerEvent::MessageReceived { peer, msg } => {
                self.on_message(peer, msg, &mut actions);
            }
            ServerEvent::MessageSent { peer, block_bytes } => {
                if let Some(l) = self.peers.get_mut(&peer) {
                    l.outstanding_bytes = l.outstanding_bytes.saturating_sub(block_bytes);
                }
            }
            ServerEvent::BlockAdded { cid } => {
                for l in self.peers.values_mut() {
                    if let Some(c) = l.by_hash.get(cid.hash()).copied() {
                        l.requeue(&c);
                    }
                }
            }
            ServerEvent::Tick { now_ms } => {
                self.now_ms = now_ms;
                self.recheck_waiting();
            }
        }
        self.schedule(store, &mut actions);
        actions
    }

    /// Puts waiting wants back in their peers' queues (at most
    /// [`WAITING_RECHECKS_PER_TICK_MAX`]), starting after the peer re-checked last, so that a
    /// block that reached the store without a `BlockAdded` is still served.
    fn recheck_waiting(&mut self) {
        let order: Vec<P> = match &self.recheck_cursor {
            Some(c) => self
                .peers
                .range((Bound::Excluded(c.clone()), Bound::Unbounded))
                .chain(
                    self.peers
                        .range((Bound::Unbounded, Bound::Included(c.clone()))),
                )
                .map(|(p, _)| p.clone())
                .collect(),
            None => self.peers.keys().cloned().collect(),
        };
        let mut budget = WAITING_RECHECKS_PER_TICK_MAX;
        for peer in order {
            let Some(l) = self.peers.get_mut(&peer) else {
                continue;
            };
            let waiting = l.wants.len().saturating_sub(l.queue.len());
            if waiting == 0 {
                continue;
            }
            if waiting > budget {
                break;
            }
            budget -= waiting;
            let keys: Vec<QueueKey> = l
                .wants
                .values()
                .map(|w| (Reverse(w.priority), w.seq, w.cid))
                .collect();
            l.queue.extend(keys);
            self.recheck_cursor = Some(peer);
        }
    }

    fn on_message(&mut self, peer: P, msg: Message, actions: &mut Vec<ServerAction<P>>) {
        let Some(wl) = msg.wantlist else {
            return;
        };
        if !self.peers.contains_key(&peer) {
            if self.peers.len() >= PEERS_MAX {
                actions.push(ServerAction::Disconnect { peer });
                return;
            }
            self.peers
                .insert(peer.clone(), PeerLedger::new(ProtocolVersion::V1_2_0));
        }
        let wants = wl.entries.iter().filter(|e| !e.cancel).count();
        let mut penalize = None;
        if wants > WANTLIST_ENTRIES_PER_PEER_MAX {
            penalize = Some(PenaltyReason::WantlistFlood { entries: wants });
        }
        let Some(l) = self.peers.get_mut(&peer) else {
            return;
        };
        if wl.full {
            l.clear();
        }
        let mut dropped = 0usize;
        for e in &wl.entries {
            if e.cancel {
                l.remove(&e.cid);
            } else {
                self.seq += 1;
                if !l.add(e, self.seq) {
                    dropped += 1;
                }
            }
        }
        if dropped > 0 {
            tracing::debug!(?peer, dropped, "bitswap: wantlist full, wants dropped");
        }
        if let Some(reason) = penalize {
            l.penalties += 1;
            actions.push(ServerAction::Penalize {
                peer: peer.clone(),
                reason,
            });
            if l.penalties >= PENALTIES_BEFORE_DISCONNECT {
                self.peers.remove(&peer);
                actions.push(ServerAction::Disconnect { peer });
            }
        }
    }

    /// Round-robin over peers with work and budget, one message each per round, until no peer
    /// can make progress.
    fn schedule(&mut self, store: &dyn BlockSource, actions: &mut Vec<ServerAction<P>>) {
        loop {
            let order: Vec<P> = match &self.cursor {
                Some(c) => self
                    .peers
                    .range((Bound::Excluded(c.clone()), Bound::Unbounded))
                    .chain(
                        self.peers
                            .range((Bound::Unbounded, Bound::Included(c.clone()))),
                    )
                    .map(|(p, _)| p.clone())
                    .collect(),
                None => self.peers.keys().cloned().collect(),
            };
            let mut progressed = false;
            for peer in order {
                let Some(l) = self.peers.get_mut(&peer) else {
                    continue;
                };
                if l.queue.is_empty() || !l.has_room_for_a_message() {
                    continue;
                }
                // `None` means the queue drained into waiting wants: no progress to repeat.
                if let Some(msg) = build_message(l, store) {
                    self.cursor = Some(peer.clone());
                    actions.push(ServerAction::SendMessage { peer, msg });
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
    }
}

/// Builds the next message for a peer from its queue, or `None` if nothing is to be sent.
/// Only sizes are looked up here (an index probe); the blocks are read by [`Outgoing::load`].
fn build_message(l: &mut PeerLedger, store: &dyn BlockSource) -> Option<Outgoing> {
    let supports_have = l.version.supports_have();
    let mut blocks: Vec<(Cid, usize)> = Vec::new();
    let mut block_bytes = 0usize;
    let mut presences = Vec::new();
    while let Some(key) = l.queue.first().cloned() {
        let cid = key.2;
        let Some(w) = l.wants.get(&cid).cloned() else {
            l.queue.remove(&key);
            continue;
        };
        let size = store.block_size(&cid);
        let send_block = match (size, w.want_type) {
            (Some(_), WantType::Block) => true,
            (Some(s), WantType::Have) => s <= INLINE_BLOCK_BYTES_MAX,
            (None, _) => false,
        };
        if let (true, Some(s)) = (send_block, size) {
            if !blocks.is_empty()
                && (blocks.len() >= BLOCKS_PER_MESSAGE_MAX
                    || block_bytes + s > MESSAGE_BLOCK_BYTES_TARGET.min(OUTBOUND_BLOCK_BYTES_MAX)
                    || l.outstanding_bytes + block_bytes + s > OUTSTANDING_BYTES_PER_PEER_MAX)
            {
                break;
            }
            block_bytes += s;
            blocks.push((cid, s));
            l.remove(&cid);
            continue;
        } else if size.is_some() {
            // want-have for a block too big to inline.
            if presences.len() >= PRESENCES_PER_MESSAGE_MAX {
                break;
            }
            presences.push(BlockPresence {
                cid,
                kind: PresenceType::Have,
            });
            l.remove(&cid);
            continue;
        }
        // We do not have it: DONT_HAVE once if asked; the want waits for BlockAdded.
        l.queue.remove(&key);
        if supports_have && w.send_dont_have && !w.dont_have_sent {
            if presences.len() >= PRESENCES_PER_MESSAGE_MAX {
                l.queue.insert(key);
                break;
            }
            presences.push(BlockPresence {
                cid,
                kind: PresenceType::DontHave,
            });
            if let Some(w) = l.wants.get_mut(&cid) {
                w.dont_have_sent = true;
            }
        }
    }
    if blocks.is_empty() && presences.is_empty() {
        return None;
    }
    if !supports_have {
        presences.clear();
        if blocks.is_empty() {
            return None;
        }
    }
    l.outstanding_bytes += block_bytes;
    l.blocks_sent += blocks.len() as u64;
    l.bytes_sent += block_bytes as u64;
    Some(Outgoing { presences, blocks })
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
