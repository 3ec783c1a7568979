//! The persistent default store: a log-structured pack store (bitcask-like).
//!
//! Design (see `record.rs` for the byte format):
//! - Blocks are appended to segment files of at most [`segment::SEGMENT_BYTES_MAX`] as
//!   self-checking records; deletes append tombstones. Nothing is rewritten in place.
//! - An in-memory index maps each multihash to its record. It is rebuilt on open from the
//!   index checkpoint ([`hint`]) plus a scan of whatever was appended after it, or from a scan
//!   of every record header when there is no usable checkpoint.
//! - One writer at a time (a mutex) appends a whole `put_many` batch; any number of readers
//!   read concurrently with positional reads, outside every lock.
//! - [`Blockstore::put_many_cold`] appends past the page cache where the file system allows
//!   (`O_DIRECT`, see [`direct`] and [`DiskOptions::direct_writes`]); `put_many`, deletes and
//!   reads go through it.
//! - Durability: `put_many` returns once the kernel has the bytes (survives `kill -9`);
//!   `sync` (or [`DiskOptions::sync_on_put`]) adds `fdatasync` of the active segment and the
//!   directory (survives power loss). A torn tail of the newest segment is cut off on open;
//!   there, records whose crc fails are skipped. Damage inside an older (sealed) segment is
//!   logged and left on disk, and only the records before it are indexed.
//! - Compaction ([`DiskBlockstore::compact`]) copies the live records of mostly-dead segments
//!   into new segments, syncs them, swaps the index, then deletes the old files.
//! - A lock file (`flock`) keeps a second process (or a second open) out.
//!
//! Assumptions about the disk: a `write` that returned is seen by later reads even if the
//! process dies; after power loss, unsynced data may be lost or torn but synced data is intact.

mod compaction;
mod direct;
mod hint;
mod index;
mod record;
mod segment;

pub use compaction::CompactStats;

use crate::{
    hash, limits, raw_cid_of, Block, Blockstore, BlockstoreError, CorruptBlock, StoreStat,
};
use bytes::Bytes;
use cid::Cid;
use index::{Index, Loc};
use multihash::Multihash;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::IoSlice;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A `put_many` batch is written in `writev` chunks of at most this many bytes: 1 MiB plus room
/// for the headers of four 256 KiB blocks. Measured: 1 MiB chunks absorb 256 KiB blocks at
/// ~3.3 GB/s here, 4 MiB at ~1.3 GB/s and 16 MiB at ~0.4-0.9 GB/s (page-cache copy slows
/// down with larger single writes).
const WRITE_CHUNK_BYTES_MAX: usize = (1 << 20) + (1 << 12);
const LOCK_FILE: &str = "repo.lock";

/// Tuning of a [`DiskBlockstore`].
#[derive(Clone, Debug)]
pub struct DiskOptions {
    /// `fdatasync` after every `put_many`/`delete_many` (durable against power loss).
    pub sync_on_put: bool,
    /// Roll to a new segment once the active one would grow past this.
    pub segment_bytes_max: u64,
    /// [`Blockstore::reclaim_space`] compacts segments whose live fraction is below this.
    pub compact_live_ratio_min: f64,
    /// [`Blockstore::put_many_cold`] appends with direct I/O, past the page cache (see the
    /// `direct` module), where the file system supports it; else, or once a direct write has
    /// failed, through the page cache as `put_many` does.
    pub direct_writes: bool,
}

impl Default for DiskOptions {
    fn default() -> Self {
        Self {
            sync_on_put: false,
            segment_bytes_max: segment::SEGMENT_BYTES_MAX,
            compact_live_ratio_min: 0.5,
            direct_writes: true,
        }
    }
}

struct Segment {
    file: Arc<File>,
    len: u64,
}

struct State {
    index: Index,
    segments: BTreeMap<u32, Segment>,
}

