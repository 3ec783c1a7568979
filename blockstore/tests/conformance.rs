//! The same contract checks against every Blockstore implementation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use cid::Cid;
use common::{block_of, random_blocks};
use ipfs_kit_blockstore::hash::{HashFn, RAW_CODEC};
use ipfs_kit_blockstore::limits::BLOCK_SIZE_BYTES_MAX;
use ipfs_kit_blockstore::{
    Block, Blockstore, BlockstoreError, DiskBlockstore, FlatfsBlockstore, MemoryBlockstore,
};
use std::collections::HashSet;

fn contract(store: &dyn Blockstore) {
    let blocks = random_blocks(7, 20, 0..70_000);
    let cid0 = *blocks[0].cid();
    assert_eq!(store.get(&cid0).unwrap(), None);
    assert_eq!(store.get_trusted(&cid0).unwrap(), None);
    assert!(!store.has(&cid0).unwrap());
    assert_eq!(store.size_of(&cid0).unwrap(), None);

    store.put_many(&blocks).unwrap();
    store.put_many(&blocks[..5]).unwrap(); // duplicates are skipped
    for b in &blocks {
        assert_eq!(store.get(b.cid()).unwrap().as_ref(), Some(b.data()));
        assert_eq!(store.get_trusted(b.cid()).unwrap().as_ref(), Some(b.data()));
        assert!(store.has(b.cid()).unwrap());
        assert_eq!(store.size_of(b.cid()).unwrap(), Some(b.data().len() as u64));
    }
    // CIDv0 and CIDv1 of the same multihash share the stored copy.
    let v0 = Cid::new_v0(*blocks[1].cid().hash()).unwrap();
    assert_eq!(store.get(&v0).unwrap().as_ref(), Some(blocks[1].data()));
    // get_many answers what get does, in order: present, absent, repeated, identity.
    let absent = *random_blocks(8, 1, 10..20)[0].cid();
    let identity = Cid::new_v1(RAW_CODEC, HashFn::Identity.digest(b"inline").unwrap());
    let mut asked: Vec<Cid> = blocks.iter().map(|b| *b.cid()).collect();
    asked.extend([absent, v0, *blocks[3].cid(), identity]);
    let many = store.get_many(&asked);
    assert_eq!(many.len(), asked.len());
    for (cid, got) in asked.iter().zip(many) {
        assert_eq!(got.unwrap(), store.get(cid).unwrap(), "{cid}");
    }
    assert!(store.get_many(&[]).is_empty());

    let stat = store.stat().unwrap();
    assert_eq!(stat.blocks, 20);
    let total: u64 = blocks.iter().map(|b| b.data().len() as u64).sum();
    assert_eq!(stat.data_bytes, total);

    let all: HashSet<Cid> = store.all_cids().unwrap().into_iter().collect();
    let want: HashSet<Cid> = blocks
        .iter()
        .map(|b| Cid::new_v1(RAW_CODEC, *b.cid().hash()))
        .collect();
    assert_eq!(all, want);

    // Deletes count only what was present.
    let gone: Vec<Cid> = blocks[..8].iter().map(|b| *b.cid()).collect();
    assert_eq!(store.delete_many(&gone).unwrap(), 8);
    assert_eq!(store.delete_many(&gone).unwrap(), 0);
    for b in &blocks[..8] {
        assert!(!store.has(b.cid()).unwrap());
        assert_eq!(store.get(b.cid()).unwrap(), None);
    }
    assert_eq!(store.stat().unwrap().blocks, 12);
    // A deleted block can be stored again.
    store.put(&blocks[0]).unwrap();
    assert_eq!(store.get(&cid0).unwrap().as_ref(), Some(blocks[0].data()));

    // Identity CIDs are answered from the CID and never stored.
    let id_mh = HashFn::Identity.digest(b"inline").unwrap();
    let id_cid = Cid::new_v1(RAW_CODEC, id_mh);
    store
        .put(&Block::new(id_cid, Bytes::from_static(b"inline")).unwrap())
        .unwrap();
    assert_eq!(
        store.get(&id_cid).unwrap(),
        Some(Bytes::from_static(b"inline"))
    );
    assert!(store.has(&id_cid).unwrap());
    assert_eq!(store.stat().unwrap().blocks, 13);

    // Limit + 1 is refused with a typed error; the limit itself is accepted.
    let at_max = block_of(vec![3u8; BLOCK_SIZE_BYTES_MAX]);
    store.put(&at_max).unwrap();
    assert_eq!(
        store.get(at_max.cid()).unwrap().as_ref(),
        Some(at_max.data())
    );
    let data = vec![1u8; BLOCK_SIZE_BYTES_MAX + 1];
    let mh = HashFn::Sha2_256.digest(&data).unwrap();
    let big = Block::new_unchecked(Cid::new_v1(RAW_CODEC, mh), Bytes::from(data));
    match store.put(&big) {
        Err(BlockstoreError::BlockTooLarge {
            size_bytes,
            max_bytes,
        }) => {
            assert_eq!(
                (size_bytes, max_bytes),
                (BLOCK_SIZE_BYTES_MAX + 1, BLOCK_SIZE_BYTES_MAX)
            )
        }
        other => panic!("expected BlockTooLarge, got {other:?}"),
    }
    assert!(!store.has(big.cid()).unwrap());
    store.sync().unwrap();
}

#[test]
fn memory_store_contract() {
    contract(&MemoryBlockstore::new());
}

#[test]
fn disk_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(&DiskBlockstore::open(dir.path()).unwrap());
}

#[test]
fn flatfs_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(&FlatfsBlockstore::open(dir.path(), false).unwrap());
}

#[cfg(feature = "bench-candidates")]
#[test]
fn fjall_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(&ipfs_kit_blockstore::FjallBlockstore::open(dir.path(), false).unwrap());
}

#[cfg(feature = "bench-candidates")]
#[test]
fn sled_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(&ipfs_kit_blockstore::SledBlockstore::open(dir.path()).unwrap());
}
