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
