//! Blockstore candidates side by side: write and read throughput, space overhead, and a real
//! `kill -9` durability check.
//!
//! ```text
//! cargo run --release -p ipfs-kit-benches --bin blockstore_bench -- --mib 1024
//! ```
//!
//! For each store (pack = the default `DiskBlockstore`, flatfs, fjall, sled) it writes `--mib`
//! MiB of random 256 KiB raw blocks with `put_many` batches of `--batch` blocks, syncs, then
//! reads every block back with `get` (which verifies each hash; the page cache is warm), once
//! on one thread and once split over two. It
//! reports the on-disk bytes per data byte, then runs this same binary as a child that writes
//! blocks and prints each acknowledged CID, SIGKILLs it mid-stream, reopens the store and
//! counts the acknowledged blocks that are present and verify (must be 100%). Last, it times
//! the pack store's open with `--small-blocks` 1 KiB blocks, with and without its checkpoint.

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use cid::Cid;
use clap::Parser;
use ipfs_kit_blockstore::hash::{HashFn, RAW_CODEC};
use ipfs_kit_blockstore::{
    Block, Blockstore, DiskBlockstore, FjallBlockstore, FlatfsBlockstore, SledBlockstore,
};
use rand::{RngCore, SeedableRng};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BLOCK_BYTES: usize = 256 * 1024;
const STORES: [&str; 4] = ["pack", "flatfs", "fjall", "sled"];
/// Blocks the kill-9 child must acknowledge before it is killed (or the wait times out).
const KILL_AFTER_ACKS: usize = 400;
const KILL_WAIT_MAX: Duration = Duration::from_secs(20);
/// The child stops by itself after this many blocks if it is never killed.
const CHILD_BLOCKS_MAX: u64 = 1 << 16;

#[derive(Parser, Debug)]
struct Args {
    /// MiB of data to write and read per store.
    #[arg(long, default_value_t = 1024)]
    mib: usize,
    /// Blocks per put_many call.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Stores to measure (comma-separated): pack, flatfs, fjall, sled.
    #[arg(long, value_delimiter = ',', default_values_t = STORES.map(String::from))]
    stores: Vec<String>,
    /// Small (1 KiB) blocks for the pack store's open-time measurement (0 skips it).
    #[arg(long, default_value_t = 200_000)]
    small_blocks: usize,
    /// Parent directory for the stores (a fresh temporary directory inside it).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Internal: run as the kill-9 child writing to this store kind.
    #[arg(long, hide = true)]
    child: Option<String>,
    /// Internal: the kill-9 child's store directory.
    #[arg(long, hide = true)]
    child_dir: Option<PathBuf>,
}

fn open(kind: &str, dir: &Path) -> Result<Box<dyn Blockstore>> {
    Ok(match kind {
        "pack" => Box::new(DiskBlockstore::open(dir)?),
        "flatfs" => Box::new(FlatfsBlockstore::open(dir, false)?),
        "fjall" => Box::new(FjallBlockstore::open(dir, false)?),
        "sled" => Box::new(SledBlockstore::open(dir)?),
        other => bail!("unknown store {other}"),
    })
}

fn random_blocks(seed: u64, n: usize) -> Vec<Block> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut data = vec![0u8; BLOCK_BYTES];
            rng.fill_bytes(&mut data);
            let mh = HashFn::Sha2_256
                .digest(&data)
                .expect("sha2-256 digests any input");
            Block::new_unchecked(Cid::new_v1(RAW_CODEC, mh), Bytes::from(data))
        })
        .collect()
}

/// Bytes the files under `dir` occupy on disk (allocated blocks).
fn disk_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            disk_bytes(&entry.path())?
        } else {
            meta.blocks() * 512
        };
    }
    Ok(total)
}

struct Row {
    store: String,
    write_mb_s: f64,
    sync_s: f64,
    read_mb_s: f64,
    read2_mb_s: f64,
    space: f64,
    kill: String,
}

