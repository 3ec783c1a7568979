//! The cluster service task: owns the replica, its store, the allocator and the tracker, and
//! moves their events and actions between the swarm, the repository and the clock.
//!
//! - gossip on [`HEADS_TOPIC`] → `Event::HeadsAnnounced` (author: the message's signed source);
//!   `Action::Broadcast` → publish on it;
//! - `Action::Fetch` → a bitswap `fetch_block` bounded by the replica's fetch timeout (one in
//!   flight per CID) → `Event::BlockFetched` / `Event::FetchFailed`;
//! - `Action::Persist` → the redb store (which bitswap serves, see `blocks.rs`), then bitswap
//!   is told the blocks exist;
//! - `Action::StateChanged` → the tracker; its `StartPin` / `StartUnpin` run `fetch_dag` +
//!   repo pin / repo unpin as tasks (at most the tracker's concurrency), results back in;
//! - gossip on [`METRICS_TOPIC`] → the allocator (expiry on our clock); every metric interval
//!   we publish ours; a master allocates on pin, and the first live trusted master (by key)
//!   re-allocates the pins whose live allocations fell under `replication_factor_min`;
//! - status requests from peers are answered from the tracker.
//!
//! No protocol decision is made here: the replica, the allocator and the tracker decide.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cid::Cid;
use ipfs_kit_cluster_sync::allocator::{Allocator, Metric};
use ipfs_kit_cluster_sync::store::Store as _;
use ipfs_kit_cluster_sync::tracker::{Tracker, TrackerAction, TrackerEvent};
use ipfs_kit_cluster_sync::{Action, Announcement, Event, PeerKey, Persist, Pin, PinMode, Replica};
use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::blocks::SharedStore;
use super::handle::{
    ClusterError, ClusterInfo, ClusterPeer, Command, PeerPinStatus, PinStatus, StateDigest,
    TrackerStatus,
};
use super::wire::{
    self, MetricMsg, StatusEntry, StatusRequest, StatusResponse, HEADS_TOPIC, METRICS_TOPIC,
    STATUS_ENTRIES_MAX, STATUS_ERROR_BYTES_MAX,
};
use super::ClusterConfig;
use crate::config::Role;
use crate::net::node::ClusterNetEvent;
use crate::net::NodeHandle;
use crate::repo::{Repo, RepoError};
use sha2::{Digest as _, Sha256};

/// Unix time in milliseconds (the replica's and the allocator's clock).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `io::Write` into a hasher (the state digest hashes the export as it is written).
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn key_of(peer: &PeerId) -> Option<PeerKey> {
    PeerKey::from_peer_id(peer)
}

pub(crate) struct Service {
    pub(crate) cfg: ClusterConfig,
    pub(crate) me: PeerKey,
    pub(crate) peer: PeerId,
    pub(crate) replica: Replica,
    pub(crate) store: SharedStore,
    pub(crate) local: std::sync::Arc<super::local::LocalPins>,
    pub(crate) allocator: Allocator,
    pub(crate) tracker: Tracker,
    pub(crate) node: NodeHandle,
    pub(crate) repo: Repo,
    pub(crate) trusted: BTreeSet<PeerKey>,
    /// Metrics as received (for `peers`), beside the allocator's view.
    pub(crate) seen: BTreeMap<PeerKey, Metric>,
    /// Blocks asked for: queued or being fetched (one fetch per CID).
    pub(crate) fetching: HashSet<Cid>,
    /// Fetches waiting for a slot, oldest first (see [`DELTA_FETCHES_CONCURRENT_MAX`]).
    pub(crate) fetch_queue: VecDeque<(Cid, PeerKey)>,
    pub(crate) started: Instant,
    pub(crate) last_metric: Option<Instant>,
    pub(crate) last_repair: Option<Instant>,
    /// Pins with an expiry, by expiry time (masters only: the leader unpins them when due).
    pub(crate) expiries: BTreeSet<(u64, Cid)>,
}

type FetchResult = (Cid, PeerKey, Result<Vec<u8>, String>);

/// Bitswap fetches of cluster blocks (deltas, snapshot blocks) running at once; the rest wait
/// in [`Service::fetch_queue`], oldest first. Unbounded, a peer that heard of a thousand heads
/// opened a thousand bitswap sessions at once: the announcer, serving every peer at once,
/// answered none within the fetch timeout, and every late session rebroadcast its wants and
/// started a DHT provider search, so the swarms spent their time in kad queries and the
/// retries made it worse (measured in benches/README.md, `cluster_bench`). Oldest first also
/// fetches a chain in the order it was announced, so deltas apply as they arrive.
pub const DELTA_FETCHES_CONCURRENT_MAX: usize = 16;
/// Fetches that may wait for a slot; more are dropped (the replica asks again on its timeout).
/// The replica's own bounds keep it under this: wants in flight plus one snapshot's chunks.
pub const DELTA_FETCH_QUEUE_LEN_MAX: usize = ipfs_kit_cluster_sync::limits::FETCHES_IN_FLIGHT_MAX
    + ipfs_kit_cluster_sync::limits::SNAPSHOT_CHUNKS_MAX;
