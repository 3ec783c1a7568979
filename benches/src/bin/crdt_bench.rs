//! cluster-sync's Merkle-CRDT at scale, in process: propagation to many replicas, on-disk bytes
//! per pin after compaction, and a new replica catching up from a snapshot.
//!
//! ```text
//! cargo run --release -p ipfs-kit-benches --bin crdt_bench -- --pins 100000,1000000 --replicas 10
//! ```
//!
//! 1. *Propagation*: one writer pins `--pins` CIDs (batched deltas, signed); its announcements
//!    and the block fetches they cause go over a lossless in-process network (FIFO, every block
//!    served from the sender's `MemStore`) to `--replicas` replicas. Timed from the first pin to
//!    the last replica holding every pin; then every replica's state is compared with the
//!    writer's (must be identical).
//! 2. *On disk*: the writer's deltas are written to a redb file (`RedbStore`), then compacted
//!    (snapshot written, deltas dropped, redb compacted); the file size over the pin count is
//!    the bytes per pin. Measured for plain pins and for pins with a 16-byte name and two
//!    allocations.
//! 3. *Catch-up*: a new replica hears the writer's announcement (which names its snapshot),
//!    fetches the snapshot root and chunks and installs them. Timed until it holds every pin.

use std::collections::VecDeque;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use ipfs_kit_cluster_sync::sim::sim_cid;
use ipfs_kit_cluster_sync::store::{MemStore, RedbStore, Store};
use ipfs_kit_cluster_sync::{
    keypair_from_secret, Action, Announcement, Event, PeerKey, Persist, Pin, PinSpec, Replica,
    ReplicaConfig,
};

#[derive(Parser, Debug)]
struct Args {
    /// Pin counts to propagate (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    pins: Vec<u64>,
    /// Replicas besides the writer.
    #[arg(long, default_value_t = 10)]
    replicas: usize,
    /// Pins in the cluster a new replica joins.
    #[arg(long, default_value_t = 1_000_000)]
    catchup_pins: u64,
}

enum Msg {
    Announce(usize, Announcement),
    Fetch(usize, cid::Cid),
    Block(usize, cid::Cid, Option<Vec<u8>>),
}

struct Cluster {
    nodes: Vec<(Replica, MemStore)>,
    queue: VecDeque<(usize, Msg)>,
    messages: u64,
    bytes: u64,
}

fn config() -> ReplicaConfig {
    ReplicaConfig {
        compact_deltas_threshold: 0,
        emit_state_changes: false,
        ..ReplicaConfig::default()
    }
}

impl Cluster {
    fn new(n: usize) -> Result<Cluster> {
        let keys: Vec<_> = (0..n)
            .map(|i| keypair_from_secret([i as u8 + 1; 32]))
            .collect::<Result<_, _>>()?;
        let trusted: Vec<PeerKey> = keys
            .iter()
            .map(|k| PeerKey(k.public().to_bytes()))
            .collect();
        let nodes = keys
            .into_iter()
            .map(|k| {
                (
                    Replica::new(k, trusted.clone(), config()),
                    MemStore::default(),
                )
            })
            .collect();
        Ok(Cluster {
            nodes,
            queue: VecDeque::new(),
            messages: 0,
            bytes: 0,
        })
    }

    fn apply(&mut self, i: usize, actions: Vec<Action>) -> Result<()> {
        for a in actions {
            match a {
                Action::Broadcast(ann) => {
                    for t in 0..self.nodes.len() {
                        if t != i {
                            self.queue.push_back((t, Msg::Announce(i, ann.clone())));
                        }
                    }
                }
                Action::Fetch { cid, from } => {
                    let src = self
                        .nodes
                        .iter()
                        .position(|(r, _)| r.peer() == from)
                        .context("unknown peer")?;
                    self.queue.push_back((src, Msg::Fetch(i, cid)));
                }
                Action::Persist(p) => self.nodes[i].1.apply(&[p])?,
                Action::StateChanged(_) => {}
                Action::OpRejected { cid, error } => bail!("{cid} rejected: {error}"),
            }
        }
        Ok(())
    }

    fn handle(&mut self, i: usize, ev: Event) -> Result<()> {
        let a = self.nodes[i].0.handle(ev, 0);
        self.apply(i, a)
    }

    /// Deliver until nothing is in flight.
    fn run(&mut self) -> Result<()> {
        while let Some((to, msg)) = self.queue.pop_front() {
            self.messages += 1;
            match msg {
                Msg::Announce(from, announcement) => {
                    let from = self.nodes[from].0.peer();
                    self.handle(to, Event::HeadsAnnounced { from, announcement })?;
                }
                Msg::Fetch(asker, cid) => {
                    let block = self.nodes[to].1.get_block(&cid)?;
                    self.queue.push_back((asker, Msg::Block(to, cid, block)));
                }
                Msg::Block(from, cid, bytes) => {
                    let from = self.nodes[from].0.peer();
                    match bytes {
                        Some(bytes) => {
                            self.bytes += bytes.len() as u64;
                            self.handle(to, Event::BlockFetched { from, cid, bytes })?
                        }
                        None => self.handle(to, Event::FetchFailed { from, cid })?,
                    }
                }
            }
        }
        Ok(())
    }
}

fn spec(rich: bool, i: u64, peers: &[PeerKey]) -> PinSpec {
    if !rich {
        return PinSpec::default();
    }
    PinSpec {
        name: format!("dataset-{i:08}"),
        replication_factor_min: 2,
        replication_factor_max: 2,
        allocations: vec![
            peers[i as usize % peers.len()],
            peers[(i as usize + 1) % peers.len()],
        ],
        ..PinSpec::default()
    }
}

