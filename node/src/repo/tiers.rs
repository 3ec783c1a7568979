//! The stores a repository reads and writes through, as `config.toml` (`[tiers]`) sets them
//! up, and what keeps the Arrow index in step with them.
//!
//! The read and write path, bottom up:
//! - the local pack store (`blocks/`);
//! - with `[tiers.s3]`, a [`TieredBlockstore`]: the local store first, the bucket on a miss
//!   (blocks read back are hash-verified and promoted); `tier move` demotes or promotes whole
//!   DAGs, and the daemon's placement runner ([`Repo::start_placement`]) moves cold unpinned
//!   blocks out and hot ones back. Its S3 client lives on its own runtime ([`TierRuntime`]), so
//!   opening works from synchronous code and inside the daemon's runtime alike;
//! - a [`CachedBlockstore`]: the ARC cache of `tiers.cache_bytes` in front of it all, which
//!   records every put, read (with its heat) and delete in the index.
//!
//! The Arrow index (`<repo>/index/`, on unless `tiers.index = false`) is opened against the
//! local store (rebuilt when missing or corrupt, reconciled when its count differs) and is the
//! tiered store's [`TierObserver`], so every copy made or dropped by a move is recorded. Pins
//! are recorded by the pin commands ([`Repo::index_pins`], [`Repo::index_indirect`],
//! [`Repo::index_unpinned`]); GC deletes go through the cache, which flushes them to the index
//! before the store deletes. Index failures are logged, never returned: the store works without
//! its index, which the next open reconciles.

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cid::Cid;
use ipfs_kit_blockstore::hash::RAW_CODEC;
use ipfs_kit_blockstore::{raw_cid_of, Blockstore};
use ipfs_kit_tiers::cache::{CachedBlockstore, SharedStore};
use ipfs_kit_tiers::index::{Index, OpenOutcome, PinType};
use ipfs_kit_tiers::placement::PolicyConfig;
use ipfs_kit_tiers::runner::{self, RoundReport};
use ipfs_kit_tiers::tier::s3::S3Tier;
use ipfs_kit_tiers::tier::{Tier, TierKind, TierObserver};
use ipfs_kit_tiers::tiered::{TierRuntime, TieredBlockstore};
use multihash::Multihash;

use super::{PinFilter, PinKind, Repo, RepoError, RepoInner};
use crate::dag::links::{links, Visited};

/// The index's directory inside a repository.
pub const INDEX_DIR: &str = "index";

/// What [`open_stores`] opened.
pub(crate) struct Stores {
    /// What the repository reads and writes through (the cache when there is one).
    pub(crate) store: Arc<dyn Blockstore>,
    /// The store under the cache (the tiered store, else the local one).
    pub(crate) under_cache: Arc<dyn Blockstore>,
    pub(crate) tiered: Option<Arc<TieredBlockstore>>,
    pub(crate) index: Option<Arc<Index>>,
    /// The index was rebuilt from the store: it knows no pins yet.
    pub(crate) index_rebuilt: bool,
}

fn tier_err(what: &str, e: impl std::fmt::Display) -> RepoError {
    RepoError::Tiers(format!("{what}: {e}"))
}

