//! The tiered blockstore: the local store first, then the remote tiers on a miss, promoting
//! blocks back on access; and the mover that carries out placement decisions safely.
//!
//! [`TieredBlockstore`] implements the synchronous [`Blockstore`] trait on top of async tiers.
//! How it avoids blocking inside an async context: it owns a [`TierRuntime`] (a small
//! multi-threaded tokio runtime of its own). A synchronous call *spawns* its tier future on that
//! runtime and waits for the result on a `std::sync::mpsc` channel; it never calls `block_on`
//! (which panics inside a runtime) and never waits on a runtime it is itself running on, so it
//! cannot deadlock even when a caller breaks the `Blockstore` contract and calls from an async
//! task instead of `spawn_blocking`. Local disk work inside tier futures goes through
//! `spawn_blocking`. The S3 client's connection pool lives on that runtime too, so every
//! request of a repository shares one pool.
//!
//! Safety of moves ([`TieredBlockstore::execute`]): the block is read and hash-verified at the
//! source, written to the target (with retries), then the target must confirm it (`has`)
//! before the source copy is deleted. A move interrupted anywhere leaves at least one copy.
//! Every copy made or dropped is reported to the [`TierObserver`] (the Arrow index).

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use cid::Cid;
use futures::stream::{self, StreamExt, TryStreamExt};
use ipfs_kit_blockstore::{Block, Blockstore, BlockstoreError, CorruptBlock, StoreStat};

use crate::placement::{self, BlockStats, Move, MoveReason, PolicyConfig, TierSet, TierState};
use crate::tier::{
    retry, verify_block, CancellationToken, NoopObserver, RetryPolicy, Tier, TierError, TierKind,
    TierObserver,
};

/// Remote reads in flight at once while promoting many blocks (a file's leaves).
pub const PROMOTE_PARALLEL_GETS_MAX: usize = 32;
/// Moves (read, write, confirm, delete) in flight at once.
pub const MOVE_PARALLEL_MAX: usize = 32;
/// Blocks per local `put_many` while promoting.
pub const PROMOTE_BATCH_BLOCKS_MAX: usize = 64;
/// Worker threads of the tier runtime (network-bound work; hashing runs on the blocking pool).
pub const TIER_RUNTIME_WORKERS: usize = 2;

/// A tokio runtime owned by the tiers, and the bridge from synchronous code into it.
pub struct TierRuntime {
    rt: Option<tokio::runtime::Runtime>,
}

impl TierRuntime {
    pub fn new() -> Result<Self, TierError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(TIER_RUNTIME_WORKERS)
            .thread_name("ipfs-kit-tiers")
            .enable_all()
            .build()
            .map_err(|e| BlockstoreError::Engine(format!("starting the tier runtime: {e}")))?;
        Ok(Self { rt: Some(rt) })
    }

    pub fn handle(&self) -> Option<tokio::runtime::Handle> {
        self.rt.as_ref().map(|rt| rt.handle().clone())
    }

    /// Runs `fut` on the tier runtime and waits for its result on this thread (see the module
    /// doc for why this is safe from any thread).
    pub fn run<T, F>(&self, fut: F) -> Result<T, TierError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, TierError>> + Send + 'static,
    {
        let stopped =
            || TierError::Local(BlockstoreError::Engine("the tier runtime stopped".into()));
        let handle = self.handle().ok_or_else(stopped)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().map_err(|_| stopped())?
    }
}