type OpResult = (Cid, bool, Result<(), String>);

impl Service {
    pub(crate) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut net: mpsc::Receiver<ClusterNetEvent>,
        mut cancelled: oneshot::Receiver<()>,
    ) {
        let mut ticker = tokio::time::interval(self.cfg.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut fetches: JoinSet<FetchResult> = JoinSet::new();
        let mut ops: JoinSet<OpResult> = JoinSet::new();
        // Everything the restored pinset holds is tracked again (pinning what is already
        // pinned is a local walk).
        let pins: Vec<Pin> = self
            .replica
            .state()
            .sorted()
            .into_iter()
            .map(|(cid, spec)| Pin { cid, spec })
            .collect();
        let now = now_ms();
        for p in pins {
            self.note_expiry(&p);
            let acts = self.tracker.handle(TrackerEvent::Pinned(p), now);
            self.start_ops(acts, &mut ops);
        }
        self.unpin_stale(now);
        tracing::info!(role = %self.cfg.role, pins = self.replica.state().len(), "cluster service running");
        loop {
            tokio::select! {
                biased;
                _ = &mut cancelled => break,
                Some(r) = ops.join_next(), if !ops.is_empty() => {
                    if let Ok((cid, was_pin, result)) = r {
                        let ev = if was_pin {
                            TrackerEvent::PinDone { cid, result }
                        } else {
                            TrackerEvent::UnpinDone { cid, result }
                        };
                        let acts = self.tracker.handle(ev, now_ms());
                        self.start_ops(acts, &mut ops);
                    }
                }
                Some(r) = fetches.join_next(), if !fetches.is_empty() => {
                    self.start_fetches(&mut fetches);
                    if let Ok((cid, from, result)) = r {
                        self.fetching.remove(&cid);
                        let ev = match result {
                            Ok(bytes) => Event::BlockFetched { from, cid, bytes },
                            Err(e) => {
                                tracing::debug!(%cid, error = %e, "delta fetch failed");
                                Event::FetchFailed { from, cid }
                            }
                        };
                        self.replica_event(ev, &mut fetches, &mut ops);
                    }
                }
                event = net.recv() => match event {
                    Some(e) => self.on_net(e, &mut fetches, &mut ops),
                    None => break,
                },
                command = commands.recv() => match command {
                    Some(c) => self.on_command(c, &mut fetches, &mut ops),
                    None => break,
                },
                _ = ticker.tick() => self.on_tick(&mut fetches, &mut ops),
            }
        }
        // Cut the last batch so a local pin acknowledged to a caller is persisted.
        let actions = self.replica.handle(Event::Flush, now_ms());
        self.persist_only(actions);
        fetches.abort_all();
        ops.abort_all();
        tracing::info!("cluster service stopped");
    }

    /// Feeds the replica and carries out what it asks.
    fn replica_event(
        &mut self,
        ev: Event,
        fetches: &mut JoinSet<FetchResult>,
        ops: &mut JoinSet<OpResult>,
    ) {
        let actions = self.replica.handle(ev, now_ms());
        self.carry_out(actions, fetches, ops);
    }

    fn carry_out(
        &mut self,
        actions: Vec<Action>,
        fetches: &mut JoinSet<FetchResult>,
        ops: &mut JoinSet<OpResult>,
    ) {
        let mut persist = Vec::new();
        for a in actions {
            match a {
                Action::Broadcast(ann) => self.publish(HEADS_TOPIC, ann.encode()),
                Action::Fetch { cid, from } => {
                    if self.fetch_queue.len() >= DELTA_FETCH_QUEUE_LEN_MAX {
                        tracing::debug!(%cid, "cluster fetch queue full; the replica asks again");
                    } else if self.fetching.insert(cid) {
                        self.fetch_queue.push_back((cid, from));
                    }
                }
                Action::Persist(p) => persist.push(p),
                Action::StateChanged(changes) => {
                    let now = now_ms();
                    for pin in changes.pinned {
                        self.note_expiry(&pin);
                        let acts = self.tracker.handle(TrackerEvent::Pinned(pin), now);
                        self.start_ops(acts, ops);
                    }
                    for cid in changes.unpinned {
                        let acts = self.tracker.handle(TrackerEvent::Unpinned(cid), now);
                        self.start_ops(acts, ops);
                    }
                }
                Action::OpRejected { cid, error } => {
                    tracing::warn!(%cid, %error, "cluster op rejected");
                }
            }
        }
        self.persist(persist);
        self.start_fetches(fetches);
    }

    /// Starts queued fetches while fewer than [`DELTA_FETCHES_CONCURRENT_MAX`] run.
    fn start_fetches(&mut self, fetches: &mut JoinSet<FetchResult>) {
        while fetches.len() < DELTA_FETCHES_CONCURRENT_MAX {
            let Some((cid, from)) = self.fetch_queue.pop_front() else {
                break;
            };
            let node = self.node.clone();
            let repo = self.repo.clone();
            let timeout = Duration::from_millis(self.cfg.replica.fetch_timeout_ms);
            fetches.spawn(async move {
                let r = match tokio::time::timeout(timeout, node.fetch_block(cid)).await {
                    Ok(Ok(block)) => Ok(block.data().to_vec()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no answer within {timeout:?}")),
                };
                if r.is_ok() {
                    drop_from_repo(repo, cid).await;
                }
                (cid, from, r)
            });
        }
    }

    /// Writes what the replica asked for; new blocks are announced to bitswap.
    fn persist(&mut self, items: Vec<Persist>) {
        if items.is_empty() {
            return;
        }
        let added: Vec<Cid> = items
            .iter()
            .flat_map(|p| match p {
                Persist::Delta { cid, .. } => vec![*cid],
                Persist::Snapshot { blocks, .. } => blocks.iter().map(|(c, _)| *c).collect(),
                Persist::Refused { .. } => Vec::new(),
            })
            .collect();
        // A short redb commit, on this task: the replica's next step may depend on it.
        let r = self.store.lock().apply(&items);
        if let Err(e) = r {
            tracing::error!(error = %e, "cluster store write failed");
            return;
        }
        if !added.is_empty() {
            let node = self.node.clone();
            tokio::spawn(async move {
                let _ = node.blocks_added(added).await;
            });
        }
    }

    fn persist_only(&mut self, actions: Vec<Action>) {
        let items: Vec<Persist> = actions
            .into_iter()
            .filter_map(|a| match a {
                Action::Persist(p) => Some(p),
                _ => None,
            })
            .collect();
        self.persist(items);
    }

    fn publish(&self, topic: &str, data: Vec<u8>) {
        let node = self.node.clone();
        let topic = topic.to_string();
        tokio::spawn(async move {
            if let Err(e) = node.publish(topic, data).await {
                tracing::debug!(error = %e, "cluster publish failed");
            }
        });
    }

    fn start_ops(&mut self, acts: Vec<TrackerAction>, ops: &mut JoinSet<OpResult>) {
        for a in acts {
            let node = self.node.clone();
            let repo = self.repo.clone();
            let local = self.local.clone();
            match a {
                TrackerAction::StartPin { cid, mode } => {
                    tracing::debug!(%cid, ?mode, "pinning");
                    ops.spawn(async move {
                        (cid, true, pin_locally(node, repo, cid, mode, local).await)
                    });
                }
                TrackerAction::StartUnpin { cid } => {
                    tracing::debug!(%cid, "unpinning");
                    ops.spawn(async move { (cid, false, unpin_locally(repo, cid, local).await) });
                }
            }
        }
    }

    /// Unpins what this peer pinned for the cluster before a restart and the pinset no longer
    /// allocates to it (see `local.rs`).
    fn unpin_stale(&self, now: u64) {
        let recorded = match self.local.all() {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "local pin record unreadable");
                return;
            }
        };
        for cid in recorded {
            let wanted = self
                .replica
                .state()
                .get(&cid)
                .is_some_and(|s| s.allocated_to(&self.me) && !s.expired(now));
            if wanted {
                continue;
            }
            tracing::info!(%cid, "unpinning a cluster pin dropped or moved while we were down");
            let (repo, local) = (self.repo.clone(), self.local.clone());
            tokio::spawn(async move {
                match unpin_locally(repo, cid, local).await {
                    Ok(()) => {}
                    Err(e) => tracing::warn!(%cid, error = %e, "stale pin not removed"),
                }
            });
        }
    }

    fn on_net(
        &mut self,
        event: ClusterNetEvent,
        fetches: &mut JoinSet<FetchResult>,
        ops: &mut JoinSet<OpResult>,
    ) {
        match event {
            ClusterNetEvent::Gossip {
                topic,
                source,
                data,
            } => {
                let Some(from) = key_of(&source) else {
                    return;
                };
                if from == self.me {
                    return;
                }
                if topic == HEADS_TOPIC {
                    match Announcement::decode(&data) {
                        Ok(announcement) => self.replica_event(
                            Event::HeadsAnnounced { from, announcement },
                            fetches,
                            ops,
                        ),
                        Err(e) => tracing::debug!(%source, error = %e, "bad announcement"),
                    }
                } else if topic == METRICS_TOPIC {
                    match MetricMsg::decode(&data) {
                        Ok(m) => self.observe(from, m),
                        Err(e) => tracing::debug!(%source, error = %e, "bad metric"),
                    }
                }
            }
            ClusterNetEvent::StatusRequest { peer, id, request } => {
                let response = match request.check() {
                    Ok(()) => self.answer_status(&request, ops),
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "bad status request");
                        StatusResponse {
                            ts_ms: now_ms(),
                            entries: Vec::new(),
                            truncated: false,
                        }
                    }
                };
                let node = self.node.clone();
                tokio::spawn(async move {
                    let _ = node.cluster_status_respond(id, response).await;
                });
            }
        }
    }

    fn observe(&mut self, from: PeerKey, m: MetricMsg) {
        let metric = Metric {
            peer: from,
            free_bytes: m.free_bytes,
            tags: m.tags,
            expire_at_ms: now_ms().saturating_add(m.ttl_ms),
        };
        match self.allocator.observe(metric.clone()) {
            Ok(()) => {
                self.seen.insert(from, metric);
            }
            Err(e) => tracing::debug!(peer = %from, error = %e, "metric refused"),
        }
    }

    fn on_tick(&mut self, fetches: &mut JoinSet<FetchResult>, ops: &mut JoinSet<OpResult>) {
        let now = now_ms();
        self.replica_event(Event::Tick, fetches, ops);
        let acts = self.tracker.handle(TrackerEvent::Tick, now);
        self.start_ops(acts, ops);
        if self
            .last_metric
            .is_none_or(|t| t.elapsed() >= self.cfg.metric_interval)
        {
            self.last_metric = Some(Instant::now());
            let m = MetricMsg {
                free_bytes: self.free_bytes(),
                ttl_ms: self.cfg.metric_ttl.as_millis() as u64,
                tags: self.cfg.tags.clone(),
            };
            self.observe(self.me, m.clone());
            self.publish(METRICS_TOPIC, m.encode());
        }
        for p in self.allocator.expire(now) {
            tracing::info!(peer = %p, "cluster peer down (metric expired)");
        }
        self.repair(now, fetches, ops);
        self.expire_pins(now, fetches, ops);
    }

    /// Masters index the pins that expire (the leader unpins them, see `expire_pins`).
    fn note_expiry(&mut self, pin: &Pin) {
        if self.cfg.role != Role::Master {
            return;
        }
        if let Some(at) = pin.spec.expire_at_ms {
            self.expiries.insert((at, pin.cid));
        }
    }

    /// The first trusted master (by key) that is this peer or live; it writes the cluster's
    /// own changes (re-allocations, expiries), so they are written once.
    fn is_leader(&self, now: u64) -> bool {
        let leader = self
            .trusted
            .iter()
            .find(|k| **k == self.me || self.allocator.is_live(k, now));
        leader == Some(&self.me)
    }

    /// Pin expiry (`expire-in` / `expire-at`): the leader unpins every pin whose expiry has
    /// passed, as ipfs-cluster's state sync does; the unpin delta reaches every peer and the
    /// workers' trackers unpin. Entries whose pin changed (re-pinned with another expiry, or
    /// unpinned) are dropped as they come due; other masters keep theirs until they lead.
    fn expire_pins(
        &mut self,
        now: u64,
        fetches: &mut JoinSet<FetchResult>,
        ops: &mut JoinSet<OpResult>,
    ) {
        if self.cfg.role != Role::Master
            || self.expiries.first().is_none_or(|(at, _)| *at > now)
            || !self.is_leader(now)
        {
            return;
        }
        while let Some(&(at, cid)) = self.expiries.first() {
            if at > now {
                break;
            }
            self.expiries.pop_first();
            let due = self
                .replica
                .state()
                .get(&cid)
                .is_some_and(|s| s.expire_at_ms == Some(at));
            if due {
                tracing::info!(%cid, "pin expired; unpinning");
                self.replica_event(Event::Unpin(cid), fetches, ops);
            }
        }
    }

    /// The first live trusted master (by key) re-allocates pins under their minimum, once
    /// every peer had a metric TTL to be heard from.
    fn repair(
        &mut self,
        now: u64,
        fetches: &mut JoinSet<FetchResult>,
        ops: &mut JoinSet<OpResult>,
    ) {
        if self.cfg.role != Role::Master || self.started.elapsed() < self.cfg.metric_ttl {
            return;
        }
        if self
            .last_repair
            .is_some_and(|t| t.elapsed() < self.cfg.repair_interval)
        {
            return;
        }
        self.last_repair = Some(Instant::now());
        if !self.is_leader(now) {
            return;
        }
        let fixes = self.allocator.repairs(self.replica.state(), now);
        for pin in fixes {
            tracing::info!(cid = %pin.cid, allocations = pin.spec.allocations.len(), "re-allocating");
            self.replica_event(Event::Pin(pin), fetches, ops);
        }
    }

    fn free_bytes(&self) -> u64 {
        if let Some(f) = self.cfg.free_bytes {
            return f;
        }
        match self.repo.stat() {
            Ok(s) => s.storage_max.saturating_sub(s.repo_size),
            Err(_) => 0,
        }
    }

    fn on_command(
        &mut self,
        command: Command,
        fetches: &mut JoinSet<FetchResult>,
        ops: &mut JoinSet<OpResult>,
    ) {
        match command {
            Command::Info(tx) => {
                let mut trusted: Vec<PeerId> =
                    self.trusted.iter().filter_map(|k| k.to_peer_id()).collect();
                trusted.sort();
                let _ = tx.send(ClusterInfo {
                    peer: self.peer,
                    role: self.cfg.role,
                    trusted_peers: trusted,
                    pins: self.replica.state().len(),
                    heads: self.replica.heads().len(),
                    topic: HEADS_TOPIC.to_string(),
                    snapshot: self.replica.snapshot(),
                    stored_deltas: self.replica.stored_deltas(),
                });
            }
            Command::Peers(tx) => {
                let _ = tx.send(self.peers_view());
            }
            Command::Pin(cid, spec, tx) => {
                let r = self.local_pin(cid, spec, fetches, ops);
                let _ = tx.send(r);
            }
            Command::PinMany(pins, tx) => {
                let r = self.local_pin_many(pins, fetches, ops);
                let _ = tx.send(r);
            }
            Command::Compact(tx) => {
                self.replica_event(Event::Compact, fetches, ops);
                let _ = tx.send(self.replica.snapshot());
            }
            Command::Digest(tx) => {
                let mut hasher = HashWriter(Sha256::new());
                let r = ipfs_kit_cluster_sync::export::export(self.replica.state(), &mut hasher)
                    .map(|pins| StateDigest {
                        pins,
                        sha256: hasher.0.finalize().into(),
                    })
                    .map_err(ClusterError::from);
                let _ = tx.send(r);
            }
            Command::Unpin(cid, tx) => {
                let r = if self.cfg.role != Role::Master {
                    Err(ClusterError::NotAMaster(self.cfg.role))
                } else if self.replica.state().get(&cid).is_none() {
                    Err(ClusterError::NotPinned(cid))
                } else {
                    self.replica_event(Event::Unpin(cid), fetches, ops);
                    Ok(())
                };
                let _ = tx.send(r);
            }
            Command::Get(cid, tx) => {
                let _ = tx.send(self.replica.state().get(&cid).cloned());
            }
            Command::Allocations(cid, tx) => {
                let pins = match cid {
                    Some(c) => self
                        .replica
                        .state()
                        .get(&c)
                        .map(|s| {
                            vec![Pin {
                                cid: c,
                                spec: s.clone(),
                            }]
                        })
                        .unwrap_or_default(),
                    None => self
                        .replica
                        .state()
                        .sorted()
                        .into_iter()
                        .map(|(cid, spec)| Pin { cid, spec })
                        .collect(),
                };
                let _ = tx.send(pins);
            }
            Command::Status(cid, tx) => self.global_status(cid, false, tx, ops),
            Command::Recover(cid, tx) => self.global_status(cid, true, tx, ops),
            Command::Export(tx) => {
                let mut out = Vec::new();
                let r = ipfs_kit_cluster_sync::export::export(self.replica.state(), &mut out)
                    .map(|_| out)
                    .map_err(ClusterError::from);
                let _ = tx.send(r);
            }
            Command::Import(pins, tx) => {
                let n = pins.len();
                let mut r = Ok(n);
                for p in pins {
                    if let Err(e) = self.local_pin(p.cid, p.spec, fetches, ops) {
                        r = Err(e);
                        break;
                    }
                }
                let _ = tx.send(r);
            }
        }
    }

    /// [`Command::PinMany`]: every pin allocated with one shared load (balanced over the call).
    fn local_pin_many(
        &mut self,
        pins: Vec<(Cid, ipfs_kit_cluster_sync::PinSpec)>,
        fetches: &mut JoinSet<FetchResult>,
        ops: &mut JoinSet<OpResult>,
    ) -> Result<usize, ClusterError> {
        if self.cfg.role != Role::Master {
            return Err(ClusterError::NotAMaster(self.cfg.role));
        }
        let now = now_ms();
        let mut load = HashMap::new();
        let mut written = 0;
        for (cid, spec) in pins {
            let spec = self.allocated(&cid, spec, now, &mut load)?;
            self.replica_event(Event::Pin(Pin { cid, spec }), fetches, ops);
            written += 1;
        }
        Ok(written)
    }

    /// `spec` validated and allocated for `cid`: the allocator keeps the CID's current
    /// allocations where they still hold; `load` spreads several pins of one call.
    fn allocated(
        &self,
        cid: &Cid,
        mut spec: ipfs_kit_cluster_sync::PinSpec,
        now: u64,
        load: &mut HashMap<PeerKey, u64>,
    ) -> Result<ipfs_kit_cluster_sync::PinSpec, ClusterError> {
        spec.validate()?;
        let current: Vec<PeerKey> = self
            .replica
            .state()
            .get(cid)
            .map(|s| s.allocations.clone())
            .unwrap_or_default();
        spec.allocations = self.allocator.allocate(&spec, &current, now, load)?;
        Ok(spec)
    }

    fn local_pin(
        &mut self,
        cid: Cid,
        spec: ipfs_kit_cluster_sync::PinSpec,
        fetches: &mut JoinSet<FetchResult>,
        ops: &mut JoinSet<OpResult>,
    ) -> Result<Pin, ClusterError> {
        if self.cfg.role != Role::Master {
            return Err(ClusterError::NotAMaster(self.cfg.role));
        }
        let spec = self.allocated(&cid, spec, now_ms(), &mut HashMap::new())?;
        let pin = Pin { cid, spec };
        self.replica_event(Event::Pin(pin.clone()), fetches, ops);
        Ok(pin)
    }

    fn peers_view(&self) -> Vec<ClusterPeer> {
        let now = now_ms();
        let mut keys: BTreeSet<PeerKey> = self.trusted.clone();
        keys.extend(self.seen.keys().copied());
        keys.insert(self.me);
        let mut out: Vec<ClusterPeer> = keys
            .into_iter()
            .filter_map(|k| {
                let peer = k.to_peer_id()?;
                let m = self.seen.get(&k);
                Some(ClusterPeer {
                    peer,
                    is_self: k == self.me,
                    trusted: self.trusted.contains(&k),
                    live: self.allocator.is_live(&k, now),
                    free_bytes: m.map_or(0, |m| m.free_bytes),
                    tags: m.map(|m| m.tags.clone()).unwrap_or_default(),
                    expire_at_ms: m.map_or(0, |m| m.expire_at_ms),
                })
            })
            .collect();
        out.sort_by_key(|p| p.peer);
        out
    }

    /// This peer's entries for a status request (recovering first when asked).
    fn answer_status(
        &mut self,
        request: &StatusRequest,
        ops: &mut JoinSet<OpResult>,
    ) -> StatusResponse {
        let cids: Option<Vec<Cid>> = request.cids.as_ref().map(|v| {
            v.iter()
                .filter_map(|b| wire::cid_from_wire(b).ok())
                .collect()
        });
        if request.recover {
            let now = now_ms();
            let evs: Vec<TrackerEvent> = match &cids {
                Some(c) => c.iter().map(|c| TrackerEvent::Recover(*c)).collect(),
                None => vec![TrackerEvent::RecoverAll],
            };
            for ev in evs {
                let acts = self.tracker.handle(ev, now);
                self.start_ops(acts, ops);
            }
        }
        let entry = |cid: &Cid, t: Option<&ipfs_kit_cluster_sync::tracker::Tracked>| StatusEntry {
            cid: cid.to_bytes(),
            state: t.map_or(wire::STATE_UNTRACKED, |t| wire::state_code(t.state)),
            attempts: t.map_or(0, |t| t.attempts),
            error: t.and_then(|t| t.error.clone()).map(|mut e| {
                if e.len() > STATUS_ERROR_BYTES_MAX {
                    let mut cut = STATUS_ERROR_BYTES_MAX;
                    while !e.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    e.truncate(cut);
                }
                e
            }),
        };
        let mut entries = Vec::new();
        let mut truncated = false;
        match &cids {
            Some(c) => {
                for cid in c {
                    entries.push(entry(cid, self.tracker.status(cid)));
                }
            }
            None => {
                for (cid, t) in self.tracker.statuses() {
                    if entries.len() >= STATUS_ENTRIES_MAX {
                        truncated = true;
                        break;
                    }
                    entries.push(entry(cid, Some(t)));
                }
            }
        }
        StatusResponse {
            ts_ms: now_ms(),
            entries,
            truncated,
        }
    }

    /// Status of one CID (or all pins) on every cluster peer: ours from the tracker, the
    /// others' over the status protocol, concurrently, off this task.
    fn global_status(
        &mut self,
        cid: Option<Cid>,
        recover: bool,
        tx: oneshot::Sender<Vec<PinStatus>>,
        ops: &mut JoinSet<OpResult>,
    ) {
        let request = StatusRequest {
            cids: cid.map(|c| vec![c.to_bytes()]),
            recover,
        };
        let mine = self.answer_status(&request, ops);
        let pins: Vec<(Cid, Option<ipfs_kit_cluster_sync::PinSpec>)> = match cid {
            Some(c) => vec![(c, self.replica.state().get(&c).cloned())],
            None => self
                .replica
                .state()
                .sorted()
                .into_iter()
                .map(|(c, s)| (c, Some(s)))
                .collect(),
        };
        // Peers asked: live ones. Peers allocated the CIDs whose metrics expired are down:
        // they answer `cluster_error` at once instead of holding the answer for a request
        // timeout (ipfs-cluster would wait on its RPC to them).
        let now = now_ms();
        let live: BTreeSet<PeerKey> = self.allocator.live(now).into_iter().collect();
        let mut down: BTreeSet<PeerKey> = BTreeSet::new();
        for (_, s) in pins.iter() {
            if let Some(s) = s {
                down.extend(s.allocations.iter().filter(|k| !live.contains(k)).copied());
            }
        }
        down.remove(&self.me);
        let others: Vec<PeerId> = live
            .iter()
            .filter(|k| **k != self.me)
            .filter_map(|k| k.to_peer_id())
            .collect();
        let down: Vec<PeerId> = down.iter().filter_map(|k| k.to_peer_id()).collect();
        let node = self.node.clone();
        let me = self.peer;
        tokio::spawn(async move {
            let asks = others.into_iter().map(|p| {
                let node = node.clone();
                let request = request.clone();
                async move { (p, node.cluster_status(p, request).await) }
            });
            let mut answers: Vec<(PeerId, Result<StatusResponse, String>)> =
                futures::future::join_all(asks)
                    .await
                    .into_iter()
                    .map(|(p, r)| (p, r.map_err(|e| e.to_string())))
                    .collect();
            answers.extend(down.into_iter().map(|p| (p, Err(PEER_DOWN.to_owned()))));
            answers.push((me, Ok(mine)));
            let _ = tx.send(assemble(pins, answers));
        });
    }
}

