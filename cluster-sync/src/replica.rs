//! The replica: a pure state machine over the Merkle-CRDT pinset.
//!
//! `Replica::handle(event, now_ms) -> Vec<Action>` is the whole interface: local pins and unpins,
//! announcements of heads from peers, blocks fetched for us, fetch failures and clock ticks go in;
//! broadcasts, fetch requests, things to persist and state changes come out. No I/O, no clock, no
//! randomness: a network layer (gossipsub + bitswap) or the deterministic simulator moves them.
//!
//! **Merkle-CRDT.** Local ops are batched (`BATCH_OPS_MAX_DEFAULT`, `BATCH_BYTES_MAX`,
//! `BATCH_DELAY_MS_DEFAULT`) into a delta linking to the current heads with priority
//! `max head priority + 1`, signed by this replica. A peer that hears of an unknown head fetches
//! it from the announcer, then its unknown parents, and so on; a delta is applied only when its
//! whole ancestry is (applied ancestors are the *context*). The set of deltas waiting for
//! ancestors and the fetches in flight are bounded (`PENDING_DELTAS_MAX`, `PENDING_BYTES_MAX`,
//! `FETCHES_IN_FLIGHT_MAX`); on overflow the replica falls back to the announcer's snapshot.
//!
//! **Trust rule.** A delta whose author is not trusted here, or whose signature, hash, encoding or
//! bounds fail, is *refused*: its ops are never applied, it never becomes a head (so it is never
//! announced, i.e. never forwarded), and its bytes are never persisted or served. A trusted delta
//! that links to a refused one is still applied, in causal order: the links of a validly signed
//! refused delta are followed when a trusted delta links to it (or a trusted peer announces it),
//! and once its ancestry is complete it is resolved as an empty delta (its id joins the context;
//! `Persist::Refused`). Links of undecodable or badly signed blocks are unknowable; they resolve
//! at once. So an untrusted delta embedded as an ancestor of a trusted one is never applied, and
//! replicas with the same trust set converge. Heads announced by an untrusted peer that resolve to
//! untrusted deltas are not followed (`refused_heads`), so an attacker cannot make us walk its DAG.
//! A snapshot carries the effects of every delta its author accepted, removals included, so it is
//! installed only when signed by a trusted peer *whose declared trust set equals ours* (ours may
//! also hold our own key: a worker trusts itself, the masters do not). Trust is this peer plus an
//! explicit list.
//!
//! **Compaction.** `Event::Compact` (or `compact_deltas_threshold` stored deltas) writes a signed
//! snapshot of the state (pins with their tags, the heads and the context) and drops the bodies
//! of deltas older than `compact_keep_priorities` below the top. The state itself holds no
//! tombstones (see `state.rs`). Announcements carry the latest snapshot's CID: a new peer, or one
//! whose fetches of old deltas fail, fetches the snapshot, joins it, then fetches newer deltas.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use cid::Cid;
use libp2p_identity::ed25519::Keypair;
use tracing::{debug, warn};

use crate::codec::{self, Announcement, Delta, Op, SnapshotChunk, SnapshotRoot};
use crate::limits::*;
use crate::state::{Changes, PinSet, Tag};
use crate::types::{check_cid, DeltaId, PeerKey, Pin, PinSpec};

/// Tunables of a replica; the defaults are the named constants.
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    pub batch_ops_max: usize,
    pub batch_delay_ms: u64,
    pub announce_interval_ms: u64,
    pub fetch_timeout_ms: u64,
    /// Compact automatically when this many delta bodies are stored (0: never).
    pub compact_deltas_threshold: usize,
    pub compact_keep_priorities: u64,
    /// Emit `Action::StateChanged` (the pin tracker's input).
    pub emit_state_changes: bool,
    /// Bytes of waiting deltas kept whole; past it, a waiting delta keeps only its links and
    /// its body is fetched again once its ancestry is complete (`PENDING_BYTES_MAX`).
    pub pending_bytes_max: usize,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        ReplicaConfig {
            batch_ops_max: BATCH_OPS_MAX_DEFAULT,
            batch_delay_ms: BATCH_DELAY_MS_DEFAULT,
            announce_interval_ms: ANNOUNCE_INTERVAL_MS_DEFAULT,
            fetch_timeout_ms: FETCH_TIMEOUT_MS_DEFAULT,
            compact_deltas_threshold: COMPACT_DELTAS_THRESHOLD_DEFAULT,
            compact_keep_priorities: COMPACT_KEEP_PRIORITIES_DEFAULT,
            emit_state_changes: true,
            pending_bytes_max: PENDING_BYTES_MAX,
        }
    }
}

/// What happens to a replica.
#[derive(Clone, Debug)]
pub enum Event {
    /// Pin (or re-pin with new options/allocations) locally.
    Pin(Pin),
    /// Unpin locally.
    Unpin(Cid),
    /// Cut the current batch now.
    Flush,
    /// Snapshot the state and drop old deltas.
    Compact,
    /// A peer's heads arrived over gossip.
    HeadsAnnounced {
        from: PeerKey,
        announcement: Announcement,
    },
    /// A block we asked for arrived (bitswap).
    BlockFetched {
        from: PeerKey,
        cid: Cid,
        bytes: Vec<u8>,
    },
    /// The peer does not have the block.
    FetchFailed { from: PeerKey, cid: Cid },
    /// Time passed.
    Tick,
}

/// What the replica wants written to disk.
#[derive(Clone, Debug)]
pub enum Persist {
    /// A delta (ours or merged): keep it, serve it to peers.
    Delta {
        cid: Cid,
        priority: u64,
        bytes: Vec<u8>,
    },
    /// A delta by an untrusted key that a trusted delta links to: only its id is kept, resolved
    /// as empty on restart.
    Refused { cid: Cid },
    /// A snapshot (made or installed): replace the previous snapshot's blocks, drop these deltas.
    Snapshot {
        root: Cid,
        blocks: Vec<(Cid, Vec<u8>)>,
        drop_deltas: Vec<Cid>,
    },
}

