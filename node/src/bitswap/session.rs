//! A bitswap client session as a pure state machine: fetch a set of CIDs from peers.
//!
//! [`ClientSession::handle`] takes a [`SessionEvent`] and the current time (milliseconds, from
//! any monotonic clock) and returns [`SessionAction`]s; [`ClientSession::want`] adds CIDs (a
//! DAG walk adds children as their parents arrive). Randomness comes from a seed, so a run is
//! reproducible.
//!
//! Strategy (after boxo's session, written from its documented behaviour):
//! - a want no peer is known to have is broadcast as want-have (with send-dont-have) to the
//!   connected 1.2 peers; peers that already delivered blocks in this session, and peers too
//!   old for want-have, get a want-block straight away;
//! - a HAVE makes the peer a candidate: the want-block goes to the candidate with the fewest
//!   want-blocks in flight (at most [`SessionConfig::want_blocks_per_peer_max`] each), which
//!   spreads a DAG's blocks over every peer that has them;
//! - a peer that delivered blocks in this session gets want-blocks without a want-have first,
//!   and no want-have for a want waiting for room (at most `want_blocks_per_peer_max` in
//!   flight): a DAG of thousands of blocks would otherwise put thousands of want-haves in its
//!   wantlist, past the 1024 a server keeps;
//! - DONT_HAVE (or a corrupt block, which is also penalized) moves the want-block to another
//!   candidate; when every connected peer said DONT_HAVE, or nobody is connected, the session
//!   asks for providers (`FindProviders`) and dials the ones it is told about;
//! - a want with no answer for [`SessionConfig::rebroadcast_interval_ms`] is broadcast again
//!   and one of them triggers a provider search;
//! - a received block is checked against the wanted CID, handed out (`BlockReceived`) and
//!   cancelled at every other peer that was asked; `Done` follows the last one.

use super::ledger::WANTLIST_ENTRIES_PER_PEER_MAX;
use super::protocol::{Message, PresenceType, ProtocolVersion, WantEntry, Wantlist};
use bytes::Bytes;
use cid::Cid;
use ipfs_kit_blockstore::{hash, Block};
use multihash::Multihash;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Default pause before an unanswered want is broadcast again.
pub const REBROADCAST_INTERVAL_MS: u64 = 2_000;
/// Default pause between provider searches for the same want.
pub const PROVIDER_SEARCH_INTERVAL_MS: u64 = 10_000;
/// Default cap of want-blocks in flight to one peer.
pub const WANT_BLOCKS_PER_PEER_MAX: usize = 32;
/// Default cap of wants one session holds at a time.
pub const SESSION_WANTS_MAX: usize = 64 * 1024;
/// Default cap of peers a session tracks.
pub const SESSION_PEERS_MAX: usize = 1024;
/// Default cap of dials per provider answer.
pub const DIALS_PER_SEARCH_MAX: usize = 10;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    pub rebroadcast_interval_ms: u64,
    pub provider_search_interval_ms: u64,
    pub want_blocks_per_peer_max: usize,
    pub wants_max: usize,
    pub peers_max: usize,
    pub dials_per_search_max: usize,
    /// Seed of the session's tie-breaking randomness.
    pub seed: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            rebroadcast_interval_ms: REBROADCAST_INTERVAL_MS,
            provider_search_interval_ms: PROVIDER_SEARCH_INTERVAL_MS,
            want_blocks_per_peer_max: WANT_BLOCKS_PER_PEER_MAX,
            wants_max: SESSION_WANTS_MAX,
            peers_max: SESSION_PEERS_MAX,
            dials_per_search_max: DIALS_PER_SEARCH_MAX,
            seed: 0x9e37_79b9_7f4a_7c15,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("bitswap session: {wanted} wants would exceed the limit of {max}")]
    TooManyWants { wanted: usize, max: usize },
}

