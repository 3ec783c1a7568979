#![allow(clippy::unwrap_used, clippy::expect_used)]

//! The placement policy: pure decisions from heat, capacity, latency and cost.

use crate::common;

use cid::Cid;
use ipfs_kit_tiers::placement::{
    on_access, plan, BlockStats, MoveReason, PolicyConfig, TierSet, TierState,
};
use ipfs_kit_tiers::tier::TierKind;

const DAY_MS: u64 = 24 * 3600 * 1000;
const NOW_MS: u64 = 100 * DAY_MS;

fn cid(i: u64) -> Cid {
    *common::block(i, 16).cid()
}

fn stats(i: u64, heat: f64, idle_days: u64, pinned: bool, at: &[TierKind]) -> BlockStats {
    BlockStats {
        cid: cid(i),
        size_bytes: 1000,
        pinned,
        heat,
        last_access_ms: NOW_MS - idle_days * DAY_MS,
        locations: TierSet::of(at),
    }
}

fn local(capacity: Option<u64>, used: u64) -> TierState {
    TierState {
        kind: TierKind::Local,
        capacity_bytes: capacity,
        used_bytes: used,
        latency_ms: 0,
        cost_micros_per_gib_month: 100_000,
        writable: true,
    }
}

fn s3() -> TierState {
    TierState {
        kind: TierKind::S3,
        capacity_bytes: None,
        used_bytes: 0,
        latency_ms: 30,
        cost_micros_per_gib_month: 23_000,
        writable: true,
    }
}

fn filecoin(writable: bool) -> TierState {
    TierState {
        kind: TierKind::Filecoin,
        capacity_bytes: None,
        used_bytes: 0,
        latency_ms: 3_600_000,
        cost_micros_per_gib_month: 200,
        writable,
    }
}

const L: TierKind = TierKind::Local;

#[test]
fn cold_unpinned_blocks_demote_hot_and_pinned_stay() {
    let blocks = [
        stats(1, 0.5, 3, false, &[L]),  // cold, idle: demote
        stats(2, 0.5, 3, true, &[L]),   // cold but pinned: stays
        stats(3, 10.0, 3, false, &[L]), // hot: stays
        stats(4, 0.5, 0, false, &[L]),  // cold but read today: stays
        stats(5, 2.0, 9, false, &[L]),  // lukewarm, not over capacity: stays
    ];
    let moves = plan(
        &blocks,
        &[local(None, 5000), s3()],
        &PolicyConfig::default(),
        NOW_MS,
    );
    assert_eq!(moves.len(), 1, "{moves:?}");
    let m = &moves[0];
    assert_eq!(
        (m.cid, m.from, m.to, m.delete_source),
        (cid(1), L, TierKind::S3, true)
    );
    assert_eq!(m.reason, MoveReason::Cold);
}

#[test]
fn over_the_high_watermark_the_coldest_unpinned_go_first_down_to_the_low_one() {
    // capacity 10_000, used 9_500 > 9_000 (90 %): shed down to 8_000 (80 %), i.e. 2 blocks.
    let blocks = [
        stats(1, 3.0, 0, false, &[L]),
        stats(2, 2.0, 0, false, &[L]),
        stats(3, 0.1, 0, true, &[L]), // coldest, but pinned
        stats(4, 2.5, 0, false, &[L]),
        stats(5, 9.0, 0, false, &[L]), // hot: never shed
    ];
    let moves = plan(
        &blocks,
        &[local(Some(10_000), 9_500), s3()],
        &PolicyConfig::default(),
        NOW_MS,
    );
    let moved: Vec<Cid> = moves.iter().map(|m| m.cid).collect();
    assert_eq!(moved, vec![cid(2), cid(4)]);
    assert!(moves.iter().all(|m| m.reason == MoveReason::Capacity));
}