/// What the replica asks its environment to do.
#[derive(Clone, Debug)]
pub enum Action {
    /// Publish on the cluster topic (encoded size <= `BROADCAST_BYTES_MAX`).
    Broadcast(Announcement),
    /// Fetch a block, preferably from `from`.
    Fetch {
        cid: Cid,
        from: PeerKey,
    },
    Persist(Persist),
    StateChanged(Changes),
    /// A local op was refused (bad options).
    OpRejected {
        cid: Cid,
        error: String,
    },
}

/// Counts the simulation checks against the limits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    pub pending_deltas: usize,
    pub pending_bytes: usize,
    pub fetches_in_flight: usize,
    pub rejected_ids: usize,
    pub heads: usize,
    pub batch_ops: usize,
    pub peers_tracked: usize,
    pub snapshot_fetch_bytes: usize,
}

/// What a replica persisted, handed back on restart.
#[derive(Clone, Debug, Default)]
pub struct Stored {
    pub snapshot_root: Option<Cid>,
    /// Blocks of that snapshot (root and chunks).
    pub snapshot_blocks: HashMap<Cid, Vec<u8>>,
    pub deltas: Vec<(Cid, Vec<u8>)>,
    /// Ids of refused deltas linked from trusted ones.
    pub refused: Vec<Cid>,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("snapshot block {0} missing")]
    MissingBlock(Cid),
    #[error("stored block {cid}: {source}")]
    Decode {
        cid: Cid,
        source: Box<codec::DecodeError>,
    },
}

struct Pending {
    delta: Delta,
    /// Signed by a key not trusted here: resolved as empty once its ancestry is complete.
    refused: bool,
    /// Only its links are kept (the pending bytes were full): once its ancestry is complete
    /// it is fetched again, whole, and applied then.
    light: bool,
    bytes: Vec<u8>,
    missing: usize,
    from: Option<PeerKey>,
}

/// What a waiting delta keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kept {
    Whole,
    /// Its links only, to be fetched again (`Pending::light`).
    Light,
    /// Its links only, resolved as empty (`Pending::refused`).
    Refused,
}

impl Kept {
    fn links(refused: bool) -> Kept {
        if refused {
            Kept::Refused
        } else {
            Kept::Light
        }
    }
}

/// Whether a snapshot may be installed here: signed by a trusted peer whose declared trust
/// set is ours, except that ours may also hold our own key. Every peer trusts itself, so a
/// worker that the masters do not trust (the usual cluster) differs from a master's set by
/// exactly its own key; what the master refused by that key is nothing (a worker writes no
/// deltas), and a set that trusts any other key we do not (a lax writer) is still refused.
fn snapshot_trusted(trusted: &HashSet<PeerKey>, me: &PeerKey, root: &SnapshotRoot) -> bool {
    trusted.contains(&root.author)
        && root.trust.iter().all(|k| trusted.contains(k))
        && trusted.iter().all(|k| k == me || root.trust.contains(k))
}

/// What a delta kept as links only counts against the pending bytes.
fn light_cost(d: &Delta) -> usize {
    64 + d.parents.len() * 40
}

struct Want {
    from: PeerKey,
    sent_ms: u64,
    attempts: u32,
    peers_tried: u32,
    /// Asked for as a parent, or announced by a trusted peer: if its author is untrusted, its
    /// links are still followed (a trusted peer may have built on it).
    linked: bool,
}

struct SnapFetch {
    root: Cid,
    from: PeerKey,
    sent_ms: u64,
    attempts: u32,
    decoded: Option<(SnapshotRoot, Vec<u8>)>,
    chunks: BTreeMap<Cid, Option<(SnapshotChunk, Vec<u8>)>>,
    bytes: usize,
}

pub struct Replica {
    key: Keypair,
    me: PeerKey,
    trusted: HashSet<PeerKey>,
    cfg: ReplicaConfig,
    set: PinSet,
    heads: HashMap<DeltaId, u64>,
    max_priority: u64,
    stored: Vec<(u64, DeltaId)>,
    snapshot: Option<Cid>,
    batch: Vec<(Cid, Option<PinSpec>)>,
    batch_index: HashMap<Cid, usize>,
    batch_since_ms: Option<u64>,
    pending: HashMap<DeltaId, Pending>,
    pending_bytes: usize,
    waiters: BTreeMap<DeltaId, Vec<DeltaId>>,
    wanted: BTreeMap<DeltaId, Want>,
    /// Undecodable or badly signed deltas: resolved as empty, links unknowable.
    rejected: HashSet<DeltaId>,
    rejected_order: VecDeque<DeltaId>,
    /// Validly signed deltas by untrusted keys, announced as heads but linked from nothing trusted:
    /// not followed; fetched again if a trusted delta turns out to link to them.
    refused_heads: HashSet<DeltaId>,
    refused_order: VecDeque<DeltaId>,
    /// Peers heard from, with the last snapshot each announced.
    peers: BTreeMap<PeerKey, Option<Cid>>,
    /// Snapshots installed (not fetched again).
    installed: HashSet<Cid>,
    /// The peer whose snapshot the last fallback fetched.
    snapshot_cursor: Option<PeerKey>,
    bad_snapshots: HashSet<Cid>,
    snap_fetch: Option<SnapFetch>,
    deferred: Option<(PeerKey, Vec<Cid>)>,
    /// Light deltas whose ancestry became complete: fetched again at the end of this event.
    refetch: Vec<(DeltaId, PeerKey)>,
    last_announce_ms: Option<u64>,
    restoring: bool,
    out: Vec<Action>,
    changes: Changes,
}

