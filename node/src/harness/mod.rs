//! An in-process multi-node testnet: N real ipfs-kit nodes in one process, linked in a chosen
//! [`Topology`], for integration tests of bitswap and the DHT (3, 10, 100 nodes).
//!
//! Each node is a real [`Node`] (TCP on 127.0.0.1, an OS-chosen port, TLS, yamux, Kademlia in
//! server mode, no bootstrap peers) over its own [`Repo`]: an in-memory blockstore with its pins
//! in a directory under the testnet's directory. A stopped node keeps its repository and
//! identity, so [`Testnet::restart`] brings the same peer back with the same blocks.
//!
//! - [`Testnet::start`] starts the nodes, dials every edge of the topology and waits until
//!   identify ran on each link (so Kademlia knows every neighbour's listen addresses);
//! - [`Testnet::add_bytes`] / [`Testnet::add_path`] import with kubo's defaults, pin, and
//!   announce the root in the DHT (as `ipfs add` does);
//! - [`Testnet::fetch`] runs `fetch_dag` then exports the file's bytes; [`Testnet::fetch_path`]
//!   writes a file or directory tree; [`Testnet::find_providers`] asks the DHT;
//! - [`Testnet::connect`] / [`Testnet::disconnect`] add and cut links; [`Testnet::stop`] /
//!   [`Testnet::restart`] take a node down and bring it back;
//! - every fetch and provider search records a [`Sample`]: its latency and the overlay
//!   distance (hops over live links) from the asking node to the nearest node holding the root.
//!
//! Everything is bounded: the node count ([`NODES_MAX`]), the bytes `fetch` holds in memory
//! ([`FETCH_BYTES_MAX`]), and every wait ([`TestnetConfig::op_timeout`],
//! [`LINK_READY_TIMEOUT`]). Errors are typed ([`HarnessError`]).

pub mod cluster;
pub mod stats;
pub mod topology;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cid::Cid;
use futures::StreamExt as _;
use ipfs_kit_blockstore::MemoryBlockstore;

use crate::net::{
    BehaviourConfig, KadMode, Keypair, Multiaddr, NetError, Node, NodeConfig, NodeHandle, PeerId,
};
use crate::repo::{Repo, RepoError};
use crate::unixfs::export::{self, ExportError};
use crate::unixfs::{self, ImportError, ImportOptions};

pub use cluster::ClusterMode;
pub use stats::{Sample, Stats, Summary};
pub use topology::{Edge, SplitMix64, Topology};

/// `ipfs-kit daemon`'s arguments for a daemon under test: swarm, RPC API and gateway all on
/// loopback with OS-chosen ports (the node's own tests and the workspace's interop tests
/// start their daemon processes with these).
pub const LOOPBACK_DAEMON_ARGS: [&str; 7] = [
    "daemon",
    "--swarm",
    "/ip4/127.0.0.1/tcp/0",
    "--api",
    "127.0.0.1:0",
    "--gateway",
    "127.0.0.1:0",
];

/// Nodes in one testnet at most.
pub const NODES_MAX: usize = 1024;

/// Bytes [`Testnet::fetch`] exports into memory at most (a larger file is an error; use
/// [`Testnet::fetch_path`]).
pub const FETCH_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// Dials in flight at once while linking the topology.
pub const DIALS_IN_FLIGHT_MAX: usize = 16;

/// Nodes starting at once (building a swarm and binding its listener).
pub const BOOTS_IN_FLIGHT_MAX: usize = 8;

/// How long linking waits for identify to run on every link.
pub const LINK_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Default deadline of one fetch, provider search or provide.
pub const OP_TIMEOUT: Duration = Duration::from_secs(60);

/// Default fetch stall timeout of the nodes (shorter than a daemon's: tests fail fast).
pub const FETCH_STALL_TIMEOUT: Duration = Duration::from_secs(20);

