//! Cold appends ([`Blockstore::put_many_cold`](crate::Blockstore::put_many_cold)) to the active
//! segment with direct I/O (`O_DIRECT`): the bytes go from a staging buffer to the disk without
//! passing through the page cache.
//!
//! Why: a fetch brings blocks that are not read back soon (its reader takes them as they
//! arrive; a pin keeps what nobody reads yet). Writing them through the page cache makes the
//! kernel find, fill, later write back and evict a page for every 4 KiB stored, pushing out
//! pages others were using. Where fresh memory is expensive to the kernel (a VM whose host
//! takes back the memory its guest frees, as on the machine the benches run on), that costs
//! ~2.7 s of CPU per GiB written, more than the rest of a fetch; direct writes cost ~0.1 s per
//! GiB there. What a node adds stays on the ordinary path (it is about to serve it), and reads
//! are buffered: what is read is cached as before.
//!
//! Direct I/O wants offsets, lengths and memory aligned to the disk's block size
//! ([`DIRECT_ALIGN`]). An append therefore starts at the segment's last whole page: the bytes of
//! the last partial page (the tail, kept here) are written again in front of the new records,
//! and the last page written is padded with zeros. So the file is longer than the segment's
//! logical length by under one page; [`trim`] cuts the padding when a segment is sealed or the
//! store closes. After a crash the padding is a torn tail (zeros are no record header), cut off
//! on open like any other.
//!
//! A reader reading the tail page while an append rewrites it sees the same bytes for every
//! record already indexed (the rewrite only replaces padding), and the kernel drops cached
//! pages of the range after a direct write, so later reads see the new records.

use crate::aligned::{AlignedBuf, DIRECT_ALIGN};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Bytes of the staging buffer: a write of a full buffer is one `pwrite`.
const DIRECT_BUFFER_BYTES: usize = 1 << 20;

/// The direct appender of one segment.
pub struct Direct {
    file: File,
    buf: AlignedBuf,
    /// The bytes of the segment's last partial page are `buf[..tail]`.
    tail: usize,
}

impl Direct {
    /// Opens segment `path` (whose logical length is `len`; `buffered` is its ordinary
    /// handle, to read the tail from) for direct appends. `None` where the file system has no
    /// direct I/O (tmpfs), or the tail cannot be read: appends then go through the page cache.
    pub fn open(path: &Path, buffered: &File, len: u64) -> Option<Self> {
        let file = match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
        {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "no direct I/O; writing through the page cache");
                return None;
            }
        };
        let mut d = Self {
            file,
            buf: AlignedBuf::new(DIRECT_BUFFER_BYTES),
            tail: 0,
        };
        d.load_tail(buffered, len).ok()?;
        Some(d)
    }

    /// Reads the segment's last partial page (logical length `len`) from `buffered`.
    pub fn load_tail(&mut self, buffered: &File, len: u64) -> std::io::Result<()> {
        let tail = (len % DIRECT_ALIGN as u64) as usize;
        let at = len - tail as u64;
        buffered.read_exact_at(&mut self.buf.bytes_mut()[..tail], at)?;
        self.tail = tail;
        Ok(())
    }

    /// Appends `slices` to the segment, whose logical length is `len`. On an error the file
    /// may hold part of the slices past `len`: the caller cuts it off and calls
    /// [`load_tail`](Self::load_tail) before appending again.
    pub fn append(&mut self, len: u64, slices: &[&[u8]]) -> std::io::Result<()> {
        debug_assert_eq!((len % DIRECT_ALIGN as u64) as usize, self.tail);
        let (file, buf) = (&self.file, self.buf.bytes_mut());
        // `buf[0]` goes at file offset `at`, a page boundary.
        let mut at = len - self.tail as u64;
        let mut fill = self.tail;
        for s in slices {
            let mut s = *s;
            while !s.is_empty() {
                let n = s.len().min(DIRECT_BUFFER_BYTES - fill);
                buf[fill..fill + n].copy_from_slice(&s[..n]);
                fill += n;
                s = &s[n..];
                if fill == DIRECT_BUFFER_BYTES {
                    file.write_all_at(buf, at)?;
                    at += DIRECT_BUFFER_BYTES as u64;
                    fill = 0;
                }
            }
        }
        let whole = fill - fill % DIRECT_ALIGN;
        if fill > 0 {
            let padded = fill.next_multiple_of(DIRECT_ALIGN);
            buf[fill..padded].fill(0);
            file.write_all_at(&buf[..padded], at)?;
        }
        // The new last partial page starts the next append.
        buf.copy_within(whole..fill, 0);
        self.tail = fill - whole;
        Ok(())
    }
}

/// Cuts the padding past a segment's logical length `len` (see the module docs).
pub fn trim(buffered: &File, len: u64) -> std::io::Result<()> {
    if buffered.metadata()?.len() > len {
        buffered.set_len(len)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends of every awkward size land byte for byte, readable through the buffered handle
    /// at once, with under a page of padding past the logical length.
    #[test]
    fn appends_are_exact_and_padded_under_a_page() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let buffered = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let Some(mut d) = Direct::open(&path, &buffered, 0) else {
            eprintln!("no direct I/O on {}: skipped", dir.path().display());
            return;
        };
        let mut expect = Vec::new();
        let sizes = [
            1usize,
            4095,
            4096,
            4097,
            13,
            DIRECT_BUFFER_BYTES,
            3 * DIRECT_BUFFER_BYTES + 7,
            0,
            100_000,
        ];
        for (i, &n) in sizes.iter().enumerate() {
            let a: Vec<u8> = (0..n).map(|j| (i * 31 + j) as u8).collect();
            let b = vec![i as u8; i * 100];
            d.append(expect.len() as u64, &[&a, &b]).unwrap();
            expect.extend_from_slice(&a);
            expect.extend_from_slice(&b);
            let mut got = vec![0u8; expect.len()];
            buffered.read_exact_at(&mut got, 0).unwrap();
            assert!(got == expect, "after append {i}");
            let file_len = buffered.metadata().unwrap().len();
            assert!(file_len >= expect.len() as u64);
            assert!(file_len - (expect.len() as u64) < DIRECT_ALIGN as u64);
        }
        trim(&buffered, expect.len() as u64).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expect);
        // A new appender on the trimmed file picks up its tail.
        let mut d = Direct::open(&path, &buffered, expect.len() as u64).unwrap();
        d.append(expect.len() as u64, &[b"more"]).unwrap();
        expect.extend_from_slice(b"more");
        trim(&buffered, expect.len() as u64).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expect);
    }
}