impl Replica {
    /// A fresh replica. `trusted` is the explicit list; this peer is always trusted.
    pub fn new(
        key: Keypair,
        trusted: impl IntoIterator<Item = PeerKey>,
        cfg: ReplicaConfig,
    ) -> Replica {
        let me = PeerKey(key.public().to_bytes());
        let mut t: HashSet<PeerKey> = trusted.into_iter().collect();
        t.insert(me);
        Replica {
            key,
            me,
            trusted: t,
            cfg,
            set: PinSet::new(),
            heads: HashMap::new(),
            max_priority: 0,
            stored: Vec::new(),
            snapshot: None,
            batch: Vec::new(),
            batch_index: HashMap::new(),
            batch_since_ms: None,
            pending: HashMap::new(),
            pending_bytes: 0,
            waiters: BTreeMap::new(),
            wanted: BTreeMap::new(),
            rejected: HashSet::new(),
            rejected_order: VecDeque::new(),
            refused_heads: HashSet::new(),
            refused_order: VecDeque::new(),
            peers: BTreeMap::new(),
            installed: HashSet::new(),
            snapshot_cursor: None,
            bad_snapshots: HashSet::new(),
            snap_fetch: None,
            deferred: None,
            refetch: Vec::new(),
            last_announce_ms: None,
            restoring: false,
            out: Vec::new(),
            changes: Changes::default(),
        }
    }

    /// Rebuild a replica from what it persisted (snapshot, then deltas in any order).
    pub fn restore(
        key: Keypair,
        trusted: impl IntoIterator<Item = PeerKey>,
        cfg: ReplicaConfig,
        stored: Stored,
    ) -> Result<Replica, RestoreError> {
        let mut r = Replica::new(key, trusted, cfg);
        r.restoring = true;
        if let Some(root_cid) = stored.snapshot_root {
            let root_bytes = stored
                .snapshot_blocks
                .get(&root_cid)
                .ok_or(RestoreError::MissingBlock(root_cid))?;
            let root = codec::decode_snapshot_root(&root_cid, root_bytes).map_err(|source| {
                RestoreError::Decode {
                    cid: root_cid,
                    source: Box::new(source),
                }
            })?;
            let mut chunks = Vec::with_capacity(root.chunks.len());
            for c in &root.chunks {
                let b = stored
                    .snapshot_blocks
                    .get(c)
                    .ok_or(RestoreError::MissingBlock(*c))?;
                chunks.push(
                    codec::decode_chunk(c, b).map_err(|source| RestoreError::Decode {
                        cid: *c,
                        source: Box::new(source),
                    })?,
                );
            }
            r.install_snapshot(root_cid, &root, chunks, Vec::new());
        }
        for c in &stored.refused {
            if let Ok(id) = codec::delta_id(c) {
                r.set.mark_seen(id);
            }
        }
        let mut deltas = Vec::with_capacity(stored.deltas.len());
        for (cid, bytes) in stored.deltas {
            let d = codec::decode_delta(&cid, &bytes).map_err(|source| RestoreError::Decode {
                cid,
                source: Box::new(source),
            })?;
            deltas.push((d, bytes));
        }
        // Every stored delta was applied once with its whole ancestry, and a delta's priority
        // exceeds its parents', so priority order replays them causally. Parents absent from the
        // store were refused (untrusted) or covered by the snapshot.
        deltas.sort_by_key(|(d, _)| (d.priority, d.id));
        for (d, _) in deltas {
            r.stored.push((d.priority, d.id));
            if r.set.contains_delta(&d.id) {
                continue;
            }
            r.set
                .apply(d.id, d.author, d.priority, &d.ops, &mut r.changes);
            for p in &d.parents {
                r.heads.remove(p);
            }
            r.heads.insert(d.id, d.priority);
            r.max_priority = r.max_priority.max(d.priority);
        }
        r.restoring = false;
        r.out.clear();
        r.changes = Changes::default();
        Ok(r)
    }

    pub fn peer(&self) -> PeerKey {
        self.me
    }

    pub fn state(&self) -> &PinSet {
        &self.set
    }

    pub fn heads(&self) -> Vec<(DeltaId, u64)> {
        let mut h: Vec<(DeltaId, u64)> = self.heads.iter().map(|(a, b)| (*a, *b)).collect();
        h.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        h
    }

    pub fn snapshot(&self) -> Option<Cid> {
        self.snapshot
    }

    pub fn is_trusted(&self, p: &PeerKey) -> bool {
        self.trusted.contains(p)
    }

    /// Delta bodies currently kept (not dropped by compaction).
    pub fn stored_deltas(&self) -> usize {
        self.stored.len()
    }

    pub fn memory(&self) -> MemoryStats {
        MemoryStats {
            pending_deltas: self.pending.len(),
            pending_bytes: self.pending_bytes,
            fetches_in_flight: self.wanted.len(),
            rejected_ids: self.rejected.len() + self.refused_heads.len(),
            heads: self.heads.len(),
            batch_ops: self.batch.len(),
            peers_tracked: self.peers.len(),
            snapshot_fetch_bytes: self.snap_fetch.as_ref().map_or(0, |s| s.bytes),
        }
    }

    /// Why a snapshot would not be fetched: (is ours, installed before, marked bad).
    pub fn snapshot_flags(&self, root: &Cid) -> (bool, bool, bool) {
        (
            self.snapshot == Some(*root),
            self.installed.contains(root),
            self.bad_snapshots.contains(root),
        )
    }

    /// The snapshot each peer last announced.
    pub fn peer_snapshot(&self, p: &PeerKey) -> Option<Option<Cid>> {
        self.peers.get(p).copied()
    }

    /// Ancestors waited for and not received yet.
    pub fn missing(&self) -> Vec<DeltaId> {
        self.waiters
            .keys()
            .filter(|k| !self.pending.contains_key(k))
            .copied()
            .collect()
    }