struct Writer {
    id: u32,
    file: Arc<File>,
    len: u64,
    /// Segments sealed since the last sync: rolling does not wait for the disk, `sync` does.
    unsynced: Vec<(u32, Arc<File>)>,
    /// A segment file was created since the last directory sync.
    dir_dirty: bool,
    /// The active segment's direct appender, for cold appends; `None`: every append goes
    /// through the page cache.
    direct: Option<direct::Direct>,
    /// An append through the page cache changed the active segment's last partial page since
    /// the direct appender last saw it.
    tail_stale: bool,
}

/// The persistent pack store. See the module docs.
pub struct DiskBlockstore {
    dir: PathBuf,
    opts: DiskOptions,
    state: RwLock<State>,
    writer: Mutex<Writer>,
    /// Cleared by [`DiskBlockstore::close_without_checkpoint`].
    checkpoint_on_drop: bool,
    _lock: File,
}

impl DiskBlockstore {
    /// Opens (creating if missing) the store in `dir` with default options.
    pub fn open(dir: &Path) -> Result<Self, BlockstoreError> {
        Self::open_with(dir, DiskOptions::default())
    }

    pub fn open_with(dir: &Path, opts: DiskOptions) -> Result<Self, BlockstoreError> {
        std::fs::create_dir_all(dir).map_err(|e| BlockstoreError::io(dir, e))?;
        let lock = take_lock(dir)?;
        let (index, lens) = recover(dir)?;
        let mut segments = BTreeMap::new();
        for (&id, &len) in &lens {
            let file = Arc::new(segment::open_segment(dir, id, false)?);
            segments.insert(id, Segment { file, len });
        }
        let writer = match segments.iter().next_back() {
            Some((&id, s)) if s.len < opts.segment_bytes_max => Writer {
                id,
                file: s.file.clone(),
                len: s.len,
                unsynced: Vec::new(),
                dir_dirty: false,
                direct: direct_appender(dir, &opts, id, &s.file, s.len),
                tail_stale: false,
            },
            last => {
                // The full segment may hold unsynced writes from before a crash: the next
                // `sync` covers it.
                let unsynced: Vec<_> = last
                    .map(|(&id, s)| (id, s.file.clone()))
                    .into_iter()
                    .collect();
                let id = last.map_or(1, |(&id, _)| id + 1);
                let file = Arc::new(segment::open_segment(dir, id, true)?);
                segments.insert(
                    id,
                    Segment {
                        file: file.clone(),
                        len: 0,
                    },
                );
                Writer {
                    id,
                    direct: direct_appender(dir, &opts, id, &file, 0),
                    file,
                    len: 0,
                    unsynced,
                    dir_dirty: true,
                    tail_stale: false,
                }
            }
        };
        tracing::debug!(dir = %dir.display(), blocks = index.len(), "opened disk blockstore");
        Ok(Self {
            dir: dir.to_path_buf(),
            opts,
            state: RwLock::new(State { index, segments }),
            writer: Mutex::new(writer),
            checkpoint_on_drop: true,
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the index checkpoint now (it is also written on drop and after compaction).
    pub fn checkpoint(&self) -> Result<(), BlockstoreError> {
        let _w = self.writer.lock();
        self.write_hint()
    }

    fn write_hint(&self) -> Result<(), BlockstoreError> {
        let st = self.state.read();
        let segs: Vec<(u32, u64)> = st.segments.iter().map(|(&id, s)| (id, s.len)).collect();
        hint::save(&self.dir, &segs, st.index.len() as u64, st.index.iter())
    }

    /// Closes without writing the checkpoint, leaving the directory as a crash would (any
    /// older checkpoint stays): for crash-recovery tests.
    #[doc(hidden)]
    pub fn close_without_checkpoint(mut self) {
        self.checkpoint_on_drop = false;
    }

    /// Reads every stored block and checks it against its multihash, one thread per core (at
    /// most 8). Returns the
    /// CIDs (raw codec) of the corrupt blocks.
    pub fn verify_all(&self) -> Result<Vec<Cid>, BlockstoreError> {
        let entries: Vec<(Multihash<64>, Loc, Arc<File>)> = {
            let st = self.state.read();
            let mut v = Vec::with_capacity(st.index.len());
            for (mh, loc) in st.index.iter() {
                let seg = st
                    .segments
                    .get(&loc.seg)
                    .ok_or_else(|| missing_segment(loc))?;
                v.push((*mh, *loc, seg.file.clone()));
            }
            v
        };
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
        let per = entries.len().div_ceil(threads).max(1);
        let results: Vec<Result<Vec<Cid>, BlockstoreError>> = std::thread::scope(|s| {
            let handles: Vec<_> = entries
                .chunks(per)
                .map(|part| {
                    s.spawn(move || {
                        let mut bad = Vec::new();
                        for (mh, loc, file) in part {
                            let cid = raw_cid_of(*mh);
                            match read_record(file, loc, &cid, Check::Hash) {
                                Ok(_) => {}
                                Err(BlockstoreError::Corrupt(_)) => bad.push(cid),
                                Err(e) => return Err(e),
                            }
                        }
                        Ok(bad)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(BlockstoreError::Engine("verify thread panicked".into()))
                    })
                })
                .collect()
        });
        let mut bad = Vec::new();
        for r in results {
            bad.extend(r?);
        }
        Ok(bad)
    }

    /// Seals the active segment (its sync is left to the next `sync`, so a large import does
    /// not stall on the disk at a segment boundary) and starts a new one. `next_id` must be
    /// above every existing segment id.
    fn roll(&self, w: &mut Writer, next_id: u32) -> Result<(), BlockstoreError> {
        if w.direct.is_some() {
            direct::trim(&w.file, w.len)
                .map_err(|e| BlockstoreError::io(segment::segment_path(&self.dir, w.id), e))?;
        }
        w.unsynced.push((w.id, w.file.clone()));
        self.start_segment(w, next_id)
    }

    /// Points the writer at a new, empty segment `id`.
    fn start_segment(&self, w: &mut Writer, next_id: u32) -> Result<(), BlockstoreError> {
        let file = Arc::new(segment::open_segment(&self.dir, next_id, true)?);
        w.dir_dirty = true;
        self.state.write().segments.insert(
            next_id,
            Segment {
                file: file.clone(),
                len: 0,
            },
        );
        w.direct = direct_appender(&self.dir, &self.opts, next_id, &file, 0);
        w.tail_stale = false;
        w.id = next_id;
        w.file = file;
        w.len = 0;
        Ok(())
    }

    /// Appends one chunk of records (headers in `headers`, data slices alongside) to the
    /// active segment, rolling first if it would overflow; past the page cache when `cold`
    /// and the writer can. Returns the offset written at.
    fn append(
        &self,
        w: &mut Writer,
        headers: &[u8],
        parts: &[(std::ops::Range<usize>, &[u8])],
        chunk_bytes: u64,
        cold: bool,
    ) -> Result<u64, BlockstoreError> {
        if w.len > 0 && w.len + chunk_bytes > self.opts.segment_bytes_max {
            self.roll(w, w.id + 1)?;
        }
        let start = w.len;
        let io = |id, e| BlockstoreError::io(segment::segment_path(&self.dir, id), e);
        if let (true, Some(d)) = (cold, &mut w.direct) {
            let mut slices = Vec::with_capacity(parts.len() * 2);
            for (hr, data) in parts {
                slices.push(&headers[hr.clone()]);
                slices.push(*data);
            }
            let fresh = if w.tail_stale {
                d.load_tail(&w.file, start)
            } else {
                Ok(())
            };
            match fresh.and_then(|()| d.append(start, &slices)) {
                Ok(()) => {
                    w.tail_stale = false;
                    w.len += chunk_bytes;
                    self.set_segment_len(w);
                    return Ok(start);
                }
                Err(e) => {
                    // Appends go through the page cache from now on, this one again.
                    tracing::warn!(
                        segment = w.id,
                        error = %e,
                        "a direct write failed; writing through the page cache"
                    );
                    w.direct = None;
                    cut_back(w, start);
                }
            }
        }
        let mut slices = Vec::with_capacity(parts.len() * 2);
        for (hr, data) in parts {
            slices.push(IoSlice::new(&headers[hr.clone()]));
            if !data.is_empty() {
                slices.push(IoSlice::new(data));
            }
        }
        if let Err(e) = segment::write_all_vectored_at(&w.file, &mut slices, start) {
            cut_back(w, start);
            return Err(io(w.id, e));
        }
        w.tail_stale = w.direct.is_some();
        w.len += chunk_bytes;
        self.set_segment_len(w);
        Ok(start)
    }

    fn set_segment_len(&self, w: &Writer) {
        if let Some(s) = self.state.write().segments.get_mut(&w.id) {
            s.len = w.len;
        }
    }

    /// fdatasyncs the segments sealed since the last sync, the active one, and the directory
    /// if a segment was created.
    fn sync_writer(&self, w: &mut Writer) -> Result<(), BlockstoreError> {
        let io = |id, e| BlockstoreError::io(segment::segment_path(&self.dir, id), e);
        for (id, f) in &w.unsynced {
            f.sync_data().map_err(|e| io(*id, e))?;
        }
        w.unsynced.clear();
        w.file.sync_data().map_err(|e| io(w.id, e))?;
        if w.dir_dirty {
            segment::sync_dir(&self.dir)?;
            w.dir_dirty = false;
        }
        Ok(())
    }
}

impl Drop for DiskBlockstore {
    fn drop(&mut self) {
        let w = self.writer.get_mut();
        if w.direct.is_some() {
            if let Err(e) = direct::trim(&w.file, w.len) {
                tracing::warn!(error = %e, "could not cut the active segment's padding on close");
            }
        }
        if !self.checkpoint_on_drop {
            return;
        }
        if let Err(e) = self.write_hint() {
            tracing::warn!(error = %e, "could not write the index checkpoint on close");
        }
    }
}

/// Cuts off whatever part of a failed append made it to the active segment, so the next
/// record starts cleanly.
fn cut_back(w: &Writer, len: u64) {
    let _ = w.file.set_len(len);
}

/// The direct appender for segment `id` (logical length `len`, `file` its buffered handle),
/// if the options ask for one and the file system allows it.
fn direct_appender(
    dir: &Path,
    opts: &DiskOptions,
    id: u32,
    file: &File,
    len: u64,
) -> Option<direct::Direct> {
    if !opts.direct_writes {
        return None;
    }
    direct::Direct::open(&segment::segment_path(dir, id), file, len)
}

fn take_lock(dir: &Path) -> Result<File, BlockstoreError> {
    let path = dir.join(LOCK_FILE);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| BlockstoreError::io(&path, e))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(TryLockError::WouldBlock) => Err(BlockstoreError::Locked(path.display().to_string())),
        Err(TryLockError::Error(e)) => Err(BlockstoreError::io(&path, e)),
    }
}

/// Rebuilds the index from the checkpoint and/or segment scans, truncating torn tails.
/// Returns the index and each segment's valid length.
fn recover(dir: &Path) -> Result<(Index, BTreeMap<u32, u64>), BlockstoreError> {
    let ids = segment::list_segments(dir)?;
    let mut lens = BTreeMap::new();
    for &id in &ids {
        let p = segment::segment_path(dir, id);
        let len = std::fs::metadata(&p)
            .map_err(|e| BlockstoreError::io(&p, e))?
            .len();
        lens.insert(id, len);
    }
    let mut index = Index::default();
    let mut start: BTreeMap<u32, u64> = ids.iter().map(|&id| (id, 0)).collect();
    if let Some(h) = hint::load(dir).filter(|h| hint_usable(h, &lens)) {
        for (id, len) in &h.segments {
            start.insert(*id, *len);
        }
        index.reserve(h.entries.len());
        for (mh, loc) in h.entries {
            index.insert(mh, loc);
        }
    }
    let last = ids.last().copied();
    for &id in &ids {
        let from = start.get(&id).copied().unwrap_or(0);
        let end = segment::scan(dir, id, from, Some(id) == last, |h, offset| {
            if h.kind == record::KIND_BLOCK {
                let loc = Loc {
                    seg: id,
                    offset,
                    record_len: h.record_len,
                    header_len: h.header_len,
                };
                index.insert(h.mh, loc);
            } else {
                index.remove(&h.mh);
            }
        })?;
        if end.valid_len < end.file_len && Some(id) != last {
            // Mid-file damage in a sealed segment is not a torn write: keep the bytes for
            // repair tools; the records before it are served, the rest is unreachable.
            tracing::error!(
                segment = id,
                valid_bytes = end.valid_len,
                file_bytes = end.file_len,
                "sealed segment has an unreadable record; serving the records before it"
            );
        } else if end.valid_len < end.file_len {
            tracing::warn!(
                segment = id,
                valid_bytes = end.valid_len,
                file_bytes = end.file_len,
                "cutting off a torn tail"
            );
            let p = segment::segment_path(dir, id);
            let f = OpenOptions::new()
                .write(true)
                .open(&p)
                .map_err(|e| BlockstoreError::io(&p, e))?;
            f.set_len(end.valid_len)
                .and_then(|_| f.sync_all())
                .map_err(|e| BlockstoreError::io(&p, e))?;
        }
        lens.insert(id, end.valid_len);
    }
    Ok((index, lens))
}

/// A checkpoint is usable if every segment it names is still there and no shorter, and every
/// segment it does not name is newer than all it names.
fn hint_usable(h: &hint::Hint, lens: &BTreeMap<u32, u64>) -> bool {
    let named: HashSet<u32> = h.segments.iter().map(|(id, _)| *id).collect();
    let max_named = h.segments.iter().map(|(id, _)| *id).max().unwrap_or(0);
    h.segments
        .iter()
        .all(|(id, len)| lens.get(id).is_some_and(|l| l >= len))
        && lens.keys().all(|id| named.contains(id) || *id > max_named)
}

fn missing_segment(loc: &Loc) -> BlockstoreError {
    BlockstoreError::CorruptRepo(format!("index points into missing segment {}", loc.seg))
}

/// How [`read_record`] checks the data it read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    /// SHA-256 (or the CID's hash function) against the CID: `get`.
    Hash,
    /// The record's crc32 only: `get_trusted`, for bytes whose reader hashes them itself.
    Crc,
    /// The header only: `get_many`, which hashes the blocks together afterwards.
    Later,
}

