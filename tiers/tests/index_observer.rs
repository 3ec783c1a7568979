//! The index as the tiers' observer: stored/removed reports land in the `tiers` column.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use cid::Cid;
use ipfs_kit_blockstore::hash::{HashFn, RAW_CODEC};
use ipfs_kit_blockstore::Block;
use ipfs_kit_tiers::index::{Index, Query};
use std::sync::Arc;

fn block(i: u64, len: usize) -> Block {
    let mut data: Vec<u8> = vec![i as u8; len];
    data.extend_from_slice(&i.to_le_bytes());
    let mh = HashFn::Sha2_256.digest(&data).unwrap();
    Block::new(Cid::new_v1(RAW_CODEC, mh), Bytes::from(data)).unwrap()
}

fn matched(ix: &Index, where_: &str) -> u64 {
    ix.query(&Query::parse(Some(where_), None, false, 10).unwrap())
        .unwrap()
        .matched
}

#[test]
fn tier_reports_reach_the_tiers_column() {
    use ipfs_kit_tiers::tier::{TierKind, TierObserver};
    let dir = tempfile::tempdir().unwrap();
    let ix = Arc::new(Index::create(dir.path()).unwrap());
    let b = block(1, 10);
    ix.record_put(b.cid(), 18).unwrap();
    let observer: Arc<dyn TierObserver> = ix.clone();
    observer.on_stored(b.cid(), TierKind::Local);
    observer.on_stored(b.cid(), TierKind::S3);
    let r = ix.get(b.cid()).unwrap().unwrap();
    assert_eq!(r.replication, 2);
    assert_eq!(matched(&ix, "tiers = s3 and tiers = local"), 1);
    observer.on_removed(b.cid(), TierKind::Local);
    assert_eq!(matched(&ix, "tiers = s3 and tiers != local"), 1);
    assert_eq!(ix.get(b.cid()).unwrap().unwrap().replication, 1);
    // Not listed: ignored, not created.
    let other = block(2, 10);
    observer.on_stored(other.cid(), TierKind::S3);
    assert!(ix.get(other.cid()).unwrap().is_none());
}
