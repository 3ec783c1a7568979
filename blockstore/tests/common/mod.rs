//! Helpers shared by the blockstore integration tests.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use bytes::Bytes;
use cid::Cid;
use ipfs_kit_blockstore::hash::{HashFn, RAW_CODEC};
use ipfs_kit_blockstore::Block;
use rand::{Rng, RngCore, SeedableRng};

/// A raw-codec, sha2-256 block of `data`.
pub fn block_of(data: Vec<u8>) -> Block {
    let mh = HashFn::Sha2_256.digest(&data).unwrap();
    Block::new(Cid::new_v1(RAW_CODEC, mh), Bytes::from(data)).unwrap()
}

/// `n` random blocks of sizes in `sizes`, reproducible from `seed`.
pub fn random_blocks(seed: u64, n: usize, sizes: std::ops::Range<usize>) -> Vec<Block> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let len = rng.gen_range(sizes.clone());
            let mut data = vec![0u8; len];
            rng.fill_bytes(&mut data);
            block_of(data)
        })
        .collect()
}

/// The single segment file of a store directory with one segment (the newest otherwise).
pub fn newest_segment(dir: &std::path::Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pack"))
        .filter(|p| std::fs::metadata(p).unwrap().len() > 0)
        .collect();
    segs.sort();
    segs.pop().unwrap()
}