impl Drop for TierRuntime {
    fn drop(&mut self) {
        // Dropping a runtime inside an async context panics; shutting down in the background
        // does not.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// What a batch of moves did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MoveReport {
    /// Blocks now held by their target.
    pub moved: u64,
    /// Bytes of those blocks.
    pub bytes: u64,
    /// Blocks already at the target (nothing written).
    pub already: u64,
    /// Blocks found in no source tier.
    pub missing: Vec<Cid>,
}

/// The links of a block (the node crate knows the codecs), for [`TieredBlockstore::promote_dag`].
pub type LinksFn = Arc<dyn Fn(&Cid, &Bytes) -> Result<Vec<Cid>, String> + Send + Sync>;

/// Where [`TieredBlockstore::promote_dag`] found a block.
enum Fetched {
    Remote(TierKind, Bytes),
    Local(Bytes),
    /// Local and raw: no links to read.
    LocalRaw,
    Missing,
}

/// The local store in front of remote tiers.
pub struct TieredBlockstore {
    local: Arc<dyn Blockstore>,
    /// Remote tiers, hottest first (eviction order).
    remotes: Vec<Arc<dyn Tier>>,
    observer: Arc<dyn TierObserver>,
    runtime: Arc<TierRuntime>,
    retry: RetryPolicy,
    policy: PolicyConfig,
    /// `None`: promote every block read from a remote tier.
    local_capacity_bytes: Option<u64>,
    promote_on_access: bool,
    cancel: CancellationToken,
}

impl TieredBlockstore {
    /// `remotes` are sorted into eviction order; the runtime must be the one their clients were
    /// built on.
    pub fn new(
        local: Arc<dyn Blockstore>,
        mut remotes: Vec<Arc<dyn Tier>>,
        runtime: Arc<TierRuntime>,
    ) -> Self {
        remotes.sort_by_key(|t| t.kind());
        Self {
            local,
            remotes,
            observer: Arc::new(NoopObserver),
            runtime,
            retry: RetryPolicy::default(),
            policy: PolicyConfig::default(),
            local_capacity_bytes: None,
            promote_on_access: true,
            cancel: CancellationToken::new(),
        }
    }

    pub fn with_observer(mut self, observer: Arc<dyn TierObserver>) -> Self {
        self.observer = observer;
        self
    }
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
    pub fn with_policy(mut self, policy: PolicyConfig, local_capacity_bytes: Option<u64>) -> Self {
        self.policy = policy;
        self.local_capacity_bytes = local_capacity_bytes;
        self
    }
    pub fn with_promote_on_access(mut self, on: bool) -> Self {
        self.promote_on_access = on;
        self
    }

    pub fn local(&self) -> &Arc<dyn Blockstore> {
        &self.local
    }
    pub fn remotes(&self) -> &[Arc<dyn Tier>] {
        &self.remotes
    }
    pub fn runtime(&self) -> &Arc<TierRuntime> {
        &self.runtime
    }
    pub fn remote(&self, kind: TierKind) -> Option<&Arc<dyn Tier>> {
        self.remotes.iter().find(|t| t.kind() == kind)
    }

    /// Which tiers hold `cid` (the local store and every remote asked).
    pub fn locate(&self, cid: &Cid) -> Result<TierSet, TierError> {
        let mut set = TierSet::EMPTY;
        if self.local.has(cid)? {
            set.insert(TierKind::Local);
        }
        let remotes = self.remotes.clone();
        let (cid, retry_policy, cancel) = (*cid, self.retry, self.cancel.clone());
        let found = self.runtime.run(async move {
            let mut found = Vec::new();
            for t in remotes {
                let has = retry(retry_policy, &cancel, || t.has(&cid, &cancel)).await?;
                if has {
                    found.push(t.kind());
                }
            }
            Ok(found)
        })?;
        for k in found {
            set.insert(k);
        }
        Ok(set)
    }

    /// Blocks per tier: the local store's count and each remote's listing.
    pub fn counts(&self) -> Result<Vec<(TierKind, Result<u64, TierError>)>, TierError> {
        let mut out = vec![(TierKind::Local, Ok(self.local.stat()?.blocks))];
        let remotes = self.remotes.clone();
        let cancel = self.cancel.clone();
        let retry_policy = self.retry;
        let listed = self.runtime.run(async move {
            let mut v = Vec::new();
            for t in remotes {
                let n = retry(retry_policy, &cancel, || t.list(&cancel))
                    .await
                    .map(|l| l.len() as u64);
                v.push((t.kind(), n));
            }
            Ok(v)
        })?;
        out.extend(listed);
        Ok(out)
    }

