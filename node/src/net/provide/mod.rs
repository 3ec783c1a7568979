//! Content routing announcements: provide strategies and the sweeping reprovider.
//!
//! - [`plan`]: the pure planner (keyspace regions sized from the network estimate, each key's
//!   k closest peers, the even schedule);
//! - [`wire`]: ADD_PROVIDER frames; [`sender`]: one outbound kad stream per peer and batch;
//! - [`Reprovider`]: the driver. It holds the provided set (derived from the repository by
//!   the [`ProvideStrategy`] at each cycle, nothing persisted), sweeps it region by region
//!   over the reprovide interval — one DHT lookup per region, not per key — and batches new
//!   provides (after add or pin) into their regions.
//!
//! Records expire after [`PROVIDER_RECORD_TTL`] (48 h) at the peers that store them; the
//! default interval, [`REPROVIDE_INTERVAL`] (22 h), renews them twice in that time.

pub mod plan;
pub mod sender;
pub mod store;
pub mod wire;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cid::Cid;
use futures::StreamExt as _;
use libp2p::PeerId;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::plan::KeyPoint;
use super::behaviour::KAD_K;
use super::node::{NetError, NodeHandle};
use crate::config::ProvideStrategy;
use crate::repo::{PinFilter, Repo, RepoError};

/// How often every provided key is announced again (`ipfs/specs` kad-dht: republish 22 h).
pub const REPROVIDE_INTERVAL: Duration = Duration::from_secs(22 * 3600);

/// How long peers keep a provider record (`ipfs/specs` kad-dht: 48 h).
pub const PROVIDER_RECORD_TTL: Duration = Duration::from_secs(48 * 3600);

/// New provides wait this long to be batched with the ones that follow (an add of a large
/// file announces its blocks in one sweep of their regions).
pub const PROVIDE_BATCH_DELAY: Duration = Duration::from_millis(500);

/// Records per stream: a larger batch for one peer is split over several streams.
pub const RECORDS_PER_STREAM_MAX: usize = 4096;

/// Streams to distinct peers written at once.
pub const SEND_CONCURRENCY: usize = 8;

/// Keys waiting to be provided; past this, new provides wait for the next cycle's sweep.
pub const PENDING_KEYS_MAX: usize = 1 << 20;

/// Errors of the reprovider.
#[derive(Debug, thiserror::Error)]
pub enum ProvideError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("listing the keys to provide: {0}")]
    Repo(#[from] RepoError),
    #[error("listing the keys to provide: {0}")]
    Task(String),
}

