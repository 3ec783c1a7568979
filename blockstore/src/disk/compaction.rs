//! Compaction: reclaiming the space of deleted blocks.
//!
//! With the writer lock held (writes wait, reads go on): pick the segments whose live fraction
//! is below a threshold (the active one included), copy their live records and the tombstones
//! still needed into new segments numbered above every existing one, fsync them and the
//! directory, swap the index over to the copies, move the writer to a fresh segment above the
//! copies, write the checkpoint, and only then delete the old files.
//!
//! Why this order is crash-safe: until the old files are deleted, a rescan sees the old records
//! first and the copies (higher ids) last, and a copy is always the newest record of its key.
//! A tombstone is carried over only while an older, uncompacted segment may still hold a put
//! it must shadow, and only for keys that are not live (a live key's newest put wins anyway).

use super::index::Loc;
use super::record::{self, KIND_TOMBSTONE};
use super::{segment, DiskBlockstore, Segment};
use crate::BlockstoreError;
use multihash::Multihash;
use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::io::IoSlice;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// What a compaction did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactStats {
    pub segments_compacted: u64,
    pub records_copied: u64,
    pub tombstones_kept: u64,
    pub bytes_reclaimed: u64,
}

/// Copies are buffered and written in chunks of about this size: 1 MiB (see the write
/// chunk in `mod.rs`).
const COPY_BUFFER_BYTES: usize = 1 << 20;

/// An output segment being filled.
struct Output {
    id: u32,
    file: File,
    len: u64,
    buf: Vec<u8>,
}