#[derive(Clone, Debug)]
pub enum SessionEvent<P> {
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
    /// A block from a path that has not checked it against its CID (the wire codec has: it
    /// rebuilds CIDs from the data's hash); it is verified against the wanted CID here.
    BlockReceived {
        peer: P,
        cid: Cid,
        data: Bytes,
    },
    /// A [`SessionAction::Dial`] failed.
    DialFailed {
        peer: P,
    },
    /// The answer to a [`SessionAction::FindProviders`].
    ProvidersFound {
        cid: Cid,
        providers: Vec<P>,
    },
    /// Time passed; rebroadcasts are due on ticks.
    Tick,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionPenalty {
    /// The peer sent bytes that do not hash to the CID we asked for.
    CorruptBlock { cid: Cid },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionAction<P> {
    SendMessage {
        peer: P,
        msg: Message,
    },
    FindProviders {
        cid: Cid,
    },
    Dial {
        peer: P,
    },
    Penalize {
        peer: P,
        reason: SessionPenalty,
    },
    /// A wanted block arrived and verified; named by the CID that was wanted.
    BlockReceived {
        block: Block,
        from: P,
    },
    /// Every wanted block has arrived.
    Done,
}

#[derive(Debug)]
struct WantState<P> {
    cid: Cid,
    priority: i32,
    haves: BTreeSet<P>,
    dont_haves: BTreeSet<P>,
    /// Peers sent a want-have since the last broadcast.
    asked_have: BTreeSet<P>,
    /// Every peer sent any want (to cancel at).
    asked: BTreeSet<P>,
    block_from: Option<P>,
    last_sent_ms: Option<u64>,
    last_search_ms: Option<u64>,
}

#[derive(Debug)]
struct PeerState {
    version: ProtocolVersion,
    want_blocks_inflight: usize,
    blocks_received: u64,
    last_block_ms: Option<u64>,
}

/// Fetches a set of CIDs. `P` is the peer identity.
#[derive(Debug)]
pub struct ClientSession<P> {
    cfg: SessionConfig,
    /// Wants by insertion order (which is also priority order).
    wants: BTreeMap<u64, WantState<P>>,
    by_hash: HashMap<Multihash<64>, u64>,
    peers: BTreeMap<P, PeerState>,
    dialing: BTreeSet<P>,
    /// Wants to evaluate at the next dispatch even when no peer has room for a want-block:
    /// new or reset wants, wants whose candidates changed. The others wait for room, so a
    /// dispatch with every peer at its cap skips them without work.
    fresh: BTreeSet<u64>,
    next_seq: u64,
    received: u64,
    done_emitted: bool,
    rng: u64,
}

impl<P: Clone + Ord + std::fmt::Debug> ClientSession<P> {
    pub fn new(cfg: SessionConfig) -> Self {
        let rng = cfg.seed | 1;
        Self {
            cfg,
            wants: BTreeMap::new(),
            by_hash: HashMap::new(),
            peers: BTreeMap::new(),
            dialing: BTreeSet::new(),
            fresh: BTreeSet::new(),
            next_seq: 0,
            received: 0,
            done_emitted: false,
            rng,
        }
    }

    /// Blocks still wanted.
    pub fn remaining(&self) -> usize {
        self.wants.len()
    }

    /// Blocks received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn is_done(&self) -> bool {
        self.wants.is_empty() && self.done_emitted
    }

    /// Whether a block with `cid`'s multihash is still wanted.
    pub fn wants(&self, cid: &Cid) -> bool {
        self.by_hash.contains_key(cid.hash())
    }

    /// The CIDs still wanted, in priority order.
    pub fn wanted(&self) -> Vec<Cid> {
        self.wants.values().map(|w| w.cid).collect()
    }

    /// Adds wants (already-wanted CIDs are skipped) and sends them out.
    pub fn want(
        &mut self,
        cids: &[Cid],
        now_ms: u64,
    ) -> Result<Vec<SessionAction<P>>, SessionError> {
        let new: Vec<&Cid> = cids
            .iter()
            .filter(|c| !self.by_hash.contains_key(c.hash()))
            .collect();
        if self.wants.len() + new.len() > self.cfg.wants_max {
            return Err(SessionError::TooManyWants {
                wanted: self.wants.len() + new.len(),
                max: self.cfg.wants_max,
            });
        }
        for cid in new {
            if self.by_hash.contains_key(cid.hash()) {
                continue;
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            self.by_hash.insert(*cid.hash(), seq);
            self.fresh.insert(seq);
            self.wants.insert(
                seq,
                WantState {
                    cid: *cid,
                    // Earlier wants first, as boxo counts priorities down.
                    priority: i32::MAX - (seq % (i32::MAX as u64)) as i32,
                    haves: BTreeSet::new(),
                    dont_haves: BTreeSet::new(),
                    asked_have: BTreeSet::new(),
                    asked: BTreeSet::new(),
                    block_from: None,
                    last_sent_ms: None,
                    last_search_ms: None,
                },
            );
        }
        if !self.wants.is_empty() {
            self.done_emitted = false;
        }
        let mut out = Outbox::default();
        self.dispatch(now_ms, &mut out);
        Ok(out.finish())
    }

    pub fn handle(&mut self, event: SessionEvent<P>, now_ms: u64) -> Vec<SessionAction<P>> {
        let mut out = Outbox::default();
        match event {
            SessionEvent::PeerConnected { peer, version } => {
                self.dialing.remove(&peer);
                self.add_peer(peer, version);
            }
            SessionEvent::PeerDisconnected { peer } => self.remove_peer(&peer),
            SessionEvent::DialFailed { peer } => {
                self.dialing.remove(&peer);
            }
            SessionEvent::MessageReceived { peer, msg } => {
                self.add_peer(peer.clone(), ProtocolVersion::V1_2_0);
                self.on_message(peer, msg, now_ms, &mut out);
            }
            SessionEvent::BlockReceived { peer, cid, data } => {
                self.add_peer(peer.clone(), ProtocolVersion::V1_2_0);
                self.on_block(&peer, &cid, data, false, now_ms, &mut out);
            }
            SessionEvent::ProvidersFound { cid, providers } => {
                self.on_providers(cid, providers, &mut out);
            }
            SessionEvent::Tick => self.on_tick(now_ms, &mut out),
        }
        self.dispatch(now_ms, &mut out);
        if self.wants.is_empty() && !self.done_emitted && self.next_seq > 0 {
            self.done_emitted = true;
            out.actions.push(SessionAction::Done);
        }
        out.finish()
    }

    fn add_peer(&mut self, peer: P, version: ProtocolVersion) {
        if self.peers.contains_key(&peer) || self.peers.len() >= self.cfg.peers_max {
            return;
        }
        // A new peer to ask: every want not already on its way is worth another look.
        self.fresh.extend(
            self.wants
                .iter()
                .filter(|(_, w)| w.block_from.is_none())
                .map(|(s, _)| *s),
        );
        self.peers.insert(
            peer,
            PeerState {
                version,
                want_blocks_inflight: 0,
                blocks_received: 0,
                last_block_ms: None,
            },
        );
    }

    fn remove_peer(&mut self, peer: &P) {
        if self.peers.remove(peer).is_none() {
            return;
        }
        for (seq, w) in self.wants.iter_mut() {
            w.haves.remove(peer);
            w.dont_haves.remove(peer);
            w.asked_have.remove(peer);
            w.asked.remove(peer);
            if w.block_from.as_ref() == Some(peer) {
                w.block_from = None;
            }
            if w.block_from.is_none() {
                self.fresh.insert(*seq);
            }
        }
    }

    fn on_message(&mut self, peer: P, msg: Message, now_ms: u64, out: &mut Outbox<P>) {
        for p in msg.presences {
            let Some(&seq) = self.by_hash.get(p.cid.hash()) else {
                continue;
            };
            let Some(w) = self.wants.get_mut(&seq) else {
                continue;
            };
            self.fresh.insert(seq);
            match p.kind {
                PresenceType::Have => {
                    w.dont_haves.remove(&peer);
                    w.haves.insert(peer.clone());
                }
                PresenceType::DontHave => {
                    w.haves.remove(&peer);
                    w.dont_haves.insert(peer.clone());
                    if w.block_from.as_ref() == Some(&peer) {
                        w.block_from = None;
                        if let Some(ps) = self.peers.get_mut(&peer) {
                            ps.want_blocks_inflight = ps.want_blocks_inflight.saturating_sub(1);
                        }
                    }
                }
            }
        }
        for block in msg.blocks {
            // The codec rebuilt this CID from the hash of the data: a want with the same
            // multihash is already verified, no need to hash again.
            let (cid, data) = block.into_parts();
            self.on_block(&peer, &cid, data, true, now_ms, out);
        }
    }

    fn on_block(
        &mut self,
        peer: &P,
        cid: &Cid,
        data: Bytes,
        hashed: bool,
        now_ms: u64,
        out: &mut Outbox<P>,
    ) {
        let Some(&seq) = self.by_hash.get(cid.hash()) else {
            tracing::trace!(?peer, %cid, "bitswap: unwanted block");
            return;
        };
        let Some(w) = self.wants.get_mut(&seq) else {
            return;
        };
        let verified = hashed && w.cid.hash() == cid.hash();
        if !verified && hash::verify(&w.cid, &data).is_err() {
            tracing::debug!(?peer, cid = %w.cid, "bitswap: corrupt block");
            out.actions.push(SessionAction::Penalize {
                peer: peer.clone(),
                reason: SessionPenalty::CorruptBlock { cid: w.cid },
            });
            self.fresh.insert(seq);
            w.haves.remove(peer);
            w.dont_haves.insert(peer.clone());
            if w.block_from.as_ref() == Some(peer) {
                w.block_from = None;
                if let Some(ps) = self.peers.get_mut(peer) {
                    ps.want_blocks_inflight = ps.want_blocks_inflight.saturating_sub(1);
                }
            }
            return;
        }
        let Some(w) = self.wants.remove(&seq) else {
            return;
        };
        self.fresh.remove(&seq);
        self.by_hash.remove(w.cid.hash());
        if let Some(from) = &w.block_from {
            if let Some(ps) = self.peers.get_mut(from) {
                ps.want_blocks_inflight = ps.want_blocks_inflight.saturating_sub(1);
            }
        }
        if let Some(ps) = self.peers.get_mut(peer) {
            ps.blocks_received += 1;
            ps.last_block_ms = Some(now_ms);
        }
        for p in &w.asked {
            if p != peer {
                out.entry(p.clone(), WantEntry::cancel(w.cid));
            }
        }
        self.received += 1;
        out.actions.push(SessionAction::BlockReceived {
            block: Block::new_unchecked(w.cid, data),
            from: peer.clone(),
        });
    }

    fn on_providers(&mut self, cid: Cid, providers: Vec<P>, out: &mut Outbox<P>) {
        let Some(&seq) = self.by_hash.get(cid.hash()) else {
            return;
        };
        self.fresh.insert(seq);
        let mut dials = 0;
        for p in providers {
            if self.peers.contains_key(&p) {
                if let Some(w) = self.wants.get_mut(&seq) {
                    if !w.dont_haves.contains(&p) {
                        w.haves.insert(p);
                    }
                }
            } else if dials < self.cfg.dials_per_search_max
                && !self.dialing.contains(&p)
                && self.dialing.len() < self.cfg.peers_max
            {
                dials += 1;
                self.dialing.insert(p.clone());
                out.actions.push(SessionAction::Dial { peer: p });
            }
        }
    }

    fn on_tick(&mut self, now_ms: u64, out: &mut Outbox<P>) {
        let interval = self.cfg.rebroadcast_interval_ms;
        let recent = |ps: &PeerState| ps.last_block_ms.is_some_and(|t| now_ms < t + interval);
        // Some peer delivered within the interval: a want nobody was asked for yet is waiting
        // for a want-block slot at it, not lost.
        let delivering = self.peers.values().any(recent);
        let mut due = Vec::new();
        for (&seq, w) in &self.wants {
            let stale = w.last_sent_ms.is_none_or(|t| now_ms >= t + interval);
            // A want-block to a peer that delivered recently is still making progress, and so
            // is a want waiting for a slot while blocks arrive.
            let progressing = match &w.block_from {
                Some(p) => self.peers.get(p).is_some_and(recent),
                None => delivering && w.asked_have.is_empty(),
            };
            if stale && !progressing {
                due.push(seq);
            }
        }
        if due.is_empty() {
            return;
        }
        for &seq in &due {
            let Some(w) = self.wants.get_mut(&seq) else {
                continue;
            };
            if let Some(p) = w.block_from.take() {
                if let Some(ps) = self.peers.get_mut(&p) {
                    ps.want_blocks_inflight = ps.want_blocks_inflight.saturating_sub(1);
                }
                // It did not answer in time: ask the others first.
                w.haves.remove(&p);
            }
            w.asked_have.clear();
            w.dont_haves.clear();
            w.last_sent_ms = None;
            self.fresh.insert(seq);
        }
        // One provider search per tick, for a want picked at random among the late ones.
        let pick = due[(self.next_rand() % due.len() as u64) as usize];
        self.search_providers(pick, now_ms, out);
    }

    /// Asks for providers of a want unless that was done recently; returns whether it asked.
    fn search_providers(&mut self, seq: u64, now_ms: u64, out: &mut Outbox<P>) -> bool {
        let interval = self.cfg.provider_search_interval_ms;
        let Some(w) = self.wants.get_mut(&seq) else {
            return false;
        };
        if w.last_search_ms.is_some_and(|t| now_ms < t + interval) {
            return false;
        }
        w.last_search_ms = Some(now_ms);
        out.actions
            .push(SessionAction::FindProviders { cid: w.cid });
        true
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// The peer among `candidates` with the fewest want-blocks in flight and room for one more;
    /// ties are broken at random.
    fn least_loaded(&mut self, candidates: &[P]) -> Option<P> {
        let cap = self.cfg.want_blocks_per_peer_max;
        let loads: Vec<(usize, &P)> = candidates
            .iter()
            .filter_map(|p| self.peers.get(p).map(|s| (s.want_blocks_inflight, p)))
            .filter(|(l, _)| *l < cap)
            .collect();
        let min = loads.iter().map(|(l, _)| *l).min()?;
        let best: Vec<P> = loads
            .into_iter()
            .filter(|(l, _)| *l == min)
            .map(|(_, p)| p.clone())
            .collect();
        let i = (self.next_rand() % best.len() as u64) as usize;
        best.get(i).cloned()
    }

    /// Whether some peer can take one more want-block, or there is no peer at all (every
    /// want then needs a provider search).
    fn has_room(&self) -> bool {
        let cap = self.cfg.want_blocks_per_peer_max;
        self.peers.is_empty() || self.peers.values().any(|p| p.want_blocks_inflight < cap)
    }

    /// Sends what each want needs now. A want that is not fresh has already been asked of
    /// every peer it can be asked of, so while no peer has room for a want-block it is skipped
    /// at the cost of a lookup (a fetch of thousands of blocks dispatches on every message).
    fn dispatch(&mut self, now_ms: u64, out: &mut Outbox<P>) {
        let seqs: Vec<u64> = self.wants.keys().copied().collect();
        let mut need_search = Vec::new();
        let mut room = self.has_room();
        for seq in seqs {
            let fresh = self.fresh.remove(&seq);
            if !room && !fresh {
                continue;
            }
            let Some(w) = self.wants.get(&seq) else {
                continue;
            };
            if w.block_from.is_some() {
                continue;
            }
            let (cid, priority) = (w.cid, w.priority);
            let usable: Vec<P> = self
                .peers
                .keys()
                .filter(|p| !w.dont_haves.contains(*p))
                .cloned()
                .collect();
            if usable.is_empty() {
                need_search.push(seq);
                continue;
            }
            let have_peers: Vec<P> = w
                .haves
                .iter()
                .filter(|p| self.peers.contains_key(*p))
                .cloned()
                .collect();
            // Who gets the want-block: a peer that said HAVE, else one that delivered blocks
            // in this session or cannot answer want-have.
            let mut target = self.least_loaded(&have_peers);
            if target.is_none() && have_peers.is_empty() {
                let fallback: Vec<P> = usable
                    .iter()
                    .filter(|p| {
                        self.peers
                            .get(*p)
                            .is_some_and(|s| s.blocks_received > 0 || !s.version.supports_have())
                    })
                    .cloned()
                    .collect();
                target = self.least_loaded(&fallback);
            }
            let Some(w) = self.wants.get_mut(&seq) else {
                continue;
            };
            let mut sent = false;
            if let Some(t) = target {
                if let Some(ps) = self.peers.get_mut(&t) {
                    ps.want_blocks_inflight += 1;
                }
                out.entry(t.clone(), WantEntry::want_block(cid, priority, true));
                w.asked.insert(t.clone());
                w.block_from = Some(t);
                sent = true;
            }
            if have_peers.is_empty() {
                // Nobody is known to have it: ask every 1.2 peer not yet asked — except the
                // ones that delivered blocks in this session: they get the want-block itself
                // as soon as they have room, and a want-have beside it would only fill their
                // wantlist (a DAG's wants outnumber a server's 1024-entry wantlist).
                for p in &usable {
                    if w.block_from.as_ref() == Some(p) || w.asked_have.contains(p) {
                        continue;
                    }
                    if !self
                        .peers
                        .get(p)
                        .is_some_and(|s| s.version.supports_have() && s.blocks_received == 0)
                    {
                        continue;
                    }
                    out.entry(p.clone(), WantEntry::want_have(cid, priority, true));
                    w.asked_have.insert(p.clone());
                    w.asked.insert(p.clone());
                    sent = true;
                }
            }
            // The rebroadcast clock starts at the first attempt, even if nobody could be asked.
            if sent || w.last_sent_ms.is_none() {
                w.last_sent_ms = Some(now_ms);
            }
            if w.block_from.is_some() {
                room = self.has_room();
            }
        }
        // One provider search per event: providers of one block of a DAG usually have the rest,
        // and a session of many wants must not flood the DHT.
        let searched = out
            .actions
            .iter()
            .any(|a| matches!(a, SessionAction::FindProviders { .. }));
        for seq in need_search.into_iter().filter(|_| !searched) {
            if self.search_providers(seq, now_ms, out) {
                break;
            }
        }
    }
}

/// Want entries gathered per peer, flushed as one message per peer, or several of at most
/// [`WANTLIST_ENTRIES_PER_PEER_MAX`] entries (more in one message is a flood to a server).
struct Outbox<P> {
    entries: BTreeMap<P, Vec<WantEntry>>,
    actions: Vec<SessionAction<P>>,
}

impl<P> Default for Outbox<P> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
            actions: Vec::new(),
        }
    }
}

impl<P: Clone + Ord> Outbox<P> {
    fn entry(&mut self, peer: P, e: WantEntry) {
        self.entries.entry(peer).or_default().push(e);
    }

    fn finish(self) -> Vec<SessionAction<P>> {
        let mut actions = Vec::new();
        for (peer, entries) in self.entries {
            for chunk in entries.chunks(WANTLIST_ENTRIES_PER_PEER_MAX) {
                actions.push(SessionAction::SendMessage {
                    peer: peer.clone(),
                    msg: Message {
                        wantlist: Some(Wantlist {
                            entries: chunk.to_vec(),
                            full: false,
                        }),
                        ..Message::default()
                    },
                });
            }
        }
        actions.extend(self.actions);
        actions
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
