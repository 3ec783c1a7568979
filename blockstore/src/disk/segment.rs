//! Segment files: naming, listing, appending whole batches, and scanning records on open.
//!
//! A segment is an append-only file `seg-<id>.pack` of records (see [`super::record`]). Only the
//! writer appends, with positional writes at the segment's length; readers use positional
//! reads (`read_at`), so they never contend with the writer or with each other.

use super::record::{self, Header, HeaderError, HEADER_BYTES_MAX};
use crate::BlockstoreError;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, IoSlice, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// A segment is closed and a new one started once it would grow past this: 1 GiB.
pub const SEGMENT_BYTES_MAX: u64 = 1 << 30;
/// Read buffer used when scanning a segment on open.
const SCAN_BUFFER_BYTES: usize = 1 << 20;

pub fn segment_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("seg-{id:010}.pack"))
}

/// The ids of the segment files in `dir`, ascending.
pub fn list_segments(dir: &Path) -> Result<Vec<u32>, BlockstoreError> {
    let mut ids = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| BlockstoreError::io(dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| BlockstoreError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(id) = name
            .strip_prefix("seg-")
            .and_then(|s| s.strip_suffix(".pack"))
            .and_then(|s| s.parse::<u32>().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Opens (creating if asked) a segment for positional reads and writes.
pub fn open_segment(dir: &Path, id: u32, create: bool) -> Result<File, BlockstoreError> {
    let path = segment_path(dir, id);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .open(&path)
        .map_err(|e| BlockstoreError::io(&path, e))
}

/// Writes `slices` at `offset` with as few `pwritev` calls as possible: every append
/// (positional, as direct appends are, so the two can take turns in the active segment) and
/// compaction's copies. On failure the caller truncates the segment back to its length.
pub fn write_all_vectored_at(
    file: &File,
    slices: &mut [IoSlice<'_>],
    mut offset: u64,
) -> std::io::Result<()> {
    let mut slices = slices;
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match rustix::io::pwritev(file, slices, offset) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                IoSlice::advance_slices(&mut slices, n);
                offset += n as u64;
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Where a scan stopped.
#[derive(Debug, Clone, Copy)]
pub struct ScanEnd {
    /// Bytes of whole, valid records from the start of the file: the segment's true length.
    pub valid_len: u64,
    /// The file's length on disk (larger than `valid_len` after a torn write).
    pub file_len: u64,
}

/// Scans the records of segment `id` from `start` (a record boundary), calling `on_record` with
/// each record's header and offset. With `verify_crc`, data is read: a record whose crc fails
/// but is followed by a good record is still reported (damage: reads of it will fail their
/// hash check), while failing records at the end are left out as a torn tail; without, data
/// is seeked past. Scanning stops at the first header that is short, invalid or runs past the
/// end of the file: a torn tail too.
pub fn scan(
    dir: &Path,
    id: u32,
    start: u64,
    verify_crc: bool,
    mut on_record: impl FnMut(Header, u64),
) -> Result<ScanEnd, BlockstoreError> {
    let path = segment_path(dir, id);
    let io = |e| BlockstoreError::io(&path, e);
    let file = File::open(&path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    let mut rd = BufReader::with_capacity(SCAN_BUFFER_BYTES, file);
    rd.seek(SeekFrom::Start(start)).map_err(io)?;
    let mut offset = start;
    let mut hbuf = [0u8; HEADER_BYTES_MAX];
    let mut record_buf = Vec::new();
    // Records whose crc failed, not yet known to be followed by a good record. A bad record
    // with good ones after it is damage, not a torn write: it stays indexed so that reading it
    // reports `Corrupt` (and `verify` lists it) instead of the block silently vanishing. Bad
    // records at the very end are a torn tail and are cut off.
    let mut suspect: Vec<(Header, u64)> = Vec::new();
    loop {
        let remaining = file_len - offset;
        if remaining == 0 {
            break;
        }
        let want = (HEADER_BYTES_MAX as u64).min(remaining) as usize;
        rd.read_exact(&mut hbuf[..want]).map_err(io)?;
        let header = match record::decode_header(&hbuf[..want]) {
            Ok(h) => h,
            Err(HeaderError::Short | HeaderError::Invalid) => break,
        };
        let rec_len = u64::from(header.record_len);
        if rec_len > remaining {
            break;
        }
        let hl = usize::from(header.header_len);
        // We read `want` bytes; the record's body starts at `hl`, so rewind/skip accordingly.
        let consumed = want as i64;
        if verify_crc {
            rd.seek_relative(hl as i64 - consumed).map_err(io)?;
            record_buf.clear();
            record_buf.extend_from_slice(&hbuf[..hl]);
            record_buf.resize(header.record_len as usize, 0);
            rd.read_exact(&mut record_buf[hl..]).map_err(io)?;
            if record::crc_ok(&header, &record_buf) {
                for (h, o) in suspect.drain(..) {
                    tracing::warn!(
                        segment = id,
                        offset = o,
                        "record fails its crc; kept so reads report it corrupt"
                    );
                    on_record(h, o);
                }
                on_record(header, offset);
            } else {
                suspect.push((header, offset));
            }
        } else {
            rd.seek_relative(rec_len as i64 - consumed).map_err(io)?;
            on_record(header, offset);
        }
        offset += rec_len;
    }
    if let Some(&(_, first_bad)) = suspect.first() {
        tracing::warn!(
            segment = id,
            offset = first_bad,
            "torn tail: records fail their crc"
        );
        offset = first_bad;
    }
    Ok(ScanEnd {
        valid_len: offset,
        file_len,
    })
}

/// fsyncs a directory so created, renamed and removed entries are durable.
pub fn sync_dir(dir: &Path) -> Result<(), BlockstoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| BlockstoreError::io(dir, e))
}