impl Output {
    fn flush(&mut self, dir: &std::path::Path) -> Result<(), BlockstoreError> {
        let mut slices = [IoSlice::new(&self.buf)];
        segment::write_all_vectored_at(&self.file, &mut slices, self.len)
            .map_err(|e| BlockstoreError::io(segment::segment_path(dir, self.id), e))?;
        self.len += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

impl DiskBlockstore {
    /// Compacts every segment whose live bytes are below `live_ratio_min` of its length.
    pub fn compact(&self, live_ratio_min: f64) -> Result<CompactStats, BlockstoreError> {
        let mut w = self.writer.lock();
        let selected: BTreeSet<u32> = {
            let st = self.state.read();
            st.segments
                .iter()
                .filter(|(&id, s)| {
                    let live = st.index.live_bytes(id) as f64;
                    (s.len > 0 || id != w.id) && live < live_ratio_min * s.len as f64
                })
                .map(|(&id, _)| id)
                .collect()
        };
        if selected.is_empty() {
            return Ok(CompactStats::default());
        }
        let mut stats = CompactStats {
            segments_compacted: selected.len() as u64,
            ..Default::default()
        };
        let (live, tombstones, old_bytes) = self.plan(&selected)?;
        let first_out = self
            .state
            .read()
            .segments
            .keys()
            .next_back()
            .map_or(1, |id| id + 1);
        let mut outputs: Vec<(u32, Arc<File>, u64)> = Vec::new();
        let mut moved: Vec<(Multihash<64>, Loc)> = Vec::with_capacity(live.len());
        let mut out = self.new_output(first_out)?;
        let mut rec = Vec::new();
        for mh in &tombstones {
            if out.len + out.buf.len() as u64 >= self.opts.segment_bytes_max {
                out = self.finish_output(out, &mut outputs)?;
            }
            record::encode_header(&mut out.buf, KIND_TOMBSTONE, mh, &[]);
            stats.tombstones_kept += 1;
        }
        for (mh, loc, file) in &live {
            rec.resize(loc.record_len as usize, 0);
            file.read_exact_at(&mut rec, loc.offset)
                .map_err(|e| BlockstoreError::io(segment::segment_path(&self.dir, loc.seg), e))?;
            if !record::decode_header(&rec).is_ok_and(|h| record::crc_ok(&h, &rec)) {
                tracing::warn!(
                    segment = loc.seg,
                    offset = loc.offset,
                    "copying a corrupt record as is"
                );
            }
            if out.len + (out.buf.len() + rec.len()) as u64 > self.opts.segment_bytes_max
                && out.len + out.buf.len() as u64 > 0
            {
                out = self.finish_output(out, &mut outputs)?;
            }
            let offset = out.len + out.buf.len() as u64;
            out.buf.extend_from_slice(&rec);
            moved.push((
                *mh,
                Loc {
                    seg: out.id,
                    offset,
                    ..*loc
                },
            ));
            stats.records_copied += 1;
            if out.buf.len() >= COPY_BUFFER_BYTES {
                out.flush(&self.dir)?;
            }
        }
        let next_active = out.id + 1;
        self.finish_output(out, &mut outputs)?;
        segment::sync_dir(&self.dir)?;
        let new_bytes: u64 = outputs.iter().map(|o| o.2).sum();
        {
            let mut st = self.state.write();
            for (id, file, len) in outputs {
                st.segments.insert(id, Segment { file, len });
            }
            for (mh, loc) in moved {
                st.index.insert(mh, loc);
            }
            for id in &selected {
                st.segments.remove(id);
                st.index.forget_segment(*id);
            }
        }
        // The writer moves above the copies so later records sort after them on a rescan.
        if selected.contains(&w.id) {
            self.start_segment(&mut w, next_active)?;
        } else {
            self.roll(&mut w, next_active)?;
        }
        self.write_hint()?;
        for id in &selected {
            let p = segment::segment_path(&self.dir, *id);
            std::fs::remove_file(&p).map_err(|e| BlockstoreError::io(&p, e))?;
        }
        segment::sync_dir(&self.dir)?;
        stats.bytes_reclaimed = old_bytes.saturating_sub(new_bytes);
        tracing::info!(?stats, "compacted");
        Ok(stats)
    }

    /// The live records to copy (sorted by position, for sequential reads), the tombstones to
    /// keep, and the total bytes of the selected segments.
    #[allow(clippy::type_complexity)]
    fn plan(
        &self,
        selected: &BTreeSet<u32>,
    ) -> Result<
        (
            Vec<(Multihash<64>, Loc, Arc<File>)>,
            Vec<Multihash<64>>,
            u64,
        ),
        BlockstoreError,
    > {
        let st = self.state.read();
        let mut live = Vec::new();
        for (mh, loc) in st.index.iter() {
            if selected.contains(&loc.seg) {
                let file = st
                    .segments
                    .get(&loc.seg)
                    .ok_or_else(|| super::missing_segment(loc))?
                    .file
                    .clone();
                live.push((*mh, *loc, file));
            }
        }
        live.sort_by_key(|(_, l, _)| (l.seg, l.offset));
        let old_bytes = selected
            .iter()
            .filter_map(|id| st.segments.get(id))
            .map(|s| s.len)
            .sum();
        let oldest_kept = st
            .segments
            .keys()
            .find(|id| !selected.contains(id))
            .copied();
        let mut tombstones = Vec::new();
        let mut seen = HashSet::new();
        for &id in selected {
            // Only an uncompacted segment older than the tombstone can hold a put it shadows.
            if oldest_kept.is_none_or(|k| k > id) {
                continue;
            }
            let len = st.segments.get(&id).map_or(0, |s| s.len);
            let end = segment::scan(&self.dir, id, 0, false, |h, offset| {
                if offset < len
                    && h.kind == KIND_TOMBSTONE
                    && !st.index.contains(&h.mh)
                    && seen.insert(h.mh)
                {
                    tombstones.push(h.mh);
                }
            })?;
            debug_assert!(end.valid_len >= len);
        }
        Ok((live, tombstones, old_bytes))
    }

    fn new_output(&self, id: u32) -> Result<Output, BlockstoreError> {
        Ok(Output {
            id,
            file: segment::open_segment(&self.dir, id, true)?,
            len: 0,
            buf: Vec::with_capacity(COPY_BUFFER_BYTES + record::RECORD_BYTES_MAX),
        })
    }

    /// Flushes and fsyncs `out`, records it, and starts the next output segment.
    fn finish_output(
        &self,
        mut out: Output,
        outputs: &mut Vec<(u32, Arc<File>, u64)>,
    ) -> Result<Output, BlockstoreError> {
        out.flush(&self.dir)?;
        out.file
            .sync_data()
            .map_err(|e| BlockstoreError::io(segment::segment_path(&self.dir, out.id), e))?;
        let next = out.id + 1;
        if out.len == 0 {
            let p = segment::segment_path(&self.dir, out.id);
            std::fs::remove_file(&p).map_err(|e| BlockstoreError::io(&p, e))?;
        } else {
            outputs.push((out.id, Arc::new(out.file), out.len));
        }
        // The successor exists as an empty segment (valid on a rescan); the last one becomes
        // the writer's active segment.
        Ok(Output {
            id: next,
            file: segment::open_segment(&self.dir, next, true)?,
            len: 0,
            buf: Vec::new(),
        })
    }
}
