//! A [`Blockstore`] that fetches what the repository lacks: reads that miss locally go to the
//! network (`NodeHandle::fetch_block`, which verifies and stores the block) and return it.
//!
//! For readers that need a few blocks of a DAG, not all of it: resolving a path (`<cid>/a/b`
//! needs the blocks on the way, not the whole DAG under `<cid>`), listing a directory,
//! `dag get` through links, or streaming a file whose DAG is mostly here. Alone it fetches one
//! block per miss, so a reader of a byte range keeps several reads going
//! ([`DagReader::fetching`], [`DagReader::cat`]). A reader of a whole remote DAG runs a bulk
//! `fetch_dag` beside it (many wants in flight) and reads behind that fetch ([`read_dag`]): a
//! miss then waits for the fetch to bring the block, and asks the network itself only once
//! the fetch has ended without it.
//!
//! Behind a bulk fetch, the blocks the fetch receives are handed to the reader as they arrive
//! ([`Handover`], up to [`HANDOVER_BYTES_MAX`] of them held): the reader takes a block from
//! there rather than read it back from the store and hash it again — it was checked against
//! its CID when it was received, a moment before. What the reader finds in the store is read
//! (and verified) as every read is. A reader waiting for a block is woken by the fetch when a
//! block arrives (it takes it if it is its block) and looks in the store again only when a
//! batch was written or the fetch has ended.
//!
//! The reads block their thread until the block arrives, the node's fetch stall timeout
//! passes, or the store's deadline ([`OnDemandStore::until`]) does: use it from blocking
//! threads (`spawn_blocking`, the exporter's workers), never on a runtime worker. A caller that
//! gives up on a read after a timeout of its own should set the deadline too, so that its
//! thread is not held by the fetch after the caller has gone.

use bytes::Bytes;
use cid::Cid;
use ipfs_kit_blockstore::{Block, Blockstore, BlockstoreError, StoreStat};
use multihash::Multihash;
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::Instant;

use super::{NetError, NodeHandle};
use crate::unixfs::export;

/// The repository's store, with misses fetched through `node`.
pub struct OnDemandStore {
    local: Arc<dyn Blockstore>,
    node: NodeHandle,
    runtime: tokio::runtime::Handle,
    deadline: Option<Instant>,
    /// What the bulk fetch this store reads behind hands over, if any.
    bulk: Option<Arc<Handover>>,
}

/// Bytes of received blocks a bulk fetch holds for the reader behind it ([`Handover`]). Past
/// it, arriving blocks are only written, and the reader reads them back from the store. A held
/// block may keep the whole bitswap message it came in alive (up to
/// [`MESSAGE_BYTES_MAX`](crate::bitswap::protocol::MESSAGE_BYTES_MAX)), so what a reader holds
/// is bounded by a few times this.
pub const HANDOVER_BYTES_MAX: usize = 16 * 1024 * 1024;

/// The blocks a bulk fetch hands to the reader behind it, and the reader's wake-up: the fetch
/// offers every block it receives (verified on receipt) and says when it has written a batch
/// and when it has ended; the reader takes what it reads, or waits for a change.
pub struct Handover {
    state: Mutex<HandoverState>,
    changed: Condvar,
}

#[derive(Default)]
struct HandoverState {
    blocks: HashMap<Multihash<64>, Bytes>,
    /// Bytes of data in `blocks`.
    bytes: usize,
    /// Bumped by every batch written and by the end, the changes to the store: a reader that
    /// missed a block in the store waits only while the store has not changed since it looked.
    writes: u64,
    ended: bool,
}

/// What a reader waiting behind a bulk fetch found.
enum Wait {
    Block(Bytes),
    /// Blocks were written since the reader looked in the store: look again.
    Written,
    /// The fetch has ended (everything it got is written).
    Ended,
    DeadlinePassed,
}

impl std::fmt::Debug for Handover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.state.lock();
        f.debug_struct("Handover")
            .field("blocks", &st.blocks.len())
            .field("bytes", &st.bytes)
            .field("ended", &st.ended)
            .finish()
    }
}

impl Handover {
    fn new() -> Self {
        Self {
            state: Mutex::new(HandoverState::default()),
            changed: Condvar::new(),
        }
    }

