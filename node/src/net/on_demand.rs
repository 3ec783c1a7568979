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

use super::{NetError, NodeHandle};

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

/// What a reader of a whole DAG reads through ([`read_dag`]). Keep it (not only its store)
/// until the reading is done: dropping it stops the bulk fetch.
pub struct DagReader {
    store: Arc<dyn Blockstore>,
    _bulk: Option<BulkFetch>,
}

impl DagReader {
    /// A reader of `store` with no bulk fetch beside it.
    pub fn over(store: Arc<dyn Blockstore>) -> Self {
        Self { store, _bulk: None }
    }

    /// The blocks to read; with a bulk fetch, misses wait for it, then are fetched.
    pub fn store(&self) -> &dyn Blockstore {
        self.store.as_ref()
    }
}

/// A bulk fetch running beside a reader: stopped when the reader is dropped (a client gone
/// mid-answer stops the transfer), and its temporary pin kept until then.
struct BulkFetch {
    task: tokio::task::JoinHandle<()>,
    _fetched: Arc<parking_lot::Mutex<Option<super::fetch::FetchStats>>>,
}

impl Drop for BulkFetch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sets its flag when dropped.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Gets ready to read all of the DAG under `cid` from `local` (a file's bytes, a tar, a CAR,
/// a file written out) while it arrives. Unless its top is local (the block and the blocks it
/// links to directly), a bulk `fetch_dag` starts in the background and the returned store
/// waits for it block by block, so the reader starts on the first blocks rather than after
/// the last, and its work overlaps the transfer. A local DAG is not walked; a deeper block
/// found missing is fetched when read. Call on a tokio runtime.
pub async fn read_dag(
    node: &NodeHandle,
    local: Arc<dyn Blockstore>,
    cid: Cid,
) -> Result<DagReader, NetError> {
    let top_here = {
        let local = local.clone();
        tokio::task::spawn_blocking(move || -> Result<bool, NetError> {
            let fail = |e: &dyn std::fmt::Display| NetError::Fetch(e.to_string());
            let Some(data) = local.get(&cid).map_err(|e| fail(&e))? else {
                return Ok(false);
            };
            for l in crate::dag::links::links(&cid, &data).map_err(|e| fail(&e))? {
                if !local.has(&l).map_err(|e| fail(&e))? {
                    return Ok(false);
                }
            }
            Ok(true)
        })
        .await
        .map_err(|e| NetError::Fetch(format!("checking {cid}: {e}")))??
    };
    let on_demand = OnDemandStore::new(local, node.clone(), tokio::runtime::Handle::current());
    if top_here {
        return Ok(DagReader::over(Arc::new(on_demand)));
    }
    let done = Arc::new(AtomicBool::new(false));
    let fetched = Arc::new(parking_lot::Mutex::new(None));
    let task = {
        let (node, done, fetched) = (node.clone(), done.clone(), fetched.clone());
        tokio::spawn(async move {
            // Set however the task ends (aborted too): a reader waiting on it then fetches
            // what is still missing itself, or reports it.
            let _ended = SetOnDrop(done);
            match node.fetch_dag(cid).await {
                Ok(stats) => *fetched.lock() = Some(stats),
                Err(e) => tracing::debug!(%cid, error = %e, "bulk fetch for a reader failed"),
            }
        })
    };
    Ok(DagReader {
        store: Arc::new(on_demand.behind(done)),
        _bulk: Some(BulkFetch {
            task,
            _fetched: fetched,
        }),
    })
}
