//! `--floor`: what this machine's hardware and our transport leave for a node-to-node fetch.
//!
//! Every node-to-node fetch of a file must, at the least:
//! - read each block out of the sender's store;
//! - carry it over the node's transport (loopback TCP, TLS 1.3, yamux), both ends' work;
//! - hash it on the receiver (SHA-256, the check that makes bitswap trustless);
//! - write it into the receiver's store.
//!
//! Each part is timed here alone ([`TRIES`] times, keeping the least CPU), one after the other, on the same blocks as the fetch (node
//! A's, the file the bench added), and its CPU read from the process's counters. Their sum is
//! the CPU any implementation on this stack spends per GiB; on the machine's cores, perfectly
//! parallel with no other work at all, that sum caps the transfer. The fetch's own CPU and rate
//! (the same run) are set against it. Loopback TCP alone (no TLS, no yamux) is also timed, to
//! show what is the kernel's and what is the transport's.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use cid::Cid;
use futures::{AsyncReadExt as _, AsyncWriteExt as _, StreamExt as _};
use ipfs_kit::dag::links::{walk_cids_from, DagError, Visited};
use ipfs_kit::net::bandwidth::Bandwidth;
use ipfs_kit::net::transport::{self, TransportParts};
use ipfs_kit::net::Keypair;
use ipfs_kit::repo::Repo;
use ipfs_kit_blockstore::{hash, Block, Blockstore};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, StreamProtocol, Swarm};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The protocol of the transport part's one stream (nothing else speaks it).
const FLOOR_PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfs-kit/floor-bench/1.0.0");
/// Bytes per write on the sending side of the TCP and transport parts.
const WRITE_BYTES: usize = 1 << 20;
/// Blocks per store write (a bitswap message of ours holds 4 leaves).
const BATCH_BLOCKS: usize = 4;
/// Tries of each part; the one with the least CPU is kept.
const TRIES: usize = 3;

/// One part's measurement.
pub struct Part {
    pub name: &'static str,
    /// MB/s it ran at alone.
    pub mbps: f64,
    /// User plus system CPU seconds of the process per GiB moved.
    pub cpu_per_gib: f64,
    /// Whether it is one of the parts every fetch must do (summed into the floor).
    pub summed: bool,
}

/// Every block of the DAG under `root`, once each, in the order the fetch meets them
/// (`dag::links::walk_cids_from`: depth-first, raw leaves not read).
fn dag_cids(store: &Arc<dyn Blockstore>, root: Cid) -> Result<Vec<Cid>> {
    let mut out = Vec::new();
    walk_cids_from::<DagError, _>(store.as_ref(), &[root], &mut Visited::new(), |c| {
        out.push(*c);
        Ok(())
    })?;
    Ok(out)
}

/// Runs `work` [`TRIES`] times and keeps the try with the least CPU: its seconds and the
/// process's CPU seconds (user and system) per GiB of `bytes`. The least, since a part's floor
/// is what it can cost; on this VM the same part's CPU varies from try to try by up to 1.8x
/// (the transport's: how its tasks land on the two worker threads).
async fn best_of<Fut, F>(bytes: u64, mut work: F) -> Result<(f64, f64)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let gib = bytes as f64 / f64::from(1u32 << 30);
    let mut best: Option<(f64, f64)> = None;
    for _ in 0..TRIES {
        // No writeback of what went before runs beside the try.
        super::settle();
        let cpu0 = super::cpu_secs().context("no CPU counters (/proc/self/stat)")?;
        let t = Instant::now();
        work().await?;
        let secs = t.elapsed().as_secs_f64();
        let cpu1 = super::cpu_secs().context("no CPU counters (/proc/self/stat)")?;
        let cpu = (cpu1.0 - cpu0.0 + cpu1.1 - cpu0.1) / gib;
        if best.is_none_or(|(_, c)| cpu < c) {
            best = Some((secs, cpu));
        }
    }
    best.context("no tries")
}

