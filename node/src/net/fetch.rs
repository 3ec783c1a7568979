//! Fetching blocks and DAGs over bitswap: the node-side bookkeeping of one fetch.
//!
//! A fetch owns a bitswap session and a repository [`WriteSession`]. Every block that arrives
//! is written through the write session (so a concurrent GC treats it as a root) and, for a
//! DAG fetch, decoded for its links (`dag::links`); children not already local are added to
//! the session's wants at once, so many wants are in flight while the walk goes on. Children
//! that are local are walked locally and recorded in the write session too, so the whole DAG
//! stays protected until the caller pins it and drops [`FetchStats::guard`].
//!
//! Runs on the swarm task. A DAG fetch does not write its blocks there: they go to the fetch's
//! writer on tokio's blocking pool, which writes whatever has queued up with one `put_many`,
//! so the swarm task goes on with the next frames and wants while the page cache is written
//! on the other core. At most [`FETCH_WRITE_QUEUE_BYTES_MAX`] of blocks wait for the writer;
//! past that the swarm task writes the block itself (memory stays bounded, and the fetch slows
//! down to the disk). A fetch replies only once its writer has written everything, and fails
//! if a write failed. A single-block fetch writes on the swarm task, as does the walk over
//! blocks that are already local (the store skips those writes).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cid::Cid;
use ipfs_kit_blockstore::{hash, Block};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::dag::links::{self, MultihashSet};
use crate::repo::{Repo, WriteSession};
use crate::unixfs::BlockSink as _;

use super::node::NetError;

/// Bytes of received blocks a DAG fetch's writer may have queued; past it the swarm task writes
/// them itself.
pub const FETCH_WRITE_QUEUE_BYTES_MAX: usize = 32 * 1024 * 1024;
/// Bytes of blocks a fetch's writer gathers into one `put_many` (one `writev`).
pub const FETCH_WRITE_BATCH_BYTES_MAX: usize = 1024 * 1024;

/// What a [`fetch_dag`](super::NodeHandle::fetch_dag) did.
pub struct FetchStats {
    pub root: Cid,
    /// Blocks that came from the network.
    pub blocks_fetched: u64,
    /// Bytes of block data that came from the network.
    pub bytes_fetched: u64,
    /// Blocks of the DAG that were already local.
    pub blocks_local: u64,
    pub elapsed: Duration,
    /// A temporary pin on every block of the DAG: GC keeps them while this lives. Pin the root,
    /// then drop it (or the stats).
    pub guard: Option<WriteSession>,
}

impl std::fmt::Debug for FetchStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchStats")
            .field("root", &self.root)
            .field("blocks_fetched", &self.blocks_fetched)
            .field("bytes_fetched", &self.bytes_fetched)
            .field("blocks_local", &self.blocks_local)
            .field("elapsed", &self.elapsed)
            .field("guarded", &self.guard.is_some())
            .finish()
    }
}

pub(crate) enum Reply {
    Block(oneshot::Sender<Result<Block, NetError>>),
    Dag(oneshot::Sender<Result<FetchStats, NetError>>),
}

impl Reply {
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Reply::Block(tx) => tx.is_closed(),
            Reply::Dag(tx) => tx.is_closed(),
        }
    }

    pub(crate) fn fail(self, e: NetError) {
        match self {
            Reply::Block(tx) => {
                let _ = tx.send(Err(e));
            }
            Reply::Dag(tx) => {
                let _ = tx.send(Err(e));
            }
        }
    }
}

/// A DAG fetch's writer: a job on tokio's blocking pool that writes the blocks sent to it.
struct Writer {
    tx: mpsc::Sender<Block>,
    /// Block bytes sent and not yet written.
    queued: Arc<AtomicUsize>,
    /// The first write error; the writer stops at it.
    failed: Arc<Mutex<Option<String>>>,
    job: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start(session: Arc<WriteSession>) -> Option<Self> {
        let rt = tokio::runtime::Handle::try_current().ok()?;
        let (tx, rx) = mpsc::channel::<Block>();
        let queued = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(Mutex::new(None));
        let (q, f) = (queued.clone(), failed.clone());
        let job = rt.spawn_blocking(move || {
            while let Ok(first) = rx.recv() {
                let mut bytes = first.data().len();
                let mut batch = vec![first];
                while bytes < FETCH_WRITE_BATCH_BYTES_MAX {
                    let Ok(b) = rx.try_recv() else { break };
                    bytes += b.data().len();
                    batch.push(b);
                }
                let r = session.put_blocks(&batch);
                q.fetch_sub(bytes, Ordering::Relaxed);
                if let Err(e) = r {
                    *f.lock() = Some(e.to_string());
                    return;
                }
            }
        });
        Some(Self {
            tx,
            queued,
            failed,
            job,
        })
    }

    /// Hands `block` to the writer; gives it back when the queue is full or the writer has
    /// stopped.
    fn send(&self, block: &Block) -> Result<(), ()> {
        let len = block.data().len();
        if self.queued.load(Ordering::Relaxed) + len > FETCH_WRITE_QUEUE_BYTES_MAX {
            return Err(());
        }
        self.queued.fetch_add(len, Ordering::Relaxed);
        if self.tx.send(block.clone()).is_err() {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            return Err(());
        }
        Ok(())
    }

