//! Deterministic simulation runs: many seeds with every fault on. A seed that ever fails gets its
//! own named test below, so it keeps being checked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ipfs_kit_cluster_sync::sim::{Sim, SimConfig, SimReport};

fn run(cfg: SimConfig) -> SimReport {
    let r = Sim::new(cfg).run();
    assert!(r.violations.is_empty(), "seed {}: {:#?}", r.seed, r);
    assert!(r.converged_at_ms.is_some(), "seed {}", r.seed);
    r
}

#[test]
fn chaos_many_seeds() {
    let seeds: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let mut totals = SimReport::default();
    for seed in 0..seeds {
        let r = run(SimConfig::chaos(seed));
        totals.messages += r.messages;
        totals.dropped += r.dropped;
        totals.local_ops += r.local_ops;
        totals.crashes += r.crashes;
        totals.compactions += r.compactions;
        totals.snapshots_installed += r.snapshots_installed;
        totals.trusted_deltas += r.trusted_deltas;
    }
    eprintln!("{seeds} seeds: {totals:?}");
    // The faults really happened.
    assert!(totals.dropped > 0 && totals.crashes > 0 && totals.compactions > 0);
    assert!(
        totals.snapshots_installed > 0,
        "no snapshot was ever installed by a peer"
    );
}

#[test]
fn lossless_no_faults_converges_fast() {
    let mut cfg = SimConfig::chaos(7);
    cfg.loss = 0.0;
    cfg.duplication = 0.0;
    cfg.partitions = false;
    cfg.crashes = false;
    let r = run(cfg);
    assert!(r.final_pins > 0);
}

#[test]
fn heavy_loss_and_duplication() {
    let mut cfg = SimConfig::chaos(1001);
    cfg.loss = 0.4;
    cfg.duplication = 0.3;
    run(cfg);
}

#[test]
fn tiny_pending_bound_keeps_links_only_and_still_converges() {
    // With 1 KiB of pending bytes, nearly every delta that waits for an ancestor is kept as its
    // links only and fetched again when its ancestry is complete; every check still holds.
    for seed in 0..12 {
        let mut cfg = SimConfig::chaos(seed);
        cfg.replica.pending_bytes_max = 1024;
        run(cfg);
    }
}

// Seeds that failed while the replica was being written, each for the bug it found.

/// A late joiner installed an early snapshot; deltas after it were compacted away everywhere.
#[test]
fn regression_seed_1_late_joiner_behind_compaction() {
    run(SimConfig::chaos(1));
}

/// Installing an older snapshot replaced a newer own one, so dropped deltas became unobtainable.
#[test]
fn regression_seed_3_installed_snapshot_older_than_own() {
    run(SimConfig::chaos(3));
}

/// A lax peer's snapshot carried the attacker's unpins into honest peers.
#[test]
fn regression_seed_1001_snapshot_from_a_different_trust_set() {
    let mut cfg = SimConfig::chaos(1001);
    cfg.loss = 0.4;
    cfg.duplication = 0.3;
    run(cfg);
}

/// Missing deltas were only asked from the same three peers, never the one holding them.
#[test]
fn regression_seed_8_fetch_rotates_over_all_peers() {
    run(SimConfig::chaos(8));
}

/// A trusted delta hidden behind an untrusted head announced by a trusted peer.
#[test]
fn regression_seed_7_trusted_delta_behind_untrusted_head() {
    run(SimConfig::chaos(7));
}

/// Deltas only a lax peer held were dropped by the compaction after a snapshot install.
#[test]
fn regression_seed_28_lax_peer_dropped_its_only_copies() {
    run(SimConfig::chaos(28));
}

/// More writers and followers, heavier loss, longer delays (so more reordering), more CIDs.
#[test]
fn chaos_heavy_seeds() {
    let seeds: u64 = std::env::var("SIM_HEAVY_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    for seed in 0..seeds {
        let mut cfg = SimConfig::chaos(1_000_000 + seed);
        cfg.writers = 5;
        cfg.followers = 4;
        cfg.loss = 0.3;
        cfg.duplication = 0.2;
        cfg.delay_ms_max = 1_500;
        cfg.cid_universe = 200;
        cfg.active_ms = 30_000;
        run(cfg);
    }
}

/// Every fallback picked the first usable snapshot in key order; peers kept re-compacting, so the
/// only snapshot covering the missing delta (last in order) was never reached.
#[test]
fn regression_seed_1000142_snapshot_fallback_rotates_over_peers() {
    let mut cfg = SimConfig::chaos(1_000_142);
    cfg.writers = 5;
    cfg.followers = 4;
    cfg.loss = 0.3;
    cfg.duplication = 0.2;
    cfg.delay_ms_max = 1_500;
    cfg.cid_universe = 200;
    cfg.active_ms = 30_000;
    run(cfg);
}