/// The multihash bytes (DHT record keys) that `strategy` provides from `repo`: every block
/// (`all`), every block of pinned DAGs (`pinned`), or the pin roots (`roots`). Sorted,
/// without duplicates (CIDv0 and v1 of one block share a key).
pub fn strategy_keys(repo: &Repo, strategy: ProvideStrategy) -> Result<Vec<Vec<u8>>, RepoError> {
    let cids: Vec<Cid> = match strategy {
        ProvideStrategy::All => repo.blocks().all_cids()?,
        ProvideStrategy::Pinned => repo
            .pin_ls(PinFilter::All, None)?
            .into_iter()
            .map(|p| p.cid)
            .collect(),
        ProvideStrategy::Roots => {
            let mut v: Vec<Cid> = repo
                .pin_ls(PinFilter::Recursive, None)?
                .into_iter()
                .map(|p| p.cid)
                .collect();
            v.extend(
                repo.pin_ls(PinFilter::Direct, None)?
                    .into_iter()
                    .map(|p| p.cid),
            );
            v
        }
    };
    let mut keys: Vec<Vec<u8>> = cids.iter().map(|c| c.hash().to_bytes()).collect();
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// The keys `strategy` announces after `root` was added or pinned: the whole DAG (`all`; the
/// blocks present), the whole DAG if `root` is pinned (`pinned`), `root` if it is pinned
/// (`roots`).
pub fn keys_for_root(
    repo: &Repo,
    strategy: ProvideStrategy,
    root: &Cid,
) -> Result<Vec<Vec<u8>>, RepoError> {
    let pinned = || -> Result<bool, RepoError> { Ok(repo.is_pinned(root)?.is_some()) };
    let walk = || -> Result<Vec<Vec<u8>>, RepoError> {
        let mut keys = Vec::new();
        let mut visited = crate::dag::links::Visited::new();
        crate::dag::links::walk_cids_from::<RepoError, _>(
            repo.blocks().as_ref(),
            std::slice::from_ref(root),
            &mut visited,
            |c| {
                keys.push(c.hash().to_bytes());
                Ok(())
            },
        )?;
        Ok(keys)
    };
    match strategy {
        ProvideStrategy::All => walk(),
        ProvideStrategy::Pinned if pinned()? => walk(),
        ProvideStrategy::Roots if pinned()? => Ok(vec![root.hash().to_bytes()]),
        _ => Ok(Vec::new()),
    }
}

/// Reprovider settings.
#[derive(Clone, Debug)]
pub struct ReproviderConfig {
    /// See [`REPROVIDE_INTERVAL`].
    pub interval: Duration,
    /// Replication: each record goes to this many closest peers.
    pub k: usize,
    /// Peers asked of each region lookup (more than k: keys near the region's edges have
    /// close peers beyond the k closest to the lookup target).
    pub lookup_peers: usize,
    /// See [`PROVIDE_BATCH_DELAY`].
    pub batch_delay: Duration,
}

impl Default for ReproviderConfig {
    fn default() -> Self {
        Self {
            interval: REPROVIDE_INTERVAL,
            k: KAD_K,
            lookup_peers: 2 * KAD_K,
            batch_delay: PROVIDE_BATCH_DELAY,
        }
    }
}

/// Counters of the reprovider (since start). Times are Unix milliseconds (0: never),
/// durations nanoseconds (kubo's `time.Duration` in JSON).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReprovideStat {
    /// Keys in the provided set now.
    pub keys_provided: usize,
    /// Keys announced (each key of each region announced counts once per announcement:
    /// kubo's `TotalProvides`).
    pub keys_announced: u64,
    /// Regions announced (sweeps and new-provide batches).
    pub regions_swept: u64,
    /// DHT lookups made.
    pub lookups: u64,
    /// ADD_PROVIDER records written to peers.
    pub records_sent: u64,
    /// ADD_PROVIDER records of the batches that failed (not delivered).
    pub records_failed: u64,
    /// Batches (streams) that failed.
    pub send_failures: u64,
    /// Complete sweeps of the provided set.
    pub cycles: u64,
    /// The last network size estimate (0: none yet).
    pub network_size: usize,
    /// Time spent announcing (lookups and sends), over every announcement.
    pub announce_nanos: u64,
    /// When the last complete sweep started.
    pub last_sweep_started_unix_ms: u64,
    /// Time the last complete sweep spent announcing (a scheduled cycle waits between its
    /// regions; only the announcing counts, kubo's `LastReprovideDuration`).
    pub last_sweep_nanos: u64,
    /// Keys of the last complete sweep (kubo's `LastReprovideBatchSize`).
    pub last_sweep_keys: u64,
    /// When the next scheduled region (or the next cycle) is due (0: not scheduled).
    pub next_sweep_due_unix_ms: u64,
}

impl ReprovideStat {
    /// Mean time to announce one key (kubo's `AvgProvideDuration`), nanoseconds.
    pub fn avg_provide_nanos(&self) -> u64 {
        self.announce_nanos
            .checked_div(self.keys_announced)
            .unwrap_or(0)
    }
}

#[derive(Default)]
struct Counters {
    keys_announced: AtomicU64,
    regions_swept: AtomicU64,
    lookups: AtomicU64,
    records_sent: AtomicU64,
    records_failed: AtomicU64,
    send_failures: AtomicU64,
    cycles: AtomicU64,
    network_size: AtomicUsize,
    announce_nanos: AtomicU64,
    last_sweep_started_unix_ms: AtomicU64,
    last_sweep_nanos: AtomicU64,
    last_sweep_keys: AtomicU64,
    next_sweep_due_unix_ms: AtomicU64,
}

impl Counters {
    /// Records a complete sweep of `keys` keys that started at `started` (wall clock) and
    /// spent `busy` announcing.
    fn sweep_done(&self, started: std::time::SystemTime, busy: Duration, keys: usize) {
        self.cycles.fetch_add(1, Ordering::Relaxed);
        self.last_sweep_started_unix_ms
            .store(unix_ms(started), Ordering::Relaxed);
        self.last_sweep_nanos
            .store(duration_nanos(busy), Ordering::Relaxed);
        self.last_sweep_keys.store(keys as u64, Ordering::Relaxed);
    }

