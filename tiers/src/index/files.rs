//! The index's files in `<repo>/index/` and how each is written and read.
//!
//! ```text
//! MANIFEST                         JSON: format, generation, rows, file lengths, tier table
//! base-<gen>.parquet               every row at generation <gen>, sorted by multihash
//! snapshot-<gen>.arrow             the same rows as one Arrow IPC file, memory-mapped on open
//! delta-<gen>-<seq>.parquet        rows changed (or deleted) since, one file per flush
//! ```
//!
//! Every file is written under a temporary name, synced, renamed into place and the directory
//! synced, so a crash leaves either the old file or the new one, never a torn one; files are
//! never modified after the rename. The manifest is renamed last: it names the generation whose
//! base and snapshot are complete. Compaction writes generation `gen+1` and deletes the older
//! files after the new manifest is in place.

use super::schema::{self, check_schema};
use super::IndexError;
use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::convert::try_fb_to_schema;
use arrow_ipc::reader::{read_footer_length, FileDecoder};
use arrow_ipc::root_as_footer;
use arrow_ipc::writer::FileWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const MANIFEST: &str = "MANIFEST";
/// The manifest format this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of a manifest accepted on open.
pub const MANIFEST_BYTES_MAX: u64 = 64 * 1024;
/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 1 << 20;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    /// 0 = no base yet (empty index).
    pub generation: u64,
    pub rows: u64,
    pub base_bytes: u64,
    pub snapshot_bytes: u64,
    /// Tier names; bit i of the `tiers` column is `tiers[i]`.
    pub tiers: Vec<String>,
}

pub fn base_name(generation: u64) -> String {
    format!("base-{generation:010}.parquet")
}
pub fn snapshot_name(generation: u64) -> String {
    format!("snapshot-{generation:010}.arrow")
}
pub fn delta_name(generation: u64, seq: u64) -> String {
    format!("delta-{generation:010}-{seq:010}.parquet")
}

/// Parses a delta file name; `(generation, seq)`.
pub fn parse_delta_name(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_prefix("delta-")?.strip_suffix(".parquet")?;
    let (g, s) = rest.split_once('-')?;
    Some((g.parse().ok()?, s.parse().ok()?))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IndexError + '_ {
    move |source| IndexError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `name` in `dir` atomically (temp file, sync, rename, sync dir); returns its length.
pub fn write_atomic(
    dir: &Path,
    name: &str,
    write: impl FnOnce(File) -> Result<File, IndexError>,
) -> Result<u64, IndexError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let dest = dir.join(name);
    let file = File::create(&tmp).map_err(io(&tmp))?;
    let file = write(file)?;
    file.sync_all().map_err(io(&tmp))?;
    let len = file.metadata().map_err(io(&tmp))?.len();
    drop(file);
    fs::rename(&tmp, &dest).map_err(io(&dest))?;
    sync_dir(dir)?;
    Ok(len)
}

pub fn sync_dir(dir: &Path) -> Result<(), IndexError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

pub fn read_manifest(dir: &Path) -> Result<Option<Manifest>, IndexError> {
    let path = dir.join(MANIFEST);
    let len = match fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    if len > MANIFEST_BYTES_MAX {
        return Err(IndexError::Corrupt(format!(
            "manifest of {len} bytes (max {MANIFEST_BYTES_MAX})"
        )));
    }
    let text = fs::read(&path).map_err(io(&path))?;
    let m: Manifest =
        serde_json::from_slice(&text).map_err(|e| IndexError::Corrupt(format!("manifest: {e}")))?;
    if m.format != FORMAT_VERSION {
        return Err(IndexError::Corrupt(format!("manifest format {}", m.format)));
    }
    if m.tiers.len() > super::TIER_COUNT_MAX {
        return Err(IndexError::Corrupt(format!("{} tiers", m.tiers.len())));
    }
    Ok(Some(m))
}

pub fn write_manifest(dir: &Path, m: &Manifest) -> Result<(), IndexError> {
    let text =
        serde_json::to_vec_pretty(m).map_err(|e| IndexError::Corrupt(format!("manifest: {e}")))?;
    let path = dir.join(MANIFEST);
    write_atomic(dir, MANIFEST, |mut f| {
        f.write_all(&text).map_err(io(&path))?;
        Ok(f)
    })?;
    Ok(())
}

pub(crate) fn parquet_props() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        // CIDs are hashes: a dictionary never pays off.
        .set_column_dictionary_enabled("cid".into(), false)
        .build()
}

/// Writes batches as one Parquet file (atomically); returns its length.
pub fn write_parquet(dir: &Path, name: &str, batches: &[RecordBatch]) -> Result<u64, IndexError> {
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => schema::schema(),
    };
    write_atomic(dir, name, |f| {
        let mut w = ArrowWriter::try_new(f, schema, Some(parquet_props()))?;
        for b in batches {
            w.write(b)?;
        }
        Ok(w.into_inner()?)
    })
}