/// `len` bytes of `file` at `offset`, read straight into a new buffer's spare capacity: a
/// served block is read once per message, and zeroing the buffer first cost as much as the
/// checksum.
fn read_exact_at(file: &File, len: usize, offset: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let at = offset + buf.len() as u64;
        match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), at) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // The capacity may exceed `len`, and the read with it.
    buf.truncate(len);
    Ok(buf)
}

/// Reads a record and returns its data, checked against `cid` (header, then hash or crc).
fn read_record(file: &File, loc: &Loc, cid: &Cid, check: Check) -> Result<Bytes, BlockstoreError> {
    let corrupt = || BlockstoreError::Corrupt(CorruptBlock { cid: *cid });
    let buf = match read_exact_at(file, loc.record_len as usize, loc.offset) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(corrupt()),
        Err(e) => return Err(BlockstoreError::io(format!("segment {}", loc.seg), e)),
    };
    let h = record::decode_header(&buf).map_err(|_| corrupt())?;
    if h.kind != record::KIND_BLOCK || h.mh != *cid.hash() || h.header_len != loc.header_len {
        return Err(corrupt());
    }
    if check == Check::Crc && !record::crc_ok(&h, &buf) {
        return Err(corrupt());
    }
    let data = Bytes::from(buf).slice(usize::from(loc.header_len)..);
    if check == Check::Hash {
        hash::verify(cid, &data)?;
    }
    Ok(data)
}