/// Opens the cache, the index and the tiers that config.toml configures over `local`.
pub(crate) fn open_stores(path: &Path, local: Arc<dyn Blockstore>) -> Result<Stores, RepoError> {
    let config = crate::config::Config::load_with_env(path)
        .map_err(|e| tier_err("reading config.toml", e))?;
    let t = &config.tiers;
    let (index, index_rebuilt) = if t.index {
        let dir = path.join(INDEX_DIR);
        match Index::open_or_rebuild(&dir, local.as_ref()) {
            Ok((ix, outcome)) => {
                if let OpenOutcome::Reconciled { added, removed } = outcome {
                    tracing::info!(added, removed, "index caught up with the blockstore");
                }
                (
                    Some(Arc::new(ix)),
                    matches!(outcome, OpenOutcome::Rebuilt { .. }),
                )
            }
            Err(err) => {
                tracing::warn!(%err, dir = %dir.display(), "index unavailable; running without it");
                (None, false)
            }
        }
    } else {
        (None, false)
    };
    let tiered = match &t.s3 {
        None => None,
        Some(s3) => {
            let runtime = Arc::new(TierRuntime::new().map_err(|e| tier_err("tier runtime", e))?);
            let s3_config = s3.to_s3_config();
            let tier = runtime
                .run(async move { S3Tier::connect(&s3_config).await })
                .map_err(|e| tier_err(&format!("connecting to S3 bucket {}", s3.bucket), e))?;
            tracing::debug!(bucket = %s3.bucket, prefix = %s3.prefix, "opened the S3 tier");
            let remotes: Vec<Arc<dyn Tier>> = vec![Arc::new(tier)];
            let policy = PolicyConfig {
                demote_idle_ms_min: t.demote_idle_secs.saturating_mul(1000),
                ..PolicyConfig::default()
            };
            let capacity = (t.local_capacity_bytes > 0).then_some(t.local_capacity_bytes);
            let mut tiered = TieredBlockstore::new(local.clone(), remotes, runtime)
                .with_policy(policy, capacity);
            if let Some(ix) = &index {
                tiered = tiered.with_observer(ix.clone() as Arc<dyn TierObserver>);
            }
            Some(Arc::new(tiered))
        }
    };
    let under_cache: Arc<dyn Blockstore> = match &tiered {
        Some(t) => t.clone(),
        None => local,
    };
    let store: Arc<dyn Blockstore> = if t.cache_bytes > 0 || index.is_some() {
        let mut cache = CachedBlockstore::new(SharedStore(under_cache.clone()), t.cache_bytes);
        if let Some(ix) = &index {
            cache = cache.with_index(ix.clone());
        }
        Arc::new(cache)
    } else {
        under_cache.clone()
    };
    Ok(Stores {
        store,
        under_cache,
        tiered,
        index,
        index_rebuilt,
    })
}

/// The CIDs of the DAGs under `roots` that `store` holds, without reading raw blocks (they have
/// no links) and skipping what is missing (a block moved to a remote tier is not fetched).
fn walk_present(store: &dyn Blockstore, roots: &[Cid], visited: &mut Visited) {
    let mut stack: Vec<Cid> = roots.to_vec();
    while let Some(cid) = stack.pop() {
        if !visited.insert(&cid) || cid.codec() == RAW_CODEC {
            continue;
        }
        let data = match store.get(&cid) {
            Ok(Some(d)) => d,
            Ok(None) => continue,
            Err(err) => {
                tracing::debug!(%cid, %err, "index: skipping an unreadable block");
                continue;
            }
        };
        if let Ok(children) = links(&cid, &data) {
            stack.extend(children.into_iter().filter(|c| !visited.contains(c)));
        }
    }
}