    fn error(&self) -> Option<String> {
        self.failed.lock().clone()
    }
}

/// One fetch in progress.
pub(crate) struct Fetch {
    pub(crate) root: Cid,
    pub(crate) reply: Reply,
    write: Arc<WriteSession>,
    /// Writes a DAG fetch's blocks off the swarm task (started with the first block).
    writer: Option<Writer>,
    seen: MultihashSet,
    /// Wants handed to the session and not yet received.
    pub(crate) pending: usize,
    blocks_fetched: u64,
    bytes_fetched: u64,
    blocks_local: u64,
    started: Instant,
    pub(crate) last_progress: Instant,
}

impl Fetch {
    pub(crate) fn new(repo: &Repo, root: Cid, reply: Reply) -> Self {
        let now = Instant::now();
        Self {
            root,
            reply,
            write: Arc::new(repo.begin_write()),
            writer: None,
            seen: MultihashSet::new(),
            pending: 0,
            blocks_fetched: 0,
            bytes_fetched: 0,
            blocks_local: 0,
            started: now,
            last_progress: now,
        }
    }

    fn is_dag(&self) -> bool {
        matches!(self.reply, Reply::Dag(_))
    }

    /// Walks `cids` through what is local; returns the CIDs to ask the network for.
    pub(crate) fn expand(&mut self, cids: Vec<Cid>) -> Result<Vec<Cid>, NetError> {
        let repo = self.write.repo();
        let store = repo.blocks().clone();
        let mut stack = cids;
        let mut wants = Vec::new();
        while let Some(c) = stack.pop() {
            if !self.seen.insert(c.hash()) {
                continue;
            }
            let data = match hash::identity_data(&c) {
                Some(d) => Some(Bytes::copy_from_slice(d)),
                None => store.get(&c).map_err(|e| NetError::Fetch(e.to_string()))?,
            };
            let Some(data) = data else {
                wants.push(c);
                continue;
            };
            if hash::identity_data(&c).is_none() {
                self.blocks_local += 1;
                // Recorded (the store skips the write) so GC keeps it until the caller pins.
                self.write
                    .put_blocks(&[Block::new_unchecked(c, data.clone())])
                    .map_err(|e| NetError::Fetch(e.to_string()))?;
            }
            if self.is_dag() {
                stack.extend(links::links(&c, &data).map_err(|e| NetError::Fetch(e.to_string()))?);
            }
        }
        self.pending += wants.len();
        Ok(wants)
    }

    /// Stores a received block; returns the children to want next.
    pub(crate) fn on_block(&mut self, block: &Block) -> Result<Vec<Cid>, NetError> {
        if self.is_dag() && self.writer.is_none() {
            self.writer = Writer::start(self.write.clone());
        }
        let queued = match &self.writer {
            Some(w) => {
                if let Some(e) = w.error() {
                    return Err(NetError::Fetch(e));
                }
                w.send(block).is_ok()
            }
            None => false,
        };
        if !queued {
            self.write
                .put_blocks(std::slice::from_ref(block))
                .map_err(|e| NetError::Fetch(e.to_string()))?;
        }
        self.pending = self.pending.saturating_sub(1);
        self.blocks_fetched += 1;
        self.bytes_fetched += block.data().len() as u64;
        self.last_progress = Instant::now();
        if !self.is_dag() {
            return Ok(Vec::new());
        }
        let children = links::links(block.cid(), block.data())
            .map_err(|e| NetError::Fetch(format!("{}: {e}", block.cid())))?;
        self.expand(children)
    }

    /// Ends the fetch successfully.
    /// Replies once the writer (if any) has written every block.
    pub(crate) fn finish(self, block: Option<Block>) {
        let Fetch {
            root,
            reply,
            write,
            writer,
            blocks_fetched,
            bytes_fetched,
            blocks_local,
            started,
            ..
        } = self;
        let reply_with = move |write: Arc<WriteSession>, error: Option<String>| match reply {
            Reply::Block(tx) => {
                let r = match error {
                    Some(e) => Err(NetError::Fetch(e)),
                    None => block.ok_or(NetError::Fetch("no block".into())),
                };
                let _ = tx.send(r);
            }
            Reply::Dag(tx) => {
                let r = match (error, Arc::try_unwrap(write)) {
                    (Some(e), _) => Err(NetError::Fetch(e)),
                    (None, Ok(session)) => Ok(FetchStats {
                        root,
                        blocks_fetched,
                        bytes_fetched,
                        blocks_local,
                        elapsed: started.elapsed(),
                        guard: Some(session),
                    }),
                    // The writer has returned, and with it its handle on the session.
                    (None, Err(_)) => Err(NetError::Fetch("write session still in use".into())),
                };
                let _ = tx.send(r);
            }
        };
        match writer {
            None => reply_with(write, None),
            Some(Writer {
                tx, failed, job, ..
            }) => {
                drop(tx);
                tokio::spawn(async move {
                    let joined = job.await;
                    let error = failed
                        .lock()
                        .take()
                        .or_else(|| joined.err().map(|e| format!("writing fetched blocks: {e}")));
                    reply_with(write, error);
                });
            }
        }
    }
}