impl DiskBlockstore {
    fn put_blocks(&self, blocks: &[Block], cold: bool) -> Result<(), BlockstoreError> {
        for b in blocks {
            limits::check_block_size(b.data().len())?;
            if b.cid().hash().encoded_len() > record::MULTIHASH_BYTES_MAX {
                return Err(BlockstoreError::UnsupportedHash {
                    code: b.cid().hash().code(),
                });
            }
        }
        let mut w = self.writer.lock();
        let todo: Vec<&Block> = {
            let st = self.state.read();
            let mut seen = HashSet::new();
            blocks
                .iter()
                .filter(|b| hash::identity_data(b.cid()).is_none())
                .filter(|b| !st.index.contains(b.cid().hash()) && seen.insert(*b.cid().hash()))
                .collect()
        };
        let mut headers = Vec::new();
        let mut rest = &todo[..];
        while !rest.is_empty() {
            headers.clear();
            let mut parts = Vec::new();
            let mut chunk_bytes = 0usize;
            let mut n = 0;
            for b in rest {
                if n > 0 && chunk_bytes + b.data().len() > WRITE_CHUNK_BYTES_MAX {
                    break;
                }
                let start = headers.len();
                let hl = record::encode_header(
                    &mut headers,
                    record::KIND_BLOCK,
                    b.cid().hash(),
                    b.data(),
                );
                parts.push((start..start + hl, &b.data()[..]));
                chunk_bytes += hl + b.data().len();
                n += 1;
            }
            let base = self.append(&mut w, &headers, &parts, chunk_bytes as u64, cold)?;
            let mut st = self.state.write();
            let mut offset = base;
            for (b, (hr, data)) in rest[..n].iter().zip(&parts) {
                let record_len = (hr.len() + data.len()) as u32;
                let loc = Loc {
                    seg: w.id,
                    offset,
                    record_len,
                    header_len: hr.len() as u8,
                };
                st.index.insert(*b.cid().hash(), loc);
                offset += u64::from(record_len);
            }
            drop(st);
            rest = &rest[n..];
        }
        if self.opts.sync_on_put && !todo.is_empty() {
            self.sync_writer(&mut w)?;
        }
        Ok(())
    }