    /// Records that the next announcement is due at `due` (tokio clock).
    fn next_due(&self, due: Instant) {
        let wall = std::time::SystemTime::now() + due.saturating_duration_since(Instant::now());
        self.next_sweep_due_unix_ms
            .store(unix_ms(wall), Ordering::Relaxed);
    }
}

fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Where the provided set comes from at each cycle (the repository by strategy).
pub type KeySource = Arc<dyn Fn() -> Result<Vec<Vec<u8>>, ProvideError> + Send + Sync>;

struct Inner {
    node: NodeHandle,
    config: ReproviderConfig,
    source: Option<KeySource>,
    /// What provide-on-add announces ([`Reprovider::provide_root`]).
    strategy: ProvideStrategy,
    /// The provided set: the node's [`store::OwnKeys`], which the DHT store answers
    /// GET_PROVIDERS from (each key held once, not also in kad's `MemoryStore`).
    keys: store::OwnKeys,
    pending: Mutex<BTreeMap<KeyPoint, Vec<u8>>>,
    wake: Notify,
    counters: Counters,
}

/// The sweeping reprovider: cheap to clone.
#[derive(Clone)]
pub struct Reprovider {
    inner: Arc<Inner>,
}

/// What one announcement pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub keys: usize,
    pub regions: usize,
    pub lookups: usize,
    pub records_sent: usize,
    pub peers: usize,
    pub send_failures: usize,
}

