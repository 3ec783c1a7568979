#![allow(clippy::unwrap_used, clippy::expect_used)]

//! Retries, outages, cancellation and the safety of moves, with the fault-injecting wrapper
//! around an in-memory store standing in the S3 slot (the same paths against a real S3 server
//! are in `tiered_s3.rs`).

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cid::Cid;
use ipfs_kit_blockstore::{Blockstore, MemoryBlockstore};
use ipfs_kit_tiers::tier::faulty::{Faults, FaultyTier};
use ipfs_kit_tiers::tier::local::LocalTier;
use ipfs_kit_tiers::tier::storacha::StorachaTier;
use ipfs_kit_tiers::tier::{
    retry, CancellationToken, RetryPolicy, Tier, TierError, TierKind, TierObserver,
};
use ipfs_kit_tiers::tiered::{TierRuntime, TieredBlockstore};
use parking_lot::Mutex;

const FAST: RetryPolicy = RetryPolicy {
    attempts_max: 4,
    backoff_ms_initial: 1,
    backoff_ms_max: 5,
};

fn faulty_memory(kind: TierKind) -> (Arc<FaultyTier>, Arc<Faults>, Arc<MemoryBlockstore>) {
    let mem = Arc::new(MemoryBlockstore::new());
    let tier = Arc::new(FaultyTier::posing_as(
        Arc::new(LocalTier::new(mem.clone())),
        kind,
    ));
    let faults = tier.faults();
    (tier, faults, mem)
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(Cid, TierKind, bool)>>);

impl TierObserver for Recorder {
    fn on_stored(&self, cid: &Cid, tier: TierKind) {
        self.0.lock().push((*cid, tier, true));
    }
    fn on_removed(&self, cid: &Cid, tier: TierKind) {
        self.0.lock().push((*cid, tier, false));
    }
}

impl Recorder {
    fn saw(&self, cid: &Cid, tier: TierKind, stored: bool) -> bool {
        self.0
            .lock()
            .iter()
            .any(|(c, t, s)| c.hash() == cid.hash() && *t == tier && *s == stored)
    }
}

#[tokio::test]
async fn transient_failures_are_retried_until_success() {
    let (tier, faults, _) = faulty_memory(TierKind::S3);
    let b = common::block(1, 1000);
    let cancel = CancellationToken::new();
    faults.fail_next(3);
    retry(FAST, &cancel, || {
        tier.put(b.cid(), b.data().clone(), &cancel)
    })
    .await
    .unwrap();
    assert_eq!(faults.injected(), 3);
    assert_eq!(faults.calls(), 4);
    let got = retry(FAST, &cancel, || tier.get(b.cid(), &cancel))
        .await
        .unwrap();
    assert_eq!(got.as_ref(), Some(b.data()));
}

#[tokio::test]
async fn retries_stop_after_the_policy_attempts() {
    let (tier, faults, _) = faulty_memory(TierKind::S3);
    let b = common::block(2, 10);
    let cancel = CancellationToken::new();
    faults.fail_next(100);
    let err = retry(FAST, &cancel, || tier.has(b.cid(), &cancel))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(faults.calls(), u64::from(FAST.attempts_max));
}

#[tokio::test]
async fn unsupported_slots_fail_once_and_are_not_retried() {
    let slot = StorachaTier;
    let cancel = CancellationToken::new();
    let b = common::block(3, 10);
    let err = retry(FAST, &cancel, || {
        slot.put(b.cid(), b.data().clone(), &cancel)
    })
    .await
    .unwrap_err();
    assert!(matches!(
        err,
        TierError::Unsupported {
            tier: TierKind::Storacha,
            ..
        }
    ));
    assert!(!err.is_retryable());
    let filecoin = ipfs_kit_tiers::tier::filecoin::FilecoinTier;
    assert!(matches!(
        filecoin.list(&cancel).await,
        Err(TierError::Unsupported {
            tier: TierKind::Filecoin,
            ..
        })
    ));
}