    /// A line for debugging a stuck replica: fetches in flight and peers known.
    pub fn debug_fetches(&self) -> String {
        let wants: Vec<String> = self
            .wanted
            .iter()
            .map(|(id, w)| {
                format!(
                    "{id:?} from {:?} tries {} peers {} linked {}",
                    w.from, w.attempts, w.peers_tried, w.linked
                )
            })
            .collect();
        let missing: Vec<String> = self.waiters.keys().map(|k| format!("{k:?}")).collect();
        format!(
            "wants {wants:?} missing {missing:?} peers {:?} snap_fetch {:?}",
            self.peers,
            self.snap_fetch.as_ref().map(|s| s.root)
        )
    }

    /// The announcement this replica would broadcast now.
    pub fn announcement(&self) -> Announcement {
        Announcement {
            heads: self
                .heads()
                .iter()
                .take(ANNOUNCED_HEADS_MAX)
                .map(|(id, _)| codec::delta_cid(id))
                .collect(),
            snapshot: self.snapshot,
        }
    }

    pub fn handle(&mut self, event: Event, now_ms: u64) -> Vec<Action> {
        match event {
            Event::Pin(pin) => self.local_op(pin.cid, Some(pin.spec), now_ms),
            Event::Unpin(cid) => self.local_op(cid, None, now_ms),
            Event::Flush => self.flush(now_ms),
            Event::Compact => self.compact(now_ms),
            Event::HeadsAnnounced { from, announcement } => {
                self.on_announcement(from, announcement, now_ms)
            }
            Event::BlockFetched { from, cid, bytes } => self.on_block(from, cid, bytes, now_ms),
            Event::FetchFailed { from, cid } => self.on_fetch_failed(from, cid, now_ms),
            Event::Tick => self.tick(now_ms),
        }
        for (id, from) in std::mem::take(&mut self.refetch) {
            if !self.known(&id) && !self.pending.contains_key(&id) && !self.wanted.contains_key(&id)
            {
                // If the in-flight bound holds it back, `tick` asks again: its children still
                // wait for it in `waiters`.
                self.request(id, from, now_ms, true);
            }
        }
        if !self.changes.is_empty() {
            let c = std::mem::take(&mut self.changes);
            if self.cfg.emit_state_changes {
                self.out.push(Action::StateChanged(c));
            }
        }
        std::mem::take(&mut self.out)
    }

    // ---- local ops and batching ----

    fn local_op(&mut self, cid: Cid, spec: Option<PinSpec>, now_ms: u64) {
        let valid = check_cid(&cid).and_then(|_| spec.as_ref().map_or(Ok(()), |s| s.validate()));
        if let Err(e) = valid {
            self.out.push(Action::OpRejected {
                cid,
                error: e.to_string(),
            });
            return;
        }
        match self.batch_index.get(&cid) {
            Some(&i) => self.batch[i].1 = spec,
            None => {
                self.batch_index.insert(cid, self.batch.len());
                self.batch.push((cid, spec));
            }
        }
        self.batch_since_ms.get_or_insert(now_ms);
        if self.batch.len() >= self.cfg.batch_ops_max {
            self.flush(now_ms);
        }
    }

    /// Cut the batch into deltas (more than one if it exceeds `BATCH_BYTES_MAX`).
    fn flush(&mut self, now_ms: u64) {
        let batch = std::mem::take(&mut self.batch);
        self.batch_index.clear();
        self.batch_since_ms = None;
        let mut ops: Vec<Op> = Vec::new();
        let mut bytes = 0usize;
        for (cid, spec) in batch {
            let mut removes: Vec<DeltaId> = self.set.tags(&cid).iter().map(|t| t.delta).collect();
            // Within a delta a CID appears once, so its tag is this delta and nothing in the batch
            // can refer to it; bounded by what a delta may carry (oldest tags left to later ops).
            if removes.len() > OP_REMOVED_TAGS_MAX {
                removes.drain(..removes.len() - OP_REMOVED_TAGS_MAX);
            }
            if spec.is_none() && removes.is_empty() {
                continue;
            }
            let op = Op {
                cid,
                pin: spec,
                removes,
            };
            bytes += codec::op_encoded_len(&op);
            ops.push(op);
            if bytes >= BATCH_BYTES_MAX || ops.len() >= DELTA_OPS_MAX {
                self.emit_delta(std::mem::take(&mut ops), now_ms);
                bytes = 0;
            }
        }
        if !ops.is_empty() {
            self.emit_delta(ops, now_ms);
        }
    }

    fn emit_delta(&mut self, ops: Vec<Op>, now_ms: u64) {
        let parents: Vec<DeltaId> = self
            .heads()
            .into_iter()
            .take(DELTA_PARENTS_MAX)
            .map(|(id, _)| id)
            .collect();
        let priority = self.max_priority + 1;
        let (cid, bytes) = codec::encode_delta(&self.key, priority, &parents, ops);
        match codec::decode_delta(&cid, &bytes) {
            Ok(d) => {
                debug!(%cid, priority, ops = d.ops.len(), "new delta");
                self.ingest(d, bytes, None, now_ms, Kept::Whole);
                self.announce(now_ms);
            }
            // Only an op set larger than DELTA_BYTES_MAX gets here, which the batch bound prevents.
            Err(e) => warn!(%cid, error = %e, "own delta refused"),
        }
    }

    fn announce(&mut self, now_ms: u64) {
        self.last_announce_ms = Some(now_ms);
        if self.heads.is_empty() && self.snapshot.is_none() {
            return;
        }
        self.out.push(Action::Broadcast(self.announcement()));
    }

    // ---- receiving ----

    fn known(&self, id: &DeltaId) -> bool {
        self.set.contains_delta(id) || self.rejected.contains(id)
    }

    fn on_announcement(&mut self, from: PeerKey, ann: Announcement, now_ms: u64) {
        if let Err(e) = ann.check() {
            warn!(peer = %from, error = %e, "announcement refused");
            return;
        }
        if from != self.me
            && (self.peers.len() < PEERS_TRACKED_MAX || self.peers.contains_key(&from))
        {
            self.peers.insert(from, ann.snapshot);
        }
        let fresh = self.set.context().is_empty();
        if let Some(s) = ann.snapshot {
            if fresh && self.snap_fetch.is_none() && self.snapshot != Some(s) {
                self.start_snapshot(from, s, now_ms);
            }
        }
        if self.snap_fetch.is_some() {
            self.deferred = Some((from, ann.heads));
            return;
        }
        self.want_heads(from, &ann.heads, now_ms);
    }