    /// Changes the state and wakes the readers waiting.
    fn change(&self, f: impl FnOnce(&mut HandoverState)) {
        f(&mut self.state.lock());
        self.changed.notify_all();
    }

    /// A received (verified) block of the DAG: held for the reader while there is room.
    /// Whether it is held (false: the reader will read it back from the store).
    pub(crate) fn offer(&self, block: &Block) -> bool {
        let mut held = false;
        self.change(|st| {
            let len = block.data().len();
            if st.blocks.contains_key(block.cid().hash()) {
                held = true;
            } else if st.bytes + len <= HANDOVER_BYTES_MAX {
                st.blocks.insert(*block.cid().hash(), block.data().clone());
                st.bytes += len;
                held = true;
            }
        });
        held
    }

    /// The fetch wrote a batch of blocks to the store.
    pub(crate) fn written(&self) {
        self.change(|st| st.writes += 1);
    }

    /// The fetch has ended; what it received is in the store. Blocks still held stay for the
    /// reader.
    fn end(&self) {
        self.change(|st| {
            st.ended = true;
            st.writes += 1;
        });
    }

    fn take_locked(st: &mut HandoverState, cid: &Cid) -> Option<Bytes> {
        let b = st.blocks.remove(cid.hash())?;
        st.bytes -= b.len();
        Some(b)
    }

    /// The block if the fetch handed it over (and nobody took it yet), else the count of
    /// writes so far, to [`wait`](Self::wait) with after looking in the store.
    fn take(&self, cid: &Cid) -> Result<Bytes, u64> {
        let mut st = self.state.lock();
        Self::take_locked(&mut st, cid).ok_or(st.writes)
    }

    /// Waits for `cid` to be handed over, or for the store to change after `seen` (what
    /// [`take`](Self::take) returned before the caller looked in the store).
    fn wait(&self, cid: &Cid, seen: u64, deadline: Option<Instant>) -> Wait {
        let mut st = self.state.lock();
        loop {
            if let Some(b) = Self::take_locked(&mut st, cid) {
                return Wait::Block(b);
            }
            if st.writes != seen {
                return Wait::Written;
            }
            if st.ended {
                return Wait::Ended;
            }
            match deadline {
                Some(d) => {
                    if self.changed.wait_until(&mut st, d).timed_out() {
                        return Wait::DeadlinePassed;
                    }
                }
                None => self.changed.wait(&mut st),
            }
        }
    }
}

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
            bulk: None,
        }
    }

    /// Reads take what a bulk fetch of the DAG (running elsewhere) hands over, and a miss
    /// waits for that fetch to bring the block until it has ended; only then does a miss fetch
    /// the block itself.
    fn behind(mut self, handover: Arc<Handover>) -> Self {
        self.bulk = Some(handover);
        self
    }

    /// A read: what the bulk fetch handed over, else the store, else the network.
    fn read(&self, cid: &Cid, trusted: bool) -> Result<Option<Bytes>, BlockstoreError> {
        let Some(bulk) = &self.bulk else {
            return match self.read_local(cid, trusted)? {
                Some(b) => Ok(Some(b)),
                None => self.fetch(cid),
            };
        };
        loop {
            // The count of writes is read before looking in the store, so that a block
            // written after the look (and the fetch's end after it) shows as a change.
            let seen = match bulk.take(cid) {
                Ok(b) => return Ok(Some(b)),
                Err(writes) => writes,
            };
            if let Some(b) = self.read_local(cid, trusted)? {
                return Ok(Some(b));
            }
            match bulk.wait(cid, seen, self.deadline) {
                Wait::Block(b) => return Ok(Some(b)),
                Wait::Written => continue,
                Wait::Ended => return self.fetch(cid),
                Wait::DeadlinePassed => {
                    return Err(BlockstoreError::Unavailable {
                        cid: *cid,
                        reason: "not received before the deadline".into(),
                    })
                }
            }
        }
    }

    fn read_local(&self, cid: &Cid, trusted: bool) -> Result<Option<Bytes>, BlockstoreError> {
        if trusted {
            self.local.get_trusted(cid)
        } else {
            self.local.get(cid)
        }
    }

    /// Fetches stop waiting at `deadline`: a read still missing its block then fails
    /// ([`BlockstoreError::Unavailable`]) and the fetch is dropped.
    pub fn until(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Fetches `cid` from the network. A fetch that gives up (no peer gave the block, too
    /// many fetches, the deadline) is [`BlockstoreError::Unavailable`], not "not found": the
    /// block may well exist elsewhere.
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
                Err(BlockstoreError::Unavailable {
                    cid,
                    reason: e.to_string(),
                })
            }
            Err(RecvTimeoutError::Timeout) => {
                task.abort();
                Err(BlockstoreError::Unavailable {
                    cid,
                    reason: "not received before the deadline".into(),
                })
            }
            Err(RecvTimeoutError::Disconnected) => Err(BlockstoreError::Engine(format!(
                "fetching {cid}: the node's runtime is gone"
            ))),
        }
    }
}