impl SweepReport {
    fn add(&mut self, o: SweepReport) {
        self.keys += o.keys;
        self.regions += o.regions;
        self.lookups += o.lookups;
        self.records_sent += o.records_sent;
        self.peers += o.peers;
        self.send_failures += o.send_failures;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Reprovider {
    /// A reprovider announcing through `node`. With a `source`, the provided set is
    /// re-derived from it at the start of each cycle (keys no longer there stop being
    /// announced and expire).
    pub fn new(node: NodeHandle, config: ReproviderConfig, source: Option<KeySource>) -> Self {
        let keys = node.own_provider_keys();
        Self {
            inner: Arc::new(Inner {
                node,
                config,
                source,
                strategy: ProvideStrategy::All,
                keys,
                pending: Mutex::new(BTreeMap::new()),
                wake: Notify::new(),
                counters: Counters::default(),
            }),
        }
    }

    /// A reprovider whose set is `strategy`'s keys of `repo`.
    pub fn for_repo(
        node: NodeHandle,
        config: ReproviderConfig,
        repo: Repo,
        strategy: ProvideStrategy,
    ) -> Self {
        let source: KeySource =
            Arc::new(move || strategy_keys(&repo, strategy).map_err(ProvideError::from));
        let mut r = Self::new(node, config, Some(source));
        if let Some(inner) = Arc::get_mut(&mut r.inner) {
            inner.strategy = strategy;
        }
        r
    }

    /// Provide on add or pin: queues the keys the strategy announces for `root` (see
    /// [`keys_for_root`]); they go out in the next batch. Returns how many were new.
    pub async fn provide_root(&self, repo: &Repo, root: Cid) -> Result<usize, ProvideError> {
        let (repo, strategy) = (repo.clone(), self.inner.strategy);
        let keys = tokio::task::spawn_blocking(move || keys_for_root(&repo, strategy, &root))
            .await
            .map_err(|e| ProvideError::Task(e.to_string()))??;
        Ok(self.provide_keys(keys))
    }

    /// Counters so far.
    pub fn stat(&self) -> ReprovideStat {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ReprovideStat {
            keys_provided: self.inner.keys.len(),
            keys_announced: get(&c.keys_announced),
            regions_swept: get(&c.regions_swept),
            lookups: get(&c.lookups),
            records_sent: get(&c.records_sent),
            records_failed: get(&c.records_failed),
            send_failures: get(&c.send_failures),
            cycles: get(&c.cycles),
            network_size: c.network_size.load(Ordering::Relaxed),
            announce_nanos: get(&c.announce_nanos),
            last_sweep_started_unix_ms: get(&c.last_sweep_started_unix_ms),
            last_sweep_nanos: get(&c.last_sweep_nanos),
            last_sweep_keys: get(&c.last_sweep_keys),
            next_sweep_due_unix_ms: get(&c.next_sweep_due_unix_ms),
        }
    }

    /// Adds keys (multihash bytes) to the provided set and queues them for a batched
    /// announcement (provide on add or pin). Returns how many were new.
    pub fn provide_keys(&self, keys: impl IntoIterator<Item = Vec<u8>>) -> usize {
        let mut set = self.inner.keys.lock();
        let mut pending = lock(&self.inner.pending);
        let mut new = 0;
        for k in keys {
            let p = plan::key_point(&k);
            if set.contains_key(&p) {
                continue;
            }
            if set.len() >= store::OWN_KEYS_MAX {
                tracing::warn!(
                    max = store::OWN_KEYS_MAX,
                    "provided set full: key not provided"
                );
                break;
            }
            set.insert(p, k.clone());
            new += 1;
            if pending.len() < PENDING_KEYS_MAX {
                pending.insert(p, k);
            }
        }
        drop((set, pending));
        if new > 0 {
            self.inner.wake.notify_one();
        }
        new
    }

    /// [`Reprovider::provide_keys`] for CIDs.
    pub fn provide_cids(&self, cids: &[Cid]) -> usize {
        self.provide_keys(cids.iter().map(|c| c.hash().to_bytes()))
    }

    /// Announces the queued new keys now, batched by region.
    pub async fn flush(&self) -> Result<SweepReport, ProvideError> {
        let batch: Vec<(KeyPoint, Vec<u8>)> = std::mem::take(&mut *lock(&self.inner.pending))
            .into_iter()
            .collect();
        self.announce(batch).await
    }

    /// Re-derives the set from the source (if any) and announces every key now.
    pub async fn sweep_all(&self) -> Result<SweepReport, ProvideError> {
        let (wall, started) = (std::time::SystemTime::now(), Instant::now());
        self.refresh().await?;
        let all: Vec<(KeyPoint, Vec<u8>)> = self
            .inner
            .keys
            .lock()
            .iter()
            .map(|(p, k)| (*p, k.clone()))
            .collect();
        lock(&self.inner.pending).clear();
        let report = self.announce(all).await?;
        self.inner
            .counters
            .sweep_done(wall, started.elapsed(), report.keys);
        Ok(report)
    }

    /// Replaces the provided set with the source's keys (no-op without a source).
    async fn refresh(&self) -> Result<(), ProvideError> {
        let Some(source) = self.inner.source.clone() else {
            return Ok(());
        };
        let keys = tokio::task::spawn_blocking(move || source())
            .await
            .map_err(|e| ProvideError::Task(e.to_string()))??;
        let fresh: BTreeMap<KeyPoint, Vec<u8>> =
            keys.into_iter().map(|k| (plan::key_point(&k), k)).collect();
        self.inner.keys.replace(fresh);
        Ok(())
    }

    /// Runs the reprovider until `cancel`: a full sweep at start (records of a previous run
    /// may have expired), then each cycle's regions at their scheduled offsets, with new
    /// provides flushed in batches meanwhile.
    pub fn spawn(self, cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = self.run() => {}
            }
        })
    }

    async fn run(&self) {
        let started = Instant::now();
        match self.sweep_all().await {
            Ok(r) => tracing::info!(
                keys = r.keys,
                regions = r.regions,
                lookups = r.lookups,
                records = r.records_sent,
                "initial provide sweep done"
            ),
            Err(e) => tracing::warn!(error = %e, "initial provide sweep failed"),
        }
        self.inner
            .counters
            .next_due(started + self.inner.config.interval);
        self.serve_until(started + self.inner.config.interval).await;
        loop {
            let (cycle_start, cycle_wall) = (Instant::now(), std::time::SystemTime::now());
            let mut busy = Duration::ZERO;
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "reprovider: provided set not refreshed");
            }
            let snapshot: Vec<(KeyPoint, Vec<u8>)> = self
                .inner
                .keys
                .lock()
                .iter()
                .map(|(p, k)| (*p, k.clone()))
                .collect();
            let points: Vec<KeyPoint> = snapshot.iter().map(|(p, _)| *p).collect();
            let bits = self.prefix_bits();
            for region in plan::regions(&points, bits) {
                let due = cycle_start
                    + plan::region_offset(region.prefix, bits, self.inner.config.interval);
                self.inner.counters.next_due(due);
                self.serve_until(due).await;
                let keys = snapshot[region.keys.clone()].to_vec();
                let region_started = Instant::now();
                if let Err(e) = self.announce_region(keys).await {
                    tracing::debug!(error = %e, prefix = region.prefix, "reprovide of a region failed");
                }
                busy += region_started.elapsed();
            }
            self.inner
                .counters
                .sweep_done(cycle_wall, busy, snapshot.len());
            tracing::info!(keys = snapshot.len(), bits, ?busy, "reprovide cycle done");
            self.inner
                .counters
                .next_due(cycle_start + self.inner.config.interval);
            self.serve_until(cycle_start + self.inner.config.interval)
                .await;
        }
    }

    /// Waits until `deadline`, flushing new provides (after the batch delay) as they come.
    async fn serve_until(&self, deadline: Instant) {
        loop {
            if !lock(&self.inner.pending).is_empty() {
                tokio::time::sleep(self.inner.config.batch_delay).await;
                if let Err(e) = self.flush().await {
                    tracing::debug!(error = %e, "provide batch failed");
                }
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                _ = self.inner.wake.notified() => {}
            }
        }
    }

    fn prefix_bits(&self) -> u32 {
        let n = self.inner.counters.network_size.load(Ordering::Relaxed);
        plan::region_prefix_bits(n, self.inner.config.k)
    }

    /// Announces `keys`: cut into regions by the network estimate (one first lookup makes
    /// the estimate when there is none and serves its region), one lookup per region.
    async fn announce(
        &self,
        mut keys: Vec<(KeyPoint, Vec<u8>)>,
    ) -> Result<SweepReport, ProvideError> {
        let mut report = SweepReport::default();
        if keys.is_empty() {
            return Ok(report);
        }
        let started = Instant::now();
        keys.sort_by_key(|k| k.0);
        let points: Vec<KeyPoint> = keys.iter().map(|(p, _)| *p).collect();
        let mut first: Option<(usize, Vec<libp2p::kad::PeerInfo>)> = None;
        if self.inner.counters.network_size.load(Ordering::Relaxed) == 0 {
            let target = keys.len() / 2;
            let peers = self.lookup(&keys[target].1).await?;
            report.lookups += 1;
            first = Some((target, peers));
        }
        let bits = self.prefix_bits();
        for region in plan::regions(&points, bits) {
            let peers = match first.take() {
                Some((t, peers)) if region.keys.contains(&t) => peers,
                other => {
                    first = other;
                    let target = plan::region_target(&region);
                    let peers = self.lookup(&keys[target].1).await?;
                    report.lookups += 1;
                    peers
                }
            };
            let r = self.send_region(&keys[region.keys.clone()], &peers).await;
            report.add(r);
        }
        self.announced(report.keys, started.elapsed());
        Ok(report)
    }

    /// Announces one region's keys (sorted): one lookup, then the batches.
    async fn announce_region(
        &self,
        keys: Vec<(KeyPoint, Vec<u8>)>,
    ) -> Result<SweepReport, ProvideError> {
        let Some(first) = keys.get(keys.len() / 2) else {
            return Ok(SweepReport::default());
        };
        let started = Instant::now();
        let peers = self.lookup(&first.1).await?;
        let mut report = self.send_region(&keys, &peers).await;
        report.lookups += 1;
        self.announced(report.keys, started.elapsed());
        Ok(report)
    }

    /// Counts `keys` announced in `took`.
    fn announced(&self, keys: usize, took: Duration) {
        let c = &self.inner.counters;
        c.keys_announced.fetch_add(keys as u64, Ordering::Relaxed);
        c.announce_nanos
            .fetch_add(duration_nanos(took), Ordering::Relaxed);
    }

    /// One region lookup around `target`, updating the network size estimate.
    async fn lookup(&self, target: &[u8]) -> Result<Vec<libp2p::kad::PeerInfo>, ProvideError> {
        let peers = self
            .inner
            .node
            .closest_peers_to_key(target.to_vec(), self.inner.config.lookup_peers)
            .await?;
        self.inner.counters.lookups.fetch_add(1, Ordering::Relaxed);
        let t = plan::key_point(target);
        let mut points: Vec<KeyPoint> = peers
            .iter()
            .map(|p| plan::key_point(&p.peer_id.to_bytes()))
            .collect();
        points.sort_by_key(|p| plan::distance(&t, p));
        points.truncate(self.inner.config.k);
        if let Some(n) = plan::estimate_network_size(&t, &points) {
            // Count ourselves too.
            self.inner
                .counters
                .network_size
                .store(n + 1, Ordering::Relaxed);
        }
        Ok(peers)
    }

    /// Sends each key of a region to its k closest found peers ([`send_to_closest`]) and
    /// counts what went out.
    async fn send_region(
        &self,
        keys: &[(KeyPoint, Vec<u8>)],
        peers: &[libp2p::kad::PeerInfo],
    ) -> SweepReport {
        let (report, records_failed) = send_to_closest(
            &self.inner.node,
            keys,
            peers,
            self.inner.config.k,
            SEND_CONCURRENCY,
        )
        .await;
        let c = &self.inner.counters;
        c.regions_swept.fetch_add(1, Ordering::Relaxed);
        c.records_sent
            .fetch_add(report.records_sent as u64, Ordering::Relaxed);
        c.records_failed
            .fetch_add(records_failed, Ordering::Relaxed);
        c.send_failures
            .fetch_add(report.send_failures as u64, Ordering::Relaxed);
        report
    }
}