    fn read(&self, cid: &Cid, check: Check) -> Result<Option<Bytes>, BlockstoreError> {
        if let Some(d) = hash::identity_data(cid) {
            return Ok(Some(Bytes::copy_from_slice(d)));
        }
        let (loc, file) = {
            let st = self.state.read();
            let Some(loc) = st.index.get(cid.hash()).copied() else {
                return Ok(None);
            };
            let seg = st
                .segments
                .get(&loc.seg)
                .ok_or_else(|| missing_segment(&loc))?;
            (loc, seg.file.clone())
        };
        read_record(&file, &loc, cid, check).map(Some)
    }
}

impl Blockstore for DiskBlockstore {
    fn get(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
        self.read(cid, Check::Hash)
    }

    fn get_trusted(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
        self.read(cid, Check::Crc)
    }

    fn get_many(&self, cids: &[Cid]) -> Vec<Result<Option<Bytes>, BlockstoreError>> {
        let mut read: Vec<Result<Option<Bytes>, BlockstoreError>> =
            cids.iter().map(|c| self.read(c, Check::Later)).collect();
        let held: Vec<(usize, &Cid, Bytes)> = read
            .iter()
            .zip(cids)
            .enumerate()
            .filter_map(|(i, (r, c))| match r {
                Ok(Some(b)) if hash::identity_data(c).is_none() => Some((i, c, b.clone())),
                _ => None,
            })
            .collect();
        let items: Vec<(&Cid, &[u8])> = held.iter().map(|(_, c, b)| (*c, &b[..])).collect();
        for ((i, _, _), checked) in held.iter().zip(hash::verify_many(&items)) {
            if let Err(e) = checked {
                read[*i] = Err(e);
            }
        }
        read
    }

