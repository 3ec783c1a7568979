//! The Arrow index at scale: builds an index of `--rows` entries (10,000,000 by default) once,
//! then, in a fresh child process, measures opening it, filters over columns, lookups by CID,
//! memory, reopening with delta segments, and a Parquet export.
//!
//! ```sh
//! cargo run --release -p ipfs-kit-benches --bin index_bench -- --dir /tmp/index-bench
//! ```
//!
//! The index in `--dir` is reused when it already has `--rows` rows (`--rebuild` forces a new
//! one). The snapshot is then in the page cache (it was just written or read): open times are
//! warm-cache times. Memory is the child's resident set (VmRSS) and high-water mark (VmHWM)
//! after all the reads, mapped snapshot pages included.

use anyhow::{Context, Result};
use cid::Cid;
use clap::Parser;
use ipfs_kit_tiers::index::schema::{IndexRow, PinType, RowsBuilder};
use ipfs_kit_tiers::index::{Index, Manifest, Query};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 10_000_000)]
    rows: u64,
    #[arg(long)]
    dir: PathBuf,
    /// Build a new index even if `--dir` holds one of the right size.
    #[arg(long)]
    rebuild: bool,
    /// Internal: run the measurements (the parent spawns itself with this).
    #[arg(long, hide = true)]
    measure: bool,
}

const SAMPLES: &str = "samples.txt";
const LOOKUPS: usize = 1000;

