//! Garbage collection, temporary pins for in-flight writes, `repo verify` and `repo stat`.
//!
//! The race GC must not lose: an `add` writes blocks (some already present, written by an
//! earlier add that has since been unpinned), then pins its root. If GC ran between those two
//! steps it would delete blocks the new pin needs. So:
//! - every in-flight write goes through a [`WriteSession`] (a `#[must_use]` guard) that records
//!   each CID it writes, duplicates included; while the session lives, GC treats those CIDs
//!   as roots;
//! - [`WriteSession::put_blocks`] holds the GC lock for reading while it records and writes;
//!   [`Repo::gc`] holds it for writing across mark and sweep. A block an add relies on is
//!   therefore either recorded before marking starts, or written after sweeping ends;
//! - `pin_add` holds the read lock across its completeness check and its commit, and the add
//!   pins its root before dropping the session.
//!
//! Marking walks every recursive pin (a missing block aborts the GC, as in kubo: better to keep
//! garbage than to sweep with an incomplete mark), adds direct pins and live sessions' CIDs,
//! and compares by multihash, since stores key blocks by multihash.

use super::pin::{PinFilter, PinKind};
use super::{Repo, RepoError, RepoInner, REPO_VERSION, STORAGE_MAX_BYTES_DEFAULT};
use crate::dag::links::{walk_cids_from, DagError, MultihashSet, Visited};
use crate::unixfs::BlockSink;
use cid::Cid;
use ipfs_kit_blockstore::{Block, BlockstoreError, CorruptBlock};
use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Blocks deleted per `delete_many` call during a sweep.
pub const GC_DELETE_BATCH_CIDS: usize = 4096;

/// A temporary pin on everything written through it, for as long as it lives.
#[must_use = "a WriteSession protects blocks from GC only while it is alive; pin the root before dropping it"]
pub struct WriteSession {
    inner: Arc<RepoInner>,
    id: u64,
    cids: Arc<Mutex<MultihashSet>>,
}

impl Repo {
    /// Imports `reader` as one UnixFS file with `opts` and pins its root recursively, as
    /// `ipfs add` does for a file; returns the root. Blocking.
    pub fn add_file(
        &self,
        reader: impl std::io::Read + Send,
        opts: &crate::unixfs::ImportOptions,
    ) -> Result<Cid, RepoError> {
        let session = self.begin_write();
        let imported = crate::unixfs::file::import_file(reader, opts, &session, &|_| {})
            .map_err(|e| RepoError::Import(Box::new(e)))?;
        session.pin_imported_root(&imported.cid, None)?;
        Ok(imported.cid)
    }

    /// Starts a write session: blocks written through it are GC roots until it is dropped.
    pub fn begin_write(&self) -> WriteSession {
        let id = self.inner.next_session.fetch_add(1, Ordering::Relaxed);
        let cids = Arc::new(Mutex::new(MultihashSet::new()));
        self.inner.sessions.lock().insert(id, cids.clone());
        WriteSession {
            inner: self.inner.clone(),
            id,
            cids,
        }
    }
}

impl WriteSession {
    /// The repository this session writes into.
    pub fn repo(&self) -> Repo {
        Repo {
            inner: self.inner.clone(),
        }
    }

    /// Pins `root` (while the session still protects its blocks), then ends the session.
    pub fn finish_pinned(
        self,
        root: &Cid,
        recursive: bool,
        name: Option<String>,
    ) -> Result<(), RepoError> {
        self.repo().pin_add(root, recursive, name)
    }

    /// Pins `root` recursively when every block of its DAG was written through this session
    /// (what the importer does): the session already saw the whole DAG, so, unlike
    /// [`Repo::pin_add`], nothing is read back. A root the session did not write falls back to
    /// `pin_add`'s full walk.
    pub fn pin_imported_root(&self, root: &Cid, name: Option<&str>) -> Result<(), RepoError> {
        let repo = self.repo();
        let recorded = ipfs_kit_blockstore::hash::identity_data(root).is_some()
            || self.cids.lock().contains(root.hash());
        if !recorded {
            return repo.pin_add(root, true, name.map(str::to_string));
        }
        let _gc = self.inner.gc_lock.read();
        repo.commit_pins(std::slice::from_ref(root), true, name)?;
        // Every block this session wrote belongs to a DAG it imported (and now pins).
        repo.index_indirect(self.cids.lock().iter());
        Ok(())
    }