#[tokio::test]
async fn cancellation_ends_a_slow_call_and_a_backoff() {
    let (tier, faults, _) = faulty_memory(TierKind::S3);
    let b = common::block(4, 10);
    let cancel = CancellationToken::new();
    faults.set_delay(Duration::from_secs(30));
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        c2.cancel();
    });
    let t0 = Instant::now();
    let err = tier.get(b.cid(), &cancel).await.unwrap_err();
    assert!(matches!(err, TierError::Cancelled));
    assert!(t0.elapsed() < Duration::from_secs(10));

    // A retry loop waiting out a long backoff ends at once too.
    faults.set_delay(Duration::ZERO);
    faults.set_outage(true);
    let cancel = CancellationToken::new();
    let slow = RetryPolicy {
        attempts_max: 10,
        backoff_ms_initial: 30_000,
        backoff_ms_max: 30_000,
    };
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        c2.cancel();
    });
    let t0 = Instant::now();
    let err = retry(slow, &cancel, || tier.has(b.cid(), &cancel))
        .await
        .unwrap_err();
    assert!(matches!(err, TierError::Cancelled));
    assert!(t0.elapsed() < Duration::from_secs(10));
}

/// A local memory store in front of a faulty remote in the S3 slot.
fn tiered() -> (
    TieredBlockstore,
    Arc<MemoryBlockstore>,
    Arc<Faults>,
    Arc<MemoryBlockstore>,
    Arc<Recorder>,
) {
    let local = Arc::new(MemoryBlockstore::new());
    let (remote, faults, remote_mem) = faulty_memory(TierKind::S3);
    let rec = Arc::new(Recorder::default());
    let store = TieredBlockstore::new(
        local.clone(),
        vec![remote as Arc<dyn Tier>],
        Arc::new(TierRuntime::new().unwrap()),
    )
    .with_retry(FAST)
    .with_observer(rec.clone());
    (store, local, faults, remote_mem, rec)
}

fn put_blocks(store: &TieredBlockstore, n: u64) -> Vec<Cid> {
    let blocks: Vec<_> = (0..n).map(|i| common::block(100 + i, 4096)).collect();
    store.put_many(&blocks).unwrap();
    blocks.iter().map(|b| *b.cid()).collect()
}

#[test]
fn demote_then_read_promotes_back_and_records_locations() {
    let (store, local, _faults, remote, rec) = tiered();
    let cids = put_blocks(&store, 20);
    let report = store.move_to(&cids, TierKind::S3).unwrap();
    assert_eq!(report.moved, 20);
    assert_eq!(report.bytes, 20 * 4096);
    for c in &cids {
        assert!(!local.has(c).unwrap());
        assert!(remote.has(c).unwrap());
        assert!(rec.saw(c, TierKind::S3, true));
        assert!(rec.saw(c, TierKind::Local, false));
        assert!(
            store.has(c).unwrap(),
            "a demoted block is still in the store"
        );
    }
    assert_eq!(
        store.locate(&cids[0]).unwrap().iter().collect::<Vec<_>>(),
        vec![TierKind::S3]
    );
    // Reading one through the store promotes it on access.
    let data = store.get(&cids[0]).unwrap().unwrap();
    assert_eq!(data.len(), 4096);
    assert!(local.has(&cids[0]).unwrap());
    // Promoting the rest, many reads at once.
    let report = store.promote_many(&cids).unwrap();
    assert_eq!((report.moved, report.already), (19, 1));
    for c in &cids {
        assert!(local.has(c).unwrap());
        assert!(remote.has(c).unwrap(), "promotion keeps the remote copy");
    }
    // all_cids is the union, once each.
    assert_eq!(store.all_cids().unwrap().len(), 20);
}

