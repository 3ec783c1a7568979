//! [`DirectWriter`]: writes a new file with direct I/O (`O_DIRECT`), past the page cache, where
//! the file system allows: the files `get` writes out.
//!
//! Why: a file fetched and written out is not read back by the writer, and writing it through
//! the page cache makes the kernel find, fill, write back and later evict a page for every 4
//! KiB, pushing out pages others were using. Where fresh memory is expensive to the kernel (a
//! VM whose host takes back the memory its guest frees, as on the machine the benches run on)
//! that cost ~2.5 s of CPU per GiB written, against ~0.1 s for direct writes (`dd` of 1 GiB,
//! benches/README.md, "Session 17"). kubo writes through the page cache.
//!
//! Direct I/O wants offsets, lengths and memory aligned to the disk's block size. The file's
//! first [`DIRECT_BUFFER_BYTES`] (all of a small file) go through the page cache; past them the
//! writer gathers the bytes in an aligned buffer of that size and writes each full buffer
//! directly — the first in the caller's thread (where a file system that refuses direct I/O
//! says so), the rest in a background thread, a few buffers at a time, so the caller fills the
//! next buffer while the disk takes the last (a direct write returns only once the disk has
//! the bytes). What is left at the end (under one buffer) is written through the page cache
//! after the last direct write, so the two never cover the same bytes. Where the file system
//! refuses direct I/O, every write goes through the page cache.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::mpsc;
use std::sync::Arc;

use ipfs_kit_blockstore::aligned::AlignedBuf;

/// Bytes gathered before a direct write: each full buffer is one `pwrite`.
pub const DIRECT_BUFFER_BYTES: usize = 1 << 20;
/// Full buffers written in the background at once (the writer's memory is this many buffers
/// plus the one being filled).
const DIRECT_BUFFERS_IN_FLIGHT: usize = 3;