    fn want_heads(&mut self, from: PeerKey, heads: &[Cid], now_ms: u64) {
        for h in heads {
            let Ok(id) = codec::delta_id(h) else { continue };
            let linked = self.trusted.contains(&from);
            if self.known(&id)
                || (self.refused_heads.contains(&id) && !linked)
                || self.pending.contains_key(&id)
                || self.wanted.contains_key(&id)
            {
                continue;
            }
            self.refused_heads.remove(&id);
            self.request(id, from, now_ms, linked);
        }
    }

    fn request(&mut self, id: DeltaId, from: PeerKey, now_ms: u64, linked: bool) {
        if self.wanted.len() >= FETCHES_IN_FLIGHT_MAX {
            return;
        }
        self.wanted.insert(
            id,
            Want {
                from,
                sent_ms: now_ms,
                attempts: 1,
                peers_tried: 1,
                linked,
            },
        );
        self.out.push(Action::Fetch {
            cid: codec::delta_cid(&id),
            from,
        });
    }

    fn on_block(&mut self, from: PeerKey, cid: Cid, bytes: Vec<u8>, now_ms: u64) {
        let Ok(id) = codec::delta_id(&cid) else {
            return;
        };
        if let Some(w) = self.wanted.remove(&id) {
            self.on_delta_block(from, id, cid, bytes, now_ms, w.linked);
            return;
        }
        if self.snap_fetch.is_some() {
            self.on_snapshot_block(cid, bytes, now_ms);
        }
        // Anything else is unsolicited: dropped.
    }

    fn reject(&mut self, id: DeltaId) {
        self.mark_rejected(id);
        self.resolve_waiters(id, Vec::new());
    }

    fn mark_rejected(&mut self, id: DeltaId) {
        if self.rejected.insert(id) {
            self.rejected_order.push_back(id);
            while self.rejected_order.len() > REJECTED_IDS_MAX {
                if let Some(old) = self.rejected_order.pop_front() {
                    self.rejected.remove(&old);
                }
            }
        }
    }

    fn on_delta_block(
        &mut self,
        from: PeerKey,
        id: DeltaId,
        cid: Cid,
        bytes: Vec<u8>,
        now_ms: u64,
        linked: bool,
    ) {
        if self.known(&id) || self.pending.contains_key(&id) {
            return;
        }
        let delta = match codec::decode_delta(&cid, &bytes) {
            Ok(d) => d,
            Err(e) => {
                warn!(peer = %from, %cid, error = %e, "delta refused");
                self.reject(id);
                return;
            }
        };
        let refused = !self.trusted.contains(&delta.author);
        if refused {
            warn!(peer = %from, %cid, author = %delta.author, "delta from an untrusted author refused");
            if !linked && !self.waiters.contains_key(&id) {
                // Nothing trusted links to it: do not follow its links.
                if self.refused_heads.insert(id) {
                    self.refused_order.push_back(id);
                    while self.refused_order.len() > REJECTED_IDS_MAX {
                        if let Some(old) = self.refused_order.pop_front() {
                            self.refused_heads.remove(&old);
                        }
                    }
                }
                return;
            }
        }
        // A delta whose parents are all known is applied at once and never waits.
        let waits = delta.parents.iter().any(|p| !self.known(p));
        let light =
            waits && !refused && self.pending_bytes + bytes.len() > self.cfg.pending_bytes_max;
        let cost = if refused || light {
            light_cost(&delta)
        } else {
            bytes.len()
        };
        if waits
            && (self.pending.len() >= PENDING_DELTAS_MAX
                || self.pending_bytes + cost > self.cfg.pending_bytes_max.max(PENDING_BYTES_MAX))
        {
            warn!(peer = %from, pending = self.pending.len(), "pending deltas full; falling back to a snapshot");
            self.snapshot_fallback(from, now_ms);
            return;
        }
        if refused || light {
            // Keep only its links: a refused delta's ops and bytes are never used; a light
            // one's body is fetched again when its turn comes.
            if light {
                debug!(%cid, pending_bytes = self.pending_bytes, "pending bytes full; keeping the links only");
            }
            let links = Delta {
                ops: Vec::new(),
                ..delta
            };
            self.ingest(links, Vec::new(), Some(from), now_ms, Kept::links(refused));
        } else {
            self.ingest(delta, bytes, Some(from), now_ms, Kept::Whole);
        }
    }

    /// Take a verified, trusted delta: apply it if its ancestry is complete, else wait for it.
    fn ingest(
        &mut self,
        delta: Delta,
        bytes: Vec<u8>,
        from: Option<PeerKey>,
        now_ms: u64,
        kept: Kept,
    ) {
        let (refused, light) = (kept == Kept::Refused, kept == Kept::Light);
        let id = delta.id;
        let mut missing = 0;
        let mut parents = delta.parents.clone();
        parents.sort();
        parents.dedup();
        for p in parents {
            if self.known(&p) {
                continue;
            }
            missing += 1;
            self.refused_heads.remove(&p);
            self.waiters.entry(p).or_default().push(id);
            if let Some(f) = from {
                if !self.pending.contains_key(&p) && !self.wanted.contains_key(&p) {
                    self.request(p, f, now_ms, true);
                }
            }
        }
        self.pending_bytes += if refused || light {
            light_cost(&delta)
        } else {
            bytes.len()
        };
        self.pending.insert(
            id,
            Pending {
                delta,
                refused,
                light,
                bytes,
                missing,
                from,
            },
        );
        if missing == 0 {
            self.apply_ready(vec![id]);
        }
    }