fn pin_type(kind: PinKind) -> PinType {
    match kind {
        PinKind::Recursive => PinType::Recursive,
        PinKind::Direct => PinType::Direct,
        PinKind::Indirect => PinType::Indirect,
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn log_index<E: std::fmt::Display>(r: Result<(), E>) {
    if let Err(err) = r {
        tracing::warn!(%err, "index: could not record a pin");
    }
}

impl Repo {
    /// The Arrow index, unless `tiers.index = false` (or it could not be opened).
    pub fn index(&self) -> Option<&Arc<Index>> {
        self.inner.index.as_ref()
    }

    /// The local store (under the tiers and the cache): reads here count no access.
    fn local_store(&self) -> &dyn Blockstore {
        match &self.inner.tiers {
            Some(t) => t.local().as_ref(),
            None => self.inner.under_cache.as_ref(),
        }
    }

    /// Records direct or recursive pins of `roots` (with `name`) after they were committed. A
    /// re-pin of the same kind without a name keeps the recorded name, as the pin table does.
    pub(crate) fn index_pins(&self, roots: &[Cid], recursive: bool, name: Option<&str>) {
        let Some(ix) = self.index() else { return };
        let kind = if recursive {
            PinType::Recursive
        } else {
            PinType::Direct
        };
        for root in roots {
            if let Ok(Some(row)) = ix.get(root) {
                if row.pin == kind && name.is_none() {
                    continue;
                }
                // A direct pin does not hide that the block is also inside a recursive DAG.
                if row.pin == PinType::Recursive && !recursive {
                    continue;
                }
            }
            log_index(ix.record_pin(root, kind, name));
        }
    }

    /// Marks the blocks of pinned DAGs (given by multihash) that carry no pin yet as indirect.
    pub(crate) fn index_indirect(&self, blocks: impl Iterator<Item = Multihash<64>>) {
        let Some(ix) = self.index() else { return };
        for mh in blocks {
            let cid = raw_cid_of(mh);
            if let Ok(Some(row)) = ix.get(&cid) {
                if row.pin == PinType::None {
                    log_index(ix.record_pin(&cid, PinType::Indirect, None));
                }
            }
        }
    }

    /// After `roots` lost their pin: every block of their DAGs gets the pin it still has (its
    /// own, indirect through another recursive pin, or none).
    pub(crate) fn index_unpinned(&self, roots: &[Cid]) {
        let Some(ix) = self.index() else { return };
        let local = self.local_store();
        let mut removed = Visited::new();
        let mut gone: Vec<Cid> = Vec::new();
        let mut stack = roots.to_vec();
        // The removed DAGs' blocks, as a list (Visited cannot be iterated).
        while let Some(cid) = stack.pop() {
            if !removed.insert(&cid) {
                continue;
            }
            gone.push(cid);
            if cid.codec() == RAW_CODEC {
                continue;
            }
            if let Ok(Some(data)) = local.get(&cid) {
                if let Ok(children) = links(&cid, &data) {
                    stack.extend(children.into_iter().filter(|c| !removed.contains(c)));
                }
            }
        }
        let stored = match self.stored_pins(PinFilter::All) {
            Ok(s) => s,
            Err(err) => {
                tracing::warn!(%err, "index: could not read the pins");
                return;
            }
        };
        let own: HashMap<Vec<u8>, (PinKind, Option<String>)> = stored
            .iter()
            .map(|(c, k, n)| (c.hash().to_bytes(), (*k, n.clone())))
            .collect();
        let recursive: Vec<Cid> = stored
            .iter()
            .filter(|(_, k, _)| *k == PinKind::Recursive)
            .map(|(c, _, _)| *c)
            .collect();
        let mut still = Visited::new();
        walk_present(local, &recursive, &mut still);
        for cid in gone {
            let r = match own.get(&cid.hash().to_bytes()) {
                Some((k, n)) => ix.record_pin(&cid, pin_type(*k), n.as_deref()),
                None if still.contains(&cid) => ix.record_pin(&cid, PinType::Indirect, None),
                None => ix.record_pin(&cid, PinType::None, None),
            };
            log_index(r);
        }
    }

    /// Records every pin of the repository in the index (after a rebuild).
    pub(crate) fn index_all_pins(&self) -> Result<u64, RepoError> {
        let Some(ix) = self.index() else {
            return Ok(0);
        };
        let mut n = 0;
        for p in self.pin_ls(PinFilter::All, None)? {
            ix.record_pin(&p.cid, pin_type(p.kind), p.name.as_deref())
                .map_err(|e| tier_err("index", e))?;
            n += 1;
        }
        ix.flush().map_err(|e| tier_err("index", e))?;
        Ok(n)
    }

    /// `index rebuild`: the index rebuilt from the local store, then every pin recorded.
    /// Returns (blocks, pins).
    pub fn index_rebuild(&self) -> Result<(u64, u64), RepoError> {
        let Some(ix) = self.index() else {
            return Err(RepoError::Tiers(
                "the index is off (tiers.index = false)".into(),
            ));
        };
        ix.rebuild_from(self.local_store())
            .map_err(|e| tier_err("rebuilding the index", e))?;
        let pins = self.index_all_pins()?;
        ix.compact().map_err(|e| tier_err("index", e))?;
        Ok((ix.len(), pins))
    }

    /// One placement round now (the runner's unit of work): the GC lock is held for reading,
    /// so no sweep runs while blocks move.
    pub fn placement_round(&self) -> Result<RoundReport, RepoError> {
        let (Some(tiered), Some(index)) = (self.tiered(), self.index()) else {
            return Err(RepoError::Tiers(
                "placement needs a configured tier and the index".into(),
            ));
        };
        let _gc = self.inner.gc_lock.read();
        runner::run_round(index, tiered, now_ms()).map_err(|e| tier_err("placement", e))
    }

    /// Starts the placement runner when a tier is configured, the index is on and
    /// `tiers.placement_interval_secs` is not 0: a thread that runs [`Repo::placement_round`]
    /// every interval until the returned handle is dropped. It does not keep the repository
    /// open: it stops by itself once the repository is closed.
    pub fn start_placement(&self) -> Result<Option<PlacementRunner>, RepoError> {
        if self.tiered().is_none() || self.index().is_none() {
            return Ok(None);
        }
        let config = crate::config::Config::load_with_env(self.path())
            .map_err(|e| tier_err("reading config.toml", e))?;
        let secs = config.tiers.placement_interval_secs;
        if secs == 0 {
            return Ok(None);
        }
        let interval = Duration::from_secs(secs);
        let weak: Weak<RepoInner> = Arc::downgrade(&self.inner);
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ipfs-kit-placement".into())
            .spawn(move || loop {
                match stopped.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                let Some(inner) = weak.upgrade() else { return };
                let repo = Repo { inner };
                match repo.placement_round() {
                    Ok(r) if r.planned > 0 => tracing::debug!(?r, "placement round done"),
                    Ok(_) => {}
                    Err(err) => tracing::warn!(%err, "placement round failed"),
                }
            })
            .map_err(|e| tier_err("starting the placement runner", e))?;
        tracing::info!(interval_secs = secs, "placement runner started");
        Ok(Some(PlacementRunner {
            stop: Some(stop),
            thread: Some(thread),
        }))
    }

    /// `tier ls`: every tier kind in eviction order with its block count (`None`: not
    /// configured) and a description.
    pub fn tier_ls(&self) -> Result<Vec<TierLine>, RepoError> {
        let counts: Vec<(TierKind, Result<u64, String>)> = match self.tiered() {
            Some(t) => t
                .counts()
                .map_err(|e| tier_err("counting blocks", e))?
                .into_iter()
                .map(|(k, r)| (k, r.map_err(|e| e.to_string())))
                .collect(),
            None => vec![(TierKind::Local, Ok(self.local_store().stat()?.blocks))],
        };
        let config = crate::config::Config::load_with_env(self.path())
            .map_err(|e| tier_err("reading config.toml", e))?;
        let mut out = Vec::new();
        for kind in TierKind::EVICTION_ORDER {
            let detail = match kind {
                TierKind::Memory => "the block cache in front of the local store".to_string(),
                TierKind::Local => format!("{}", self.path().join("blocks").display()),
                TierKind::S3 => match &config.tiers.s3 {
                    Some(s3) => format!(
                        "s3://{}/{}{}",
                        s3.bucket,
                        s3.prefix,
                        s3.endpoint
                            .as_deref()
                            .map(|e| format!(" at {e}"))
                            .unwrap_or_default()
                    ),
                    None => "not configured".into(),
                },
                TierKind::Cluster => "cluster peers (the cluster pinset)".into(),
                TierKind::Storacha | TierKind::Filecoin => "not supported yet".into(),
            };
            let blocks = counts
                .iter()
                .find(|(k, _)| *k == kind)
                .map(|(_, r)| r.clone());
            out.push(TierLine {
                kind,
                blocks,
                detail,
            });
        }
        Ok(out)
    }

    /// `tier stat`: the tiers holding `cid`, hottest first (empty: none).
    pub fn tier_stat(&self, cid: &Cid) -> Result<Vec<TierKind>, RepoError> {
        Ok(match self.tiered() {
            Some(t) => t
                .locate(cid)
                .map_err(|e| tier_err("locating", e))?
                .iter()
                .collect(),
            None if self.local_store().has(cid)? => vec![TierKind::Local],
            None => vec![],
        })
    }

    /// `tier move`: the whole DAG under `root` to `to`. To a remote tier: every block is
    /// written, confirmed, then dropped locally. To local: the DAG is fetched pipelined, many
    /// reads in flight, each block verified ([`TieredBlockstore::promote_dag`]). The GC lock is
    /// held for reading.
    pub fn tier_move(&self, root: &Cid, to: TierKind) -> Result<TierMoveReport, RepoError> {
        let Some(t) = self.tiered() else {
            return Err(RepoError::Tiers(
                "no storage tier is configured: add a [tiers.s3] section to config.toml".into(),
            ));
        };
        if to != TierKind::Local && t.remote(to).is_none() {
            return Err(RepoError::Tiers(format!("the {to} tier is not configured")));
        }
        let _gc = self.inner.gc_lock.read();
        if to == TierKind::Local {
            let links: ipfs_kit_tiers::tiered::LinksFn =
                Arc::new(|cid: &Cid, data: &bytes::Bytes| {
                    links(cid, data).map_err(|e| e.to_string())
                });
            let (r, blocks) = t
                .promote_dag(std::slice::from_ref(root), links)
                .map_err(|e| tier_err("promoting", e))?;
            if let Some(missing) = r.missing.first() {
                return Err(RepoError::Tiers(format!("block {missing} is in no tier")));
            }
            self.flush_index();
            return Ok(TierMoveReport {
                blocks,
                moved: r.moved,
                bytes: r.bytes,
            });
        }
        let mut seen = Visited::new();
        let mut frontier = vec![*root];
        let mut all = Vec::new();
        let mut report = TierMoveReport::default();
        seen.insert(root);
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for cid in &frontier {
                if cid.codec() == RAW_CODEC {
                    continue;
                }
                let data = t
                    .get(cid)?
                    .ok_or_else(|| RepoError::Tiers(format!("block {cid} is in no tier")))?;
                for child in links(cid, &data)? {
                    if seen.insert(&child) {
                        next.push(child);
                    }
                }
            }
            all.extend(frontier);
            frontier = next;
        }
        let r = t.move_to(&all, to).map_err(|e| tier_err("moving", e))?;
        if let Some(missing) = r.missing.first() {
            return Err(RepoError::Tiers(format!(
                "block {missing} is not local: `tier move` reads blocks to demote from the local store"
            )));
        }
        report.moved = r.moved;
        report.bytes = r.bytes;
        report.blocks = all.len() as u64;
        self.flush_index();
        Ok(report)
    }

    fn flush_index(&self) {
        if let Some(ix) = self.index() {
            if let Err(err) = ix.flush() {
                tracing::warn!(%err, "index: flush after a move failed");
            }
        }
    }
}

/// One line of `tier ls`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierLine {
    pub kind: TierKind,
    /// Blocks held (`None`: not configured; `Err`: the tier could not be listed).
    pub blocks: Option<Result<u64, String>>,
    pub detail: String,
}

/// What `tier move` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TierMoveReport {
    /// Blocks of the DAG.
    pub blocks: u64,
    /// Blocks copied to the target.
    pub moved: u64,
    pub bytes: u64,
}

/// The running placement runner; dropping it stops the thread (and waits for its round).
pub struct PlacementRunner {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for PlacementRunner {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
