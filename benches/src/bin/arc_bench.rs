//! ARC vs LRU of the same size (in bytes) on a workload that mixes a hot set with one-off
//! scans — the workload ARC was designed for. Prints both hit ratios and the cost per request.
//!
//! ```sh
//! cargo run --release -p ipfs-kit-benches --bin arc_bench
//! cargo run --release -p ipfs-kit-benches --bin arc_bench -- --cache-mib 64 --hot-mib 48 --scan-mib 96
//! ```
//!
//! Block sizes are drawn from 1 KiB to 256 KiB (log-uniform). Each round makes `--hot-requests`
//! requests to the hot set, skewed (zipf-like: half of them to the hottest 10%), then every
//! `--scan-every`th round scans `--scan-mib` of blocks that are never requested again. A miss
//! inserts the block, as a cache in front of a blockstore does.

use clap::Parser;
use ipfs_kit_tiers::arc::{ArcCache, ByteCache};
use ipfs_kit_tiers::lru::LruCache;
use rand::{Rng, SeedableRng};
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// Cache size of both caches.
    #[arg(long, default_value_t = 64)]
    cache_mib: u64,
    /// Total size of the hot set (fits in the cache).
    #[arg(long, default_value_t = 48)]
    hot_mib: u64,
    /// Size of each one-off scan.
    #[arg(long, default_value_t = 96)]
    scan_mib: u64,
    /// Rounds.
    #[arg(long, default_value_t = 200)]
    rounds: u64,
    /// Hot-set requests per round.
    #[arg(long, default_value_t = 2000)]
    hot_requests: u64,
    /// Scan every N rounds.
    #[arg(long, default_value_t = 2)]
    scan_every: u64,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

fn block_size(rng: &mut impl Rng) -> u64 {
    let log = rng.gen_range(10.0f64..=18.0);
    2f64.powf(log) as u64
}

/// One request: a hit, or a miss followed by an insert.
fn request(c: &mut dyn ByteCache<u64, ()>, key: u64, size: u64) -> bool {
    if c.get(&key).is_some() {
        return true;
    }
    c.insert(key, (), size);
    false
}

fn main() {
    let a = Args::parse();
    let mib = 1u64 << 20;
    let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed);
    let mut hot = Vec::new();
    let mut total = 0;
    while total < a.hot_mib * mib {
        let s = block_size(&mut rng);
        hot.push(s);
        total += s;
    }
    // The requests are generated once and replayed against both caches.
    let mut trace: Vec<(u64, u64)> = Vec::new();
    let mut next_scan_key = 1u64 << 40;
    for round in 0..a.rounds {
        for _ in 0..a.hot_requests {
            let n = hot.len() as u64;
            let k = if rng.gen_bool(0.5) {
                rng.gen_range(0..(n / 10).max(1))
            } else {
                rng.gen_range(0..n)
            };
            trace.push((k, hot[k as usize]));
        }
        if round % a.scan_every == a.scan_every - 1 {
            let mut scanned = 0;
            while scanned < a.scan_mib * mib {
                let s = block_size(&mut rng);
                trace.push((next_scan_key, s));
                next_scan_key += 1;
                scanned += s;
            }
        }
    }
    let cap = a.cache_mib * mib;
    let run = |c: &mut dyn ByteCache<u64, ()>| {
        let t = Instant::now();
        let hits = trace.iter().filter(|(k, s)| request(c, *k, *s)).count();
        (hits as f64 / trace.len() as f64, t.elapsed())
    };
    let mut arc: ArcCache<u64, ()> = ArcCache::new(cap);
    let mut lru: LruCache<u64, ()> = LruCache::new(cap);
    let (arc_ratio, arc_t) = run(&mut arc);
    let (lru_ratio, lru_t) = run(&mut lru);
    if let Err(e) = arc.check_invariants() {
        eprintln!("ARC invariant broken: {e}");
        std::process::exit(1);
    }
    let s = arc.sizes();
    println!(
        "workload: cache {} MiB, hot set {} blocks / {} MiB, scans of {} MiB every {} rounds, {} requests",
        a.cache_mib,
        hot.len(),
        a.hot_mib,
        a.scan_mib,
        a.scan_every,
        trace.len()
    );
    let ns = |t: std::time::Duration| t.as_nanos() as f64 / trace.len() as f64;
    println!(
        "ARC hit ratio {:.4}  ({:.0} ns/request)",
        arc_ratio,
        ns(arc_t)
    );
    println!(
        "LRU hit ratio {:.4}  ({:.0} ns/request)",
        lru_ratio,
        ns(lru_t)
    );
    println!(
        "ARC final: p = {} MiB, T1 {} MiB, T2 {} MiB, B1 {} MiB, B2 {} MiB",
        s.target_t1_bytes / mib,
        s.t1_bytes / mib,
        s.t2_bytes / mib,
        s.b1_bytes / mib,
        s.b2_bytes / mib
    );
}