    fn resolve_waiters(&mut self, id: DeltaId, mut ready: Vec<DeltaId>) {
        if let Some(children) = self.waiters.remove(&id) {
            for c in children {
                if let Some(p) = self.pending.get_mut(&c) {
                    p.missing = p.missing.saturating_sub(1);
                    if p.missing == 0 {
                        ready.push(c);
                    }
                }
            }
        }
        if !ready.is_empty() {
            self.apply_ready(ready);
        }
    }

    fn apply_ready(&mut self, mut ready: Vec<DeltaId>) {
        while let Some(id) = ready.pop() {
            let Some(p) = self.pending.remove(&id) else {
                continue;
            };
            self.pending_bytes = self.pending_bytes.saturating_sub(if p.refused || p.light {
                light_cost(&p.delta)
            } else {
                p.bytes.len()
            });
            if self.known(&id) {
                continue;
            }
            if p.light {
                // Its ancestry is complete: fetch it whole; its children keep waiting for it.
                if let Some(f) = p.from {
                    self.refetch.push((id, f));
                }
                continue;
            }
            let d = p.delta;
            if p.refused {
                // Linked from a trusted delta and its ancestry complete: resolved as empty, now,
                // so causal order below it holds. Part of the context (snapshots carry it) but
                // never a head, never applied, never served.
                self.set.mark_seen(id);
                if !self.restoring {
                    self.out.push(Action::Persist(Persist::Refused {
                        cid: codec::delta_cid(&id),
                    }));
                }
            } else {
                self.set
                    .apply(id, d.author, d.priority, &d.ops, &mut self.changes);
                for parent in &d.parents {
                    self.heads.remove(parent);
                }
                self.heads.insert(id, d.priority);
                self.max_priority = self.max_priority.max(d.priority);
                self.stored.push((d.priority, id));
                if !self.restoring {
                    self.out.push(Action::Persist(Persist::Delta {
                        cid: codec::delta_cid(&id),
                        priority: d.priority,
                        bytes: p.bytes,
                    }));
                }
            }
            if let Some(children) = self.waiters.remove(&id) {
                for c in children {
                    if let Some(cp) = self.pending.get_mut(&c) {
                        cp.missing = cp.missing.saturating_sub(1);
                        if cp.missing == 0 {
                            ready.push(c);
                        }
                    }
                }
            }
        }
    }

    fn on_fetch_failed(&mut self, from: PeerKey, cid: Cid, now_ms: u64) {
        let Ok(id) = codec::delta_id(&cid) else {
            return;
        };
        if self.wanted.get(&id).is_some_and(|w| w.from == from) {
            if let Some(w) = self.wanted.remove(&id) {
                self.fetch_elsewhere(id, w, now_ms);
            }
        } else if self
            .snap_fetch
            .as_ref()
            .is_some_and(|s| s.root == cid || s.chunks.contains_key(&cid))
        {
            if let Some(sf) = self.snap_fetch.take() {
                self.mark_bad_snapshot(sf.root);
                self.finish_snapshot_fetch(now_ms);
            }
        }
    }

    /// A fetch failed or went unanswered at `w.from`: ask the next peer, or fall back to a
    /// snapshot once `FETCH_PEERS_MAX` peers were asked.
    fn fetch_elsewhere(&mut self, id: DeltaId, w: Want, now_ms: u64) {
        // Once every known peer was asked, try a snapshot, and start another round (the want
        // stays in flight, within FETCHES_IN_FLIGHT_MAX, until the delta or a snapshot covering
        // it arrives).
        let mut tried = w.peers_tried;
        if tried as usize >= self.peers.len() {
            self.snapshot_fallback(w.from, now_ms);
            tried = 0;
        }
        let next = self
            .peers
            .range((
                std::ops::Bound::Excluded(w.from),
                std::ops::Bound::Unbounded,
            ))
            .chain(self.peers.range(..w.from))
            .map(|(p, _)| *p)
            .next()
            .unwrap_or(w.from);
        self.wanted.insert(
            id,
            Want {
                from: next,
                sent_ms: now_ms,
                attempts: 1,
                peers_tried: tried + 1,
                linked: w.linked,
            },
        );
        self.out.push(Action::Fetch {
            cid: codec::delta_cid(&id),
            from: next,
        });
    }

    /// Fetch a snapshot not installed yet: `from`'s first, else any other peer's.
    fn snapshot_fallback(&mut self, from: PeerKey, now_ms: u64) {
        if self.snap_fetch.is_some() {
            return;
        }
        let usable = |s: &Cid| {
            self.snapshot != Some(*s)
                && !self.bad_snapshots.contains(s)
                && !self.installed.contains(s)
        };
        // Peers are tried in turn from where the last fallback stopped (first: `from`), so a
        // snapshot that covers what is missing is reached even while the others keep changing.
        let after: Vec<(PeerKey, Cid)> = match self.snapshot_cursor {
            Some(c) => self
                .peers
                .range((std::ops::Bound::Excluded(c), std::ops::Bound::Unbounded))
                .chain(self.peers.range(..=c))
                .filter_map(|(p, s)| s.map(|s| (*p, s)))
                .collect(),
            None => self
                .peers
                .range(from..)
                .chain(self.peers.range(..from))
                .filter_map(|(p, s)| s.map(|s| (*p, s)))
                .collect(),
        };
        if let Some((p, s)) = after.into_iter().find(|(_, s)| usable(s)) {
            self.snapshot_cursor = Some(p);
            self.start_snapshot(p, s, now_ms);
        }
    }

    // ---- snapshots ----

    fn start_snapshot(&mut self, from: PeerKey, root: Cid, now_ms: u64) {
        if self.bad_snapshots.contains(&root) {
            return;
        }
        debug!(peer = %from, %root, "fetching snapshot");
        self.snap_fetch = Some(SnapFetch {
            root,
            from,
            sent_ms: now_ms,
            attempts: 1,
            decoded: None,
            chunks: BTreeMap::new(),
            bytes: 0,
        });
        self.out.push(Action::Fetch { cid: root, from });
    }

