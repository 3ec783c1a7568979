//! Streaming `cat`: file bytes from `offset` for `length`, without buffering the file.
//!
//! Three kinds of threads overlap so that fetching and verifying blocks (the store hashes every
//! block it returns) runs beside writing:
//! - a walker descends the file DAG, uses `blocksizes` to skip whole subtrees before `offset`
//!   and after the end, and submits each needed child to the workers, at most
//!   [`PREFETCH_WINDOW_BLOCKS`] ahead per level;
//! - [`FETCH_WORKERS`] workers fetch, verify and decode children (each job answers on its own
//!   one-slot channel, so the walker consumes them in order);
//! - the caller's thread writes the slices the walker forwards through a bounded queue.
//!
//! Memory is bounded by (window x depth + queue) blocks. Sizes are cross-checked: a leaf must
//! hold exactly the bytes its parent's `blocksizes` promises, an inner node's sizes must add
//! up to it.

use super::{decode_node, load, ExportError, Node, DAG_DEPTH_MAX};
use crate::dag::pb::PbNode;
use crate::dag::unixfs_pb::{DataType, UnixFsData};
use bytes::Bytes;
use cid::Cid;
use crossbeam_channel::{bounded, Receiver, Sender};
use ipfs_kit_blockstore::{Blockstore, BlockstoreError};
use std::collections::VecDeque;
use std::io::Write;

/// Children fetched ahead of the writer, per DAG level.
pub const PREFETCH_WINDOW_BLOCKS: usize = 24;
/// Threads fetching and verifying blocks for one `cat` of a local store (enough to keep
/// hashing beside the writer).
pub const FETCH_WORKERS: usize = 2;
/// Threads for one [`cat_with`] of a store that fetches each miss over the network on its own
/// (a byte range of a file not here): each waits one block's round trip, so this many blocks
/// are in flight. At most [`PREFETCH_WINDOW_BLOCKS`], the most the walker asks ahead.
pub const REMOTE_FETCH_WORKERS: usize = 16;
/// Queued children a local store's worker reads (and hashes) at once.
const BLOCKS_READ_TOGETHER: usize = 2;
/// Slices queued between the walker and the writer.
const OUT_QUEUE_SLICES: usize = 8;

/// A fetched child of a file node.
enum Fetched {
    Leaf(Bytes),
    Inner(PbNode, UnixFsData),
}

struct Job {
    cid: Cid,
    reply: Sender<Result<Fetched, ExportError>>,
}

/// A child as its block decodes: a leaf's bytes, or an inner node.
fn interpret(
    cid: &Cid,
    read: Result<Option<Bytes>, BlockstoreError>,
) -> Result<Fetched, ExportError> {
    let bytes = read?.ok_or(ExportError::NotFound(*cid))?;
    match decode_node(cid, bytes)? {
        Node::Raw(b) => Ok(Fetched::Leaf(b)),
        Node::Pb { node, fs } => {
            if !matches!(fs.kind, DataType::File | DataType::Raw) {
                return Err(ExportError::decode(
                    cid,
                    format!("{:?} node inside a file", fs.kind),
                ));
            }
            if node.links.is_empty() {
                Ok(Fetched::Leaf(fs.data.unwrap_or_default()))
            } else {
                Ok(Fetched::Inner(node, fs))
            }
        }
    }
}

/// Writes bytes `[offset, offset + length)` of the file at `cid` (clamped to its size) to
/// `out`; returns how many were written. Raw blocks, dag-pb File/Raw DAGs (balanced or
/// trickle) and identity CIDs are files; a directory is [`ExportError::IsADirectory`].
pub fn cat(
    store: &dyn Blockstore,
    cid: &Cid,
    offset: u64,
    length: Option<u64>,
    out: &mut dyn Write,
) -> Result<u64, ExportError> {
    cat_with(store, cid, offset, length, FETCH_WORKERS, out)
}