/// The status error of an allocated peer whose metrics expired (not asked).
pub const PEER_DOWN: &str = "peer down: its metrics expired, not asked";

/// A peer's answer: its clock and its entries by CID, or why it did not answer.
type PeerAnswer = Result<(u64, HashMap<Cid, StatusEntry>), String>;

/// One [`PinStatus`] per pin from every peer's answer.
fn assemble(
    pins: Vec<(Cid, Option<ipfs_kit_cluster_sync::PinSpec>)>,
    answers: Vec<(PeerId, Result<StatusResponse, String>)>,
) -> Vec<PinStatus> {
    let mut by_peer: Vec<(PeerId, PeerAnswer)> = answers
        .into_iter()
        .map(|(p, r)| {
            let r = r.and_then(|resp| {
                resp.check().map_err(|e| e.to_string())?;
                let mut m = HashMap::new();
                for e in resp.entries {
                    if let Ok(c) = wire::cid_from_wire(&e.cid) {
                        m.insert(c, e);
                    }
                }
                Ok((resp.ts_ms, m))
            });
            (p, r)
        })
        .collect();
    by_peer.sort_by_key(|(p, _)| *p);
    pins.into_iter()
        .map(|(cid, pin)| {
            let peers = by_peer
                .iter()
                .map(|(peer, r)| match r {
                    Err(e) => PeerPinStatus {
                        peer: *peer,
                        status: TrackerStatus::Unknown,
                        error: Some(e.clone()),
                        attempts: 0,
                        ts_ms: now_ms(),
                    },
                    Ok((ts, m)) => {
                        let e = m.get(&cid);
                        let state = e.and_then(|e| wire::state_of(e.state).ok().flatten());
                        PeerPinStatus {
                            peer: *peer,
                            status: match state {
                                Some(s) => TrackerStatus::Tracked(s),
                                None => TrackerStatus::Unpinned,
                            },
                            error: e.and_then(|e| e.error.clone()),
                            attempts: e.map_or(0, |e| e.attempts),
                            ts_ms: *ts,
                        }
                    }
                })
                .collect();
            PinStatus { cid, pin, peers }
        })
        .collect()
}

