//! Property test: DiskBlockstore behaves like MemoryBlockstore (the model) over random
//! sequences of puts, deletes, compactions, reopens (with and without the checkpoint) and
//! crashes (reopen from a stale checkpoint).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cid::Cid;
use ipfs_kit_blockstore::{Block, Blockstore, DiskBlockstore, DiskOptions, MemoryBlockstore};
use proptest::prelude::*;
use std::path::Path;

const POOL: usize = 24;

#[derive(Clone, Debug)]
enum Op {
    Put(Vec<usize>),
    /// `put_many_cold`: direct appends, taking turns with the others in the same segment.
    PutCold(Vec<usize>),
    Delete(Vec<usize>),
    Compact(u8),
    Reopen {
        keep_hint: bool,
    },
    /// Reopen without writing a checkpoint, as after `kill -9` (an older one may remain).
    Crash,
    Sync,
}

fn op() -> impl Strategy<Value = Op> {
    let idxs = || prop::collection::vec(0..POOL, 1..6);
    prop_oneof![
        4 => idxs().prop_map(Op::Put),
        3 => idxs().prop_map(Op::PutCold),
        2 => idxs().prop_map(Op::Delete),
        1 => (0u8..=10).prop_map(Op::Compact),
        1 => any::<bool>().prop_map(|keep_hint| Op::Reopen { keep_hint }),
        1 => Just(Op::Crash),
        1 => Just(Op::Sync),
    ]
}

fn open(dir: &Path) -> DiskBlockstore {
    let opts = DiskOptions {
        segment_bytes_max: 8 * 1024,
        ..Default::default()
    };
    DiskBlockstore::open_with(dir, opts).unwrap()
}

fn same(disk: &DiskBlockstore, model: &MemoryBlockstore, pool: &[Block]) {
    for b in pool {
        assert_eq!(disk.has(b.cid()).unwrap(), model.has(b.cid()).unwrap());
        assert_eq!(disk.get(b.cid()).unwrap(), model.get(b.cid()).unwrap());
        assert_eq!(
            disk.size_of(b.cid()).unwrap(),
            model.size_of(b.cid()).unwrap()
        );
    }
    let (d, m) = (disk.stat().unwrap(), model.stat().unwrap());
    assert_eq!((d.blocks, d.data_bytes), (m.blocks, m.data_bytes));
    let mut a = disk.all_cids().unwrap();
    let mut b = model.all_cids().unwrap();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn disk_store_matches_the_model(seed in any::<u64>(), ops in prop::collection::vec(op(), 1..40)) {
        let pool = common::random_blocks(seed, POOL, 0..3000);
        let dir = tempfile::tempdir().unwrap();
        let model = MemoryBlockstore::new();
        let mut disk = Some(open(dir.path()));
        for op in ops {
            let d = disk.as_ref().unwrap();
            match op {
                Op::Put(ix) => {
                    let bs: Vec<Block> = ix.iter().map(|&i| pool[i].clone()).collect();
                    d.put_many(&bs).unwrap();
                    model.put_many(&bs).unwrap();
                }
                Op::PutCold(ix) => {
                    let bs: Vec<Block> = ix.iter().map(|&i| pool[i].clone()).collect();
                    d.put_many_cold(&bs).unwrap();
                    model.put_many(&bs).unwrap();
                }
                Op::Delete(ix) => {
                    let cs: Vec<Cid> = ix.iter().map(|&i| *pool[i].cid()).collect();
                    prop_assert_eq!(d.delete_many(&cs).unwrap(), model.delete_many(&cs).unwrap());
                }
                Op::Compact(tenths) => {
                    d.compact(f64::from(tenths) / 10.0).unwrap();
                }
                Op::Reopen { keep_hint } => {
                    drop(disk.take());
                    if !keep_hint {
                        let _ = std::fs::remove_file(dir.path().join("index.hint"));
                    }
                    disk = Some(open(dir.path()));
                }
                Op::Crash => {
                    disk.take().unwrap().close_without_checkpoint();
                    disk = Some(open(dir.path()));
                }
                Op::Sync => d.sync().unwrap(),
            }
            same(disk.as_ref().unwrap(), &model, &pool);
        }
        prop_assert!(disk.as_ref().unwrap().verify_all().unwrap().is_empty());
    }
}