    fn on_snapshot_block(&mut self, cid: Cid, bytes: Vec<u8>, now_ms: u64) {
        let Some(sf) = self.snap_fetch.as_mut() else {
            return;
        };
        let from = sf.from;
        if cid == sf.root && sf.decoded.is_none() {
            match codec::decode_snapshot_root(&cid, &bytes) {
                Ok(root) if snapshot_trusted(&self.trusted, &self.me, &root) => {
                    for c in &root.chunks {
                        sf.chunks.insert(*c, None);
                        self.out.push(Action::Fetch { cid: *c, from });
                    }
                    sf.bytes += bytes.len();
                    sf.decoded = Some((root, bytes));
                    sf.sent_ms = now_ms;
                    sf.attempts = 1;
                }
                Ok(root) => {
                    warn!(%cid, author = %root.author, "snapshot refused: author untrusted or trust sets differ");
                    self.abort_snapshot(now_ms);
                    return;
                }
                Err(e) => {
                    warn!(%cid, error = %e, "snapshot root refused");
                    self.abort_snapshot(now_ms);
                    return;
                }
            }
        } else if matches!(sf.chunks.get(&cid), Some(None)) {
            match codec::decode_chunk(&cid, &bytes) {
                Ok(ch) => {
                    sf.bytes += bytes.len();
                    sf.chunks.insert(cid, Some((ch, bytes)));
                }
                Err(e) => {
                    warn!(%cid, error = %e, "snapshot chunk refused");
                    self.abort_snapshot(now_ms);
                    return;
                }
            }
        } else {
            return;
        }
        let complete = sf.decoded.is_some() && sf.chunks.values().all(|c| c.is_some());
        if complete {
            if let Some(sf) = self.snap_fetch.take() {
                self.complete_snapshot(sf, now_ms);
            }
        }
    }

    /// Remember a snapshot that failed (bounded: forgotten all at once when full).
    fn mark_bad_snapshot(&mut self, root: Cid) {
        if self.bad_snapshots.len() >= PEERS_TRACKED_MAX {
            self.bad_snapshots.clear();
        }
        self.bad_snapshots.insert(root);
    }

    fn abort_snapshot(&mut self, now_ms: u64) {
        if let Some(sf) = self.snap_fetch.take() {
            self.mark_bad_snapshot(sf.root);
        }
        self.finish_snapshot_fetch(now_ms);
    }

    fn complete_snapshot(&mut self, sf: SnapFetch, now_ms: u64) {
        let Some((root, root_bytes)) = sf.decoded else {
            return;
        };
        let mut blocks = vec![(sf.root, root_bytes)];
        let mut by_cid = sf.chunks;
        let mut chunks = Vec::with_capacity(root.chunks.len());
        for c in &root.chunks {
            if let Some(Some((ch, b))) = by_cid.remove(c) {
                chunks.push(ch);
                blocks.push((*c, b));
            }
        }
        let fresh = self.set.context().is_empty();
        self.install_snapshot(sf.root, &root, chunks, blocks);
        if !fresh {
            // The announced snapshot must cover every delta this replica ever dropped; the one
            // just installed may be older than our own, so replace it by one of the joined state.
            self.compact(now_ms);
        }
        self.finish_snapshot_fetch(now_ms);
    }

    /// After a snapshot fetch ends (installed or not): take up the heads heard meanwhile.
    fn finish_snapshot_fetch(&mut self, now_ms: u64) {
        if let Some((from, heads)) = self.deferred.take() {
            self.want_heads(from, &heads, now_ms);
        }
    }

    /// Join a verified snapshot into the state; re-examine waiting deltas.
    fn install_snapshot(
        &mut self,
        root_cid: Cid,
        root: &SnapshotRoot,
        chunks: Vec<SnapshotChunk>,
        blocks: Vec<(Cid, Vec<u8>)>,
    ) {
        let mut ctx: HashSet<DeltaId> = HashSet::new();
        let mut tags: Vec<(Cid, Tag, PeerKey)> = Vec::new();
        for mut ch in chunks {
            let ctx_part = std::mem::take(&mut ch.ctx);
            let Ok(pins) = ch.resolve() else {
                // decode_chunk checked every index and spec; nothing gets here.
                warn!("snapshot chunk does not resolve");
                continue;
            };
            for (cid, (d, p, a), spec) in pins {
                // Tags written by keys not trusted here are left out, as their deltas would be.
                if self.trusted.contains(&a) {
                    let tag = Tag {
                        delta: d,
                        priority: p,
                        spec: std::sync::Arc::new(spec),
                    };
                    tags.push((cid, tag, a));
                }
            }
            ctx.extend(ctx_part);
        }
        // Their heads we already hold as non-heads are behind ours.
        let behind: HashSet<DeltaId> = root
            .heads
            .iter()
            .filter(|(h, _)| self.set.contains_delta(h) && !self.heads.contains_key(h))
            .map(|(h, _)| *h)
            .collect();
        let their_heads: HashSet<DeltaId> = root.heads.iter().map(|(h, _)| *h).collect();
        self.heads
            .retain(|h, _| !ctx.contains(h) || their_heads.contains(h));
        for (h, p) in &root.heads {
            if !behind.contains(h) {
                self.heads.insert(*h, *p);
                ctx.insert(*h);
            }
        }
        self.set.join(tags, &ctx, &mut self.changes);
        self.max_priority = self.max_priority.max(root.priority);
        self.snapshot = Some(root_cid);
        if self.installed.len() >= PEERS_TRACKED_MAX {
            self.installed.clear();
        }
        self.installed.insert(root_cid);
        if !self.restoring {
            self.out.push(Action::Persist(Persist::Snapshot {
                root: root_cid,
                blocks,
                drop_deltas: Vec::new(),
            }));
        }
        // Deltas now covered are no longer wanted; waiting ones may be complete.
        self.wanted.retain(|id, _| !ctx.contains(id));
        let waiting: Vec<Pending> = self.pending.drain().map(|(_, p)| p).collect();
        self.waiters.clear();
        self.pending_bytes = 0;
        let mut waiting = waiting;
        waiting.sort_by_key(|p| (p.delta.priority, p.delta.id));
        for p in waiting {
            if !self.known(&p.delta.id) {
                let kept = if p.refused {
                    Kept::Refused
                } else if p.light {
                    Kept::Light
                } else {
                    Kept::Whole
                };
                self.ingest(p.delta, p.bytes, p.from, 0, kept);
            }
        }
    }