/// Removes a fetched cluster block (delta or snapshot block) from the repository, where
/// `fetch_block` stored it: the replica keeps what it accepts in its own store, which bitswap
/// serves (see `blocks.rs`), so the repository holds no second copy, and a delta dropped by
/// compaction is not served from there afterwards. A block someone pinned stays.
async fn drop_from_repo(repo: Repo, cid: Cid) {
    let r = tokio::task::spawn_blocking(move || -> Result<(), String> {
        if repo.is_pinned(&cid).map_err(|e| e.to_string())?.is_some() {
            return Ok(());
        }
        repo.blocks()
            .delete_many(&[cid])
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(%cid, error = %e, "fetched cluster block left in the repo"),
        Err(e) => tracing::debug!(%cid, error = %e, "fetched cluster block left in the repo"),
    }
}

/// Makes the DAG local and pins it in the repository (the fetch's guard protects it until the
/// pin holds).
async fn pin_locally(
    node: NodeHandle,
    repo: Repo,
    cid: Cid,
    mode: PinMode,
    local: std::sync::Arc<super::local::LocalPins>,
) -> Result<(), String> {
    let guard = match mode {
        PinMode::Recursive => Some(node.fetch_dag(cid).await.map_err(|e| e.to_string())?),
        PinMode::Direct => {
            node.fetch_block(cid).await.map_err(|e| e.to_string())?;
            None
        }
    };
    tokio::task::spawn_blocking(move || {
        // Recorded first: a crash between the two leaves a record without a pin, which the
        // next start clears, never a cluster pin nobody would remove.
        local.insert(&cid).map_err(|e| e.to_string())?;
        let r = repo
            .pin_add(&cid, mode == PinMode::Recursive, None)
            .map_err(|e| e.to_string());
        drop(guard);
        r
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Removes the repository pin; one that is not there (or only indirect) counts as done.
async fn unpin_locally(
    repo: Repo,
    cid: Cid,
    local: std::sync::Arc<super::local::LocalPins>,
) -> Result<(), String> {
    tokio::task::spawn_blocking(move || match repo.pin_rm(&cid) {
        Ok(_) | Err(RepoError::NotPinned(_)) | Err(RepoError::PinnedIndirectly { .. }) => {
            local.remove(&cid).map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    })
    .await
    .map_err(|e| e.to_string())?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ipfs_kit_cluster_sync::tracker::PinState;

    #[test]
    fn global_status_joins_every_peers_answer() {
        let cid = ipfs_kit_cluster_sync::codec::block_cid(b"pinned");
        let other = ipfs_kit_cluster_sync::codec::block_cid(b"not asked");
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let entry = |cid: &Cid, state: u8| StatusEntry {
            cid: cid.to_bytes(),
            state,
            attempts: 1,
            error: None,
        };
        let answers = vec![
            (
                a,
                Ok(StatusResponse {
                    ts_ms: 5,
                    entries: vec![entry(&cid, wire::state_code(PinState::Pinned))],
                    truncated: false,
                }),
            ),
            (
                b,
                Ok(StatusResponse {
                    ts_ms: 6,
                    entries: vec![entry(&other, wire::state_code(PinState::Pinned))],
                    truncated: false,
                }),
            ),
            (c, Err("timeout".to_string())),
        ];
        let out = assemble(vec![(cid, None)], answers);
        assert_eq!(out.len(), 1);
        let by = |p: PeerId| out[0].peers.iter().find(|e| e.peer == p).unwrap().clone();
        assert_eq!(by(a).status, TrackerStatus::Tracked(PinState::Pinned));
        assert_eq!(by(a).ts_ms, 5);
        assert_eq!(by(b).status, TrackerStatus::Unpinned, "not tracked there");
        assert_eq!(by(c).status, TrackerStatus::Unknown);
        assert_eq!(by(c).error.as_deref(), Some("timeout"));
        let mut sorted = out[0].peers.iter().map(|e| e.peer).collect::<Vec<_>>();
        sorted.sort();
        assert_eq!(
            out[0].peers.iter().map(|e| e.peer).collect::<Vec<_>>(),
            sorted
        );
    }
}
