//! The cluster pinset over the real network: 1 master + 9 workers as in-process nodes of the
//! harness (each with its swarm, gossipsub and bitswap on loopback, and its cluster service with
//! a redb store on disk), then a new node joining from a snapshot.
//!
//! ```text
//! cargo build --release -p ipfs-kit-benches --bin cluster_bench
//! target/release/cluster_bench --pins 100000,1000000 --workers 9
//! ```
//!
//! For each `--pins` N, on a fresh testnet:
//! 1. *Propagation*: N pins are written on the master through [`ClusterHandle::pin_many`]
//!    (10,000 per call; the replica cuts them into signed deltas of `BATCH_OPS_MAX_DEFAULT`
//!    ops). Heads go out on gossipsub, every worker fetches the deltas over bitswap. Timed
//!    from the first write to the moment every worker holds N pins; then every node's state
//!    digest (SHA-256 of the sorted export, every field of every pin) must equal the
//!    master's, or the run fails.
//! 2. *On disk*: the master and one worker compact (snapshot written, old deltas dropped, redb
//!    compacted); the size of their `cluster/state.redb` over N is the bytes per pin.
//! 3. *Catch-up*: a node that was stopped before the first write (empty store) starts, hears
//!    the master's announcement naming its snapshot, fetches the snapshot root and chunks over
//!    bitswap and installs them. Timed from its start until its digest equals the master's.
//!
//! What the pins cost the trackers: nothing. The replicas run with `emit_state_changes: false`,
//! the setting for a peer that follows the pinset without pinning, so no tracker sees the
//! pins and no node tries to fetch a million DAGs (the CIDs are synthetic: nobody holds their
//! content). The benchmark measures the pinset layer on the network, which is what the speed
//! targets are about; the trackers' work is per allocated DAG and is covered by the cluster
//! tests.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use ipfs_kit::cluster::handle::PinSpec;
use ipfs_kit::cluster::{ClusterHandle, StateDigest, PIN_MANY_PINS_MAX};
use ipfs_kit::harness::{ClusterMode, Testnet, TestnetConfig, Topology};
use ipfs_kit_cluster_sync::sim::sim_cid;

#[derive(Parser, Debug)]
struct Args {
    /// Pin counts to propagate, one fresh cluster each (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    pins: Vec<u64>,
    /// Workers besides the master.
    #[arg(long, default_value_t = 9)]
    workers: usize,
    /// Give up on a phase after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
}

const POLL: Duration = Duration::from_millis(100);

/// Polls `cond` until it holds or `timeout` passed.
async fn until<F, Fut>(what: &str, timeout: Duration, mut cond: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out: {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn pins_of(h: &ClusterHandle) -> Result<usize> {
    Ok(h.info().await?.pins)
}

fn file_bytes(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("{}", path.display()))?
        .len())
}

fn hex(d: &StateDigest) -> String {
    d.sha256[..8].iter().map(|b| format!("{b:02x}")).collect()
}

async fn run(n: u64, workers: usize, timeout: Duration) -> Result<()> {
    let nodes = 1 + workers + 1;
    let joiner = nodes - 1;
    let mut mode = ClusterMode::new(1, workers + 1);
    mode.replica.emit_state_changes = false;
    mode.replica.compact_deltas_threshold = 0;
    mode.metric_ttl = Duration::from_secs(30);
    let mut config = TestnetConfig::new(nodes, Topology::Full);
    config.cluster = Some(mode);
    let mut net = Testnet::start_with(config).await?;
    net.stop(joiner).await?;
    let handles: Vec<ClusterHandle> = (0..joiner)
        .map(|i| net.cluster(i))
        .collect::<Result<_, _>>()?;
    // Gossip is up once every node has heard every other's metric.
    for h in &handles {
        until(
            "metrics from every peer",
            Duration::from_secs(60),
            || async { Ok(h.peers().await?.iter().filter(|p| p.live).count() >= joiner) },
        )
        .await?;
    }
    let master = handles[0].clone();

    // 1. Propagation.
    let started = Instant::now();
    let mut next = 0u64;
    while next < n {
        let end = (next + PIN_MANY_PINS_MAX as u64).min(n);
        let batch: Vec<_> = (next..end)
            .map(|i| (sim_cid("cluster-bench", i), PinSpec::default()))
            .collect();
        master.pin_many(batch).await?;
        next = end;
    }
    let written = started.elapsed();
    let mut done = vec![false; handles.len()];
    let deadline = Instant::now() + timeout;
    while !done.iter().all(|d| *d) {
        for (i, h) in handles.iter().enumerate() {
            if !done[i] {
                done[i] = pins_of(h).await? as u64 == n;
            }
        }
        if Instant::now() > deadline {
            bail!(
                "timed out: {} of {} nodes hold every pin",
                done.iter().filter(|d| **d).count(),
                done.len()
            );
        }
        if !done.iter().all(|d| *d) {
            tokio::time::sleep(POLL).await;
        }
    }
    let propagated = started.elapsed();
    let check = Instant::now();
    let want = master.state_digest().await?;
    for (i, h) in handles.iter().enumerate().skip(1) {
        let d = h.state_digest().await?;
        if d != want {
            bail!(
                "node {i}: state {} ({} pins) differs from the master's {} ({} pins)",
                hex(&d),
                d.pins,
                hex(&want),
                want.pins
            );
        }
    }
    println!(
        "propagate {n} pins -> {} nodes identical: {:.2} s (written on the master in {:.2} s; \
         {} digests {} equal, checked in {:.2} s)",
        handles.len(),
        propagated.as_secs_f64(),
        written.as_secs_f64(),
        handles.len(),
        hex(&want),
        check.elapsed().as_secs_f64()
    );

    // 2. On disk after compaction.
    for i in [0usize, 1] {
        let h = &handles[i];
        let store = net.repo(i)?.path().join("cluster").join("state.redb");
        let before = file_bytes(&store)?;
        h.compact().await?;
        // The store compacts the redb file on the service task; wait for the snapshot.
        until("snapshot written", timeout, || async {
            Ok(h.info().await?.snapshot.is_some())
        })
        .await?;
        let info = h.info().await?;
        let after = file_bytes(&store)?;
        println!(
            "on disk, node {i}: {before} B before compaction, {after} B after = {:.1} B/pin \
             ({} delta bodies kept)",
            after as f64 / n as f64,
            info.stored_deltas
        );
    }

    // 3. A new node joins.
    let snapshot = master.info().await?.snapshot;
    let joined = Instant::now();
    net.restart(joiner).await?;
    let j = net.cluster(joiner)?;
    until("the joiner holds every pin", timeout, || async {
        Ok(pins_of(&j).await? as u64 == n)
    })
    .await?;
    let caught_up = joined.elapsed();
    let d = j.state_digest().await?;
    if d != want {
        bail!(
            "joiner: state {} differs from the master's {}",
            hex(&d),
            hex(&want)
        );
    }
    let info = j.info().await?;
    println!(
        "new node joins a {n}-pin cluster: full state in {:.2} s (snapshot {}, {} delta bodies \
         fetched besides it)",
        caught_up.as_secs_f64(),
        if info.snapshot.is_some() && info.snapshot == snapshot {
            "installed"
        } else {
            "NOT installed"
        },
        info.stored_deltas
    );
    net.shutdown().await;
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let timeout = Duration::from_secs(args.timeout_secs);
    for n in &args.pins {
        run(*n, args.workers, timeout).await?;
    }
    Ok(())
}