/// The background thread writing full buffers directly, so the caller fills the next buffer
/// while the disk takes the last.
struct Background {
    jobs: Option<mpsc::SyncSender<(AlignedBuf, u64)>>,
    done: mpsc::Receiver<std::io::Result<AlignedBuf>>,
    in_flight: usize,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    fn start(file: Arc<File>) -> std::io::Result<Self> {
        let (jobs, todo) = mpsc::sync_channel::<(AlignedBuf, u64)>(DIRECT_BUFFERS_IN_FLIGHT);
        let (report, done) = mpsc::sync_channel(DIRECT_BUFFERS_IN_FLIGHT);
        let thread = std::thread::Builder::new()
            .name("get-write".into())
            .spawn(move || {
                for (buf, at) in todo {
                    let r = file.write_all_at(buf.bytes(), at).map(|()| buf);
                    if report.send(r).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Self {
            jobs: Some(jobs),
            done,
            in_flight: 0,
            thread: Some(thread),
        })
    }

    /// Waits for the oldest write: its buffer, or its error.
    fn wait_one(&mut self) -> std::io::Result<AlignedBuf> {
        let r = self
            .done
            .recv()
            .unwrap_or_else(|_| Err(std::io::Error::other("the background writer stopped")));
        self.in_flight -= 1;
        r
    }

    /// Waits for every write; the first error if one failed.
    fn drain(&mut self) -> std::io::Result<()> {
        let mut first = Ok(());
        while self.in_flight > 0 {
            if let Err(e) = self.wait_one() {
                first = first.and(Err(e));
            }
        }
        first
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        drop(self.jobs.take());
        // The thread ends once it has written what it was given.
        while self.in_flight > 0 && self.done.recv().is_ok() {
            self.in_flight -= 1;
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes a file from its start (see the module docs); [`finish`](Self::finish) writes the rest.
pub struct DirectWriter {
    file: Arc<File>,
    /// The file's first [`DIRECT_BUFFER_BYTES`], gathered in ordinary memory and written
    /// through the page cache: all of a small file, which so costs no aligned buffer.
    head: Vec<u8>,
    /// The aligned buffer, once the head is written.
    buf: AlignedBuf,
    /// Bytes in `buf`.
    fill: usize,
    /// Where the buffer's first byte goes in the file.
    offset: u64,
    /// Whether the file is in direct mode: `None` until the first full buffer.
    direct: Option<bool>,
    /// The thread writing full buffers (direct mode, after the first).
    background: Option<Background>,
}

impl DirectWriter {
    /// A writer of `file`, a new (empty) file opened for writing.
    pub fn new(file: File) -> Self {
        Self {
            file: Arc::new(file),
            head: Vec::new(),
            buf: AlignedBuf::new(0),
            fill: 0,
            offset: 0,
            direct: None,
            background: None,
        }
    }

    /// Writes the full buffer: the first one here, trying direct I/O; later ones directly in
    /// the background, or through the page cache where direct I/O was refused.
    fn write_full(&mut self) -> std::io::Result<()> {
        let at = self.offset;
        match self.direct {
            None => {
                self.direct = Some(set_direct(&self.file, true).is_ok());
                if self.direct == Some(true) {
                    if let Err(e) = self.file.write_all_at(self.buf.bytes(), at) {
                        if e.raw_os_error() != Some(libc::EINVAL) {
                            return Err(e);
                        }
                        // The file system took the flag but not the write.
                        tracing::debug!(error = %e, "direct write refused; writing through the page cache");
                        set_direct(&self.file, false)?;
                        self.direct = Some(false);
                    }
                }
                if self.direct == Some(false) {
                    self.file.write_all_at(self.buf.bytes(), at)?;
                }
            }
            Some(false) => self.file.write_all_at(self.buf.bytes(), at)?,
            Some(true) => {
                if self.background.is_none() {
                    self.background = Some(Background::start(self.file.clone())?);
                }
                let Some(bg) = self.background.as_mut() else {
                    unreachable!("started above");
                };
                // A new buffer until as many are in flight as may be, then the oldest back.
                let next = if bg.in_flight < DIRECT_BUFFERS_IN_FLIGHT {
                    AlignedBuf::new(DIRECT_BUFFER_BYTES)
                } else {
                    bg.wait_one()?
                };
                let full = std::mem::replace(&mut self.buf, next);
                let sent = bg.jobs.as_ref().map(|j| j.send((full, at)));
                if !matches!(sent, Some(Ok(()))) {
                    return Err(std::io::Error::other("the background writer stopped"));
                }
                bg.in_flight += 1;
            }
        }
        self.offset += DIRECT_BUFFER_BYTES as u64;
        self.fill = 0;
        Ok(())
    }

    /// Writes what is still buffered (through the page cache) once the background writes are
    /// done.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.write_rest()
    }

    /// Waits for the background writes, then writes the buffered bytes through the page
    /// cache, keeping them buffered.
    fn write_rest(&mut self) -> std::io::Result<()> {
        if self.offset == 0 {
            return self.file.write_all_at(&self.head, 0);
        }
        if let Some(bg) = &mut self.background {
            bg.drain()?;
        }
        if self.direct == Some(true) {
            set_direct(&self.file, false)?;
            self.direct = None;
        }
        self.file
            .write_all_at(&self.buf.bytes()[..self.fill], self.offset)
    }
}

impl Write for DirectWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.offset == 0 {
            let n = buf.len().min(DIRECT_BUFFER_BYTES - self.head.len());
            self.head.extend_from_slice(&buf[..n]);
            if self.head.len() == DIRECT_BUFFER_BYTES {
                self.file.write_all_at(&self.head, 0)?;
                self.head = Vec::new();
                self.buf = AlignedBuf::new(DIRECT_BUFFER_BYTES);
                self.offset = DIRECT_BUFFER_BYTES as u64;
            }
            return Ok(n);
        }
        let n = buf.len().min(DIRECT_BUFFER_BYTES - self.fill);
        let fill = self.fill;
        self.buf.bytes_mut()[fill..fill + n].copy_from_slice(&buf[..n]);
        self.fill += n;
        if self.fill == DIRECT_BUFFER_BYTES {
            self.write_full()?;
        }
        Ok(n)
    }

    /// Puts the buffered bytes in the file (through the page cache). They stay buffered too:
    /// once the buffer is full it is written again, directly, over them.
    fn flush(&mut self) -> std::io::Result<()> {
        self.write_rest()
    }
}

/// Turns direct I/O on or off for `file`.
fn set_direct(file: &File, on: bool) -> std::io::Result<()> {
    use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
    let flags = fcntl_getfl(file)?;
    let flags = if on {
        flags | OFlags::DIRECT
    } else {
        flags - OFlags::DIRECT
    };
    Ok(fcntl_setfl(file, flags)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files of every awkward size come out byte for byte, with a flush in the middle.
    #[test]
    fn writes_are_exact() {
        let dir = tempfile::tempdir().unwrap();
        let sizes = [
            0,
            1,
            4096,
            DIRECT_BUFFER_BYTES - 1,
            DIRECT_BUFFER_BYTES,
            DIRECT_BUFFER_BYTES + 1,
            (DIRECT_BUFFERS_IN_FLIGHT + 3) * DIRECT_BUFFER_BYTES + 12_345,
        ];
        for (i, &n) in sizes.iter().enumerate() {
            let data: Vec<u8> = (0..n).map(|j| (j * 7 + i) as u8).collect();
            let path = dir.path().join(format!("f{i}"));
            let mut w = DirectWriter::new(File::create_new(&path).unwrap());
            // Pieces of an odd size, as a DAG's leaves may be.
            for (k, piece) in data.chunks(100_003).enumerate() {
                w.write_all(piece).unwrap();
                if k == 1 {
                    w.flush().unwrap();
                }
            }
            w.finish().unwrap();
            assert!(std::fs::read(&path).unwrap() == data, "size {n}");
        }
    }

    /// A write the disk refuses is an error, not a short file.
    #[test]
    fn a_refused_write_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"").unwrap();
        let mut w = DirectWriter::new(File::open(&path).unwrap());
        let data = vec![1u8; 2 * DIRECT_BUFFER_BYTES];
        let e = w.write_all(&data).and_then(|()| w.finish()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
    }
}
