//! The Arrow index: columnar metadata of every stored block (size, codec, pin, tiers, first seen,
//! last access, access count, heat, replication), in `<repo>/index/`.
//!
//! **Layout.** The bulk of the rows is the *base*: one record batch sorted by multihash, stored
//! twice at each generation — as Parquet (`base-<gen>.parquet`, compact, what other tools read)
//! and as an Arrow IPC file (`snapshot-<gen>.arrow`) that [`Index::open`] memory-maps and decodes
//! in place, so opening costs the same for ten rows or ten million. Changes since the base live
//! in a small in-memory map (multihash → row or tombstone) and are appended on [`Index::flush`]
//! as *delta segments* (`delta-<gen>-<seq>.parquet`), never rewriting anything. When the deltas
//! grow past [`COMPACT_DELTA_ROWS`] rows or [`COMPACT_DELTA_FILES`] files, [`Index::compact`]
//! merges base and deltas into generation `gen+1`. See [`files`] for the crash-safety rules.
//!
//! **Lookups.** By CID: the delta map, then a binary search of the mapped `cid` column (sorted by
//! multihash): O(log n) over the mapping, nothing hashed or built at open. Filters and sorts:
//! Arrow compute kernels over the mapped columns ([`query`]).
//!
//! **Consistency with the blockstore.** The index may lag the blockstore, never contradict it:
//! writers record a put *after* the store acknowledged it and flush a delete *before* they delete
//! from the store ([`crate::cache::CachedBlockstore`] does both). Unflushed records lost to
//! `kill -9` only make the index lag. [`Index::open_or_rebuild`] rebuilds from the blockstore
//! (`all_cids` + `size_of`) when the index is missing or corrupt, and reconciles it (adds the
//! missing blocks, drops the rows of blocks gone) when its row count differs from the store's.

mod files;
mod mmap;
mod observer;
pub mod query;
pub mod schema;

pub use files::Manifest;
pub use query::{Query, QueryError, QueryResult};
pub use schema::{IndexRow, PinType, CID_BYTES_MAX, PIN_NAME_BYTES_MAX};

use arrow_array::cast::AsArray;
use arrow_array::{BinaryArray, RecordBatch};
use arrow_schema::ArrowError;
use cid::Cid;
use ipfs_kit_blockstore::{Blockstore, BlockstoreError};
use parking_lot::RwLock;
use parquet::errors::ParquetError;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Tiers the index can name (the width of the `tiers` bitmask).
pub const TIER_COUNT_MAX: usize = 32;
/// Changed rows after which a record call flushes a delta segment by itself.
pub const DELTA_FLUSH_ROWS: usize = 4096;
/// Rows in the delta map after which a flush compacts.
pub const COMPACT_DELTA_ROWS: usize = 262_144;
/// Delta segments after which a flush compacts.
pub const COMPACT_DELTA_FILES: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no index in {0}")]
    Missing(PathBuf),
    #[error("corrupt index: {0}")]
    Corrupt(String),
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] ParquetError),
    #[error("blockstore: {0}")]
    Blockstore(#[from] BlockstoreError),
    #[error("more than {max} tiers")]
    TooManyTiers { max: usize },
    #[error("pin name of {bytes} bytes (max {max})")]
    PinNameTooLong { bytes: usize, max: usize },
    #[error("CID of {bytes} bytes (max {max})")]
    CidTooLong { bytes: usize, max: usize },
    #[error(transparent)]
    Query(#[from] QueryError),
}

/// What [`Index::open_or_rebuild`] had to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenOutcome {
    /// The index opened and agreed with the blockstore's block count.
    Opened,
    /// It opened but its row count differed; it was reconciled with the store.
    Reconciled { added: u64, removed: u64 },
    /// It was missing or corrupt and was rebuilt from the store.
    Rebuilt { rows: u64 },
}