    fn has(&self, cid: &Cid) -> Result<bool, BlockstoreError> {
        Ok(hash::identity_data(cid).is_some() || self.state.read().index.contains(cid.hash()))
    }

    fn size_of(&self, cid: &Cid) -> Result<Option<u64>, BlockstoreError> {
        if let Some(d) = hash::identity_data(cid) {
            return Ok(Some(d.len() as u64));
        }
        Ok(self
            .state
            .read()
            .index
            .get(cid.hash())
            .map(|l| u64::from(l.data_len())))
    }

    fn put_many(&self, blocks: &[Block]) -> Result<(), BlockstoreError> {
        self.put_blocks(blocks, false)
    }

    fn put_many_cold(&self, blocks: &[Block]) -> Result<(), BlockstoreError> {
        self.put_blocks(blocks, true)
    }

    fn delete_many(&self, cids: &[Cid]) -> Result<u64, BlockstoreError> {
        let mut w = self.writer.lock();
        let present: Vec<Multihash<64>> = {
            let st = self.state.read();
            let mut seen = HashSet::new();
            cids.iter()
                .map(|c| *c.hash())
                .filter(|mh| st.index.contains(mh) && seen.insert(*mh))
                .collect()
        };
        for batch in present.chunks(WRITE_CHUNK_BYTES_MAX / record::HEADER_BYTES_MAX) {
            let mut headers = Vec::new();
            for mh in batch {
                record::encode_header(&mut headers, record::KIND_TOMBSTONE, mh, &[]);
            }
            let parts = [(0..headers.len(), &[][..])];
            self.append(&mut w, &headers, &parts, headers.len() as u64, false)?;
            let mut st = self.state.write();
            for mh in batch {
                st.index.remove(mh);
            }
        }
        if self.opts.sync_on_put && !present.is_empty() {
            self.sync_writer(&mut w)?;
        }
        Ok(present.len() as u64)
    }

