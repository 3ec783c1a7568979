#![allow(clippy::unwrap_used, clippy::expect_used)]

//! The tiered blockstore over a real disk store and a real S3 server (moto on loopback):
//! demotion, verified reads with promotion, and the safety of moves under injected faults.

use crate::common;

use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use cid::Cid;
use ipfs_kit_blockstore::{Blockstore, BlockstoreError, DiskBlockstore};
use ipfs_kit_tiers::tier::faulty::{Faults, FaultyTier};
use ipfs_kit_tiers::tier::s3::S3Tier;
use ipfs_kit_tiers::tier::{CancellationToken, RetryPolicy, Tier, TierError, TierKind};
use ipfs_kit_tiers::tiered::{TierRuntime, TieredBlockstore};

const FAST: RetryPolicy = RetryPolicy {
    attempts_max: 3,
    backoff_ms_initial: 1,
    backoff_ms_max: 10,
};

struct Setup {
    store: TieredBlockstore,
    local: Arc<DiskBlockstore>,
    s3: S3Tier,
    faults: Arc<Faults>,
    rt: Arc<TierRuntime>,
    _dir: tempfile::TempDir,
}

fn setup(moto: &common::Moto, bucket: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let local = Arc::new(DiskBlockstore::open(&dir.path().join("blocks")).unwrap());
    let rt = Arc::new(TierRuntime::new().unwrap());
    let cfg = moto.config(bucket, "ipfs/");
    let s3 = rt
        .run(async move {
            let t = S3Tier::connect(&cfg).await?;
            t.ensure_bucket(&CancellationToken::new()).await?;
            Ok(t)
        })
        .unwrap();
    let faulty = Arc::new(FaultyTier::new(Arc::new(s3.clone())));
    let faults = faulty.faults();
    let store = TieredBlockstore::new(local.clone(), vec![faulty as Arc<dyn Tier>], rt.clone())
        .with_retry(FAST);
    Setup {
        store,
        local,
        s3,
        faults,
        rt,
        _dir: dir,
    }
}

fn put_blocks(store: &TieredBlockstore, n: u64, len: usize) -> Vec<Cid> {
    let blocks: Vec<_> = (0..n).map(|i| common::block(500 + i, len)).collect();
    store.put_many(&blocks).unwrap();
    blocks.iter().map(|b| *b.cid()).collect()
}

#[test]
fn demoted_blocks_come_back_verified_and_are_promoted() {
    let Some(moto) = common::Moto::start("demoted_blocks_come_back_verified_and_are_promoted")
    else {
        return;
    };
    let s = setup(&moto, "demote");
    let cids = put_blocks(&s.store, 40, 256 * 1024);
    let report = s.store.move_to(&cids, TierKind::S3).unwrap();
    assert_eq!(report.moved, 40);
    assert_eq!(
        s.local.stat().unwrap().blocks,
        0,
        "every local copy dropped"
    );
    let counts = s.store.counts().unwrap();
    assert_eq!(counts[0].0, TierKind::Local);
    assert_eq!(counts[0].1.as_ref().unwrap(), &0);
    assert_eq!(counts[1].0, TierKind::S3);
    assert_eq!(counts[1].1.as_ref().unwrap(), &40);
    // A read goes to S3, verifies, and promotes.
    assert_eq!(
        s.store.get(&cids[3]).unwrap().map(|d| d.len()),
        Some(256 * 1024)
    );
    assert!(s.local.has(&cids[3]).unwrap());
    // Read together: the promoted one from the local tier, the others from S3 (and promoted).
    let got = s.store.get_many(&cids[2..5]);
    assert_eq!(got.len(), 3);
    for g in got {
        assert_eq!(g.unwrap().map(|d| d.len()), Some(256 * 1024));
    }
    // The rest, in parallel.
    let report = s.store.promote_many(&cids).unwrap();
    assert_eq!((report.moved, report.already), (37, 3));
    assert_eq!(report.bytes, 37 * 256 * 1024);
    for c in &cids {
        assert!(s.local.get(c).unwrap().is_some());
    }
    // Demoting again only drops the local copies (S3 still holds them).
    let report = s.store.move_to(&cids, TierKind::S3).unwrap();
    assert_eq!((report.moved, report.already), (0, 40));
    assert_eq!(s.local.stat().unwrap().blocks, 0);
    drop(s.rt);
}

#[test]
fn outages_and_lost_writes_never_cost_the_local_copy() {
    let Some(moto) = common::Moto::start("outages_and_lost_writes_never_cost_the_local_copy")
    else {
        return;
    };
    let s = setup(&moto, "outage");
    let cids = put_blocks(&s.store, 8, 1024);
    s.faults.set_outage(true);
    let err = s.store.move_to(&cids, TierKind::S3).unwrap_err();
    assert!(err.is_retryable(), "{err}");
    s.faults.set_outage(false);
    s.faults.set_drop_puts(true);
    let err = s.store.move_to(&cids, TierKind::S3).unwrap_err();
    assert!(matches!(err, TierError::NotAcknowledged { .. }), "{err}");
    for c in &cids {
        assert!(s.local.has(c).unwrap());
    }
    s.faults.set_drop_puts(false);
    s.faults.fail_next(2);
    assert_eq!(s.store.move_to(&cids, TierKind::S3).unwrap().moved, 8);
    assert_eq!(s.local.stat().unwrap().blocks, 0);
    // Reads during an outage fail (retryable), and work again after.
    s.faults.set_outage(true);
    assert!(s.store.get(&cids[0]).is_err());
    s.faults.set_outage(false);
    assert!(s.store.get(&cids[0]).unwrap().is_some());
}

#[test]
fn a_tampered_object_is_an_error_not_data() {
    let Some(moto) = common::Moto::start("a_tampered_object_is_an_error_not_data") else {
        return;
    };
    let s = setup(&moto, "tampered");
    let cids = put_blocks(&s.store, 1, 2048);
    s.store.move_to(&cids, TierKind::S3).unwrap();
    let (client, key) = (s.s3.client().clone(), s.s3.key_of(&cids[0]));
    s.rt.run(async move {
        client
            .put_object()
            .bucket("tampered")
            .key(key)
            .body(ByteStream::from(vec![1u8; 2048]))
            .send()
            .await
            .map_err(|e| TierError::Permanent {
                tier: TierKind::S3,
                reason: e.to_string(),
            })
    })
    .unwrap();
    let err = s.store.get(&cids[0]).unwrap_err();
    assert!(matches!(err, BlockstoreError::Corrupt(_)), "{err}");
    assert!(!s.local.has(&cids[0]).unwrap());
}