    /// How many distinct blocks this session has recorded.
    pub fn recorded(&self) -> usize {
        self.cids.lock().len()
    }
}

impl WriteSession {
    /// [`put_blocks`](BlockSink::put_blocks) of blocks not expected to be read again soon,
    /// which the store may write past its caches
    /// ([`put_many_cold`](ipfs_kit_blockstore::Blockstore::put_many_cold)): a fetch's.
    pub fn put_blocks_cold(&self, blocks: &[Block]) -> Result<(), BlockstoreError> {
        self.put(blocks, true)
    }

    fn put(&self, blocks: &[Block], cold: bool) -> Result<(), BlockstoreError> {
        let _gc = self.inner.gc_lock.read();
        let mut cids = self.cids.lock();
        for b in blocks {
            cids.insert(b.cid().hash());
        }
        drop(cids);
        if cold {
            self.inner.store.put_many_cold(blocks)
        } else {
            self.inner.store.put_many(blocks)
        }
    }
}

impl BlockSink for WriteSession {
    fn put_blocks(&self, blocks: &[Block]) -> Result<(), BlockstoreError> {
        self.put(blocks, false)
    }
}

impl Drop for WriteSession {
    fn drop(&mut self) {
        self.inner.sessions.lock().remove(&self.id);
    }
}

/// What a GC removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Removed blocks, as the store names them (CIDv1 raw of the multihash, like kubo's
    /// `repo gc` output).
    pub removed: Vec<Cid>,
    /// Bytes of block data removed.
    pub removed_bytes: u64,
    /// Disk bytes the store gave back afterwards (compaction).
    pub reclaimed_bytes: u64,
}

/// `repo stat`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoStat {
    pub num_objects: u64,
    pub repo_size: u64,
    pub storage_max: u64,
    pub path: PathBuf,
    pub version: String,
}

impl Repo {
    /// `repo gc`: removes every block not reachable from a pin or recorded by a live session.
    pub fn gc(&self) -> Result<GcReport, RepoError> {
        let mut report = GcReport::default();
        {
            let _gc = self.inner.gc_lock.write();
            let store = self.inner.store.as_ref();
            let mut marked = MultihashSet::new();
            let pins = self.stored_pins(PinFilter::All)?;
            let roots: Vec<Cid> = pins
                .iter()
                .filter(|(_, k, _)| *k == PinKind::Recursive)
                .map(|(c, _, _)| *c)
                .collect();
            let mut visited = Visited::new();
            walk_cids_from::<DagError, _>(store, &roots, &mut visited, |c| {
                marked.insert(c.hash());
                Ok(())
            })?;
            drop(visited);
            for (c, _, _) in pins.iter().filter(|(_, k, _)| *k == PinKind::Direct) {
                marked.insert(c.hash());
            }
            for cids in self.inner.sessions.lock().values() {
                marked.union_with(&cids.lock());
            }
            let dead: Vec<Cid> = store
                .all_cids()?
                .into_iter()
                .filter(|c| !marked.contains(c.hash()))
                .collect();
            #[cfg(test)]
            if let Some(hook) = self.inner.after_mark.lock().as_ref() {
                hook();
            }
            for batch in dead.chunks(GC_DELETE_BATCH_CIDS) {
                for c in batch {
                    report.removed_bytes += store.size_of(c)?.unwrap_or(0);
                }
                store.delete_many(batch)?;
            }
            report.removed = dead;
        }
        // Compaction needs no protection: it only moves live blocks.
        report.reclaimed_bytes = self.inner.store.reclaim_space()?;
        tracing::info!(
            removed = report.removed.len(),
            bytes = report.removed_bytes,
            "garbage collected"
        );
        Ok(report)
    }

