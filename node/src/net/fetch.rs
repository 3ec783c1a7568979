//! Fetching blocks and DAGs over bitswap: the node-side bookkeeping of one fetch.
//!
//! A fetch owns a bitswap session and a repository [`WriteSession`]. Every block that arrives
//! is written through the write session (so a concurrent GC treats it as a root) and, for a
//! DAG fetch, decoded for its links (`dag::links`); children not already local are added to
//! the session's wants at once, so many wants are in flight while the walk goes on. Children
//! that are local are walked locally and recorded in the write session too, so the whole DAG
//! stays protected until the caller pins it and drops [`FetchStats::guard`].
//!
//! Runs on the swarm task, with no I/O but blockstore calls.

use std::time::{Duration, Instant};

use bytes::Bytes;
use cid::Cid;
use ipfs_kit_blockstore::{hash, Block};
use tokio::sync::oneshot;

use crate::dag::links::{self, MultihashSet};
use crate::repo::{Repo, WriteSession};
use crate::unixfs::BlockSink as _;

use super::node::NetError;

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

/// One fetch in progress.
pub(crate) struct Fetch {
    pub(crate) root: Cid,
    pub(crate) reply: Reply,
    write: WriteSession,
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
            write: repo.begin_write(),
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
        self.write
            .put_blocks(std::slice::from_ref(block))
            .map_err(|e| NetError::Fetch(e.to_string()))?;
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
    pub(crate) fn finish(self, block: Option<Block>) {
        match self.reply {
            Reply::Block(tx) => {
                let r = block.ok_or(NetError::Fetch("no block".into()));
                let _ = tx.send(r);
            }
            Reply::Dag(tx) => {
                let _ = tx.send(Ok(FetchStats {
                    root: self.root,
                    blocks_fetched: self.blocks_fetched,
                    bytes_fetched: self.bytes_fetched,
                    blocks_local: self.blocks_local,
                    elapsed: self.started.elapsed(),
                    guard: Some(self.write),
                }));
            }
        }
    }
}