#[test]
fn an_outage_during_demotion_deletes_nothing_locally() {
    let (store, local, faults, remote, _) = tiered();
    let cids = put_blocks(&store, 10);
    faults.set_outage(true);
    let err = store.move_to(&cids, TierKind::S3).unwrap_err();
    assert!(err.is_retryable(), "{err}");
    for c in &cids {
        assert!(local.has(c).unwrap(), "local copy kept during the outage");
        assert!(!remote.has(c).unwrap());
    }
    // After the outage, the same move goes through.
    faults.set_outage(false);
    let report = store.move_to(&cids, TierKind::S3).unwrap();
    assert_eq!(report.moved, 10);
    for c in &cids {
        assert!(!local.has(c).unwrap());
        assert!(remote.has(c).unwrap());
    }
}

#[test]
fn failures_fewer_than_the_attempts_are_absorbed() {
    let (store, local, faults, remote, _) = tiered();
    let cids = put_blocks(&store, 1);
    faults.fail_next(FAST.attempts_max - 1);
    store.move_to(&cids, TierKind::S3).unwrap();
    assert!(!local.has(&cids[0]).unwrap());
    assert!(remote.has(&cids[0]).unwrap());
}

#[test]
fn a_remote_that_loses_writes_is_caught_before_the_local_delete() {
    let (store, local, faults, remote, _) = tiered();
    let cids = put_blocks(&store, 5);
    faults.set_drop_puts(true);
    let err = store.move_to(&cids, TierKind::S3).unwrap_err();
    assert!(
        matches!(
            err,
            TierError::NotAcknowledged {
                tier: TierKind::S3,
                ..
            }
        ),
        "{err}"
    );
    for c in &cids {
        assert!(local.has(c).unwrap());
        assert!(!remote.has(c).unwrap());
    }
}

#[test]
fn corrupt_remote_reads_are_errors_never_data() {
    let (store, local, faults, _remote, _) = tiered();
    let cids = put_blocks(&store, 1);
    store.move_to(&cids, TierKind::S3).unwrap();
    faults.set_corrupt_reads(true);
    let err = store.get(&cids[0]).unwrap_err();
    assert!(
        matches!(err, ipfs_kit_blockstore::BlockstoreError::Corrupt(_)),
        "{err}"
    );
    assert!(
        !local.has(&cids[0]).unwrap(),
        "nothing corrupt was promoted"
    );
    assert!(store.promote_many(&cids).is_err());
    faults.set_corrupt_reads(false);
    assert_eq!(store.get(&cids[0]).unwrap().map(|d| d.len()), Some(4096));
}

#[test]
fn moves_to_an_unconfigured_tier_are_refused() {
    let (store, local, _, _, _) = tiered();
    let cids = put_blocks(&store, 1);
    let err = store.move_to(&cids, TierKind::Filecoin).unwrap_err();
    assert!(matches!(err, TierError::NotConfigured(TierKind::Filecoin)));
    assert!(local.has(&cids[0]).unwrap());
}

#[test]
fn gc_deletes_reach_the_remote_tier() {
    let (store, local, _, remote, rec) = tiered();
    let cids = put_blocks(&store, 4);
    store.move_to(&cids[..2], TierKind::S3).unwrap();
    assert_eq!(store.delete_many(&cids).unwrap(), 4);
    for c in &cids {
        assert!(!local.has(c).unwrap());
        assert!(!remote.has(c).unwrap());
        assert!(!store.has(c).unwrap());
    }
    assert!(rec.saw(&cids[0], TierKind::S3, false));
}

#[tokio::test(flavor = "current_thread")]
async fn sync_calls_from_inside_a_runtime_do_not_deadlock() {
    // The Blockstore contract asks async callers to use spawn_blocking; even a caller that
    // does not, on a single-threaded runtime, gets its answer: the tier futures run on the
    // store's own runtime.
    let (store, _local, _, _, _) = tiered();
    let cids = put_blocks(&store, 2);
    store.move_to(&cids, TierKind::S3).unwrap();
    assert_eq!(store.get(&cids[1]).unwrap().map(|d| d.len()), Some(4096));
    drop(store);
}