    /// Copies blocks that are not local back from the remote tiers, [`PROMOTE_PARALLEL_GETS_MAX`]
    /// reads at a time; the remote copies stay. Blocks found nowhere are listed as missing.
    pub fn promote_many(&self, cids: &[Cid]) -> Result<MoveReport, TierError> {
        let mut todo = Vec::new();
        let mut report = MoveReport::default();
        for cid in cids {
            if self.local.has(cid)? {
                report.already += 1;
            } else {
                todo.push(*cid);
            }
        }
        let (remotes, local, observer) = (
            self.remotes.clone(),
            self.local.clone(),
            self.observer.clone(),
        );
        let (retry_policy, cancel) = (self.retry, self.cancel.clone());
        let fetched = self.runtime.run(async move {
            let mut report = MoveReport::default();
            let mut fetches = stream::iter(todo)
                .map(|cid| {
                    let (remotes, cancel) = (remotes.clone(), cancel.clone());
                    async move {
                        let got = fetch_remote(&remotes, &cid, retry_policy, &cancel).await?;
                        Ok::<_, TierError>((cid, got))
                    }
                })
                .buffer_unordered(PROMOTE_PARALLEL_GETS_MAX);
            let mut batch: Vec<Block> = Vec::with_capacity(PROMOTE_BATCH_BLOCKS_MAX);
            loop {
                let next = fetches.try_next().await?;
                let done = next.is_none();
                match next {
                    Some((cid, Some((kind, data)))) => {
                        observer.on_stored(&cid, kind);
                        report.bytes += data.len() as u64;
                        // Verified by the tier and by `fetch_remote`: no third hash.
                        batch.push(Block::new_unchecked(cid, data));
                    }
                    Some((cid, None)) => report.missing.push(cid),
                    None => {}
                }
                if batch.len() >= PROMOTE_BATCH_BLOCKS_MAX || (done && !batch.is_empty()) {
                    let blocks = std::mem::take(&mut batch);
                    let local = local.clone();
                    let blocks = tokio::task::spawn_blocking(move || {
                        local.put_many(&blocks).map(|()| blocks)
                    })
                    .await
                    .map_err(|e| BlockstoreError::Engine(format!("local write task: {e}")))??;
                    for b in &blocks {
                        observer.on_stored(b.cid(), TierKind::Local);
                    }
                    report.moved += blocks.len() as u64;
                }
                if done {
                    return Ok(report);
                }
            }
        })?;
        report.moved = fetched.moved;
        report.bytes = fetched.bytes;
        report.missing = fetched.missing;
        Ok(report)
    }