/// [`cat`] with `workers` threads reading blocks ahead of the writer (clamped to
/// `1..=`[`PREFETCH_WINDOW_BLOCKS`]): [`FETCH_WORKERS`] for a local store,
/// [`REMOTE_FETCH_WORKERS`] for one whose misses each wait for the network.
pub fn cat_with(
    store: &dyn Blockstore,
    cid: &Cid,
    offset: u64,
    length: Option<u64>,
    workers: usize,
    out: &mut dyn Write,
) -> Result<u64, ExportError> {
    let workers = workers.clamp(1, PREFETCH_WINDOW_BLOCKS);
    let root = load(store, cid)?;
    let size = root.content_size();
    let start = offset.min(size);
    let end = match length {
        Some(l) => start.saturating_add(l).min(size),
        None => size,
    };
    let (node, fs) = match root {
        Node::Raw(b) => return write_slice(&b, 0, start, end, out),
        Node::Pb { node, fs } => (node, fs),
    };
    match fs.kind {
        DataType::Directory | DataType::HamtShard => return Err(ExportError::IsADirectory),
        DataType::Symlink | DataType::Metadata => return Err(ExportError::NotAFile(*cid)),
        DataType::File | DataType::Raw => {}
    }
    let summed = fs
        .blocksizes
        .iter()
        .try_fold(fs.data.as_ref().map_or(0, |d| d.len() as u64), |a, &b| {
            a.checked_add(b)
        });
    if summed != Some(size) {
        return Err(ExportError::decode(
            cid,
            format!("filesize {size} but data and blocksizes add up to {summed:?}"),
        ));
    }
    if start >= end {
        return Ok(0);
    }
    if node.links.is_empty() {
        let data = fs.data.unwrap_or_default();
        return write_slice(&data, 0, start, end, out);
    }
    let root_cid = *cid;
    std::thread::scope(|s| {
        let (job_tx, job_rx) = bounded::<Job>(workers * 4);
        let (out_tx, out_rx) = bounded::<Result<Bytes, ExportError>>(OUT_QUEUE_SLICES);
        // A local store's workers read two queued children at once, hashed together
        // (`Blockstore::get_many`); more workers than that means each read waits on the
        // network, and those read one at a time so that their waits overlap.
        let together = if workers > FETCH_WORKERS {
            1
        } else {
            BLOCKS_READ_TOGETHER
        };
        for _ in 0..workers {
            let rx = job_rx.clone();
            s.spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut jobs = vec![first];
                    jobs.extend(rx.try_iter().take(together - 1));
                    let cids: Vec<Cid> = jobs.iter().map(|j| j.cid).collect();
                    for (job, read) in jobs.into_iter().zip(store.get_many(&cids)) {
                        // The walker may have stopped; then nobody waits for this answer.
                        let _ = job.reply.send(interpret(&job.cid, read));
                    }
                }
            });
        }
        drop(job_rx);
        s.spawn(move || {
            let walker = Walker {
                jobs: job_tx,
                out: out_tx,
                start,
                end,
            };
            if let Err(Stop::Failed(e)) = walker.walk(&root_cid, &node, &fs, 0, 0) {
                let _ = walker.out.send(Err(e));
            }
        });
        let mut written = 0u64;
        let result = loop {
            match out_rx.recv() {
                Ok(Ok(b)) => {
                    if let Err(e) = out.write_all(&b) {
                        break Err(ExportError::Write(e));
                    }
                    written += b.len() as u64;
                }
                Ok(Err(e)) => break Err(e),
                Err(_) => break Ok(written),
            }
        };
        drop(out_rx);
        let written = result?;
        if written != end - start {
            return Err(ExportError::decode(
                &root_cid,
                format!("file DAG yielded {written} of {} bytes", end - start),
            ));
        }
        Ok(written)
    })
}

fn write_slice(
    content: &[u8],
    content_start: u64,
    start: u64,
    end: u64,
    out: &mut dyn Write,
) -> Result<u64, ExportError> {
    let len = content.len() as u64;
    let lo = start.max(content_start);
    let hi = end.min(content_start + len);
    if lo >= hi {
        return Ok(0);
    }
    let slice = &content[(lo - content_start) as usize..(hi - content_start) as usize];
    out.write_all(slice).map_err(ExportError::Write)?;
    Ok(hi - lo)
}