/// Sends each of `keys` (sorted) to its `k` closest among `peers` (ourselves left out), one
/// stream per peer (split at [`RECORDS_PER_STREAM_MAX`]), `concurrency` streams at a time;
/// returns when every write has ended. The report (one region) and the number of records
/// whose batch failed.
async fn send_to_closest(
    node: &NodeHandle,
    keys: &[(KeyPoint, Vec<u8>)],
    peers: &[libp2p::kad::PeerInfo],
    k: usize,
    concurrency: usize,
) -> (SweepReport, u64) {
    let mut report = SweepReport {
        keys: keys.len(),
        regions: 1,
        ..SweepReport::default()
    };
    let me = node.peer_id();
    let mut seen = HashSet::new();
    let peers: Vec<&libp2p::kad::PeerInfo> = peers
        .iter()
        .filter(|p| p.peer_id != me && seen.insert(p.peer_id))
        .collect();
    let peer_points: Vec<KeyPoint> = peers
        .iter()
        .map(|p| plan::key_point(&p.peer_id.to_bytes()))
        .collect();
    let key_points: Vec<KeyPoint> = keys.iter().map(|(p, _)| *p).collect();
    let assignment = plan::assign(&key_points, &peer_points, k);
    report.peers = assignment.len();
    let mut batches: Vec<(PeerId, Vec<libp2p::Multiaddr>, Vec<Vec<u8>>)> = Vec::new();
    for (pi, kis) in assignment {
        let Some(peer) = peers.get(pi) else {
            continue;
        };
        for chunk in kis.chunks(RECORDS_PER_STREAM_MAX) {
            let ks = chunk
                .iter()
                .filter_map(|&ki| keys.get(ki).map(|(_, k)| k.clone()))
                .collect();
            batches.push((peer.peer_id, peer.addrs.clone(), ks));
        }
    }
    let results: Vec<(PeerId, usize, Result<usize, String>)> =
        futures::stream::iter(batches.into_iter().map(|(peer, addrs, ks)| async move {
            let n = ks.len();
            let r = match node.send_provider_batch(peer, addrs, ks).await {
                Ok(Ok(sent)) => Ok(sent),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            (peer, n, r)
        }))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut records_failed = 0u64;
    for (peer, n, r) in results {
        match r {
            Ok(sent) => report.records_sent += sent,
            Err(e) => {
                tracing::debug!(%peer, records = n, error = %e, "provider batch failed");
                report.send_failures += 1;
                records_failed += n as u64;
            }
        }
    }
    (report, records_failed)
}

/// Announces one key (multihash bytes) now, as kubo's `routing provide` does: a lookup of its
/// [`KAD_K`] closest peers, the record written to each of them (this returns when every write
/// has ended, so a search started afterwards meets the record), and the key added to our own
/// provided set, so that we name ourselves when asked. Returns how many peers took the record.
///
/// rust-libp2p's `start_providing` is not used: it reports success as soon as its
/// ADD_PROVIDER requests are queued, before any is written (or its dial has failed), and a
/// search right after could miss every record.
pub async fn provide_now(node: &NodeHandle, key: Vec<u8>) -> Result<usize, NetError> {
    let peers = node.closest_peers_to_key(key.clone(), KAD_K).await?;
    if peers.is_empty() {
        return Err(NetError::NoKnownPeers);
    }
    node.provide_locally(vec![key.clone()]).await?;
    let keys = [(plan::key_point(&key), key)];
    // One record per peer: every stream at once (dials to peers not connected run side by
    // side instead of [`SEND_CONCURRENCY`] at a time).
    let (report, _) = send_to_closest(node, &keys, &peers, KAD_K, KAD_K).await;
    if report.records_sent == 0 {
        return Err(NetError::ProvideFailed {
            peers: report.peers,
        });
    }
    Ok(report.peers - report.send_failures)
}
