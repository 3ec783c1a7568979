//! `CachedBlockstore`: hits are served without touching the inner store, the cache stays within
//! its byte budget, deletes reach both, and a one-off scan does not evict the hot blocks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use cid::Cid;
use ipfs_kit_blockstore::hash::{HashFn, RAW_CODEC};
use ipfs_kit_blockstore::{Block, Blockstore, BlockstoreError, DiskBlockstore, StoreStat};
use ipfs_kit_tiers::cache::CachedBlockstore;
use std::sync::atomic::{AtomicU64, Ordering};

/// A real disk store that counts the reads reaching it.
struct Counting {
    inner: DiskBlockstore,
    gets: AtomicU64,
}

impl Blockstore for Counting {
    fn get(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        self.inner.get(cid)
    }
    fn has(&self, cid: &Cid) -> Result<bool, BlockstoreError> {
        self.inner.has(cid)
    }
    fn size_of(&self, cid: &Cid) -> Result<Option<u64>, BlockstoreError> {
        self.inner.size_of(cid)
    }
    fn put_many(&self, blocks: &[Block]) -> Result<(), BlockstoreError> {
        self.inner.put_many(blocks)
    }
    fn delete_many(&self, cids: &[Cid]) -> Result<u64, BlockstoreError> {
        self.inner.delete_many(cids)
    }
    fn all_cids(&self) -> Result<Vec<Cid>, BlockstoreError> {
        self.inner.all_cids()
    }
    fn sync(&self) -> Result<(), BlockstoreError> {
        self.inner.sync()
    }
    fn stat(&self) -> Result<StoreStat, BlockstoreError> {
        self.inner.stat()
    }
}

impl Counting {
    fn open(dir: &std::path::Path) -> Self {
        Self {
            inner: DiskBlockstore::open(dir).unwrap(),
            gets: AtomicU64::new(0),
        }
    }
}

fn block(i: u64, len: usize) -> Block {
    let mut data = vec![(i % 251) as u8; len];
    data.extend_from_slice(&i.to_le_bytes());
    let mh = HashFn::Sha2_256.digest(&data).unwrap();
    Block::new(Cid::new_v1(RAW_CODEC, mh), Bytes::from(data)).unwrap()
}

#[test]
fn hot_blocks_are_served_from_the_cache_within_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    let inner = Counting::open(dir.path());
    let capacity = 64 * 1024;
    let cached = CachedBlockstore::new(inner, capacity);
    let hot: Vec<Block> = (0..8).map(|i| block(i, 4000)).collect();
    let scan: Vec<Block> = (100..200).map(|i| block(i, 4000)).collect();
    cached.put_many(&hot).unwrap();
    cached.put_many(&scan).unwrap();
    for _ in 0..3 {
        for b in &hot {
            assert_eq!(cached.get(b.cid()).unwrap().unwrap(), *b.data());
        }
    }
    // 8 misses, then hits.
    assert_eq!(cached.inner().gets.load(Ordering::Relaxed), 8);
    assert_eq!(cached.stats().hits, 16);
    // A one-off scan of 400 KB through a 64 KiB cache.
    for b in &scan {
        assert_eq!(cached.get(b.cid()).unwrap().unwrap(), *b.data());
    }
    let s = cached.sizes();
    assert!(s.t1_bytes + s.t2_bytes <= capacity, "{s:?}");
    let before = cached.inner().gets.load(Ordering::Relaxed);
    for b in &hot {
        cached.get(b.cid()).unwrap().unwrap();
    }
    assert_eq!(
        cached.inner().gets.load(Ordering::Relaxed),
        before,
        "the scan evicted hot blocks (T2) — ARC should have kept them"
    );
    let h = cached.heat(hot[0].cid()).unwrap();
    assert_eq!(h.accesses, 4);
    assert!(h.resident);
    // Deletes go through to the store and out of the cache.
    assert_eq!(cached.delete_many(&[*hot[0].cid()]).unwrap(), 1);
    assert!(cached.get(hot[0].cid()).unwrap().is_none());
    assert!(!cached.has(hot[0].cid()).unwrap());
    assert!(cached.heat(hot[0].cid()).is_none());
}

#[test]
fn serving_reads_use_the_cache_but_do_not_fill_it() {
    let dir = tempfile::tempdir().unwrap();
    let inner = Counting::open(dir.path());
    let cached = CachedBlockstore::new(inner, 64 * 1024);
    let (served, local) = (block(1, 4000), block(2, 4000));
    cached.put_many(&[served.clone(), local.clone()]).unwrap();
    let gets = || cached.inner().gets.load(Ordering::Relaxed);
    // A block only peers ask for (`get_trusted`, the bitswap serve path) stays out of the cache:
    // every read reaches the store.
    for n in 1..=3 {
        assert_eq!(
            cached.get_trusted(served.cid()).unwrap().unwrap(),
            *served.data()
        );
        assert_eq!(gets(), n);
    }
    assert_eq!(cached.sizes().t1_bytes + cached.sizes().t2_bytes, 0);
    // A block the node reads itself is cached, and serving it then hits the cache.
    assert_eq!(cached.get(local.cid()).unwrap().unwrap(), *local.data());
    assert_eq!(gets(), 4);
    assert_eq!(
        cached.get_trusted(local.cid()).unwrap().unwrap(),
        *local.data()
    );
    assert_eq!(gets(), 4, "a get_trusted of a cached block read the store");
    assert_eq!(cached.stats().hits, 1);
}

#[test]
fn reads_together_hit_and_fill_the_cache_as_single_reads_do() {
    let dir = tempfile::tempdir().unwrap();
    let inner = Counting::open(dir.path());
    let cached = CachedBlockstore::new(inner, 64 * 1024);
    let blocks: Vec<Block> = (10..13).map(|i| block(i, 4000)).collect();
    cached.put_many(&blocks).unwrap();
    let gets = || cached.inner().gets.load(Ordering::Relaxed);
    assert_eq!(
        cached.get(blocks[0].cid()).unwrap().unwrap(),
        *blocks[0].data()
    );
    assert_eq!(gets(), 1);
    let mut cids: Vec<Cid> = blocks.iter().map(|b| *b.cid()).collect();
    let absent = block(99, 10);
    cids.push(*absent.cid());
    let check = |got: Vec<Result<Option<Bytes>, BlockstoreError>>| {
        for (b, g) in blocks.iter().zip(&got) {
            assert_eq!(g.as_ref().unwrap().as_ref(), Some(b.data()));
        }
        assert_eq!(got[3].as_ref().unwrap(), &None);
    };
    // The cached block is a hit; the two others and the absent one reach the store...
    check(cached.get_many(&cids));
    assert_eq!(gets(), 4);
    assert_eq!(cached.stats().hits, 1);
    // ...and are cached: only the absent one reaches it again.
    check(cached.get_many(&cids));
    assert_eq!(gets(), 5);
    assert_eq!(cached.stats().hits, 4);
    assert!(cached.heat(blocks[2].cid()).is_some());
}
