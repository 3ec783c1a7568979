//! The index checkpoint ("hint file"), so opening a store of millions of blocks does not scan
//! every segment.
//!
//! Written on clean close and after compaction, to a temporary file then renamed. Layout
//! (little-endian): `[magic u32][version u32][segment count u32]([id u32][len u64])*
//! [entry count u64]([seg u32][offset u64][record len u32][header len u8][mh len u8][mh])*
//! [crc32 of everything before u32]`. On open it is trusted only if its crc checks and every
//! segment it names still exists at least as long as recorded; records appended after the
//! checkpoint are then scanned from the recorded lengths.

use super::index::Loc;
use super::record::{MULTIHASH_BYTES_MAX, RECORD_BYTES_MAX};
use crate::BlockstoreError;
use multihash::Multihash;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

const HINT_MAGIC: u32 = 0x484B_5049; // "IPKH"
const HINT_VERSION: u32 = 1;
pub const HINT_FILE: &str = "index.hint";
const HINT_TMP: &str = "index.hint.tmp";
/// Most segments a hint may list (1 Ki segments of 1 GiB = 1 TiB per store).
const HINT_SEGMENTS_MAX: u32 = 1 << 20;
/// Largest hint read into memory (about 60 million blocks); a larger store is scanned instead.
const HINT_FILE_BYTES_MAX: u64 = 4 << 30;
/// Smallest encoded entry, used to bound the entry count by the file size.
const ENTRY_BYTES_MIN: u64 = 4 + 8 + 4 + 1 + 1 + 2;

pub struct Hint {
    pub segments: Vec<(u32, u64)>,
    pub entries: Vec<(Multihash<64>, Loc)>,
}

struct CrcWriter<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

pub fn save<'a>(
    dir: &Path,
    segments: &[(u32, u64)],
    entry_count: u64,
    entries: impl Iterator<Item = (&'a Multihash<64>, &'a Loc)>,
) -> Result<(), BlockstoreError> {
    let tmp = dir.join(HINT_TMP);
    let io = |e| BlockstoreError::io(&tmp, e);
    let file = File::create(&tmp).map_err(io)?;
    let mut w = CrcWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        crc: crc32fast::Hasher::new(),
    };
    let body = |w: &mut CrcWriter<BufWriter<File>>| -> std::io::Result<()> {
        w.write_all(&HINT_MAGIC.to_le_bytes())?;
        w.write_all(&HINT_VERSION.to_le_bytes())?;
        w.write_all(&(segments.len() as u32).to_le_bytes())?;
        for (id, len) in segments {
            w.write_all(&id.to_le_bytes())?;
            w.write_all(&len.to_le_bytes())?;
        }
        w.write_all(&entry_count.to_le_bytes())?;
        for (mh, loc) in entries {
            w.write_all(&loc.seg.to_le_bytes())?;
            w.write_all(&loc.offset.to_le_bytes())?;
            w.write_all(&loc.record_len.to_le_bytes())?;
            w.write_all(&[loc.header_len, mh.encoded_len() as u8])?;
            mh.write(&mut *w).map_err(std::io::Error::other)?;
        }
        Ok(())
    };
    body(&mut w).map_err(io)?;
    let crc = w.crc.clone().finalize();
    w.inner.write_all(&crc.to_le_bytes()).map_err(io)?;
    w.inner.flush().map_err(io)?;
    drop(w);
    let dst = dir.join(HINT_FILE);
    std::fs::rename(&tmp, &dst).map_err(|e| BlockstoreError::io(&dst, e))
}

/// A cursor over the hint's bytes; every read is bounds-checked.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }
}

fn parse(bytes: &[u8]) -> Option<Hint> {
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    if crc32fast::hash(body).to_le_bytes() != crc {
        return None;
    }
    let mut c = Cursor(body);
    if c.u32()? != HINT_MAGIC || c.u32()? != HINT_VERSION {
        return None;
    }
    let nseg = c.u32()?;
    if nseg > HINT_SEGMENTS_MAX {
        return None;
    }
    let mut segments = Vec::with_capacity(nseg as usize);
    for _ in 0..nseg {
        segments.push((c.u32()?, c.u64()?));
    }
    let count = c.u64()?;
    if count > body.len() as u64 / ENTRY_BYTES_MIN {
        return None;
    }
    let mut entries = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let seg = c.u32()?;
        let offset = c.u64()?;
        let record_len = c.u32()?;
        let header_len = c.u8()?;
        let mh_len = usize::from(c.u8()?);
        if mh_len > MULTIHASH_BYTES_MAX
            || u32::from(header_len) > record_len
            || record_len as usize > RECORD_BYTES_MAX
        {
            return None;
        }
        let mh = Multihash::<64>::from_bytes(c.take(mh_len)?).ok()?;
        let loc = Loc {
            seg,
            offset,
            record_len,
            header_len,
        };
        entries.push((mh, loc));
    }
    c.0.is_empty().then_some(Hint { segments, entries })
}

/// Loads the hint, or `None` if there is none or it does not check.
pub fn load(dir: &Path) -> Option<Hint> {
    let path = dir.join(HINT_FILE);
    let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    if len > HINT_FILE_BYTES_MAX {
        tracing::warn!(path = %path.display(), len, "index hint too large to load; scanning");
        return None;
    }
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the index hint");
            return None;
        }
    };
    let hint = parse(&bytes);
    if hint.is_none() {
        tracing::warn!(path = %path.display(), "ignoring an invalid index hint; scanning segments");
    }
    hint
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::hash::HashFn;

    #[test]
    fn round_trip_and_corruption_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mh = HashFn::Sha2_256.digest(b"a").unwrap();
        let loc = Loc {
            seg: 3,
            offset: 4096,
            record_len: 1000,
            header_len: 48,
        };
        save(
            dir.path(),
            &[(1, 10), (3, 5096)],
            1,
            [(&mh, &loc)].into_iter(),
        )
        .unwrap();
        let h = load(dir.path()).unwrap();
        assert_eq!(h.segments, vec![(1, 10), (3, 5096)]);
        assert_eq!(h.entries, vec![(mh, loc)]);

        let p = dir.path().join(HINT_FILE);
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[30] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        assert!(load(dir.path()).is_none());
        bytes.truncate(10);
        std::fs::write(&p, &bytes).unwrap();
        assert!(load(dir.path()).is_none());
    }

    proptest::proptest! {
        #[test]
        fn garbage_hint_is_ignored(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let dir = tempfile::tempdir().unwrap();
            let mut with_magic = HINT_MAGIC.to_le_bytes().to_vec();
            with_magic.extend_from_slice(&HINT_VERSION.to_le_bytes());
            with_magic.extend_from_slice(&bytes);
            for b in [&bytes, &with_magic] {
                std::fs::write(dir.path().join(HINT_FILE), b).unwrap();
                // Either rejected, or (vanishingly unlikely) a crc-valid parse; never a panic.
                let _ = load(dir.path());
            }
        }
    }
}