enum Stop {
    /// The writer went away (it failed or finished early): stop quietly.
    Closed,
    Failed(ExportError),
}

impl From<ExportError> for Stop {
    fn from(e: ExportError) -> Self {
        Stop::Failed(e)
    }
}

struct Walker {
    jobs: Sender<Job>,
    out: Sender<Result<Bytes, ExportError>>,
    start: u64,
    end: u64,
}

struct Pending {
    cid: Cid,
    start: u64,
    len: u64,
    rx: Receiver<Result<Fetched, ExportError>>,
}

impl Walker {
    /// Forwards the part of `content` (which begins at file offset `at`) inside the range.
    fn emit(&self, content: &Bytes, at: u64) -> Result<(), Stop> {
        let lo = self.start.max(at);
        let hi = self.end.min(at + content.len() as u64);
        if lo < hi {
            let slice = content.slice((lo - at) as usize..(hi - at) as usize);
            self.out.send(Ok(slice)).map_err(|_| Stop::Closed)?;
        }
        Ok(())
    }

    fn submit(&self, cid: Cid, start: u64, len: u64) -> Result<Pending, Stop> {
        let (reply, rx) = bounded(1);
        self.jobs
            .send(Job { cid, reply })
            .map_err(|_| Stop::Closed)?;
        Ok(Pending {
            cid,
            start,
            len,
            rx,
        })
    }

    /// Walks a file node whose content begins at file offset `at`.
    fn walk(
        &self,
        cid: &Cid,
        node: &PbNode,
        fs: &UnixFsData,
        at: u64,
        depth: usize,
    ) -> Result<(), Stop> {
        if depth > DAG_DEPTH_MAX {
            return Err(ExportError::TooDeep.into());
        }
        let mut pos = at;
        if let Some(d) = &fs.data {
            self.emit(d, pos)?;
            pos += d.len() as u64;
        }
        // Children overlapping [start, end), with their offsets.
        let mut wanted = Vec::new();
        for (link, &len) in node.links.iter().zip(&fs.blocksizes) {
            let child_end = pos
                .checked_add(len)
                .ok_or_else(|| ExportError::decode(cid, "blocksizes overflow"))?;
            if pos >= self.end {
                break;
            }
            if child_end > self.start && len > 0 {
                wanted.push((link.cid, pos, len));
            }
            pos = child_end;
        }
        let mut wanted = wanted.into_iter();
        let mut pending: VecDeque<Pending> = VecDeque::with_capacity(PREFETCH_WINDOW_BLOCKS);
        loop {
            while pending.len() < PREFETCH_WINDOW_BLOCKS {
                match wanted.next() {
                    Some((c, s, l)) => pending.push_back(self.submit(c, s, l)?),
                    None => break,
                }
            }
            let Some(p) = pending.pop_front() else {
                return Ok(());
            };
            let fetched = p.rx.recv().map_err(|_| Stop::Closed)??;
            match fetched {
                Fetched::Leaf(b) => {
                    if b.len() as u64 != p.len {
                        return Err(ExportError::decode(
                            &p.cid,
                            format!("leaf holds {} bytes, parent says {}", b.len(), p.len),
                        )
                        .into());
                    }
                    self.emit(&b, p.start)?;
                }
                Fetched::Inner(n, f) => {
                    let inner = f
                        .blocksizes
                        .iter()
                        .try_fold(f.data.as_ref().map_or(0, |d| d.len() as u64), |a, &b| {
                            a.checked_add(b)
                        });
                    if inner != Some(p.len) {
                        return Err(ExportError::decode(
                            &p.cid,
                            format!("node holds {inner:?} bytes, parent says {}", p.len),
                        )
                        .into());
                    }
                    self.walk(&p.cid, &n, &f, p.start, depth + 1)?;
                }
            }
        }
    }
}