/// Reads a whole Parquet file written by [`write_parquet`], checking its columns.
pub fn read_parquet(path: &Path, delta: bool) -> Result<Vec<RecordBatch>, IndexError> {
    let f = File::open(path).map_err(io(path))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)?
        .with_batch_size(1 << 16)
        .build()?;
    let mut out = Vec::new();
    for b in reader {
        let b = b?;
        check_schema(&b, delta)?;
        out.push(b);
    }
    Ok(out)
}

/// Writes the snapshot: one Arrow IPC file holding one record batch (atomically).
pub fn write_snapshot(dir: &Path, name: &str, batch: &RecordBatch) -> Result<u64, IndexError> {
    write_atomic(dir, name, |f| {
        let mut w = FileWriter::try_new(f, &batch.schema())?;
        w.write(batch)?;
        w.finish()?;
        Ok(w.into_inner()?)
    })
}

/// Maps a snapshot and decodes its record batch in place: the columns point into the mapping,
/// nothing is copied; only the IPC structure (offsets, lengths) is validated.
pub fn map_snapshot(path: &Path, expected_bytes: u64) -> Result<RecordBatch, IndexError> {
    let bytes = super::mmap::map_file(path).map_err(io(path))?;
    if bytes.len() as u64 != expected_bytes {
        return Err(IndexError::Corrupt(format!(
            "{}: {} bytes, manifest says {expected_bytes}",
            path.display(),
            bytes.len()
        )));
    }
    let buffer = Buffer::from(bytes);
    let corrupt = |what: &str| IndexError::Corrupt(format!("{}: {what}", path.display()));
    if buffer.len() < 10 {
        return Err(corrupt("too short"));
    }
    let trailer_start = buffer.len() - 10;
    let mut trailer = [0u8; 10];
    trailer.copy_from_slice(&buffer[trailer_start..]);
    let footer_len = read_footer_length(trailer)?;
    let footer_start = trailer_start
        .checked_sub(footer_len)
        .ok_or_else(|| corrupt("footer longer than the file"))?;
    let footer = root_as_footer(&buffer[footer_start..trailer_start])
        .map_err(|e| corrupt(&format!("footer: {e}")))?;
    let fb_schema = footer.schema().ok_or_else(|| corrupt("no schema"))?;
    let file_schema = Arc::new(try_fb_to_schema(fb_schema)?);
    let decoder = FileDecoder::new(file_schema, footer.version());
    let mut batches = Vec::new();
    for block in footer.recordBatches().iter().flatten() {
        let offset = usize::try_from(block.offset()).map_err(|_| corrupt("block offset"))?;
        let len = usize::try_from(block.bodyLength())
            .ok()
            .and_then(|b| b.checked_add(block.metaDataLength().max(0) as usize))
            .ok_or_else(|| corrupt("block length"))?;
        if offset.checked_add(len).is_none_or(|end| end > footer_start) {
            return Err(corrupt("block outside the file"));
        }
        let data = buffer.slice_with_length(offset, len);
        if let Some(b) = decoder.read_record_batch(block, &data)? {
            batches.push(b);
        }
    }
    let batch = match batches.len() {
        0 => RecordBatch::new_empty(schema::schema()),
        1 => batches.remove(0),
        _ => arrow_select::concat::concat_batches(&schema::schema(), &batches)?,
    };
    check_schema(&batch, false)?;
    Ok(batch)
}

/// Delta files of `generation` in `dir`, in sequence order.
pub fn list_deltas(dir: &Path, generation: u64) -> Result<Vec<(u64, PathBuf)>, IndexError> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(io(dir))? {
        let e = e.map_err(io(dir))?;
        let name = e.file_name();
        if let Some((g, seq)) = name.to_str().and_then(parse_delta_name) {
            if g == generation {
                out.push((seq, e.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Deletes the files of generations other than `keep` (and stray temporaries).
pub fn remove_other_generations(dir: &Path, keep: u64) -> Result<(), IndexError> {
    for e in fs::read_dir(dir).map_err(io(dir))? {
        let e = e.map_err(io(dir))?;
        let Some(name) = e.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let stale = if name.starts_with('.') && name.ends_with(".tmp") {
            true
        } else if let Some((g, _)) = parse_delta_name(&name) {
            g != keep
        } else if let Some(g) = name
            .strip_prefix("base-")
            .and_then(|r| r.strip_suffix(".parquet"))
            .or_else(|| {
                name.strip_prefix("snapshot-")
                    .and_then(|r| r.strip_suffix(".arrow"))
            })
        {
            g.parse::<u64>().map(|g| g != keep).unwrap_or(false)
        } else {
            false
        };
        if stale {
            if let Err(err) = fs::remove_file(e.path()) {
                tracing::warn!(file = %e.path().display(), %err, "index: could not remove a stale file");
            }
        }
    }
    Ok(())
}