    fn all_cids(&self) -> Result<Vec<Cid>, BlockstoreError> {
        Ok(self
            .state
            .read()
            .index
            .iter()
            .map(|(mh, _)| raw_cid_of(*mh))
            .collect())
    }

    fn sync(&self) -> Result<(), BlockstoreError> {
        let mut w = self.writer.lock();
        self.sync_writer(&mut w)?;
        segment::sync_dir(&self.dir)
    }

    fn stat(&self) -> Result<StoreStat, BlockstoreError> {
        let st = self.state.read();
        Ok(StoreStat {
            blocks: st.index.len() as u64,
            data_bytes: st.index.data_bytes(),
            disk_bytes: st.segments.values().map(|s| s.len).sum(),
        })
    }

    fn reclaim_space(&self) -> Result<u64, BlockstoreError> {
        Ok(self
            .compact(self.opts.compact_live_ratio_min)?
            .bytes_reclaimed)
    }
}

#[cfg(test)]
mod tests {
    use super::read_exact_at;

    #[test]
    fn positional_reads_are_exact_and_stop_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
        std::fs::write(&path, &data).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        assert_eq!(read_exact_at(&f, 0, 5).unwrap(), Vec::<u8>::new());
        assert_eq!(read_exact_at(&f, 70_000, 123).unwrap(), &data[123..70_123]);
        assert_eq!(read_exact_at(&f, 10, 99_990).unwrap(), &data[99_990..]);
        // A record reaching past the end of its segment: the caller reports it corrupt.
        let e = read_exact_at(&f, 11, 99_990).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        let e = read_exact_at(&f, 1, 200_000).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