    /// Makes the whole DAG under `roots` local, pipelined: a block that is not local is read
    /// from the remote tiers ([`PROMOTE_PARALLEL_GETS_MAX`] reads in flight), verified, and its
    /// children are queued as soon as it arrives (no barrier between levels); blocks are written
    /// locally in batches of [`PROMOTE_BATCH_BLOCKS_MAX`]. A block already local is read locally
    /// for its links (raw blocks have none and are not read). Each fetched block is hashed twice
    /// (by the tier, then here) and copied once (the response body into one buffer). Returns
    /// the report and the number of blocks in the DAG.
    pub fn promote_dag(
        &self,
        roots: &[Cid],
        links: LinksFn,
    ) -> Result<(MoveReport, u64), TierError> {
        let (remotes, local, observer) = (
            self.remotes.clone(),
            self.local.clone(),
            self.observer.clone(),
        );
        let (retry_policy, cancel) = (self.retry, self.cancel.clone());
        let roots = roots.to_vec();
        self.runtime.run(async move {
            use futures::stream::FuturesUnordered;
            let mut report = MoveReport::default();
            let mut seen: HashSet<Cid> = HashSet::new();
            let mut queue: std::collections::VecDeque<Cid> = std::collections::VecDeque::new();
            for r in roots {
                if seen.insert(r) {
                    queue.push_back(r);
                }
            }
            let mut in_flight = FuturesUnordered::new();
            let mut batch: Vec<Block> = Vec::with_capacity(PROMOTE_BATCH_BLOCKS_MAX);
            loop {
                while in_flight.len() < PROMOTE_PARALLEL_GETS_MAX {
                    let Some(cid) = queue.pop_front() else { break };
                    let (remotes, local, cancel) = (remotes.clone(), local.clone(), cancel.clone());
                    in_flight.push(async move {
                        if local.has(&cid)? {
                            if cid.codec() == ipfs_kit_blockstore::hash::RAW_CODEC {
                                return Ok::<_, TierError>((cid, Fetched::LocalRaw));
                            }
                            let got = tokio::task::spawn_blocking(move || local.get(&cid))
                                .await
                                .map_err(|e| {
                                    BlockstoreError::Engine(format!("local read: {e}"))
                                })??;
                            return Ok(match got {
                                Some(data) => (cid, Fetched::Local(data)),
                                None => (cid, Fetched::Missing),
                            });
                        }
                        Ok(
                            match fetch_remote(&remotes, &cid, retry_policy, &cancel).await? {
                                Some((kind, data)) => (cid, Fetched::Remote(kind, data)),
                                None => (cid, Fetched::Missing),
                            },
                        )
                    });
                }
                let next = in_flight.next().await.transpose()?;
                let done = next.is_none() && queue.is_empty();
                let data = match next {
                    Some((cid, Fetched::Remote(kind, data))) => {
                        observer.on_stored(&cid, kind);
                        report.bytes += data.len() as u64;
                        // Verified by the tier and by `fetch_remote`: no third hash.
                        batch.push(Block::new_unchecked(cid, data.clone()));
                        Some((cid, data))
                    }
                    Some((cid, Fetched::Local(data))) => {
                        report.already += 1;
                        Some((cid, data))
                    }
                    Some((_, Fetched::LocalRaw)) => {
                        report.already += 1;
                        None
                    }
                    Some((cid, Fetched::Missing)) => {
                        report.missing.push(cid);
                        None
                    }
                    None => None,
                };
                if let Some((cid, data)) = data {
                    if cid.codec() != ipfs_kit_blockstore::hash::RAW_CODEC {
                        let children = links(&cid, &data).map_err(|reason| {
                            TierError::Local(BlockstoreError::Engine(format!(
                                "links of {cid}: {reason}"
                            )))
                        })?;
                        for c in children {
                            if seen.insert(c) {
                                queue.push_back(c);
                            }
                        }
                    }
                }
                if batch.len() >= PROMOTE_BATCH_BLOCKS_MAX || (done && !batch.is_empty()) {
                    let blocks = std::mem::take(&mut batch);
                    let local = local.clone();
                    let blocks = tokio::task::spawn_blocking(move || {
                        local.put_many(&blocks).map(|()| blocks)
                    })
                    .await
                    .map_err(|e| BlockstoreError::Engine(format!("local write task: {e}")))??;
                    for b in &blocks {
                        observer.on_stored(b.cid(), TierKind::Local);
                    }
                    report.moved += blocks.len() as u64;
                }
                if done {
                    return Ok((report, seen.len() as u64));
                }
            }
        })
    }

    /// Moves every block to `to` (`Local` promotes and keeps remote copies; a remote kind
    /// demotes and deletes the local copy once `to` confirmed it).
    pub fn move_to(&self, cids: &[Cid], to: TierKind) -> Result<MoveReport, TierError> {
        if to == TierKind::Local {
            return self.promote_many(cids);
        }
        let moves = cids
            .iter()
            .map(|cid| Move {
                cid: *cid,
                size_bytes: 0,
                from: TierKind::Local,
                to,
                delete_source: true,
                reason: MoveReason::Explicit,
            })
            .collect();
        self.execute(moves)
    }

    /// Carries out placement decisions, [`MOVE_PARALLEL_MAX`] at a time: read and verify at the
    /// source, write to the target, confirm with `has`, then (if asked) delete the source copy.
    /// Stops at the first failure; moves done before it stay done and every block keeps at
    /// least one copy.
    pub fn execute(&self, moves: Vec<Move>) -> Result<MoveReport, TierError> {
        for m in &moves {
            for k in [m.from, m.to] {
                if k != TierKind::Local && self.remote(k).is_none() {
                    return Err(TierError::NotConfigured(k));
                }
            }
        }
        let this = Mover {
            local: self.local.clone(),
            remotes: self.remotes.clone(),
            observer: self.observer.clone(),
            retry: self.retry,
            cancel: self.cancel.clone(),
        };
        self.runtime.run(async move {
            let this = Arc::new(this);
            let outcomes: Vec<Outcome> = stream::iter(moves)
                .map(|m| {
                    let this = this.clone();
                    async move { this.move_one(m).await }
                })
                .buffer_unordered(MOVE_PARALLEL_MAX)
                .try_collect()
                .await?;
            let mut report = MoveReport::default();
            for o in outcomes {
                match o {
                    Outcome::Moved { bytes } => {
                        report.moved += 1;
                        report.bytes += bytes;
                    }
                    Outcome::Already => report.already += 1,
                    Outcome::Missing(cid) => report.missing.push(cid),
                }
            }
            Ok(report)
        })
    }

