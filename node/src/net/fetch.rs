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
//! writer, a job on tokio's blocking pool, which writes whatever has queued up with one
//! [`put_blocks_cold`](WriteSession::put_blocks_cold) (past the page cache where the store
//! can: nobody reads them back soon — a reader behind the fetch takes them as they arrive), so
//! the swarm task goes on with the next frames and wants while the disk takes the last. At
//! most [`FETCH_WRITE_QUEUE_BYTES_MAX`] of blocks wait for the writer; past that the swarm
//! task writes the block itself (memory stays bounded, and the fetch slows down to the disk).
//! A fetch replies only once its writer has written everything, and fails if a write failed.
//! A single-block fetch writes on the swarm task, as does the walk over blocks that are
//! already local (the store skips those writes).
//!
//! A DAG fetch for a reader reading it while it arrives
//! ([`on_demand::read_dag`](super::on_demand::read_dag)) also offers each received block to
//! the reader's [`Handover`] before queueing its write, and tells it when a batch is written.
//! A block the handover has no room for (the reader is more than its bound behind) is written
//! through the page cache instead of past it: the reader will read it back from the store.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cid::Cid;
use ipfs_kit_blockstore::{hash, Block};
use parking_lot::Mutex;
use tokio::sync::{oneshot, Notify};

use crate::dag::links::{self, MultihashSet};
use crate::repo::{Repo, WriteSession};
use crate::unixfs::BlockSink as _;

use super::node::NetError;
use super::on_demand::Handover;

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
    /// With the reader, if any, that takes the blocks as they arrive.
    Dag(
        oneshot::Sender<Result<FetchStats, NetError>>,
        Option<Arc<Handover>>,
    ),
}

impl Reply {
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Reply::Block(tx) => tx.is_closed(),
            Reply::Dag(tx, _) => tx.is_closed(),
        }
    }

    pub(crate) fn fail(self, e: NetError) {
        match self {
            Reply::Block(tx) => {
                let _ = tx.send(Err(e));
            }
            Reply::Dag(tx, _) => {
                let _ = tx.send(Err(e));
            }
        }
    }
}

/// A DAG fetch's writer: blocks queue up here and a job on tokio's blocking pool writes them,
/// started when the first block arrives and gone again once the queue is empty — so an idle
/// fetch holds no thread (a node may run
/// [`SESSIONS_MAX`](crate::bitswap::behaviour::SESSIONS_MAX) fetches).
struct Writer {
    state: Arc<Mutex<WriterState>>,
    /// Told after every batch written (a reader may be waiting for one of its blocks).
    handover: Option<Arc<Handover>>,
    /// Signalled whenever the job stops (queue empty, or a write failed).
    idle: Arc<Notify>,
    session: Arc<WriteSession>,
    rt: tokio::runtime::Handle,
}

#[derive(Default)]
struct WriterState {
    /// Blocks to write, each with whether it may be written cold (past the page cache).
    queue: VecDeque<(Block, bool)>,
    /// Block bytes in `queue` and in the batch being written.
    queued_bytes: usize,
    /// A job is writing (or about to).
    running: bool,
    /// The first write error; nothing is written after it.
    failed: Option<String>,
}

impl Writer {
    fn new(session: Arc<WriteSession>, handover: Option<Arc<Handover>>) -> Option<Self> {
        Some(Self {
            state: Arc::default(),
            handover,
            idle: Arc::new(Notify::new()),
            session,
            rt: tokio::runtime::Handle::try_current().ok()?,
        })
    }

    /// Queues `block` (to be written `cold` or through the page cache): `Ok(true)` if queued,
    /// `Ok(false)` if the queue is full (the caller writes it), the first write error if one
    /// failed.
    fn send(&self, block: &Block, cold: bool) -> Result<bool, String> {
        let len = block.data().len();
        let mut st = self.state.lock();
        if let Some(e) = &st.failed {
            return Err(e.clone());
        }
        if st.queued_bytes + len > FETCH_WRITE_QUEUE_BYTES_MAX {
            return Ok(false);
        }
        st.queue.push_back((block.clone(), cold));
        st.queued_bytes += len;
        if !st.running {
            st.running = true;
            drop(st);
            self.spawn_job();
        }
        Ok(true)
    }