#[test]
fn frozen_blocks_go_to_the_cheapest_tier_cold_ones_to_the_fastest() {
    let cfg = PolicyConfig {
        frozen_heat_max: 0.0,
        ..PolicyConfig::default()
    };
    let blocks = [
        stats(1, 0.0, 30, false, &[L]),
        stats(2, 0.5, 30, false, &[L]),
    ];
    let moves = plan(
        &blocks,
        &[local(None, 0), s3(), filecoin(true)],
        &cfg,
        NOW_MS,
    );
    let to: Vec<(Cid, TierKind)> = moves.iter().map(|m| (m.cid, m.to)).collect();
    assert_eq!(
        to,
        vec![(cid(1), TierKind::Filecoin), (cid(2), TierKind::S3)]
    );
    // A slot that cannot store yet is never a target.
    let moves = plan(
        &blocks,
        &[local(None, 0), s3(), filecoin(false)],
        &cfg,
        NOW_MS,
    );
    assert!(moves.iter().all(|m| m.to == TierKind::S3));
}

#[test]
fn a_block_already_held_remotely_prefers_that_tier() {
    let blocks = [stats(1, 0.0, 30, false, &[L, TierKind::S3])];
    let moves = plan(
        &blocks,
        &[local(None, 0), s3(), filecoin(true)],
        &PolicyConfig::default(),
        NOW_MS,
    );
    assert_eq!(moves[0].to, TierKind::S3);
}

#[test]
fn no_colder_tier_means_no_demotion() {
    let blocks = [stats(1, 0.0, 30, false, &[L])];
    assert!(plan(
        &blocks,
        &[local(Some(1000), 1000)],
        &PolicyConfig::default(),
        NOW_MS
    )
    .is_empty());
}

#[test]
fn hot_remote_blocks_are_promoted_while_there_is_room() {
    let blocks = [
        stats(1, 5.0, 0, false, &[TierKind::S3]),
        stats(2, 8.0, 0, false, &[TierKind::S3]),
        stats(3, 0.0, 0, false, &[TierKind::S3]), // cold: stays remote
    ];
    // Room for one block below the high watermark (9_000 of 10_000).
    let moves = plan(
        &blocks,
        &[local(Some(10_000), 7_500), s3()],
        &PolicyConfig::default(),
        NOW_MS,
    );
    assert_eq!(moves.len(), 1);
    let m = &moves[0];
    assert_eq!(
        (m.cid, m.from, m.to, m.delete_source, m.reason),
        (cid(2), TierKind::S3, L, false, MoveReason::Hot)
    );
}

#[test]
fn access_promotes_unless_the_local_store_is_full() {
    let b = stats(1, 0.0, 0, false, &[TierKind::S3]);
    let m = on_access(&b, &local(None, 0), &PolicyConfig::default()).unwrap();
    assert_eq!(
        (m.from, m.to, m.delete_source, m.reason),
        (TierKind::S3, L, false, MoveReason::Access)
    );
    assert!(on_access(&b, &local(Some(10_000), 8_500), &PolicyConfig::default()).is_none());
    let here = stats(1, 0.0, 0, false, &[L]);
    assert!(on_access(&here, &local(None, 0), &PolicyConfig::default()).is_none());
}

#[test]
fn plans_are_deterministic() {
    let blocks: Vec<BlockStats> = (0..50)
        .map(|i| stats(i, (i % 7) as f64 * 0.3, i % 5, i % 3 == 0, &[L]))
        .collect();
    let tiers = [local(Some(40_000), 39_000), s3()];
    let a = plan(&blocks, &tiers, &PolicyConfig::default(), NOW_MS);
    let mut rev = blocks.clone();
    rev.reverse();
    let b = plan(&rev, &tiers, &PolicyConfig::default(), NOW_MS);
    assert_eq!(a, b);
    assert!(a
        .iter()
        .all(|m| !blocks.iter().any(|s| s.cid == m.cid && s.pinned)));
}

#[test]
fn eviction_order_is_the_designs() {
    assert_eq!(
        TierKind::EVICTION_ORDER,
        [
            TierKind::Memory,
            TierKind::Local,
            TierKind::Cluster,
            TierKind::S3,
            TierKind::Storacha,
            TierKind::Filecoin
        ]
    );
    // Demotion only ever goes colder.
    let blocks = [stats(1, 0.0, 30, false, &[TierKind::S3])];
    let moves = plan(
        &blocks,
        &[local(None, 0), s3(), filecoin(true)],
        &PolicyConfig::default(),
        NOW_MS,
    );
    assert!(
        moves.is_empty(),
        "only local blocks are demoted by the policy: {moves:?}"
    );
}