    /// Plans with the policy from the given statistics and this store's tiers, then executes.
    pub fn rebalance(
        &self,
        blocks: &[BlockStats],
        tiers: &[TierState],
        now_ms: u64,
    ) -> Result<MoveReport, TierError> {
        let moves = placement::plan(blocks, tiers, &self.policy, now_ms);
        tracing::info!(moves = moves.len(), "rebalancing tiers");
        self.execute(moves)
    }

    /// The policy this store plans with.
    pub fn policy(&self) -> &PolicyConfig {
        &self.policy
    }

    /// What the policy needs to know of every configured tier: the local store's use against
    /// its budget, and each remote's nominal latency and cost ([`remote_state`]).
    pub fn tier_states(&self) -> Result<Vec<TierState>, TierError> {
        let mut out = vec![self.local_state()?];
        out.extend(self.remotes.iter().map(|t| remote_state(t.kind())));
        Ok(out)
    }

    fn local_state(&self) -> Result<TierState, BlockstoreError> {
        Ok(TierState {
            kind: TierKind::Local,
            capacity_bytes: self.local_capacity_bytes,
            used_bytes: self.local.stat()?.data_bytes,
            latency_ms: 0,
            cost_micros_per_gib_month: 0,
            writable: true,
        })
    }

    /// Tells the observer that `blocks` are now in the local tier.
    fn stored_locally(&self, blocks: &[Block]) {
        for b in blocks {
            self.observer.on_stored(b.cid(), TierKind::Local);
        }
    }
}

impl Drop for TieredBlockstore {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Nominal figures of a remote tier for the policy: S3 is unbounded, ~50 ms a block and
/// 23,000 micros per GiB-month (AWS S3 Standard's list price); the slots are not writable.
pub fn remote_state(kind: TierKind) -> TierState {
    let (latency_ms, cost_micros_per_gib_month, writable) = match kind {
        TierKind::S3 => (50, 23_000, true),
        TierKind::Cluster => (20, 0, true),
        TierKind::Storacha | TierKind::Filecoin => (5_000, 5_000, false),
        TierKind::Memory | TierKind::Local => (0, 0, true),
    };
    TierState {
        kind,
        capacity_bytes: None,
        used_bytes: 0,
        latency_ms,
        cost_micros_per_gib_month,
        writable,
    }
}

/// The parts of a [`TieredBlockstore`] a move needs, owned so they can live on the runtime.
struct Mover {
    local: Arc<dyn Blockstore>,
    remotes: Vec<Arc<dyn Tier>>,
    observer: Arc<dyn TierObserver>,
    retry: RetryPolicy,
    cancel: CancellationToken,
}

enum Outcome {
    Moved { bytes: u64 },
    Already,
    Missing(Cid),
}

impl Mover {
    fn tier(&self, kind: TierKind) -> Result<Arc<dyn Tier>, TierError> {
        self.remotes
            .iter()
            .find(|t| t.kind() == kind)
            .cloned()
            .ok_or(TierError::NotConfigured(kind))
    }

    async fn local_op<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Blockstore) -> Result<T, BlockstoreError> + Send + 'static,
    ) -> Result<T, TierError> {
        let local = self.local.clone();
        tokio::task::spawn_blocking(move || f(local.as_ref()))
            .await
            .map_err(|e| BlockstoreError::Engine(format!("local store task: {e}")))?
            .map_err(TierError::from)
    }

    async fn has(&self, kind: TierKind, cid: Cid) -> Result<bool, TierError> {
        if kind == TierKind::Local {
            return self.local_op(move |s| s.has(&cid)).await;
        }
        let t = self.tier(kind)?;
        retry(self.retry, &self.cancel, || t.has(&cid, &self.cancel)).await
    }