/// Measures every part on the blocks of `root` in node A's `store`; fresh repositories in
/// `scratch` receive the writes.
pub async fn measure(
    store: Arc<dyn Blockstore>,
    root: Cid,
    scratch: &std::path::Path,
) -> Result<Vec<Part>> {
    let cids = Arc::new(dag_cids(&store, root)?);
    let mut total = 0;
    for c in cids.iter() {
        total += store.size_of(c)?.context("a block of the DAG is missing")?;
    }
    let mut parts = Vec::new();
    let mut part = |name, (secs, cpu_per_gib), summed| {
        parts.push(Part {
            name,
            mbps: super::mbps(total, secs),
            cpu_per_gib,
            summed,
        });
    };

    // The blocks, held for the hash and write parts (untimed; this also brings every block into
    // the page cache, as the fetch's sender had it).
    let blocks = {
        let (store, cids) = (store.clone(), cids.clone());
        tokio::task::spawn_blocking(move || -> Result<Vec<Block>> {
            let mut out = Vec::with_capacity(cids.len());
            for c in cids.iter() {
                let data = store
                    .get_trusted(c)?
                    .context("a block of the DAG is missing")?;
                out.push(Block::new_unchecked(*c, data));
            }
            Ok(out)
        })
        .await??
    };
    let blocks = Arc::new(blocks);

    // Each block dropped once read, as the sender frees each block once sent.
    let read = best_of(total, || {
        let (store, cids) = (store.clone(), cids.clone());
        async move {
            tokio::task::spawn_blocking(move || -> Result<()> {
                for c in cids.iter() {
                    let data = store.get_trusted(c)?;
                    drop(data.context("a block of the DAG is missing")?);
                }
                Ok(())
            })
            .await?
        }
    })
    .await?;
    part(
        "sender: read every block from the store (page cache)",
        read,
        true,
    );

    let tcp_alone = best_of(total, || tcp(total)).await?;
    part(
        "loopback TCP alone, both ends (no TLS, no yamux)",
        tcp_alone,
        false,
    );

    let transport = best_of(total, || stack(total)).await?;
    part(
        "the node's transport, both ends (TCP, TLS 1.3, yamux): one stream",
        transport,
        true,
    );

    let hashed = best_of(total, || {
        let blocks = blocks.clone();
        async move {
            tokio::task::spawn_blocking(move || -> Result<()> {
                for pair in blocks.chunks(2) {
                    let items: Vec<(&Cid, &[u8])> =
                        pair.iter().map(|b| (b.cid(), b.data().as_ref())).collect();
                    for r in hash::verify_many(&items) {
                        r?;
                    }
                }
                Ok(())
            })
            .await?
        }
    })
    .await?;
    part(
        "receiver: SHA-256 of every block (two at a time, as the fetch)",
        hashed,
        true,
    );

    let written = best_of(total, || {
        let blocks = blocks.clone();
        let dir = tempfile::tempdir_in(scratch);
        async move {
            let dir = dir?;
            let repo = Repo::init(&dir.path().join("repo"))?;
            let into = repo.blocks().clone();
            tokio::task::spawn_blocking(move || -> Result<()> {
                for batch in blocks.chunks(BATCH_BLOCKS) {
                    into.put_many_cold(batch)?;
                }
                Ok(())
            })
            .await??;
            drop(repo);
            drop(dir);
            Ok(())
        }
    })
    .await?;
    part(
        "receiver: write every block to the store (direct I/O, as the fetch)",
        written,
        true,
    );
    Ok(parts)
}

/// `total` bytes from one end of a loopback TCP connection to the other.
async fn tcp(total: u64) -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let receiver = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        s.set_nodelay(true)?;
        let mut buf = vec![0u8; WRITE_BYTES];
        let mut got = 0u64;
        loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        Ok::<u64, std::io::Error>(got)
    });
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let buf = vec![0x5au8; WRITE_BYTES];
    let mut left = total;
    while left > 0 {
        let n = left.min(WRITE_BYTES as u64) as usize;
        s.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    s.shutdown().await?;
    drop(s);
    let got = receiver.await??;
    if got != total {
        bail!("TCP part: received {got} of {total} bytes");
    }
    Ok(())
}