    /// `repo verify`: every stored block whose bytes no longer hash to its CID.
    pub fn verify(&self) -> Result<Vec<Cid>, RepoError> {
        let store = self.inner.store.as_ref();
        let mut bad = Vec::new();
        for c in store.all_cids()? {
            match store.get(&c) {
                Ok(_) => {}
                Err(BlockstoreError::Corrupt(CorruptBlock { cid })) => bad.push(cid),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(bad)
    }

    /// `repo stat`.
    pub fn stat(&self) -> Result<RepoStat, RepoError> {
        let s = self.inner.store.stat()?;
        let pins_bytes = std::fs::metadata(self.inner.path.join(super::PINS_FILE))
            .map(|m| m.len())
            .unwrap_or(0);
        let store_bytes = if s.disk_bytes > 0 {
            s.disk_bytes
        } else {
            s.data_bytes
        };
        Ok(RepoStat {
            num_objects: s.blocks,
            repo_size: store_bytes + pins_bytes,
            storage_max: STORAGE_MAX_BYTES_DEFAULT,
            path: self.inner.path.clone(),
            version: format!("fs-repo@{REPO_VERSION}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::{DAG_CBOR_CODEC, RAW_CODEC};
    use crate::repo::mem_repo;
    use bytes::Bytes;
    use ipfs_kit_blockstore::{hash::HashFn, Blockstore, MemoryBlockstore};
    use ipld_core::ipld::Ipld;
    use multihash::Multihash;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::collections::HashSet;

    fn raw(data: &[u8]) -> Block {
        let cid = Cid::new_v1(RAW_CODEC, HashFn::Sha2_256.digest(data).unwrap());
        Block::new(cid, Bytes::copy_from_slice(data)).unwrap()
    }

    /// A two-level DAG: raw leaves under a dag-cbor root listing them, plus a per-DAG nonce so
    /// roots differ while leaves are shared between DAGs.
    fn dag(leaves: &[u8], nonce: u64) -> (Cid, Vec<Block>) {
        let leaf_blocks: Vec<Block> = leaves.iter().map(|b| raw(&[*b; 3])).collect();
        let root_val = Ipld::List(
            std::iter::once(Ipld::Integer(i128::from(nonce)))
                .chain(leaf_blocks.iter().map(|b| Ipld::Link(*b.cid())))
                .collect(),
        );
        let bytes = serde_ipld_dagcbor::to_vec(&root_val).unwrap();
        let root = Cid::new_v1(DAG_CBOR_CODEC, HashFn::Sha2_256.digest(&bytes).unwrap());
        let mut blocks = leaf_blocks;
        blocks.push(Block::new(root, bytes.into()).unwrap());
        (root, blocks)
    }

    #[test]
    fn pin_imported_root_pins_without_reading_back_and_falls_back_to_a_walk() {
        let (_d, repo) = mem_repo();
        let (r1, b1) = dag(&[1, 2], 1);
        let s = repo.begin_write();
        s.put_blocks(&b1).unwrap();
        s.pin_imported_root(&r1, Some("imported")).unwrap();
        drop(s);
        repo.gc().unwrap();
        for b in &b1 {
            assert!(repo.blocks().has(b.cid()).unwrap());
        }
        let pins = repo.pin_ls(PinFilter::Recursive, None).unwrap();
        assert_eq!(pins.len(), 1);
        assert_eq!(pins[0].name.as_deref(), Some("imported"));
        // A root this session never wrote takes pin_add's walk, which finds the DAG incomplete.
        let (r2, b2) = dag(&[7, 8], 2);
        let s = repo.begin_write();
        s.put_blocks(&b2[2..]).unwrap(); // only the root
        let s2 = repo.begin_write();
        assert!(s2.pin_imported_root(&r2, None).is_err());
        drop((s, s2));
    }

    #[test]
    fn gc_keeps_pinned_and_session_blocks_only() {
        let (_d, repo) = mem_repo();
        let (r1, b1) = dag(&[1, 2], 1);
        let (r2, b2) = dag(&[2, 3], 2);
        let loose = raw(b"loose");
        let direct = raw(b"direct");
        let s = repo.begin_write();
        s.put_blocks(&b1).unwrap();
        s.finish_pinned(&r1, true, None).unwrap();
        repo.blocks().put_many(&b2).unwrap();
        repo.blocks()
            .put_many(&[loose.clone(), direct.clone()])
            .unwrap();
        repo.pin_add(direct.cid(), false, None).unwrap();

        let session = repo.begin_write();
        let inflight = raw(b"in flight");
        // A duplicate of an unpinned block, re-written by the session: protected too.
        session
            .put_blocks(&[inflight.clone(), b2[2].clone()])
            .unwrap();
        let report = repo.gc().unwrap();
        // Leaf 3 of r2 is the only garbage left besides `loose`; r2's root is protected.
        let removed: HashSet<_> = report.removed.iter().map(|c| *c.hash()).collect();
        let expect: HashSet<_> = [b2[1].cid(), loose.cid()]
            .iter()
            .map(|c| *c.hash())
            .collect();
        assert_eq!(removed, expect);
        assert_eq!(report.removed_bytes, 3 + 5);
        assert!(repo.blocks().has(inflight.cid()).unwrap());
        drop(session);
        repo.gc().unwrap();
        assert!(!repo.blocks().has(inflight.cid()).unwrap());
        assert!(!repo.blocks().has(&r2).unwrap());
        for b in &b1 {
            assert!(repo.blocks().has(b.cid()).unwrap());
        }
        assert!(repo.blocks().has(direct.cid()).unwrap());
        repo.pin_rm(&r1).unwrap();
        repo.pin_rm(direct.cid()).unwrap();
        repo.gc().unwrap();
        assert_eq!(repo.stat().unwrap().num_objects, 0);
    }

    /// A store that flips one block's bytes, for `verify`.
    struct Tamper(MemoryBlockstore, Cid);
    impl Blockstore for Tamper {
        fn get(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
            if cid.hash() == self.1.hash() {
                return Err(CorruptBlock { cid: *cid }.into());
            }
            self.0.get(cid)
        }
        fn has(&self, cid: &Cid) -> Result<bool, BlockstoreError> {
            self.0.has(cid)
        }
        fn size_of(&self, cid: &Cid) -> Result<Option<u64>, BlockstoreError> {
            self.0.size_of(cid)
        }
        fn put_many(&self, blocks: &[Block]) -> Result<(), BlockstoreError> {
            self.0.put_many(blocks)
        }
        fn delete_many(&self, cids: &[Cid]) -> Result<u64, BlockstoreError> {
            self.0.delete_many(cids)
        }
        fn all_cids(&self) -> Result<Vec<Cid>, BlockstoreError> {
            self.0.all_cids()
        }
        fn sync(&self) -> Result<(), BlockstoreError> {
            Ok(())
        }
        fn stat(&self) -> Result<ipfs_kit_blockstore::StoreStat, BlockstoreError> {
            self.0.stat()
        }
    }

    #[test]
    fn verify_reports_corrupt_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let bad = raw(b"bad");
        let mem = MemoryBlockstore::new();
        mem.put_many(&[bad.clone(), raw(b"good")]).unwrap();
        let repo = Repo::with_store(dir.path(), Arc::new(Tamper(mem, *bad.cid()))).unwrap();
        let corrupt = repo.verify().unwrap();
        assert_eq!(corrupt.len(), 1);
        assert_eq!(corrupt[0].hash(), bad.cid().hash());
    }

    #[test]
    fn disk_repo_gc_and_stat() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::init(&dir.path().join("r")).unwrap();
        let (root, blocks) = dag(&[1, 2, 3], 9);
        let s = repo.begin_write();
        s.put_blocks(&blocks).unwrap();
        s.put_blocks(&[raw(b"garbage")]).unwrap();
        s.finish_pinned(&root, true, Some("x".into())).unwrap();
        assert_eq!(repo.stat().unwrap().num_objects, 5);
        let r = repo.gc().unwrap();
        assert_eq!(r.removed.len(), 1);
        assert!(repo.verify().unwrap().is_empty());
        let st = repo.stat().unwrap();
        assert_eq!(st.num_objects, 4);
        assert!(st.repo_size > 0);
    }

    #[test]
    fn import_car_pins_roots_only_on_success() {
        let (_d, src) = mem_repo();
        let (root, blocks) = dag(&[4, 5], 3);
        src.blocks().put_many(&blocks).unwrap();
        let mut car = Vec::new();
        crate::car::export_car(src.blocks().as_ref(), &[root], &mut car).unwrap();

        let (_d2, dst) = mem_repo();
        let mut broken = car.clone();
        let last = broken.len() - 1;
        broken[last] ^= 1;
        assert!(dst.import_car(&mut &broken[..], true).is_err());
        assert!(dst.pin_ls(PinFilter::All, None).unwrap().is_empty());
        let imp = dst.import_car(&mut &car[..], true).unwrap();
        assert_eq!(imp.roots, vec![root]);
        assert_eq!(dst.is_pinned(&root).unwrap(), Some(PinKind::Recursive));
        dst.gc().unwrap();
        assert_eq!(dst.stat().unwrap().num_objects, 3);
    }

    /// The race the GC lock closes: blocks already present (garbage) are re-written by a new
    /// add after GC marked. The session's write must wait for the sweep and then write them
    /// again, so the add's pin finds its DAG complete.
    #[test]
    fn session_write_during_gc_waits_for_the_sweep() {
        let (_d, repo) = mem_repo();
        let (root, blocks) = dag(&[1, 2], 1);
        repo.blocks().put_many(&blocks).unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        *repo.inner.after_mark.lock() = Some(Box::new(move || {
            let _ = tx.send(());
            std::thread::sleep(std::time::Duration::from_millis(200));
        }));
        let r2 = repo.clone();
        let gc = std::thread::spawn(move || r2.gc().unwrap());
        rx.recv().unwrap();
        let s = repo.begin_write();
        s.put_blocks(&blocks).unwrap();
        let report = gc.join().unwrap();
        assert_eq!(report.removed.len(), 3);
        s.finish_pinned(&root, true, None).unwrap();
        for b in &blocks {
            assert!(repo.blocks().has(b.cid()).unwrap());
        }
    }

    /// Measures pin, GC and CAR round trip on the disk store (prints numbers; run with
    /// `--ignored --nocapture`).
    #[test]
    #[ignore = "measurement"]
    fn measure_disk_gc_and_car() {
        use crate::dag::pb::{PbLink, PbNode};
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::init(&dir.path().join("r")).unwrap();
        let n_files = 200usize;
        let leaves_per_file = 250usize; // 50,000 leaves of 1 KiB
        let t = std::time::Instant::now();
        let mut roots = Vec::new();
        let s = repo.begin_write();
        for f in 0..n_files {
            let mut leaves = Vec::new();
            for l in 0..leaves_per_file {
                let mut d = vec![0u8; 1024];
                d[..8].copy_from_slice(&((f * leaves_per_file + l) as u64).to_le_bytes());
                leaves.push(raw(&d));
            }
            let node = PbNode {
                links: leaves
                    .iter()
                    .map(|b| PbLink {
                        cid: *b.cid(),
                        name: Some(String::new()),
                        tsize: Some(1024),
                    })
                    .collect(),
                data: None,
            };
            let bytes = node.encode();
            let cid = Cid::new_v1(
                crate::dag::DAG_PB_CODEC,
                HashFn::Sha2_256.digest(&bytes).unwrap(),
            );
            leaves.push(Block::new(cid, bytes.into()).unwrap());
            s.put_blocks(&leaves).unwrap();
            roots.push(cid);
        }
        let written = t.elapsed();
        let t = std::time::Instant::now();
        repo.pin_add_many(&roots[..n_files / 2], true, None)
            .unwrap();
        let pinned = t.elapsed();
        drop(s);
        let t = std::time::Instant::now();
        let report = repo.gc().unwrap();
        let gc = t.elapsed();
        assert_eq!(report.removed.len(), (n_files / 2) * (leaves_per_file + 1));
        let t = std::time::Instant::now();
        let mut car = Vec::new();
        let st = crate::car::export_car(repo.blocks().as_ref(), &roots[..n_files / 2], &mut car)
            .unwrap();
        let exported = t.elapsed();
        let (_d2, dst) = mem_repo();
        let t = std::time::Instant::now();
        dst.import_car(&mut &car[..], true).unwrap();
        let imported = t.elapsed();
        eprintln!(
            "{} blocks written {written:?}; pin {} DAGs {pinned:?}; gc removed {} in {gc:?}; \
             export {} blocks / {} bytes {exported:?}; import+pin {imported:?}",
            n_files * (leaves_per_file + 1),
            n_files / 2,
            report.removed.len(),
            st.blocks,
            st.car_bytes
        );
    }

    #[derive(Clone, Debug)]
    enum Op {
        Add(Vec<u8>),
        Unpin(usize),
        Gc,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => proptest::collection::vec(0u8..12, 1..5).prop_map(Op::Add),
            2 => (0usize..8).prop_map(Op::Unpin),
            2 => Just(Op::Gc),
        ]
    }

    fn assert_complete(repo: &Repo, pinned: &HashMap<Cid, Vec<Block>>) {
        for (root, blocks) in pinned {
            for b in blocks {
                assert!(
                    repo.blocks().has(b.cid()).unwrap(),
                    "block {} of pinned DAG {root} was lost",
                    b.cid()
                );
            }
        }
    }

    /// Threads interleave add (session, write, pin, drop), unpin and gc. Leaves are drawn from
    /// a small alphabet, so adds keep re-writing blocks another thread has unpinned and may be
    /// collecting. No pinned DAG ever loses a block (checked after every step), and a final GC
    /// leaves exactly the blocks of pinned DAGs.
    fn run_interleaving(repo: &Repo, scripts: &[Vec<Op>]) -> Result<(), TestCaseError> {
        let results: Vec<HashMap<Cid, Vec<Block>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = scripts
                .iter()
                .enumerate()
                .map(|(t, script)| {
                    let repo = repo.clone();
                    scope.spawn(move || {
                        let mut pinned: HashMap<Cid, Vec<Block>> = HashMap::new();
                        let mut order: Vec<Cid> = Vec::new();
                        for (i, op) in script.iter().enumerate() {
                            match op {
                                Op::Add(leaves) => {
                                    let (root, blocks) = dag(leaves, (t * 1000 + i) as u64);
                                    let s = repo.begin_write();
                                    for b in &blocks {
                                        s.put_blocks(std::slice::from_ref(b)).unwrap();
                                        std::thread::yield_now();
                                    }
                                    s.finish_pinned(&root, true, None).unwrap();
                                    pinned.insert(root, blocks);
                                    order.push(root);
                                }
                                Op::Unpin(k) if !order.is_empty() => {
                                    let root = order.remove(k % order.len());
                                    repo.pin_rm(&root).unwrap();
                                    pinned.remove(&root);
                                }
                                Op::Unpin(_) => {}
                                Op::Gc => {
                                    repo.gc().unwrap();
                                }
                            }
                            assert_complete(&repo, &pinned);
                        }
                        pinned
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        repo.gc().unwrap();
        let mut expect: HashSet<Multihash<64>> = HashSet::new();
        for pinned in &results {
            assert_complete(repo, pinned);
            for blocks in pinned.values() {
                expect.extend(blocks.iter().map(|b| *b.cid().hash()));
            }
        }
        let present: HashSet<Multihash<64>> = repo
            .blocks()
            .all_cids()
            .unwrap()
            .iter()
            .map(|c| *c.hash())
            .collect();
        prop_assert_eq!(present, expect);
        Ok(())
    }

    fn scripts() -> impl Strategy<Value = Vec<Vec<Op>>> {
        proptest::collection::vec(proptest::collection::vec(op(), 1..25), 2..4)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn gc_never_loses_pinned_blocks(scripts in scripts()) {
            let (_d, repo) = mem_repo();
            run_interleaving(&repo, &scripts)?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

        /// The same property on the persistent store (deletes and re-puts of one multihash).
        #[test]
        fn gc_never_loses_pinned_blocks_on_disk(scripts in scripts()) {
            let dir = tempfile::tempdir().unwrap();
            let repo = Repo::init(&dir.path().join("r")).unwrap();
            run_interleaving(&repo, &scripts)?;
        }
    }
}