fn mb_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn measure(kind: &str, blocks: &[Block], batch: usize, parent: &Path) -> Result<Row> {
    let dir = parent.join(kind);
    let data_bytes: u64 = blocks.iter().map(|b| b.data().len() as u64).sum();
    let store = open(kind, &dir)?;
    let t = Instant::now();
    for chunk in blocks.chunks(batch) {
        store.put_many(chunk)?;
    }
    let write = t.elapsed();
    let t = Instant::now();
    store.sync()?;
    let sync = t.elapsed();
    let t = Instant::now();
    let mut read = 0u64;
    for b in blocks {
        let got = store.get(b.cid())?.context("a written block is missing")?;
        read += got.len() as u64;
    }
    let read_time = t.elapsed();
    if read != data_bytes {
        bail!("{kind}: read {read} bytes, wrote {data_bytes}");
    }
    // The same reads split over two threads (the store's concurrent-reader path).
    let t = Instant::now();
    let store_ref = &*store;
    let read2: u64 = std::thread::scope(|s| {
        let halves: Vec<_> = blocks
            .chunks(blocks.len().div_ceil(2).max(1))
            .map(|part| {
                s.spawn(move || -> Result<u64> {
                    let mut n = 0u64;
                    for b in part {
                        n += store_ref.get(b.cid())?.context("missing block")?.len() as u64;
                    }
                    Ok(n)
                })
            })
            .collect();
        halves
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow::anyhow!("reader panicked"))?)
            .sum::<Result<u64>>()
    })?;
    let read2_time = t.elapsed();
    drop(store);
    let space = disk_bytes(&dir)? as f64 / data_bytes as f64;
    std::fs::remove_dir_all(&dir)?;
    let kill = kill_check(kind, &parent.join(format!("{kind}-kill")))?;
    Ok(Row {
        store: kind.to_string(),
        write_mb_s: mb_s(data_bytes, write),
        sync_s: sync.as_secs_f64(),
        read_mb_s: mb_s(read, read_time),
        read2_mb_s: mb_s(read2, read2_time),
        space,
        kill,
    })
}

/// What the hardware allows: hashing the blocks on one core, and writing their bytes to a
/// fresh file with one plain `write` per block (the page-cache absorb rate).
fn baselines(blocks: &[Block], parent: &Path) -> Result<(f64, f64)> {
    let bytes: u64 = blocks.iter().map(|b| b.data().len() as u64).sum();
    let t = Instant::now();
    for b in blocks {
        std::hint::black_box(HashFn::Sha2_256.digest(b.data())?);
    }
    let sha = mb_s(bytes, t.elapsed());
    let path = parent.join("baseline.bin");
    let mut f = std::fs::File::create(&path)?;
    let t = Instant::now();
    for b in blocks {
        f.write_all(b.data())?;
    }
    let write = mb_s(bytes, t.elapsed());
    drop(f);
    std::fs::remove_file(&path)?;
    Ok((sha, write))
}

/// The pack store with many small blocks: put rate, and open time with the index checkpoint
/// (clean close) and without it (scan of every record header, as after a crash).
fn pack_open_times(n: usize, parent: &Path) -> Result<String> {
    let dir = parent.join("pack-small");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let blocks: Vec<Block> = (0..n)
        .map(|_| {
            let mut data = vec![0u8; 1024];
            rng.fill_bytes(&mut data);
            let mh = HashFn::Sha2_256
                .digest(&data)
                .expect("sha2-256 digests any input");
            Block::new_unchecked(Cid::new_v1(RAW_CODEC, mh), Bytes::from(data))
        })
        .collect();
    let store = DiskBlockstore::open(&dir)?;
    let t = Instant::now();
    for chunk in blocks.chunks(256) {
        store.put_many(chunk)?;
    }
    let put_rate = n as f64 / t.elapsed().as_secs_f64();
    drop(store);
    let t = Instant::now();
    let store = DiskBlockstore::open(&dir)?;
    let with_hint = t.elapsed();
    if store.stat()?.blocks != n as u64 {
        bail!("pack reopened with the wrong block count");
    }
    store.close_without_checkpoint();
    std::fs::remove_file(dir.join("index.hint"))?;
    let t = Instant::now();
    let store = DiskBlockstore::open(&dir)?;
    let scan = t.elapsed();
    if store.stat()?.blocks != n as u64 {
        bail!("pack rescanned with the wrong block count");
    }
    drop(store);
    std::fs::remove_dir_all(&dir)?;
    Ok(format!(
        "pack, {n} blocks of 1 KiB: put {put_rate:.0} blocks/s; open {:.0} ms with the index \
         checkpoint, {:.0} ms by scanning (after a crash)",
        with_hint.as_secs_f64() * 1e3,
        scan.as_secs_f64() * 1e3
    ))
}