    /// Writes batches until the queue is empty or a write fails.
    fn spawn_job(&self) {
        let state = self.state.clone();
        let idle = self.idle.clone();
        let handover = self.handover.clone();
        let mut session = Some(self.session.clone());
        // The job reports through `state` and `idle`.
        // tokio's blocking pool, not the data pool: the writes wait for the disk (direct I/O,
        // `put_many_cold`), and a data-pool thread waiting there is a core's worth of
        // hashing and framing not done.
        self.rt.spawn_blocking(move || loop {
            // The batch, split as it is taken: blocks to write cold, and through the page cache.
            let ((cold, warm), bytes) = {
                let mut st = state.lock();
                if st.queue.is_empty() {
                    // The job's handle on the session goes before anyone can see it stopped.
                    st.running = false;
                    drop(session.take());
                    drop(st);
                    idle.notify_waiters();
                    return;
                }
                let (mut cold, mut warm) = (Vec::new(), Vec::new());
                let mut bytes = 0;
                while let Some(len) = st.queue.front().map(|(b, _)| b.data().len()) {
                    let taken = cold.len() + warm.len();
                    if taken > 0 && bytes + len > FETCH_WRITE_BATCH_BYTES_MAX {
                        break;
                    }
                    bytes += len;
                    match st.queue.pop_front() {
                        Some((b, true)) => cold.push(b),
                        Some((b, false)) => warm.push(b),
                        None => break,
                    }
                }
                ((cold, warm), bytes)
            };
            let r = match &session {
                // A panic in the store fails the fetch rather than leaving it waiting for a
                // writer that is gone.
                Some(s) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let mut r = Ok(());
                    if !cold.is_empty() {
                        r = s.put_blocks_cold(&cold);
                    }
                    if !warm.is_empty() {
                        r = r.and_then(|()| s.put_blocks(&warm));
                    }
                    r.map_err(|e| e.to_string())
                }))
                .unwrap_or_else(|_| Err("writing blocks panicked".to_owned())),
                None => return,
            };
            drop((cold, warm));
            if let Some(h) = &handover {
                h.written();
            }
            let mut st = state.lock();
            st.queued_bytes -= bytes;
            if let Err(e) = r {
                st.failed = Some(e);
                st.queue.clear();
                st.queued_bytes = 0;
                st.running = false;
                drop(session.take());
                drop(st);
                idle.notify_waiters();
                return;
            }
        });
    }

    /// Waits until every queued block is written (or a write failed: its error).
    async fn drained(state: Arc<Mutex<WriterState>>, idle: Arc<Notify>) -> Option<String> {
        loop {
            // Registered before the check, so a stop in between is not missed.
            let stopped = idle.notified();
            {
                let st = state.lock();
                if !st.running {
                    return st.failed.clone();
                }
            }
            stopped.await;
        }
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
        matches!(self.reply, Reply::Dag(..))
    }

    /// The reader the blocks are offered to as they arrive, for a DAG read while it arrives.
    fn handover(&self) -> Option<&Arc<Handover>> {
        match &self.reply {
            Reply::Dag(_, h) => h.as_ref(),
            Reply::Block(_) => None,
        }
    }

    /// Walks `cids` through what is local; returns the CIDs to ask the network for, in DAG
    /// order (depth first, links in order: a file's blocks in the order of its bytes, so a
    /// reader of the file behind the fetch gets its first blocks first).
    pub(crate) fn expand(&mut self, cids: Vec<Cid>) -> Result<Vec<Cid>, NetError> {
        let repo = self.write.repo();
        let store = repo.blocks().clone();
        // Popped from the end: reversed, so the first link comes out first.
        let mut stack: Vec<Cid> = cids.into_iter().rev().collect();
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
                let children =
                    links::links(&c, &data).map_err(|e| NetError::Fetch(e.to_string()))?;
                stack.extend(children.into_iter().rev());
            }
        }
        self.pending += wants.len();
        Ok(wants)
    }

    /// Stores a received block; returns the children to want next.
    pub(crate) fn on_block(&mut self, block: &Block) -> Result<Vec<Cid>, NetError> {
        if self.is_dag() && self.writer.is_none() {
            self.writer = Writer::new(self.write.clone(), self.handover().cloned());
        }
        // A block the reader's handover has no room for is read back from the store soon:
        // written through the page cache, not past it.
        let cold = self.handover().is_none_or(|h| h.offer(block));
        let queued = match &self.writer {
            Some(w) => w.send(block, cold).map_err(NetError::Fetch)?,
            None => false,
        };
        if !queued {
            let one = std::slice::from_ref(block);
            if cold {
                self.write.put_blocks_cold(one)
            } else {
                self.write.put_blocks(one)
            }
            .map_err(|e| NetError::Fetch(e.to_string()))?;
            if let Some(h) = self.handover() {
                h.written();
            }
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
            Reply::Dag(tx, _) => {
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
                state,
                idle,
                session,
                rt,
                handover: _,
            }) => {
                drop(session);
                rt.spawn(async move {
                    let error = Writer::drained(state, idle).await;
                    reply_with(write, error);
                });
            }
        }
    }
}
