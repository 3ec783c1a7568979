//! A [`Blockstore`] that fetches what the repository lacks: reads that miss locally go to the
//! network (`NodeHandle::fetch_block`, which verifies and stores the block) and return it.
//!
//! For readers that need a few blocks of a DAG, not all of it: resolving a path (`<cid>/a/b`
//! needs the blocks on the way, not the whole DAG under `<cid>`), listing a directory,
//! `dag get` through links, or streaming a file whose DAG is mostly here. Alone it fetches one
//! block per miss. A reader of a whole remote DAG runs a bulk `fetch_dag` beside it (many wants
//! in flight) and reads [`OnDemandStore::behind`] that fetch: a miss then waits for the fetch
//! to bring the block, and asks the network itself only once the fetch has ended without it.
//!
//! The reads block their thread until the block arrives, the node's fetch stall timeout
//! passes, or the store's deadline ([`OnDemandStore::until`]) does: use it from blocking
//! threads (`spawn_blocking`, the exporter's workers), never on a runtime worker. A caller that
//! gives up on a read after a timeout of its own should set the deadline too, so that its
//! thread is not held by the fetch after the caller has gone.

use bytes::Bytes;
use cid::Cid;
use ipfs_kit_blockstore::{Block, Blockstore, BlockstoreError, StoreStat};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::NodeHandle;

/// The repository's store, with misses fetched through `node`.
pub struct OnDemandStore {
    local: Arc<dyn Blockstore>,
    node: NodeHandle,
    runtime: tokio::runtime::Handle,
    deadline: Option<Instant>,
    /// Set when the bulk fetch this store reads behind has ended.
    bulk_done: Option<Arc<AtomicBool>>,
}

/// How often a read behind a bulk fetch looks for its block again.
const BEHIND_POLL: Duration = Duration::from_millis(1);

impl OnDemandStore {
    /// `runtime` runs the fetches (the node's runtime, or any runtime that can reach it).
    pub fn new(
        local: Arc<dyn Blockstore>,
        node: NodeHandle,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            local,
            node,
            runtime,
            deadline: None,
            bulk_done: None,
        }
    }

    /// Reads that miss wait for a bulk fetch of the DAG (running elsewhere) to store the
    /// block, until `done` is set; only then does a miss fetch the block itself.
    pub fn behind(mut self, done: Arc<AtomicBool>) -> Self {
        self.bulk_done = Some(done);
        self
    }

    /// A miss: waits for the bulk fetch, if any, then fetches.
    fn missing(&self, cid: &Cid, trusted: bool) -> Result<Option<Bytes>, BlockstoreError> {
        if let Some(done) = &self.bulk_done {
            loop {
                // Read `done` before looking, so that a block stored just before the fetch
                // ended is seen by the last look.
                let ended = done.load(Ordering::Acquire);
                let got = if trusted {
                    self.local.get_trusted(cid)?
                } else {
                    self.local.get(cid)?
                };
                if got.is_some() {
                    return Ok(got);
                }
                if ended {
                    break;
                }
                if self.deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(BlockstoreError::Engine(format!(
                        "waiting for {cid}: not received before the deadline"
                    )));
                }
                std::thread::sleep(BEHIND_POLL);
            }
        }
        self.fetch(cid)
    }

    /// Fetches stop waiting at `deadline`: a read still missing its block then fails
    /// ([`BlockstoreError::Engine`]) and the fetch is dropped.
    pub fn until(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Fetches `cid` from the network; `None` when no peer gave it before the fetch gave up.
    fn fetch(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let (node, cid) = (self.node.clone(), *cid);
        // A task and a plain channel rather than `Handle::block_on`, which panics when the
        // caller is itself on a runtime thread.
        let task = self.runtime.spawn(async move {
            let _ = tx.send(node.fetch_block(cid).await);
        });
        let got = match self.deadline {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(d) => rx.recv_timeout(d.saturating_duration_since(Instant::now())),
        };
        match got {
            Ok(Ok(block)) => Ok(Some(block.into_parts().1)),
            Ok(Err(e)) => {
                tracing::debug!(%cid, error = %e, "on-demand fetch failed");
                Ok(None)
            }
            Err(RecvTimeoutError::Timeout) => {
                task.abort();
                Err(BlockstoreError::Engine(format!(
                    "fetching {cid}: not received before the deadline"
                )))
            }
            Err(RecvTimeoutError::Disconnected) => Err(BlockstoreError::Engine(format!(
                "fetching {cid}: the node's runtime is gone"
            ))),
        }
    }
}

impl Blockstore for OnDemandStore {
    fn get(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
        match self.local.get(cid)? {
            Some(b) => Ok(Some(b)),
            None => self.missing(cid, false),
        }
    }

    fn get_trusted(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
        match self.local.get_trusted(cid)? {
            Some(b) => Ok(Some(b)),
            None => self.missing(cid, true),
        }
    }

    /// Local presence only: asking the network whether a block exists is a fetch.
    fn has(&self, cid: &Cid) -> Result<bool, BlockstoreError> {
        self.local.has(cid)
    }

    fn size_of(&self, cid: &Cid) -> Result<Option<u64>, BlockstoreError> {
        self.local.size_of(cid)
    }

    fn put_many(&self, blocks: &[Block]) -> Result<(), BlockstoreError> {
        self.local.put_many(blocks)
    }

    fn delete_many(&self, cids: &[Cid]) -> Result<u64, BlockstoreError> {
        self.local.delete_many(cids)
    }

    fn all_cids(&self) -> Result<Vec<Cid>, BlockstoreError> {
        self.local.all_cids()
    }

    fn sync(&self) -> Result<(), BlockstoreError> {
        self.local.sync()
    }

    fn stat(&self) -> Result<StoreStat, BlockstoreError> {
        self.local.stat()
    }

    fn reclaim_space(&self) -> Result<u64, BlockstoreError> {
        self.local.reclaim_space()
    }
}