/// Runs a child writer, SIGKILLs it, reopens, and reports "present/acked".
fn kill_check(kind: &str, dir: &Path) -> Result<String> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--child", kind, "--child-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().context("child stdout")?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + KILL_WAIT_MAX;
    let mut acked = Vec::new();
    while acked.len() < KILL_AFTER_ACKS && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) {
            acked.push(line);
        }
    }
    child.kill()?; // SIGKILL
    child.wait()?;
    let _ = reader.join();
    acked.extend(rx.try_iter());
    let store = open(kind, dir)?;
    let mut ok = 0;
    for line in &acked {
        let cid: Cid = line
            .parse()
            .with_context(|| format!("child printed {line:?}"))?;
        if store.get(&cid).ok().flatten().is_some() {
            ok += 1;
        }
    }
    drop(store);
    std::fs::remove_dir_all(dir)?;
    Ok(format!(
        "{ok}/{} ({:.0}%)",
        acked.len(),
        100.0 * ok as f64 / acked.len().max(1) as f64
    ))
}

/// Child mode: write 256 KiB blocks in batches of 4, printing each CID once acknowledged.
fn child(kind: &str, dir: &Path) -> Result<()> {
    let store = open(kind, dir)?;
    let mut out = std::io::stdout().lock();
    let seed = u64::from(std::process::id());
    for i in 0..CHILD_BLOCKS_MAX / 4 {
        let blocks = random_blocks(seed << 32 | i, 4);
        store.put_many(&blocks)?;
        for b in &blocks {
            writeln!(out, "{}", b.cid())?;
        }
        out.flush()?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let (Some(kind), Some(dir)) = (&args.child, &args.child_dir) {
        return child(kind, dir);
    }
    let parent = match &args.dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let n = args.mib * 1024 * 1024 / BLOCK_BYTES;
    eprintln!("generating {n} random 256 KiB blocks ({} MiB)...", args.mib);
    let blocks = random_blocks(42, n);
    let (sha_mb_s, write_mb_s) = baselines(&blocks, parent.path())?;
    let mut rows = Vec::new();
    for kind in &args.stores {
        eprintln!("measuring {kind}...");
        rows.push(measure(kind, &blocks, args.batch, parent.path())?);
    }
    println!(
        "{} MiB of 256 KiB blocks, put_many batches of {} ({} KiB), warm-cache reads with hash checks",
        args.mib,
        args.batch,
        args.batch * BLOCK_BYTES / 1024
    );
    println!(
        "baselines on this machine: sha2-256 {sha_mb_s:.0} MB/s (one core), \
         plain write() per block to a fresh file {write_mb_s:.0} MB/s"
    );
    println!(
        "| {:<7} | {:>10} | {:>6} | {:>9} | {:>12} | {:>15} | {:>20} |",
        "store",
        "write MB/s",
        "sync s",
        "read MB/s",
        "read MB/s x2",
        "disk B / data B",
        "kill -9: acked kept"
    );
    println!(
        "|{:-<9}|{:->12}|{:->8}|{:->11}|{:->14}|{:->17}|{:->22}|",
        "", "", "", "", "", "", ""
    );
    for r in rows {
        println!(
            "| {:<7} | {:>10.0} | {:>6.2} | {:>9.0} | {:>12.0} | {:>15.3} | {:>20} |",
            r.store, r.write_mb_s, r.sync_s, r.read_mb_s, r.read2_mb_s, r.space, r.kill
        );
    }
    if args.small_blocks > 0 {
        println!("{}", pack_open_times(args.small_blocks, parent.path())?);
    }
    Ok(())
}