/// A swarm with the node's transport and nothing but libp2p-stream.
fn swarm() -> Result<Swarm<libp2p_stream::Behaviour>> {
    let parts = TransportParts {
        psk: None,
        relay: None,
        bandwidth: Arc::new(Bandwidth::default()),
        streams_per_connection_max: 512,
        dns_resolvers: Vec::new(),
    };
    Ok(
        libp2p::SwarmBuilder::with_existing_identity(Keypair::generate_ed25519())
            .with_tokio()
            .with_other_transport(|key| transport::build(key, parts))?
            .with_behaviour(|_| libp2p_stream::Behaviour::new())?
            .with_swarm_config(|c| {
                c.with_idle_connection_timeout(std::time::Duration::from_secs(60))
            })
            .build(),
    )
}

/// `total` bytes over one stream of a connection made by the node's transport.
async fn stack(total: u64) -> Result<()> {
    let mut a = swarm()?;
    let mut b = swarm()?;
    let a_id = *a.local_peer_id();
    let mut incoming = a
        .behaviour()
        .new_control()
        .accept(FLOOR_PROTOCOL)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut b_control = b.behaviour().new_control();
    a.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
    let addr: Multiaddr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = a.select_next_some().await {
            break address;
        }
    };
    let a_task = tokio::spawn(async move {
        loop {
            a.select_next_some().await;
        }
    });
    b.dial(addr)?;
    loop {
        match b.select_next_some().await {
            SwarmEvent::ConnectionEstablished { .. } => break,
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                bail!("transport part: dial failed: {error}")
            }
            _ => {}
        }
    }
    let b_task = tokio::spawn(async move {
        loop {
            b.select_next_some().await;
        }
    });
    let receiver = tokio::spawn(async move {
        let (_, mut s) = incoming.next().await.context("no inbound stream")?;
        let mut buf = vec![0u8; WRITE_BYTES];
        let mut got = 0u64;
        loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        Ok::<u64, anyhow::Error>(got)
    });
    let mut s = b_control
        .open_stream(a_id, FLOOR_PROTOCOL)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let buf = Bytes::from(vec![0x5au8; WRITE_BYTES]);
    let mut left = total;
    while left > 0 {
        let n = left.min(WRITE_BYTES as u64) as usize;
        s.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    s.close().await?;
    let got = receiver.await??;
    a_task.abort();
    b_task.abort();
    if got != total {
        bail!("transport part: received {got} of {total} bytes");
    }
    Ok(())
}

/// Prints the parts, the floor they make on `cores` cores, and the fetch against it.
pub fn print(parts: &[Part], cores: usize, fetch_mbps: f64, fetch_cpu_per_gib: Option<f64>) {
    let gib_mb = f64::from(1u32 << 30) / 1e6;
    println!();
    println!("| part (alone, the fetch's blocks) | CPU s per GiB | MB/s alone |");
    println!("|---|---|---|");
    for p in parts {
        println!(
            "| {}{} | {:.2} | {:.0} |",
            p.name,
            if p.summed { "" } else { " (not summed)" },
            p.cpu_per_gib,
            p.mbps,
        );
    }
    let sum: f64 = parts
        .iter()
        .filter(|p| p.summed)
        .map(|p| p.cpu_per_gib)
        .sum();
    let cap = cores as f64 * gib_mb / sum;
    println!("| **floor: the summed parts** | {sum:.2} | cap {cap:.0} on {cores} cores |");
    // `--floor-only` ran no fetch.
    if fetch_mbps <= 0.0 {
        return;
    }
    match fetch_cpu_per_gib {
        Some(c) => println!(
            "| ipfs-kit -> ipfs-kit fetch, this run (median) | {c:.2} | {fetch_mbps:.0} = {:.0}% of the cap |",
            100.0 * fetch_mbps / cap
        ),
        None => println!(
            "| ipfs-kit -> ipfs-kit fetch, this run (median) | - | {fetch_mbps:.0} = {:.0}% of the cap |",
            100.0 * fetch_mbps / cap
        ),
    }
}