/// How often link readiness is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Errors of the testnet harness.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("a testnet has 1..={max} nodes, not {n}")]
    Size { n: usize, max: usize },
    #[error("no node {index} in a testnet of {len}")]
    NoSuchNode { index: usize, len: usize },
    #[error("node {0} is stopped")]
    Stopped(usize),
    #[error("node {0} is already running")]
    Running(usize),
    #[error("a node cannot link to itself ({0})")]
    SelfLink(usize),
    #[error("node {index}: {source}")]
    Net {
        index: usize,
        #[source]
        source: NetError,
    },
    #[error("repository: {0}")]
    Repo(#[from] RepoError),
    #[error("import: {0}")]
    Import(#[from] ImportError),
    #[error("export: {0}")]
    Export(#[from] ExportError),
    #[error("{cid} is larger than {max} bytes; use fetch_path")]
    TooLarge { cid: Cid, max: u64 },
    #[error("{what} timed out after {after:?}")]
    Timeout { what: String, after: Duration },
    #[error("testnet directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a blocking task failed: {0}")]
    Join(String),
    #[error("cluster: {0}")]
    Cluster(#[from] crate::cluster::ClusterError),
}

/// How to start a [`Testnet`].
#[derive(Clone, Debug)]
pub struct TestnetConfig {
    pub nodes: usize,
    pub topology: Topology,
    /// See [`FETCH_STALL_TIMEOUT`].
    pub fetch_stall_timeout: Duration,
    /// See [`OP_TIMEOUT`].
    pub op_timeout: Duration,
    /// Where the repositories' pin databases live; a fresh directory under the system's temp
    /// directory (removed when the testnet is dropped) when `None`.
    pub dir: Option<PathBuf>,
    /// Cluster mode: roles per node, masters and workers run a cluster service.
    pub cluster: Option<ClusterMode>,
}

impl TestnetConfig {
    pub fn new(nodes: usize, topology: Topology) -> Self {
        Self {
            nodes,
            topology,
            fetch_stall_timeout: FETCH_STALL_TIMEOUT,
            op_timeout: OP_TIMEOUT,
            dir: None,
            cluster: None,
        }
    }
}

struct Slot {
    keypair: Keypair,
    repo: Repo,
    node: Option<Node>,
    cluster: Option<crate::cluster::Cluster>,
}

/// N in-process nodes linked in a topology. Dropping it stops every node.
pub struct Testnet {
    config: TestnetConfig,
    slots: Vec<Slot>,
    edges: BTreeSet<Edge>,
    dir: PathBuf,
    owns_dir: bool,
    stats: Mutex<Stats>,
}

impl Testnet {
    /// Starts `n` nodes linked as `topology` (defaults otherwise).
    pub async fn start(n: usize, topology: Topology) -> Result<Testnet, HarnessError> {
        Self::start_with(TestnetConfig::new(n, topology)).await
    }

    /// Starts the nodes, dials the topology's edges and waits until every link is identified.
    pub async fn start_with(config: TestnetConfig) -> Result<Testnet, HarnessError> {
        if config.nodes == 0 || config.nodes > NODES_MAX {
            return Err(HarnessError::Size {
                n: config.nodes,
                max: NODES_MAX,
            });
        }
        let (dir, owns_dir) = match &config.dir {
            Some(d) => (d.clone(), false),
            None => (fresh_dir(), true),
        };
        let mut net = Testnet {
            edges: config.topology.edges(config.nodes),
            slots: Vec::with_capacity(config.nodes),
            config,
            dir,
            owns_dir,
            stats: Mutex::new(Stats::default()),
        };
        for i in 0..net.config.nodes {
            let path = net.dir.join(format!("node-{i}"));
            let repo = Repo::with_store(&path, Arc::new(MemoryBlockstore::new()))?;
            net.slots.push(Slot {
                keypair: Keypair::generate_ed25519(),
                repo,
                node: None,
                cluster: None,
            });
        }
        // Every identity exists before the first boot (a cluster node's trust needs them).
        let t = Instant::now();
        let all: Vec<usize> = (0..net.config.nodes).collect();
        net.boot_many(&all).await?;
        let boot = t.elapsed();
        let t = Instant::now();
        let edges: Vec<Edge> = net.edges.iter().copied().collect();
        net.link(&edges).await?;
        let link = t.elapsed();
        if let Ok(mut s) = net.stats.lock() {
            s.boot = boot;
            s.link = link;
        }
        tracing::info!(
            ?boot,
            ?link,
            nodes = net.slots.len(),
            links = net.edges.len(),
            topology = ?net.config.topology,
            "testnet up"
        );
        Ok(net)
    }

    /// Number of nodes (running or stopped).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Never true: a testnet has at least one node.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The links that are meant to be up (the topology, plus `connect`, minus `disconnect`).
    pub fn edges(&self) -> &BTreeSet<Edge> {
        &self.edges
    }

    pub fn is_running(&self, index: usize) -> bool {
        self.slots.get(index).is_some_and(|s| s.node.is_some())
    }

    pub fn peer_id(&self, index: usize) -> Result<PeerId, HarnessError> {
        Ok(self.slot(index)?.keypair.public().to_peer_id())
    }

    /// The index of the node with this peer ID.
    pub fn index_of(&self, peer: &PeerId) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.keypair.public().to_peer_id() == *peer)
    }

    /// The node's repository (also while it is stopped).
    pub fn repo(&self, index: usize) -> Result<&Repo, HarnessError> {
        Ok(&self.slot(index)?.repo)
    }

    /// A handle to a running node.
    pub fn handle(&self, index: usize) -> Result<NodeHandle, HarnessError> {
        match &self.slot(index)?.node {
            Some(node) => Ok(node.handle()),
            None => Err(HarnessError::Stopped(index)),
        }
    }

    /// The node's first listen address with its `/p2p/<id>` suffix: what another peer dials.
    pub async fn dial_addr(&self, index: usize) -> Result<Multiaddr, HarnessError> {
        let handle = self.handle(index)?;
        let addrs = handle.listen_addrs().await.map_err(net(index))?;
        let addr = addrs.into_iter().next().ok_or(HarnessError::Net {
            index,
            source: NetError::Stopped,
        })?;
        Ok(addr.with(libp2p::multiaddr::Protocol::P2p(handle.peer_id())))
    }

    /// Every sample recorded so far.
    pub fn stats(&self) -> Stats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Links `a` and `b` (a dials b) and waits until identify ran both ways.
    pub async fn connect(&mut self, a: usize, b: usize) -> Result<(), HarnessError> {
        self.running(a)?;
        self.running(b)?;
        if a == b {
            return Err(HarnessError::SelfLink(a));
        }
        let e = topology::edge(a, b);
        self.edges.insert(e);
        self.link(&[e]).await
    }

    /// Cuts the link between `a` and `b`: closes their connections and forgets the edge (a
    /// later DHT query or fetch may dial again; that is the network's business).
    pub async fn disconnect(&mut self, a: usize, b: usize) -> Result<(), HarnessError> {
        self.edges.remove(&topology::edge(a, b));
        let (ha, hb) = (self.handle(a)?, self.handle(b)?);
        ha.disconnect(hb.peer_id()).await.map_err(net(a))?;
        hb.disconnect(ha.peer_id()).await.map_err(net(b))?;
        let what = format!("disconnecting {a} from {b}");
        self.wait(&what, LINK_READY_TIMEOUT, || async {
            let linked = ha.peers().await.map_err(net(a))?.contains(&hb.peer_id());
            Ok(!linked)
        })
        .await
    }

    /// Stops a node (closing its connections and listeners); its repository and identity stay.
    pub async fn stop(&mut self, index: usize) -> Result<(), HarnessError> {
        let len = self.slots.len();
        let slot = self
            .slots
            .get_mut(index)
            .ok_or(HarnessError::NoSuchNode { index, len })?;
        let node = slot.node.take().ok_or(HarnessError::Stopped(index))?;
        if let Some(cluster) = slot.cluster.take() {
            cluster.shutdown().await;
        }
        node.shutdown().await;
        Ok(())
    }

    /// Starts a stopped node again (same identity and repository, a new port) and re-dials its
    /// links to running neighbours.
    pub async fn restart(&mut self, index: usize) -> Result<(), HarnessError> {
        if self.slot(index)?.node.is_some() {
            return Err(HarnessError::Running(index));
        }
        self.boot_many(&[index]).await?;
        let edges: Vec<Edge> = self
            .edges
            .iter()
            .copied()
            .filter(|&(a, b)| {
                (a == index || b == index) && self.is_running(a) && self.is_running(b)
            })
            .collect();
        self.link(&edges).await
    }

    /// Imports `data` as one file with kubo's defaults, pins it and announces the root in the
    /// DHT (when the node has peers). Returns the root.
    pub async fn add_bytes(&self, index: usize, data: Vec<u8>) -> Result<Cid, HarnessError> {
        let repo = self.repo(index)?.clone();
        let root = blocking(move || -> Result<Cid, HarnessError> {
            Ok(repo.add_file(std::io::Cursor::new(data), &ImportOptions::default())?)
        })
        .await?;
        self.announce(index, root).await?;
        Ok(root)
    }

    /// Imports a file or directory tree with kubo's defaults, pins it and announces the root.
    pub async fn add_path(&self, index: usize, path: &Path) -> Result<Cid, HarnessError> {
        let repo = self.repo(index)?.clone();
        let path = path.to_path_buf();
        let root = blocking(move || -> Result<Cid, HarnessError> {
            let session = repo.begin_write();
            let imported = unixfs::dir::import_path(
                &path,
                &ImportOptions::default(),
                &session,
                &mut |_| {},
                &|_| {},
            )?;
            session.pin_imported_root(&imported.cid, None)?;
            Ok(imported.cid)
        })
        .await?;
        self.announce(index, root).await?;
        Ok(root)
    }

    /// Announces `cid` in the DHT from `index` (bounded by the op timeout).
    pub async fn provide(&self, index: usize, cid: Cid) -> Result<(), HarnessError> {
        let handle = self.handle(index)?;
        let started = Instant::now();
        self.timed(format!("provide {cid} from {index}"), handle.provide(cid))
            .await?
            .map_err(net(index))?;
        self.record(|s| &mut s.provides, started, None);
        Ok(())
    }

    /// Providers of `cid` as node indices, asked from `index` through the DHT. Records a
    /// [`Sample`] in [`Stats::find_providers`].
    pub async fn find_providers(
        &self,
        index: usize,
        cid: Cid,
        limit: usize,
    ) -> Result<Vec<usize>, HarnessError> {
        let handle = self.handle(index)?;
        let hops = self.hops_to_holder(index, &cid);
        let started = Instant::now();
        let found = self
            .timed(
                format!("find_providers {cid} from {index}"),
                handle.find_providers(cid, limit),
            )
            .await?
            .map_err(net(index))?;
        self.record(|s| &mut s.find_providers, started, hops);
        Ok(found
            .iter()
            .filter_map(|(peer, _)| self.index_of(peer))
            .collect())
    }

    /// Makes the DAG under `cid` local on `index` (bitswap, DHT providers as needed), pins it,
    /// and returns the file's bytes. Records a [`Sample`] in [`Stats::fetches`].
    pub async fn fetch(&self, index: usize, cid: Cid) -> Result<Vec<u8>, HarnessError> {
        self.fetch_dag(index, cid).await?;
        let repo = self.repo(index)?.clone();
        blocking(move || {
            let mut out = BoundedBuf::default();
            export::cat(repo.blocks().as_ref(), &cid, 0, None, &mut out).map_err(|e| {
                if out.overflow {
                    HarnessError::TooLarge {
                        cid,
                        max: FETCH_BYTES_MAX,
                    }
                } else {
                    HarnessError::Export(e)
                }
            })?;
            Ok(out.data)
        })
        .await
    }

    /// [`Testnet::fetch`] for any UnixFS DAG: writes the file or directory tree at `out`.
    pub async fn fetch_path(&self, index: usize, cid: Cid, out: &Path) -> Result<(), HarnessError> {
        self.fetch_dag(index, cid).await?;
        let repo = self.repo(index)?.clone();
        let out = out.to_path_buf();
        blocking(move || {
            export::get(repo.blocks().as_ref(), &cid, &out, &mut |_| {})?;
            Ok(())
        })
        .await
    }

    /// Stops every node and waits for them.
    pub async fn shutdown(mut self) {
        let nodes: Vec<Node> = self
            .slots
            .iter_mut()
            .filter_map(|s| s.node.take())
            .collect();
        futures::future::join_all(nodes.into_iter().map(Node::shutdown)).await;
    }

    async fn fetch_dag(&self, index: usize, cid: Cid) -> Result<(), HarnessError> {
        let handle = self.handle(index)?;
        let hops = self.hops_to_holder(index, &cid);
        let started = Instant::now();
        let stats = self
            .timed(format!("fetch {cid} on {index}"), handle.fetch_dag(cid))
            .await?
            .map_err(net(index))?;
        self.record(|s| &mut s.fetches, started, hops);
        tracing::debug!(index, %cid, ?stats, ?hops, "fetched");
        // The fetch's guard protects the DAG until the pin holds it.
        let repo = self.repo(index)?.clone();
        blocking(move || {
            repo.pin_add(&cid, true, None)?;
            drop(stats);
            Ok(())
        })
        .await
    }

    async fn announce(&self, index: usize, root: Cid) -> Result<(), HarnessError> {
        let handle = self.handle(index)?;
        if handle.peers().await.map_err(net(index))?.is_empty() {
            return Ok(());
        }
        self.provide(index, root).await
    }

    fn slot(&self, index: usize) -> Result<&Slot, HarnessError> {
        self.slots.get(index).ok_or(HarnessError::NoSuchNode {
            index,
            len: self.slots.len(),
        })
    }

    fn running(&self, index: usize) -> Result<(), HarnessError> {
        self.handle(index).map(|_| ())
    }

    /// Boots the nodes `indices`, [`BOOTS_IN_FLIGHT_MAX`] at a time, then their cluster
    /// services (cluster mode).
    async fn boot_many(&mut self, indices: &[usize]) -> Result<(), HarnessError> {
        let mut configs = Vec::with_capacity(indices.len());
        for &i in indices {
            configs.push((i, self.node_config(i)?));
        }
        let started: Vec<_> = futures::stream::iter(configs)
            .map(|(i, (c, setup))| async move { (i, Node::start(c).await, setup) })
            .buffer_unordered(BOOTS_IN_FLIGHT_MAX)
            .collect()
            .await;
        for (i, node, setup) in started {
            let node = node.map_err(net(i))?;
            let repo = self.slot(i)?.repo.clone();
            let cluster = setup.map(|s| s.start(node.handle(), repo));
            if let Some(slot) = self.slots.get_mut(i) {
                slot.node = Some(node);
                slot.cluster = cluster;
            }
        }
        Ok(())
    }

    /// Node `index`'s config and (cluster mode) its cluster service's setup.
    fn node_config(
        &self,
        index: usize,
    ) -> Result<(NodeConfig, Option<crate::cluster::ClusterSetup>), HarnessError> {
        let (keypair, repo) = {
            let s = self.slot(index)?;
            (s.keypair.clone(), s.repo.clone())
        };
        let mut c = NodeConfig::new(keypair).with_repo(repo);
        c.listen = vec!["/ip4/127.0.0.1/tcp/0"
            .parse()
            .map_err(|_| HarnessError::Join("loopback address".into()))?];
        c.behaviour = BehaviourConfig {
            kad_mode: KadMode::Server,
            kad_bootstrap_interval: None,
            // Loopback peers count for AutoNAT here (kubo's default ignores them).
            autonat: crate::net::autonat::AutonatConfig {
                only_global_ips: false,
                ..Default::default()
            },
            // Every peer here speaks the WAN DHT, so LAN tables would stay empty
            // (`behaviour::lan_admits`): no second kad handler on each connection.
            lan_dht: false,
            ..BehaviourConfig::default()
        };
        // Links of the topology stay up for the whole test.
        c.idle_connection_timeout = Duration::from_secs(3600);
        c.fetch_stall_timeout = self.config.fetch_stall_timeout;
        let setup = cluster::setup(self, index)?;
        c.cluster = setup.as_ref().map(|s| s.hooks());
        Ok((c, setup))
    }

    /// Dials `edges` (a few at a time), then waits until identify ran on each, both ways.
    async fn link(&self, edges: &[Edge]) -> Result<(), HarnessError> {
        let mut dials = Vec::with_capacity(edges.len());
        for &(a, b) in edges {
            dials.push((a, self.handle(a)?, self.dial_addr(b).await?));
        }
        let results: Vec<Result<PeerId, HarnessError>> = futures::stream::iter(dials)
            .map(|(a, handle, addr)| async move {
                tokio::time::timeout(LINK_READY_TIMEOUT, handle.connect(addr))
                    .await
                    .map_err(|_| HarnessError::Timeout {
                        what: format!("dial from {a}"),
                        after: LINK_READY_TIMEOUT,
                    })?
                    .map_err(net(a))
            })
            .buffer_unordered(DIALS_IN_FLIGHT_MAX)
            .collect()
            .await;
        for r in results {
            r?;
        }
        for &(a, b) in edges {
            let (ha, hb) = (self.handle(a)?, self.handle(b)?);
            let what = format!("identify on link {a} - {b}");
            self.wait(&what, LINK_READY_TIMEOUT, || async {
                Ok(identified(&ha, &hb, a).await? && identified(&hb, &ha, b).await?)
            })
            .await?;
        }
        Ok(())
    }

    async fn wait<F, Fut>(
        &self,
        what: &str,
        after: Duration,
        mut done: F,
    ) -> Result<(), HarnessError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<bool, HarnessError>>,
    {
        let deadline = Instant::now() + after;
        loop {
            if done().await? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::Timeout {
                    what: what.to_owned(),
                    after,
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn timed<T>(
        &self,
        what: String,
        fut: impl std::future::Future<Output = T>,
    ) -> Result<T, HarnessError> {
        let after = self.config.op_timeout;
        tokio::time::timeout(after, fut)
            .await
            .map_err(|_| HarnessError::Timeout { what, after })
    }

    /// Overlay distance from `index` to the nearest running node that holds `cid`'s block.
    fn hops_to_holder(&self, index: usize, cid: &Cid) -> Option<usize> {
        let has: Vec<bool> = self
            .slots
            .iter()
            .map(|s| s.node.is_some() && s.repo.blocks().has(cid).unwrap_or(false))
            .collect();
        topology::hops(
            self.slots.len(),
            &self.edges,
            |i| self.is_running(i),
            index,
            |i| has.get(i).copied().unwrap_or(false),
        )
    }

    fn record(
        &self,
        pick: impl FnOnce(&mut Stats) -> &mut Vec<Sample>,
        started: Instant,
        hops: Option<usize>,
    ) {
        if let Ok(mut s) = self.stats.lock() {
            pick(&mut s).push(Sample {
                elapsed: started.elapsed(),
                hops,
            });
        }
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        // Dropping the nodes cancels their tasks.
        self.slots.clear();
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Whether `me` is connected to `other` and identify told it `other`'s listen addresses.
async fn identified(
    me: &NodeHandle,
    other: &NodeHandle,
    index: usize,
) -> Result<bool, HarnessError> {
    let info = me.peer_info(other.peer_id()).await.map_err(net(index))?;
    Ok(info.is_some_and(|i| i.agent_version.is_some() && !i.listen_addrs.is_empty()))
}

fn net(index: usize) -> impl Fn(NetError) -> HarnessError {
    move |source| HarnessError::Net { index, source }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, HarnessError> + Send + 'static,
) -> Result<T, HarnessError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| HarnessError::Join(e.to_string()))?
}

/// A fresh directory under the system temp dir, unique per process and testnet.
fn fresh_dir() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!(
        "ipfs-kit-testnet-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// An in-memory writer that refuses to grow past [`FETCH_BYTES_MAX`].
#[derive(Default)]
struct BoundedBuf {
    data: Vec<u8>,
    overflow: bool,
}

impl Write for BoundedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.data.len() as u64 + buf.len() as u64 > FETCH_BYTES_MAX {
            self.overflow = true;
            return Err(std::io::Error::other("fetch larger than FETCH_BYTES_MAX"));
        }
        self.data.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bounded_buf_refuses_limit_plus_one() {
        let mut b = BoundedBuf::default();
        b.data = vec![0; usize::try_from(FETCH_BYTES_MAX).unwrap_or(usize::MAX) - 1];
        assert!(b.write_all(&[1]).is_ok());
        assert!(!b.overflow);
        assert!(b.write_all(&[2]).is_err());
        assert!(b.overflow);
        assert_eq!(b.data.len() as u64, FETCH_BYTES_MAX);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn size_and_index_errors_are_typed() {
        assert!(matches!(
            Testnet::start(0, Topology::Line).await,
            Err(HarnessError::Size { n: 0, .. })
        ));
        assert!(matches!(
            Testnet::start(NODES_MAX + 1, Topology::Line).await,
            Err(HarnessError::Size { .. })
        ));
        let mut net = Testnet::start(1, Topology::Full).await.unwrap();
        assert!(matches!(
            net.handle(1),
            Err(HarnessError::NoSuchNode { index: 1, len: 1 })
        ));
        assert!(matches!(
            net.connect(0, 0).await,
            Err(HarnessError::SelfLink(0))
        ));
        net.stop(0).await.unwrap();
        assert!(matches!(net.handle(0), Err(HarnessError::Stopped(0))));
        assert!(matches!(net.stop(0).await, Err(HarnessError::Stopped(0))));
        net.restart(0).await.unwrap();
        assert!(matches!(
            net.restart(0).await,
            Err(HarnessError::Running(0))
        ));
        // A lone node adds without announcing and reads its own content back.
        let data = b"lonely".to_vec();
        let cid = net.add_bytes(0, data.clone()).await.unwrap();
        assert_eq!(net.fetch(0, cid).await.unwrap(), data);
        net.shutdown().await;
    }
}