    async fn move_one(&self, m: Move) -> Result<Outcome, TierError> {
        let cid = m.cid;
        let already = self.has(m.to, cid).await?;
        let mut bytes = 0;
        if !already {
            // Read and verify at the source.
            let data = if m.from == TierKind::Local {
                self.local_op(move |s| s.get(&cid)).await?
            } else {
                let t = self.tier(m.from)?;
                retry(self.retry, &self.cancel, || t.get(&cid, &self.cancel)).await?
            };
            let Some(data) = data else {
                return Ok(Outcome::Missing(cid));
            };
            verify_block(m.from, &cid, &data)?;
            bytes = data.len() as u64;
            // Write to the target.
            if m.to == TierKind::Local {
                let block = Block::new(cid, data)?;
                self.local_op(move |s| s.put(&block)).await?;
            } else {
                let t = self.tier(m.to)?;
                retry(self.retry, &self.cancel, || {
                    t.put(&cid, data.clone(), &self.cancel)
                })
                .await?;
            }
            // The target must confirm before anything is deleted.
            if !self.has(m.to, cid).await? {
                return Err(TierError::NotAcknowledged { tier: m.to, cid });
            }
        }
        self.observer.on_stored(&cid, m.to);
        if m.delete_source {
            if m.from == TierKind::Local {
                self.local_op(move |s| s.delete_many(&[cid])).await?;
            } else {
                let t = self.tier(m.from)?;
                retry(self.retry, &self.cancel, || t.delete(&cid, &self.cancel)).await?;
            }
            self.observer.on_removed(&cid, m.from);
        }
        tracing::debug!(%cid, from = %m.from, to = %m.to, "moved");
        Ok(if already {
            Outcome::Already
        } else {
            Outcome::Moved { bytes }
        })
    }
}

/// The first remote tier (hottest first) holding `cid`, with its verified bytes.
async fn fetch_remote(
    remotes: &[Arc<dyn Tier>],
    cid: &Cid,
    retry_policy: RetryPolicy,
    cancel: &CancellationToken,
) -> Result<Option<(TierKind, Bytes)>, TierError> {
    for t in remotes {
        let got = retry(retry_policy, cancel, || t.get(cid, cancel)).await?;
        if let Some(data) = got {
            // Assert in pairs: the tier verified; verify again before trusting it here.
            verify_block(t.kind(), cid, &data)?;
            return Ok(Some((t.kind(), data)));
        }
    }
    Ok(None)
}

fn to_blockstore_error(e: TierError) -> BlockstoreError {
    match e {
        TierError::Local(e) => e,
        TierError::Corrupt { cid, .. } => BlockstoreError::Corrupt(CorruptBlock { cid }),
        TierError::BlockTooLarge {
            size_bytes,
            max_bytes,
        } => BlockstoreError::BlockTooLarge {
            size_bytes: usize::try_from(size_bytes).unwrap_or(usize::MAX),
            max_bytes,
        },
        e => BlockstoreError::Engine(e.to_string()),
    }
}

impl Blockstore for TieredBlockstore {
    fn get(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
        if let Some(data) = self.local.get(cid)? {
            return Ok(Some(data));
        }
        if self.remotes.is_empty() {
            return Ok(None);
        }
        let remotes = self.remotes.clone();
        let (c, retry_policy, cancel) = (*cid, self.retry, self.cancel.clone());
        let found = self
            .runtime
            .run(async move { fetch_remote(&remotes, &c, retry_policy, &cancel).await })
            .map_err(to_blockstore_error)?;
        let Some((kind, data)) = found else {
            return Ok(None);
        };
        self.observer.on_stored(cid, kind);
        if self.promote_on_access {
            let stats = BlockStats {
                cid: *cid,
                size_bytes: data.len() as u64,
                pinned: false,
                heat: 0.0,
                last_access_ms: 0,
                locations: TierSet::of(&[kind]),
            };
            if placement::on_access(&stats, &self.local_state()?, &self.policy).is_some() {
                self.local.put(&Block::new(*cid, data.clone())?)?;
                self.observer.on_stored(cid, TierKind::Local);
                tracing::debug!(%cid, from = %kind, "promoted on access");
            }
        }
        Ok(Some(data))
    }