struct State {
    manifest: Manifest,
    /// Generation `manifest.generation`'s rows, sorted by multihash (mapped when read from disk).
    base: RecordBatch,
    /// Changes since the base: multihash → row, or `None` for a deleted block.
    delta: BTreeMap<Vec<u8>, Option<IndexRow>>,
    /// Keys changed since the last flush.
    dirty: BTreeSet<Vec<u8>>,
    /// The manifest's tier table changed since it was last written.
    tiers_dirty: bool,
    next_seq: u64,
    delta_files: usize,
    /// Live rows (base minus deleted plus added).
    live: u64,
}

/// The index of one repository. All methods take `&self`; an internal lock serialises writers.
pub struct Index {
    dir: PathBuf,
    state: RwLock<State>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn base_cids(base: &RecordBatch) -> &BinaryArray {
    base.column(schema::COL_CID).as_binary::<i32>()
}

impl State {
    fn lookup(&self, key: &[u8]) -> Result<Option<IndexRow>, IndexError> {
        if let Some(d) = self.delta.get(key) {
            return Ok(d.clone());
        }
        match schema::search(base_cids(&self.base), key) {
            Ok(i) => schema::row_at(&self.base, i).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Sets the row of `key` (or deletes it), keeping the live count.
    fn set(&mut self, key: Vec<u8>, was_present: bool, row: Option<IndexRow>) {
        match (was_present, row.is_some()) {
            (false, true) => self.live += 1,
            (true, false) => self.live = self.live.saturating_sub(1),
            _ => {}
        }
        self.dirty.insert(key.clone());
        self.delta.insert(key, row);
    }

    fn tier_bit(&mut self, name: &str) -> Result<u32, IndexError> {
        if let Some(i) = self.manifest.tiers.iter().position(|t| t == name) {
            return Ok(1 << i);
        }
        if self.manifest.tiers.len() >= TIER_COUNT_MAX {
            return Err(IndexError::TooManyTiers {
                max: TIER_COUNT_MAX,
            });
        }
        self.manifest.tiers.push(name.to_string());
        self.tiers_dirty = true;
        Ok(1 << (self.manifest.tiers.len() - 1))
    }

    /// Live rows whose block only a remote tier holds (tier bits set, none of them local):
    /// the rows a local blockstore does not count.
    fn remote_only_rows(&self) -> u64 {
        let local = self.local_bits();
        let remote_only = |t: u32| t != 0 && t & local == 0;
        let tiers = self
            .base
            .column(schema::COL_TIERS)
            .as_primitive::<arrow_array::types::UInt32Type>();
        let mut n = tiers.values().iter().filter(|t| remote_only(**t)).count() as u64;
        let cids = base_cids(&self.base);
        for (key, row) in &self.delta {
            if let Ok(i) = schema::search(cids, key) {
                if remote_only(tiers.value(i)) {
                    n = n.saturating_sub(1);
                }
            }
            if row.as_ref().is_some_and(|r| remote_only(r.tiers)) {
                n += 1;
            }
        }
        n
    }

    /// Tier bits of `memory` and `local`: copies that vanish with the blockstore.
    fn local_bits(&self) -> u32 {
        self.manifest
            .tiers
            .iter()
            .enumerate()
            .filter(|(_, t)| *t == "memory" || *t == "local")
            .fold(0, |m, (i, _)| m | (1 << i))
    }
}

fn check_cid(cid: &Cid) -> Result<(), IndexError> {
    let bytes = cid.encoded_len();
    if bytes > CID_BYTES_MAX {
        return Err(IndexError::CidTooLong {
            bytes,
            max: CID_BYTES_MAX,
        });
    }
    Ok(())
}

impl Index {
    /// Creates an empty index in `dir` (replacing whatever manifest was there).
    pub fn create(dir: &Path) -> Result<Index, IndexError> {
        std::fs::create_dir_all(dir).map_err(|source| IndexError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let manifest = Manifest {
            format: files::FORMAT_VERSION,
            ..Manifest::default()
        };
        files::write_manifest(dir, &manifest)?;
        files::remove_other_generations(dir, 0)?;
        Self::open(dir)
    }

    /// Opens the index in `dir`: maps the snapshot (falling back to the Parquet base if the
    /// snapshot is unreadable) and replays the delta segments.
    pub fn open(dir: &Path) -> Result<Index, IndexError> {
        let started = Instant::now();
        let manifest =
            files::read_manifest(dir)?.ok_or_else(|| IndexError::Missing(dir.to_path_buf()))?;
        let mut manifest = manifest;
        let base = if manifest.generation == 0 {
            RecordBatch::new_empty(schema::schema())
        } else {
            let snap = dir.join(files::snapshot_name(manifest.generation));
            match files::map_snapshot(&snap, manifest.snapshot_bytes) {
                Ok(b) => b,
                Err(err) => {
                    tracing::warn!(%err, "index: snapshot unreadable, loading the Parquet base");
                    let batches = files::read_parquet(
                        &dir.join(files::base_name(manifest.generation)),
                        false,
                    )?;
                    let batch = arrow_select::concat::concat_batches(&schema::schema(), &batches)?;
                    manifest.snapshot_bytes = files::write_snapshot(
                        dir,
                        &files::snapshot_name(manifest.generation),
                        &batch,
                    )?;
                    files::write_manifest(dir, &manifest)?;
                    batch
                }
            }
        };
        if base.num_rows() as u64 != manifest.rows {
            return Err(IndexError::Corrupt(format!(
                "base has {} rows, manifest says {}",
                base.num_rows(),
                manifest.rows
            )));
        }
        let mut state = State {
            live: manifest.rows,
            manifest,
            base,
            delta: BTreeMap::new(),
            dirty: BTreeSet::new(),
            tiers_dirty: false,
            next_seq: 0,
            delta_files: 0,
        };
        for (seq, path) in files::list_deltas(dir, state.manifest.generation)? {
            for batch in files::read_parquet(&path, true)? {
                let deleted = batch.column(schema::COL_DELETED).as_boolean().clone();
                for i in 0..batch.num_rows() {
                    let row = schema::row_at(&batch, i)?;
                    let key = row.key();
                    let was = state.lookup(&key)?.is_some();
                    let new = (!deleted.value(i)).then_some(row);
                    state.set(key, was, new);
                }
            }
            state.next_seq = seq + 1;
            state.delta_files += 1;
        }
        state.dirty.clear();
        tracing::debug!(
            rows = state.live,
            deltas = state.delta_files,
            ms = started.elapsed().as_millis() as u64,
            "index opened"
        );
        Ok(Index {
            dir: dir.to_path_buf(),
            state: RwLock::new(state),
        })
    }

    /// Opens the index, rebuilding it from `store` when it is missing or corrupt, and
    /// reconciling it with `store` when the row counts differ.
    pub fn open_or_rebuild(
        dir: &Path,
        store: &dyn Blockstore,
    ) -> Result<(Index, OpenOutcome), IndexError> {
        let index = match Self::open(dir) {
            Ok(i) => i,
            Err(err @ (IndexError::Missing(_) | IndexError::Corrupt(_)))
            | Err(err @ (IndexError::Arrow(_) | IndexError::Parquet(_))) => {
                // A new repository has no index yet: building it is routine, not a warning.
                if matches!(err, IndexError::Missing(_)) {
                    tracing::info!(%err, "index: building it from the blockstore");
                } else {
                    tracing::warn!(%err, "index: rebuilding from the blockstore");
                }
                let index = Self::rebuild(dir, store)?;
                let rows = index.len();
                return Ok((index, OpenOutcome::Rebuilt { rows }));
            }
            Err(e) => return Err(e),
        };
        // Rows of blocks that only a remote tier holds are not in `store`'s count.
        if index.local_len() == store.stat()?.blocks {
            return Ok((index, OpenOutcome::Opened));
        }
        let (added, removed) = index.reconcile(store)?;
        Ok((index, OpenOutcome::Reconciled { added, removed }))
    }

    /// Builds a new index of every block of `store` (sizes from the store; codec `raw`, as the
    /// store keeps multihashes only), replacing whatever was in `dir`.
    pub fn rebuild(dir: &Path, store: &dyn Blockstore) -> Result<Index, IndexError> {
        std::fs::create_dir_all(dir).map_err(|source| IndexError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let now = now_ms();
        let mut rows = Vec::new();
        for cid in store.all_cids()? {
            if let Some(size) = store.size_of(&cid)? {
                rows.push(IndexRow::new(cid, size, now));
            }
        }
        let manifest = Manifest {
            format: files::FORMAT_VERSION,
            generation: highest_generation(dir)?,
            ..Manifest::default()
        };
        Self::write_new_base(dir, manifest, rows)
    }

    /// Replaces this open index's contents with a fresh index of every block of `store` (as
    /// [`Index::rebuild`] does on disk), for a process that holds the index open.
    pub fn rebuild_from(&self, store: &dyn Blockstore) -> Result<(), IndexError> {
        let now = now_ms();
        let mut rows = Vec::new();
        for cid in store.all_cids()? {
            if let Some(size) = store.size_of(&cid)? {
                rows.push(IndexRow::new(cid, size, now));
            }
        }
        rows.sort_by_cached_key(IndexRow::key);
        rows.dedup_by(|a, b| a.cid.hash() == b.cid.hash());
        let mut b = schema::RowsBuilder::with_capacity(rows.len());
        for r in &rows {
            b.push(r);
        }
        drop(rows);
        let batch = b.finish()?;
        let mut s = self.state.write();
        let manifest = Manifest {
            format: files::FORMAT_VERSION,
            generation: highest_generation(&self.dir)?.max(s.manifest.generation),
            ..Manifest::default()
        };
        let manifest = Self::write_base_batch(&self.dir, manifest, batch)?;
        let snap = self.dir.join(files::snapshot_name(manifest.generation));
        s.base = files::map_snapshot(&snap, manifest.snapshot_bytes)?;
        s.live = manifest.rows;
        s.manifest = manifest;
        s.delta.clear();
        s.dirty.clear();
        s.tiers_dirty = false;
        s.next_seq = 0;
        s.delta_files = 0;
        Ok(())
    }

    /// Writes `rows` (any order, unique multihashes) as the base of a new generation after
    /// `manifest.generation`, then opens it. Used by [`Index::rebuild`] and bulk loads.
    pub fn write_new_base(
        dir: &Path,
        manifest: Manifest,
        mut rows: Vec<IndexRow>,
    ) -> Result<Index, IndexError> {
        rows.sort_by_cached_key(IndexRow::key);
        rows.dedup_by(|a, b| a.cid.hash() == b.cid.hash());
        let mut b = schema::RowsBuilder::with_capacity(rows.len());
        for r in &rows {
            b.push(r);
        }
        drop(rows);
        Self::write_base_batch(dir, manifest, b.finish()?)?;
        Self::open(dir)
    }

    /// Writes a base batch (sorted by multihash, unique) as generation `manifest.generation+1`
    /// and publishes it. Large loads build the batch themselves (see `index_bench`).
    pub fn write_base_batch(
        dir: &Path,
        mut manifest: Manifest,
        batch: RecordBatch,
    ) -> Result<Manifest, IndexError> {
        schema::check_schema(&batch, false)?;
        let generation = manifest.generation + 1;
        manifest.base_bytes = files::write_parquet(
            dir,
            &files::base_name(generation),
            std::slice::from_ref(&batch),
        )?;
        manifest.snapshot_bytes =
            files::write_snapshot(dir, &files::snapshot_name(generation), &batch)?;
        manifest.rows = batch.num_rows() as u64;
        manifest.generation = generation;
        manifest.format = files::FORMAT_VERSION;
        files::write_manifest(dir, &manifest)?;
        files::remove_other_generations(dir, generation)?;
        Ok(manifest)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Live rows.
    pub fn len(&self) -> u64 {
        self.state.read().live
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Live rows of blocks the local store holds (all rows but those only a remote tier holds).
    pub fn local_len(&self) -> u64 {
        let s = self.state.read();
        s.live.saturating_sub(s.remote_only_rows())
    }

    /// A copy of the manifest as last loaded or written (plus unsaved tier names).
    pub fn manifest(&self) -> Manifest {
        self.state.read().manifest.clone()
    }

    /// The tier table: bit i of the `tiers` column is the i-th name.
    pub fn tier_names(&self) -> Vec<String> {
        self.state.read().manifest.tiers.clone()
    }

    /// Rows changed since the base (flushed or not) and delta files on disk.
    pub fn delta_stats(&self) -> (usize, usize) {
        let s = self.state.read();
        (s.delta.len(), s.delta_files)
    }

    /// The row of a block, by CID (any version: rows are keyed by multihash).
    pub fn get(&self, cid: &Cid) -> Result<Option<IndexRow>, IndexError> {
        self.state.read().lookup(&cid.hash().to_bytes())
    }

    /// Applies `f` to the row of `cid` (creating it with `create` if absent and `create` is
    /// `Some`), then flushes if enough rows changed.
    fn update(
        &self,
        cid: &Cid,
        create: Option<u64>,
        f: impl FnOnce(&mut State, &mut IndexRow) -> Result<(), IndexError>,
    ) -> Result<(), IndexError> {
        check_cid(cid)?;
        let key = cid.hash().to_bytes();
        let flush_now = {
            let mut s = self.state.write();
            let existing = s.lookup(&key)?;
            let was = existing.is_some();
            let mut row = match (existing, create) {
                (Some(r), _) => r,
                (None, Some(size)) => IndexRow::new(*cid, size, now_ms()),
                (None, None) => return Ok(()),
            };
            f(&mut s, &mut row)?;
            s.set(key, was, Some(row));
            s.dirty.len() >= DELTA_FLUSH_ROWS
        };
        if flush_now {
            self.flush()?;
        }
        Ok(())
    }

    /// A block was stored (after the store acknowledged it).
    pub fn record_put(&self, cid: &Cid, size: u64) -> Result<(), IndexError> {
        self.update(cid, Some(size), |_, r| {
            r.size = size;
            // The store reports `raw` for everything; a caller that knows better wins.
            if cid.codec() != ipfs_kit_blockstore::hash::RAW_CODEC {
                r.codec = cid.codec();
            }
            Ok(())
        })
    }

    /// A block was read; `heat` is the cache's score for it, if known.
    pub fn record_access(&self, cid: &Cid, size: u64, heat: Option<f32>) -> Result<(), IndexError> {
        let now = now_ms();
        self.update(cid, Some(size), |_, r| {
            r.access_count = r.access_count.saturating_add(1);
            r.last_access_ms = Some(now);
            if let Some(h) = heat {
                r.heat = h;
            }
            Ok(())
        })
    }

    /// Sets the pin of a stored block (ignored for a block the index does not hold).
    pub fn record_pin(
        &self,
        cid: &Cid,
        pin: PinType,
        name: Option<&str>,
    ) -> Result<(), IndexError> {
        if let Some(n) = name {
            if n.len() > PIN_NAME_BYTES_MAX {
                return Err(IndexError::PinNameTooLong {
                    bytes: n.len(),
                    max: PIN_NAME_BYTES_MAX,
                });
            }
        }
        self.update(cid, None, |_, r| {
            r.pin = pin;
            r.pin_name = name.map(str::to_owned);
            Ok(())
        })
    }

    /// Sets the tiers holding a stored block; replication becomes their count.
    pub fn record_tiers(&self, cid: &Cid, tiers: &[&str]) -> Result<(), IndexError> {
        self.update(cid, None, |s, r| {
            let mut mask = 0;
            for t in tiers {
                mask |= s.tier_bit(t)?;
            }
            r.tiers = mask;
            r.replication = mask.count_ones() as u16;
            Ok(())
        })
    }

    /// Adds (`held`) or removes one tier of a block; replication follows the tier count.
    pub fn record_tier(&self, cid: &Cid, tier: &str, held: bool) -> Result<(), IndexError> {
        self.update(cid, None, |s, r| {
            let bit = s.tier_bit(tier)?;
            r.tiers = if held { r.tiers | bit } else { r.tiers & !bit };
            r.replication = r.tiers.count_ones() as u16;
            Ok(())
        })
    }

    /// Sets the replication factor reported by the cluster.
    pub fn record_replication(&self, cid: &Cid, copies: u16) -> Result<(), IndexError> {
        self.update(cid, None, |_, r| {
            r.replication = copies;
            Ok(())
        })
    }

    /// Blocks about to be deleted from the store. Call [`Index::flush`] before deleting them,
    /// so the index never lists a block the store no longer has.
    pub fn record_delete(&self, cid: &Cid) -> Result<(), IndexError> {
        let key = cid.hash().to_bytes();
        let mut s = self.state.write();
        if s.lookup(&key)?.is_some() {
            s.set(key, true, None);
        }
        Ok(())
    }

    /// Appends the rows changed since the last flush as one delta segment (and the tier table
    /// to the manifest if it grew); compacts when the deltas have grown large.
    pub fn flush(&self) -> Result<(), IndexError> {
        let compact = {
            let mut s = self.state.write();
            if s.tiers_dirty {
                files::write_manifest(&self.dir, &s.manifest)?;
                s.tiers_dirty = false;
            }
            if s.dirty.is_empty() {
                return Ok(());
            }
            let mut b = schema::RowsBuilder::with_capacity(s.dirty.len());
            for key in &s.dirty {
                if let Some(entry) = s.delta.get(key) {
                    match entry {
                        Some(row) => b.push_delta(&row.cid, Some(row)),
                        None => {
                            let cid = cid_of_key(key)?;
                            b.push_delta(&cid, None)
                        }
                    }
                }
            }
            let batch = b.finish_delta()?;
            let name = files::delta_name(s.manifest.generation, s.next_seq);
            files::write_parquet(&self.dir, &name, &[batch])?;
            s.next_seq += 1;
            s.delta_files += 1;
            s.dirty.clear();
            s.delta.len() > COMPACT_DELTA_ROWS || s.delta_files > COMPACT_DELTA_FILES
        };
        if compact {
            self.compact()?;
        }
        Ok(())
    }

    /// Merges the base and every change (flushed or not) into a new generation: Parquet base,
    /// snapshot, manifest; then maps the new snapshot and drops the old files.
    pub fn compact(&self) -> Result<(), IndexError> {
        let mut s = self.state.write();
        if s.delta.is_empty() && !s.tiers_dirty {
            return Ok(());
        }
        let merged = merge(&s.base, &s.delta)?;
        let manifest = Self::write_base_batch(&self.dir, s.manifest.clone(), merged)?;
        let snap = self.dir.join(files::snapshot_name(manifest.generation));
        s.base = files::map_snapshot(&snap, manifest.snapshot_bytes)?;
        s.live = manifest.rows;
        s.manifest = manifest;
        s.delta.clear();
        s.dirty.clear();
        s.tiers_dirty = false;
        s.next_seq = 0;
        s.delta_files = 0;
        Ok(())
    }

    /// Makes the index agree with `store`: rows for blocks it lacks, no rows for blocks the
    /// store lost (unless a non-local tier holds them). Returns `(added, removed)`.
    pub fn reconcile(&self, store: &dyn Blockstore) -> Result<(u64, u64), IndexError> {
        let in_store: HashSet<Vec<u8>> = store
            .all_cids()?
            .iter()
            .map(|c| c.hash().to_bytes())
            .collect();
        let (mut added, mut removed) = (0, 0);
        // Rows whose block is gone.
        let stale: Vec<Cid> = {
            let s = self.state.read();
            let local = s.local_bits();
            let cids = base_cids(&s.base);
            let tiers = s
                .base
                .column(schema::COL_TIERS)
                .as_primitive::<arrow_array::types::UInt32Type>();
            let mut out = Vec::new();
            for i in 0..s.base.num_rows() {
                let key = schema::key_of(cids.value(i));
                if s.delta.contains_key(key) || in_store.contains(key) {
                    continue;
                }
                if tiers.value(i) & !local == 0 {
                    out.push(cid_of_key(key)?);
                }
            }
            for (key, row) in &s.delta {
                if let Some(r) = row {
                    if !in_store.contains(key) && r.tiers & !local == 0 {
                        out.push(r.cid);
                    }
                }
            }
            out
        };
        for cid in &stale {
            self.record_delete(cid)?;
            removed += 1;
        }
        for key in &in_store {
            let known = self.state.read().lookup(key)?.is_some();
            if !known {
                let cid = cid_of_key(key)?;
                if let Some(size) = store.size_of(&cid)? {
                    self.record_put(&cid, size)?;
                    added += 1;
                }
            }
        }
        self.flush()?;
        tracing::info!(added, removed, "index reconciled with the blockstore");
        Ok((added, removed))
    }

    /// Runs a query (see [`query`]).
    pub fn query(&self, q: &Query) -> Result<QueryResult, IndexError> {
        let s = self.state.read();
        query::run(&s.base, &s.delta, &s.manifest.tiers, q)
    }

    /// Writes every live row to a Parquet file readable by pyarrow, polars and DuckDB
    /// (`pin_type` as text, `tiers` as a list of tier names). Returns the rows written.
    pub fn export_parquet(&self, path: &Path) -> Result<u64, IndexError> {
        let s = self.state.read();
        query::export(&s.base, &s.delta, &s.manifest.tiers, path)
    }
}

/// Rows in a Parquet file, from its footer (to check an export without reading it).
pub fn parquet_row_count(path: &Path) -> Result<u64, IndexError> {
    use parquet::file::reader::FileReader as _;
    let f = std::fs::File::open(path).map_err(|source| IndexError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let r = parquet::file::reader::SerializedFileReader::new(f)?;
    Ok(r.metadata().file_metadata().num_rows().max(0) as u64)
}

/// The raw CID of a multihash key.
fn cid_of_key(key: &[u8]) -> Result<Cid, IndexError> {
    let mh = multihash::Multihash::<64>::from_bytes(key)
        .map_err(|e| IndexError::Corrupt(format!("bad multihash key: {e}")))?;
    Ok(ipfs_kit_blockstore::raw_cid_of(mh))
}

/// The highest generation named by any file in `dir` (0 if none), so a rebuild never reuses
/// the name of a file that may still be mapped.
fn highest_generation(dir: &Path) -> Result<u64, IndexError> {
    let mut g = 0;
    let rd = std::fs::read_dir(dir).map_err(|source| IndexError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let found = files::parse_delta_name(name)
            .map(|(g, _)| g)
            .or_else(|| {
                name.strip_prefix("base-")
                    .and_then(|r| r.strip_suffix(".parquet"))
                    .and_then(|r| r.parse().ok())
            })
            .or_else(|| {
                name.strip_prefix("snapshot-")
                    .and_then(|r| r.strip_suffix(".arrow"))
                    .and_then(|r| r.parse().ok())
            });
        if let Some(found) = found {
            g = g.max(found);
        }
    }
    if let Ok(Some(m)) = files::read_manifest(dir) {
        g = g.max(m.generation);
    }
    Ok(g)
}

/// Base rows not overridden by the delta, merged in key order with the delta's live rows.
fn merge(
    base: &RecordBatch,
    delta: &BTreeMap<Vec<u8>, Option<IndexRow>>,
) -> Result<RecordBatch, IndexError> {
    let mut b = schema::RowsBuilder::with_capacity(delta.len());
    let mut delta_keys = Vec::with_capacity(delta.len());
    for (k, r) in delta {
        if let Some(r) = r {
            b.push(r);
            delta_keys.push(k.as_slice());
        }
    }
    let added = b.finish()?;
    let cids = base_cids(base);
    let mut indices: Vec<(usize, usize)> = Vec::with_capacity(base.num_rows() + added.num_rows());
    let (mut i, mut j) = (0usize, 0usize);
    while i < base.num_rows() || j < delta_keys.len() {
        let take_base = match (i < base.num_rows(), j < delta_keys.len()) {
            (true, true) => schema::key_of(cids.value(i)) < delta_keys[j],
            (true, false) => true,
            _ => false,
        };
        if take_base {
            if !delta.contains_key(schema::key_of(cids.value(i))) {
                indices.push((0, i));
            }
            i += 1;
        } else {
            indices.push((1, j));
            j += 1;
        }
    }
    Ok(arrow_select::interleave::interleave_record_batch(
        &[base, &added],
        &indices,
    )?)
}