fn main() -> Result<()> {
    let a = Args::parse();
    let index_dir = a.dir.join("index");
    if a.measure {
        return measure(&a.dir, &index_dir);
    }
    std::fs::create_dir_all(&a.dir)?;
    let have = Index::open(&index_dir).map(|i| i.len()).unwrap_or(0);
    if a.rebuild || have != a.rows {
        build(&a.dir, &index_dir, a.rows)?;
    } else {
        println!(
            "reusing the index of {have} rows in {}",
            index_dir.display()
        );
    }
    let status = std::process::Command::new(std::env::current_exe()?)
        .args(["--measure", "--dir"])
        .arg(&a.dir)
        .args(["--rows", &a.rows.to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "measuring child failed: {status}");
    Ok(())
}

fn build(dir: &Path, index_dir: &Path, rows: u64) -> Result<()> {
    let t = Instant::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut digests: Vec<[u8; 32]> = (0..rows).map(|_| rng.gen()).collect();
    digests.sort_unstable();
    digests.dedup();
    let now_ms = 1_790_000_000_000i64;
    let mut b = RowsBuilder::with_capacity(digests.len());
    let mut samples = Vec::new();
    for (i, d) in digests.iter().enumerate() {
        let mh = multihash::Multihash::<64>::wrap(0x12, d)?;
        let codec = if rng.gen_bool(0.3) { 0x70 } else { 0x55 };
        let cid = Cid::new_v1(codec, mh);
        let accessed = rng.gen_bool(0.6);
        let tiers: u32 = match rng.gen_range(0..10) {
            0..=6 => 0b01,
            7 | 8 => 0b11,
            _ => 0b10,
        };
        let row = IndexRow {
            cid,
            size: rng.gen_range(1..=262_144),
            codec,
            pin: match rng.gen_range(0..100) {
                0 => PinType::Recursive,
                1 => PinType::Direct,
                2..=40 => PinType::Indirect,
                _ => PinType::None,
            },
            pin_name: None,
            tiers,
            first_seen_ms: now_ms - rng.gen_range(0..86_400_000 * 365),
            last_access_ms: accessed.then(|| now_ms - rng.gen_range(0..86_400_000 * 30)),
            access_count: if accessed { rng.gen_range(1..1000) } else { 0 },
            heat: if accessed {
                rng.gen::<f32>() * 100.0
            } else {
                0.0
            },
            replication: tiers.count_ones() as u16,
        };
        b.push(&row);
        if i % (digests.len() / LOOKUPS).max(1) == 7 {
            samples.push(cid.to_string());
        }
    }
    drop(digests);
    let batch = b.finish()?;
    println!("generated {} rows in {:.1?}", batch.num_rows(), t.elapsed());
    std::fs::create_dir_all(index_dir)?;
    let t = Instant::now();
    let manifest = Manifest {
        tiers: vec!["local".into(), "s3".into()],
        ..Manifest::default()
    };
    let m = Index::write_base_batch(index_dir, manifest, batch)?;
    println!(
        "wrote base (Parquet {:.0} MiB) + snapshot (Arrow IPC {:.0} MiB) in {:.1?}",
        m.base_bytes as f64 / 1048576.0,
        m.snapshot_bytes as f64 / 1048576.0,
        t.elapsed()
    );
    std::fs::write(dir.join(SAMPLES), samples.join("\n"))?;
    Ok(())
}

fn rss() -> String {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ")
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn measure(dir: &Path, index_dir: &Path) -> Result<()> {
    let t = Instant::now();
    let ix = Index::open(index_dir)?;
    let open = t.elapsed();
    println!("open: {} ({} rows) [{}]", ms(open), ix.len(), rss());

    let queries = [
        ("size > 262000", None, false),
        ("tiers = s3", None, false),
        ("heat > 99.9 and tiers = s3", None, false),
        ("pin_type = recursive", None, false),
        ("size > 262000", Some("heat"), true),
    ];
    for (w, sort, desc) in queries {
        let q = Query::parse(Some(w), sort, desc, 10)?;
        let mut times = Vec::new();
        let mut matched = 0;
        for _ in 0..5 {
            let t = Instant::now();
            matched = ix.query(&q)?.matched;
            times.push(t.elapsed());
        }
        let sort = sort.map(|s| format!(" --sort {s}{}", if desc { " --desc" } else { "" }));
        println!(
            "query --where {w:?}{} --limit 10: {} matched; first {}, median of 5 {}",
            sort.unwrap_or_default(),
            matched,
            ms(times[0]),
            ms(median(times.clone()))
        );
    }

    let samples: Vec<Cid> = std::fs::read_to_string(dir.join(SAMPLES))
        .context("samples file")?
        .lines()
        .map(|l| l.parse())
        .collect::<Result<_, _>>()?;
    let mut times = Vec::new();
    for c in &samples {
        let t = Instant::now();
        let row = ix.get(c)?;
        times.push(t.elapsed());
        anyhow::ensure!(row.is_some(), "sample {c} not found");
    }
    let max = times.iter().max().copied().unwrap_or_default();
    let total: Duration = times.iter().sum();
    println!(
        "lookup by CID: {} lookups, mean {:.1} µs, median {:.1} µs, max {:.1} µs",
        times.len(),
        total.as_secs_f64() * 1e6 / times.len() as f64,
        median(times.clone()).as_secs_f64() * 1e6,
        max.as_secs_f64() * 1e6
    );
    let miss: Cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy".parse()?;
    let t = Instant::now();
    let absent = ix.get(&miss)?;
    println!(
        "lookup of an absent CID: {} ({:?})",
        ms(t.elapsed()),
        absent.map(|r| r.size)
    );
    println!("memory after open + queries + lookups: {}", rss());

    // Deltas: 10,000 accesses recorded and flushed, then a reopen replays them.
    let t = Instant::now();
    for c in samples.iter().cycle().take(10_000) {
        ix.record_access(c, 0, Some(1.0))?;
    }
    ix.flush()?;
    println!("10,000 record_access + flush: {}", ms(t.elapsed()));
    let t = Instant::now();
    let out = dir.join("export.parquet");
    let n = ix.export_parquet(&out)?;
    let bytes = std::fs::metadata(&out)?.len();
    println!(
        "export: {n} rows, {:.0} MiB Parquet in {:.2} s",
        bytes as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );
    drop(ix);
    let t = Instant::now();
    let ix = Index::open(index_dir)?;
    println!(
        "reopen with {} delta rows in {} segments: {}",
        ix.delta_stats().0,
        ix.delta_stats().1,
        ms(t.elapsed())
    );
    let q = Query::parse(Some("size > 262000"), None, false, 10)?;
    let t = Instant::now();
    let m = ix.query(&q)?.matched;
    println!(
        "query --where \"size > 262000\" with deltas: {m} matched in {}",
        ms(t.elapsed())
    );
    println!("memory at the end: {}", rss());
    Ok(())
}