fn propagate(pins: u64, replicas: usize) -> Result<()> {
    let mut c = Cluster::new(replicas + 1)?;
    let start = Instant::now();
    for i in 0..pins {
        c.handle(
            0,
            Event::Pin(Pin {
                cid: sim_cid("bench", i),
                spec: PinSpec::default(),
            }),
        )?;
        // Deliver as we go, as a network would.
        if i % 10_000 == 9_999 {
            c.run()?;
        }
    }
    c.handle(0, Event::Flush)?;
    let written = start.elapsed();
    c.run()?;
    let all = start.elapsed();
    let want = c.nodes[0].0.state().sorted();
    if want.len() as u64 != pins {
        bail!("writer holds {} pins, not {pins}", want.len());
    }
    for (i, (r, _)) in c.nodes.iter().enumerate().skip(1) {
        if r.state().sorted() != want {
            bail!("replica {i} differs: {} pins", r.state().len());
        }
    }
    println!(
        "propagate pins={pins} replicas={replicas} deltas={} write_s={:.2} all_identical_s={:.2} messages={} block_mb={:.1}",
        c.nodes[0].0.stored_deltas(),
        written.as_secs_f64(),
        all.as_secs_f64(),
        c.messages,
        c.bytes as f64 / 1e6
    );
    Ok(())
}

fn on_disk(pins: u64, rich: bool) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cluster.redb");
    let mut store = RedbStore::open(&path)?;
    let peers: Vec<PeerKey> = (0..10u8)
        .map(|i| {
            Ok(PeerKey(
                keypair_from_secret([i + 50; 32])?.public().to_bytes(),
            ))
        })
        .collect::<Result<_>>()?;
    let mut r = Replica::new(keypair_from_secret([1; 32])?, [], config());
    let mut batch: Vec<Persist> = Vec::new();
    for i in 0..pins {
        for a in r.handle(
            Event::Pin(Pin {
                cid: sim_cid("bench", i),
                spec: spec(rich, i, &peers),
            }),
            0,
        ) {
            if let Action::Persist(p) = a {
                batch.push(p);
            }
        }
        if batch.len() >= 100 {
            store.apply(&batch)?;
            batch.clear();
        }
    }
    for a in r.handle(Event::Flush, 0) {
        if let Action::Persist(p) = a {
            batch.push(p);
        }
    }
    store.apply(&batch)?;
    store.compact()?;
    let before = store.file_bytes()?;
    let start = Instant::now();
    let acts = r.handle(Event::Compact, 0);
    let snap: Vec<Persist> = acts
        .into_iter()
        .filter_map(|a| {
            if let Action::Persist(p) = a {
                Some(p)
            } else {
                None
            }
        })
        .collect();
    store.apply(&snap)?;
    let took = start.elapsed();
    let after = store.file_bytes()?;
    let blocks: u64 = snap
        .iter()
        .map(|p| {
            if let Persist::Snapshot { blocks, .. } = p {
                blocks.iter().map(|(_, b)| b.len() as u64).sum()
            } else {
                0
            }
        })
        .sum();
    // Restart from the compacted file and check.
    drop(store);
    let store = RedbStore::open(&path)?;
    let back = Replica::restore(keypair_from_secret([1; 32])?, [], config(), store.load()?)?;
    if back.state().sorted() != r.state().sorted() {
        bail!("restored state differs");
    }
    println!(
        "disk pins={pins} kind={} before_compaction_b_per_pin={:.1} after_b_per_pin={:.1} snapshot_blocks_b_per_pin={:.1} compact_s={:.2}",
        if rich { "name16+2allocs" } else { "plain" },
        before as f64 / pins as f64,
        after as f64 / pins as f64,
        blocks as f64 / pins as f64,
        took.as_secs_f64()
    );
    Ok(())
}

fn catch_up(pins: u64) -> Result<()> {
    let mut c = Cluster::new(2)?;
    // Only node 0 is up while the cluster fills.
    for i in 0..pins {
        let a = c.nodes[0].0.handle(
            Event::Pin(Pin {
                cid: sim_cid("bench", i),
                spec: PinSpec::default(),
            }),
            0,
        );
        for a in a {
            if let Action::Persist(p) = a {
                c.nodes[0].1.apply(&[p])?;
            }
        }
    }
    for a in c.nodes[0].0.handle(Event::Compact, 0) {
        if let Action::Persist(p) = a {
            c.nodes[0].1.apply(&[p])?;
        }
    }
    let ann = c.nodes[0].0.announcement();
    let from = c.nodes[0].0.peer();
    let start = Instant::now();
    c.handle(
        1,
        Event::HeadsAnnounced {
            from,
            announcement: ann,
        },
    )?;
    c.run()?;
    let took = start.elapsed();
    if c.nodes[1].0.state().sorted() != c.nodes[0].0.state().sorted() {
        bail!(
            "the new replica differs: {} pins",
            c.nodes[1].0.state().len()
        );
    }
    println!(
        "catchup pins={pins} full_state_s={:.2} messages={} block_mb={:.1}",
        took.as_secs_f64(),
        c.messages,
        c.bytes as f64 / 1e6
    );
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    for &n in &args.pins {
        propagate(n, args.replicas)?;
    }
    for &n in &args.pins {
        on_disk(n, false)?;
        on_disk(n, true)?;
    }
    catch_up(args.catchup_pins)?;
    Ok(())
}