impl Blockstore for OnDemandStore {
    fn get(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
        self.read(cid, false)
    }

    fn get_trusted(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
        self.read(cid, true)
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
    fetch_workers: usize,
    /// Misses go to the network one block at a time (no bulk fetch behind the reader).
    on_demand: bool,
}

impl DagReader {
    /// A reader of `store` with no bulk fetch beside it, reading few blocks ahead: `store` is
    /// local, or has the top of the DAG (a miss is rare).
    pub fn over(store: Arc<dyn Blockstore>) -> Self {
        Self {
            store,
            _bulk: None,
            fetch_workers: export::FETCH_WORKERS,
            on_demand: false,
        }
    }

    /// A reader of parts of a DAG that may be elsewhere, with no bulk fetch (a byte range):
    /// each miss of `store` waits for its own fetch, so readers keep
    /// [`export::REMOTE_FETCH_WORKERS`] reads in flight.
    pub fn fetching(store: Arc<dyn Blockstore>) -> Self {
        Self {
            store,
            _bulk: None,
            fetch_workers: export::REMOTE_FETCH_WORKERS,
            on_demand: true,
        }
    }

    /// The blocks to read; with a bulk fetch, misses wait for it, then are fetched.
    pub fn store(&self) -> &dyn Blockstore {
        self.store.as_ref()
    }

    /// Writes bytes `[offset, offset + length)` of the file at `cid` to `out`
    /// ([`export::cat_with`]), with as many blocks read at once as this reader's store wants.
    pub fn cat(
        &self,
        cid: &Cid,
        offset: u64,
        length: Option<u64>,
        out: &mut dyn std::io::Write,
    ) -> Result<u64, export::ExportError> {
        export::cat_with(self.store(), cid, offset, length, self.fetch_workers, out)
    }