    fn get_many(&self, cids: &[Cid]) -> Vec<Result<Option<Bytes>, BlockstoreError>> {
        // The local tier's together; what it lacks, one by one from the remote tiers.
        let local = self.local.get_many(cids);
        local
            .into_iter()
            .zip(cids)
            .map(|(r, cid)| match r {
                Ok(None) if !self.remotes.is_empty() => self.get(cid),
                r => r,
            })
            .collect()
    }

    fn has(&self, cid: &Cid) -> Result<bool, BlockstoreError> {
        if self.local.has(cid)? {
            return Ok(true);
        }
        if self.remotes.is_empty() {
            return Ok(false);
        }
        Ok(!self.locate(cid).map_err(to_blockstore_error)?.is_empty())
    }

    fn size_of(&self, cid: &Cid) -> Result<Option<u64>, BlockstoreError> {
        if let Some(n) = self.local.size_of(cid)? {
            return Ok(Some(n));
        }
        Ok(self.get(cid)?.map(|d| d.len() as u64))
    }

    fn put_many(&self, blocks: &[Block]) -> Result<(), BlockstoreError> {
        self.local.put_many(blocks)?;
        self.stored_locally(blocks);
        Ok(())
    }

    fn put_many_cold(&self, blocks: &[Block]) -> Result<(), BlockstoreError> {
        self.local.put_many_cold(blocks)?;
        self.stored_locally(blocks);
        Ok(())
    }

    fn delete_many(&self, cids: &[Cid]) -> Result<u64, BlockstoreError> {
        let mut present: HashSet<Cid> = HashSet::new();
        for cid in cids {
            if self.local.has(cid)? {
                present.insert(*cid);
            }
        }
        self.local.delete_many(cids)?;
        for cid in &present {
            self.observer.on_removed(cid, TierKind::Local);
        }
        if !self.remotes.is_empty() {
            let (remotes, retry_policy, cancel) =
                (self.remotes.clone(), self.retry, self.cancel.clone());
            let list = cids.to_vec();
            let removed = self
                .runtime
                .run(async move {
                    let mut removed = Vec::new();
                    for t in &remotes {
                        let hits: Vec<Option<Cid>> = stream::iter(list.iter().copied())
                            .map(|cid| {
                                let (t, cancel) = (t.clone(), cancel.clone());
                                async move {
                                    if !retry(retry_policy, &cancel, || t.has(&cid, &cancel))
                                        .await?
                                    {
                                        return Ok::<_, TierError>(None);
                                    }
                                    retry(retry_policy, &cancel, || t.delete(&cid, &cancel))
                                        .await?;
                                    Ok(Some(cid))
                                }
                            })
                            .buffer_unordered(MOVE_PARALLEL_MAX)
                            .try_collect()
                            .await?;
                        removed.extend(hits.into_iter().flatten().map(|c| (c, t.kind())));
                    }
                    Ok(removed)
                })
                .map_err(to_blockstore_error)?;
            for (cid, kind) in removed {
                self.observer.on_removed(&cid, kind);
                present.insert(cid);
            }
        }
        Ok(present.len() as u64)
    }

    fn all_cids(&self) -> Result<Vec<Cid>, BlockstoreError> {
        let mut cids = self.local.all_cids()?;
        if self.remotes.is_empty() {
            return Ok(cids);
        }
        let mut seen: HashSet<_> = cids.iter().map(|c| *c.hash()).collect();
        let (remotes, retry_policy, cancel) =
            (self.remotes.clone(), self.retry, self.cancel.clone());
        let listed = self
            .runtime
            .run(async move {
                let mut all = Vec::new();
                for t in remotes {
                    all.extend(retry(retry_policy, &cancel, || t.list(&cancel)).await?);
                }
                Ok(all)
            })
            .map_err(to_blockstore_error)?;
        for cid in listed {
            if seen.insert(*cid.hash()) {
                cids.push(ipfs_kit_blockstore::raw_cid_of(*cid.hash()));
            }
        }
        Ok(cids)
    }

    fn sync(&self) -> Result<(), BlockstoreError> {
        self.local.sync()
    }

    /// The local store's numbers (remote counts: [`TieredBlockstore::counts`]).
    fn stat(&self) -> Result<StoreStat, BlockstoreError> {
        self.local.stat()
    }

    fn reclaim_space(&self) -> Result<u64, BlockstoreError> {
        self.local.reclaim_space()
    }
}