    // ---- compaction ----

    fn compact(&mut self, now_ms: u64) {
        self.flush(now_ms);
        let mut pins: Vec<(Cid, &Tag)> = self.set.iter_tags().map(|(c, t)| (*c, t)).collect();
        pins.sort_by(|a, b| {
            a.0.hash()
                .digest()
                .cmp(b.0.hash().digest())
                .then(a.1.delta.cmp(&b.1.delta))
        });
        let mut builder = codec::ChunkBuilder::default();
        for (cid, tag) in &pins {
            let author = self.set.author(&tag.delta).unwrap_or(self.me);
            builder.add_pin(*cid, (tag.delta, tag.priority, author), &tag.spec);
        }
        let mut ctx: Vec<DeltaId> = self.set.context().iter().copied().collect();
        ctx.sort();
        for id in ctx {
            builder.add_context(id);
        }
        let mut blocks = builder.finish();
        let heads = self.heads();
        let chunk_cids: Vec<Cid> = blocks.iter().map(|(c, _)| *c).collect();
        let (root, root_bytes) = codec::encode_snapshot_root(
            &self.key,
            self.max_priority,
            &heads[..heads.len().min(DELTA_PARENTS_MAX)],
            chunk_cids,
            self.set.len() as u64,
            self.set.context().len() as u64,
            {
                let mut t: Vec<PeerKey> = self.trusted.iter().copied().collect();
                t.sort();
                t
            },
        );
        blocks.insert(0, (root, root_bytes));
        let horizon = self
            .max_priority
            .saturating_sub(self.cfg.compact_keep_priorities);
        let mut drop_deltas = Vec::new();
        self.stored.retain(|(p, id)| {
            if *p < horizon {
                drop_deltas.push(codec::delta_cid(id));
                false
            } else {
                true
            }
        });
        debug!(%root, pins = self.set.len(), chunks = blocks.len() - 1, dropped = drop_deltas.len(), "compacted");
        self.snapshot = Some(root);
        self.out.push(Action::Persist(Persist::Snapshot {
            root,
            blocks,
            drop_deltas,
        }));
    }

    // ---- time ----

    fn tick(&mut self, now_ms: u64) {
        if self
            .batch_since_ms
            .is_some_and(|t| now_ms.saturating_sub(t) >= self.cfg.batch_delay_ms)
        {
            self.flush(now_ms);
        }
        // Retry or give up fetches that timed out.
        let timeout = self.cfg.fetch_timeout_ms;
        let mut retry = Vec::new();
        let mut give_up = Vec::new();
        for (id, w) in self.wanted.iter_mut() {
            if now_ms.saturating_sub(w.sent_ms) < timeout {
                continue;
            }
            if w.attempts >= FETCH_ATTEMPTS_MAX {
                give_up.push(*id);
            } else {
                w.attempts += 1;
                w.sent_ms = now_ms;
                retry.push((*id, w.from));
            }
        }
        for (id, from) in retry {
            self.out.push(Action::Fetch {
                cid: codec::delta_cid(&id),
                from,
            });
        }
        for id in give_up {
            if let Some(w) = self.wanted.remove(&id) {
                self.fetch_elsewhere(id, w, now_ms);
            }
        }
        // Ask for missing ancestors not yet asked for (the in-flight bound may have held them).
        if self.snap_fetch.is_none() {
            let mut ask: Vec<(DeltaId, PeerKey)> = Vec::new();
            let room = FETCHES_IN_FLIGHT_MAX.saturating_sub(self.wanted.len());
            for (parent, children) in &self.waiters {
                if ask.len() >= room {
                    break;
                }
                if self.known(parent)
                    || self.pending.contains_key(parent)
                    || self.wanted.contains_key(parent)
                {
                    continue;
                }
                let from = children
                    .iter()
                    .find_map(|c| self.pending.get(c).and_then(|p| p.from));
                if let Some(f) = from {
                    ask.push((*parent, f));
                }
            }
            for (id, f) in ask {
                self.request(id, f, now_ms, true);
            }
        }
        // Snapshot fetch timeouts.
        let mut abort = false;
        if let Some(sf) = self.snap_fetch.as_mut() {
            if now_ms.saturating_sub(sf.sent_ms) >= timeout {
                if sf.attempts >= FETCH_ATTEMPTS_MAX {
                    abort = true;
                } else {
                    sf.attempts += 1;
                    sf.sent_ms = now_ms;
                    if sf.decoded.is_none() {
                        self.out.push(Action::Fetch {
                            cid: sf.root,
                            from: sf.from,
                        });
                    }
                    for (c, v) in &sf.chunks {
                        if v.is_none() {
                            self.out.push(Action::Fetch {
                                cid: *c,
                                from: sf.from,
                            });
                        }
                    }
                }
            }
        }
        if abort {
            // Not marked bad: the peer may just have been unreachable.
            self.snap_fetch = None;
            self.finish_snapshot_fetch(now_ms);
        }
        if self.cfg.compact_deltas_threshold > 0
            && self.stored.len() >= self.cfg.compact_deltas_threshold
        {
            self.compact(now_ms);
        }
        let due = self
            .last_announce_ms
            .is_none_or(|t| now_ms.saturating_sub(t) >= self.cfg.announce_interval_ms);
        if due {
            self.announce(now_ms);
        }
    }
}