    /// Makes the blocks under bytes `[offset, offset + length)` of the file at `cid` local
    /// ahead of a reader that walks them one at a time (a CAR of a byte range): with misses
    /// fetched on demand, they come [`export::REMOTE_FETCH_WORKERS`] at once instead of in
    /// turn; otherwise (local, or behind a bulk fetch) nothing is done.
    pub fn fetch_range(
        &self,
        cid: &Cid,
        offset: u64,
        length: u64,
    ) -> Result<(), export::ExportError> {
        if !self.on_demand {
            return Ok(());
        }
        self.cat(cid, offset, Some(length), &mut std::io::sink())
            .map(|_| ())
    }
}

/// A bulk fetch running beside a reader: stopped when the reader is dropped (a client gone
/// mid-answer stops the transfer), and its temporary pin kept until then.
struct BulkFetch {
    task: tokio::task::JoinHandle<()>,
    _fetched: Arc<Mutex<Option<super::fetch::FetchStats>>>,
}

impl Drop for BulkFetch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Ends the handover when dropped.
struct EndOnDrop(Arc<Handover>);

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        self.0.end();
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
    let handover = Arc::new(Handover::new());
    let fetched = Arc::new(Mutex::new(None));
    let task = {
        let (node, handover, fetched) = (node.clone(), handover.clone(), fetched.clone());
        tokio::spawn(async move {
            // Ended however the task ends (aborted too): a reader waiting on it then fetches
            // what is still missing itself, or reports it.
            let _ended = EndOnDrop(handover.clone());
            match node.fetch_dag_handing_over(cid, handover).await {
                Ok(stats) => *fetched.lock() = Some(stats),
                Err(e) => tracing::debug!(%cid, error = %e, "bulk fetch for a reader failed"),
            }
        })
    };
    Ok(DagReader {
        store: Arc::new(on_demand.behind(handover)),
        // The bulk fetch keeps many wants in flight; the reader waits behind it.
        fetch_workers: export::FETCH_WORKERS,
        on_demand: false,
        _bulk: Some(BulkFetch {
            task,
            _fetched: fetched,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn raw_block(n: u8) -> Block {
        let data = Bytes::from(vec![n; 1000]);
        let mh = ipfs_kit_blockstore::hash::HashFn::Sha2_256
            .digest(&data)
            .expect("sha2-256");
        Block::new(Cid::new_v1(0x55, mh), data).expect("consistent")
    }

    #[test]
    fn a_handed_over_block_is_taken_once() {
        let h = Handover::new();
        let b = raw_block(1);
        h.offer(&b);
        assert_eq!(h.take(b.cid()).ok().as_deref(), Some(b.data().as_ref()));
        assert_eq!(h.take(b.cid()), Err(0));
        assert_eq!(h.state.lock().bytes, 0);
    }

    /// Past its bound the handover refuses blocks and says so (the fetch then writes them
    /// through the page cache, for the reader to read back); a block it holds is held once.
    #[test]
    fn the_handover_holds_at_most_its_bound() {
        let h = Handover::new();
        let n = HANDOVER_BYTES_MAX / 1000;
        let mut blocks = Vec::new();
        for i in 0..n + 10 {
            let data = Bytes::from((i as u64).to_le_bytes().repeat(125));
            let mh = ipfs_kit_blockstore::hash::HashFn::Sha2_256
                .digest(&data)
                .expect("sha2-256");
            let b = Block::new(Cid::new_v1(0x55, mh), data).expect("consistent");
            assert_eq!(h.offer(&b), i < n, "block {i}");
            blocks.push(b);
        }
        // Offered again (a duplicate from a second peer): still held, not counted twice.
        assert!(h.offer(&blocks[0]));
        let st = h.state.lock();
        assert!(st.bytes <= HANDOVER_BYTES_MAX);
        assert_eq!(st.blocks.len(), n);
        assert_eq!(st.bytes, n * 1000);
    }

    #[test]
    fn a_waiting_reader_wakes_on_its_block_on_a_write_and_at_the_end() {
        let h = Arc::new(Handover::new());
        let b = raw_block(2);
        let other = raw_block(4);
        // Its block arrives while it waits; another block's arrival does not end the wait.
        let seen = h.take(b.cid()).unwrap_err();
        let waiter = {
            let (h, cid) = (h.clone(), *b.cid());
            std::thread::spawn(move || h.wait(&cid, seen, None))
        };
        std::thread::sleep(Duration::from_millis(20));
        h.offer(&other);
        std::thread::sleep(Duration::from_millis(20));
        assert!(!waiter.is_finished());
        h.offer(&b);
        assert!(matches!(waiter.join().unwrap(), Wait::Block(d) if d == *b.data()));
        // A batch written: look in the store again.
        let seen = h.take(b.cid()).unwrap_err();
        let waiter = {
            let (h, cid) = (h.clone(), *b.cid());
            std::thread::spawn(move || h.wait(&cid, seen, None))
        };
        std::thread::sleep(Duration::from_millis(20));
        h.written();
        assert!(matches!(waiter.join().unwrap(), Wait::Written));
        // A change between the look and the wait is not missed.
        let seen = h.take(b.cid()).unwrap_err();
        h.end();
        assert!(matches!(h.wait(b.cid(), seen, None), Wait::Written));
        let seen = h.take(b.cid()).unwrap_err();
        assert!(matches!(h.wait(b.cid(), seen, None), Wait::Ended));
    }

    #[test]
    fn a_wait_gives_up_at_its_deadline() {
        let h = Handover::new();
        let b = raw_block(3);
        let started = Instant::now();
        let deadline = started + Duration::from_millis(30);
        let seen = h.take(b.cid()).unwrap_err();
        assert!(matches!(
            h.wait(b.cid(), seen, Some(deadline)),
            Wait::DeadlinePassed
        ));
        assert!(started.elapsed() >= Duration::from_millis(30));
    }
}
