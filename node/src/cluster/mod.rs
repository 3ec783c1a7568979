//! The cluster service of issue 4: the cluster-sync replica on the network.
//!
//! A master or worker node runs one cluster service task beside its swarm (`service.rs`). The
//! task owns the Merkle-CRDT [`Replica`], its redb store under `<repo>/cluster/`, the
//! allocator and the pin tracker, and only moves their events and actions: gossipsub messages
//! on the cluster topic become `HeadsAnnounced`, `Broadcast` is published, `Fetch` is a
//! bitswap fetch of the delta block, `Persist` goes to the store (which bitswap serves, see
//! `blocks.rs` for why), and the clock drives `Tick`/`Flush`. [`ClusterHandle`] is its API.
//!
//! Start-up is two steps because the swarm must know the cluster's hooks when it is built:
//! [`ClusterSetup::open`] opens the store and restores the replica, [`ClusterSetup::hooks`]
//! goes into [`NodeConfig::cluster`](crate::net::NodeConfig), and once the node runs,
//! [`ClusterSetup::start`] starts the service.
//!
//! Trust: the replica applies deltas signed by this peer and the `trusted` peers only (the
//! masters; `cluster.trusted_peers` in the config). Metrics are taken from any peer on the
//! cluster's topic: the swarm itself is closed by the cluster secret (PSK).

pub mod blocks;
pub mod handle;
pub mod local;
mod service;
pub mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipfs_kit_cluster_sync::allocator::{Allocator, METRIC_TTL_MS_DEFAULT};
use ipfs_kit_cluster_sync::store::{RedbStore, Store as _};
use ipfs_kit_cluster_sync::tracker::{Tracker, TrackerConfig};
use ipfs_kit_cluster_sync::{keypair_from_secret, PeerKey, Replica, ReplicaConfig};
use libp2p::identity::Keypair;
use libp2p::PeerId;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

pub use handle::{
    ClusterError, ClusterHandle, ClusterInfo, ClusterPeer, PeerPinStatus, PinStatus, StateDigest,
    TrackerStatus, CLUSTER_COMMAND_QUEUE_LEN, PIN_MANY_PINS_MAX,
};
pub use service::PEER_DOWN;

use crate::config::Role;
use crate::net::node::{ClusterHooks, ClusterNetEvent};
use crate::net::NodeHandle;
use crate::repo::Repo;

/// Gossip messages and status requests waiting for the service; more are dropped by the swarm.
pub const CLUSTER_INBOX_LEN: usize = 1024;
/// How often the service ticks the replica, the tracker and the allocator.
pub const CLUSTER_TICK: Duration = Duration::from_millis(100);
/// How often the first live master looks for pins to re-allocate.
pub const REPAIR_INTERVAL: Duration = Duration::from_secs(1);
/// The store's file under the cluster directory.
pub const STORE_FILE: &str = "state.redb";

/// How to run a node's cluster service.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// `Master` or `Worker` (a leecher runs no cluster service).
    pub role: Role,
    /// The node's identity: an Ed25519 key, which also signs this peer's deltas.
    pub keypair: Keypair,
    /// Peers whose deltas are applied besides ours (the masters).
    pub trusted: Vec<PeerId>,
    /// Where the store lives (`<repo>/cluster`).
    pub dir: PathBuf,
    pub replica: ReplicaConfig,
    pub tracker: TrackerConfig,
    /// How long our metric is valid at its receivers; a peer silent that long is down.
    pub metric_ttl: Duration,
    /// How often we broadcast our metric (a third of the TTL by default).
    pub metric_interval: Duration,
    /// Our tags (e.g. `group`), spread over by the allocator.
    pub tags: BTreeMap<String, String>,
    /// Tag keys the allocator spreads allocations over, most significant first.
    pub spread_tags: Vec<String>,
    /// Free space to report instead of the repository's (tests).
    pub free_bytes: Option<u64>,
    pub tick: Duration,
    pub repair_interval: Duration,
}

impl ClusterConfig {
    /// Defaults for `role` with this identity, trust list and directory.
    pub fn new(role: Role, keypair: Keypair, trusted: Vec<PeerId>, dir: PathBuf) -> Self {
        let ttl = Duration::from_millis(METRIC_TTL_MS_DEFAULT);
        Self {
            role,
            keypair,
            trusted,
            dir,
            replica: ReplicaConfig::default(),
            tracker: TrackerConfig::default(),
            metric_ttl: ttl,
            metric_interval: ttl / 3,
            tags: BTreeMap::new(),
            spread_tags: Vec::new(),
            free_bytes: None,
            tick: CLUSTER_TICK,
            repair_interval: REPAIR_INTERVAL,
        }
    }

    /// Metric TTL and interval together (interval = TTL / 3).
    pub fn with_metric_ttl(mut self, ttl: Duration) -> Self {
        self.metric_ttl = ttl;
        self.metric_interval = ttl / 3;
        self
    }
}

/// A cluster service opened but not started (see the module doc).
pub struct ClusterSetup {
    config: ClusterConfig,
    me: PeerKey,
    peer: PeerId,
    replica: Replica,
    store: blocks::SharedStore,
    local: Arc<local::LocalPins>,
    hooks: ClusterHooks,
    events: mpsc::Receiver<ClusterNetEvent>,
}

impl ClusterSetup {
    /// Opens (or creates) the store under `config.dir` and restores the replica from it.
    pub fn open(config: ClusterConfig) -> Result<ClusterSetup, ClusterError> {
        if config.role == Role::Leecher {
            return Err(ClusterError::NotInCluster);
        }
        let ed =
            config.keypair.clone().try_into_ed25519().map_err(|_| {
                ClusterError::Store("the node identity is not an Ed25519 key".into())
            })?;
        let mut secret = [0u8; 32];
        secret.copy_from_slice(&ed.to_bytes()[..32]);
        let signing = keypair_from_secret(secret)
            .map_err(|e| ClusterError::Store(format!("identity key: {e}")))?;
        let me = PeerKey(signing.public().to_bytes());
        let peer = config.keypair.public().to_peer_id();
        let trusted: Vec<PeerKey> = config
            .trusted
            .iter()
            .filter_map(PeerKey::from_peer_id)
            .collect();
        std::fs::create_dir_all(&config.dir)?;
        let store = RedbStore::open(&config.dir.join(STORE_FILE))
            .map_err(|e| ClusterError::Store(e.to_string()))?;
        let stored = store
            .load()
            .map_err(|e| ClusterError::Store(e.to_string()))?;
        let replica = Replica::restore(signing, trusted, config.replica.clone(), stored)
            .map_err(|e| ClusterError::Store(e.to_string()))?;
        let local = Arc::new(local::LocalPins::open(
            &config.dir.join(local::LOCAL_PINS_FILE),
        )?);
        let store: blocks::SharedStore = Arc::new(Mutex::new(store));
        let (tx, events) = mpsc::channel(CLUSTER_INBOX_LEN);
        let hooks = ClusterHooks {
            events: tx,
            topics: vec![
                wire::HEADS_TOPIC.to_string(),
                wire::METRICS_TOPIC.to_string(),
            ],
            blocks: Arc::new(blocks::ClusterBlocks::new(store.clone())),
        };
        Ok(ClusterSetup {
            config,
            me,
            peer,
            replica,
            store,
            local,
            hooks,
            events,
        })
    }

    /// What the swarm needs: set it as [`NodeConfig::cluster`](crate::net::NodeConfig).
    pub fn hooks(&self) -> ClusterHooks {
        self.hooks.clone()
    }

    /// Starts the service on a tokio task, over the running `node` and its `repo`.
    pub fn start(self, node: NodeHandle, repo: Repo) -> Cluster {
        let role = self.config.role;
        let mut trusted: BTreeSet<PeerKey> = self
            .config
            .trusted
            .iter()
            .filter_map(PeerKey::from_peer_id)
            .collect();
        trusted.insert(self.me);
        let service = service::Service {
            allocator: Allocator::new(self.config.spread_tags.clone()),
            tracker: Tracker::new(self.me, self.config.tracker.clone()),
            me: self.me,
            peer: self.peer,
            replica: self.replica,
            store: self.store,
            local: self.local,
            node,
            repo,
            trusted,
            seen: BTreeMap::new(),
            fetching: Default::default(),
            fetch_queue: Default::default(),
            started: Instant::now(),
            last_metric: None,
            last_repair: None,
            expiries: BTreeSet::new(),
            cfg: self.config,
        };
        let (commands, inbox) = mpsc::channel(CLUSTER_COMMAND_QUEUE_LEN);
        let (cancel, cancelled) = oneshot::channel();
        let span = tracing::info_span!("cluster", peer = %self.peer);
        let task = tokio::spawn(tracing::Instrument::instrument(
            service.run(inbox, self.events, cancelled),
            span,
        ));
        Cluster {
            handle: ClusterHandle {
                peer: self.peer,
                role,
                commands,
            },
            cancel: Some(cancel),
            task: Some(task),
        }
    }
}

/// A running cluster service. Dropping it stops the task.
pub struct Cluster {
    handle: ClusterHandle,
    cancel: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Cluster {
    pub fn handle(&self) -> ClusterHandle {
        self.handle.clone()
    }

    /// Stops the service (the pending batch is persisted first) and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(c) = self.cancel.take() {
            let _ = c.send(());
        }
        if let Some(t) = self.task.take() {
            if let Err(e) = t.await {
                tracing::warn!(error = %e, "cluster task ended abnormally");
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.cancel.take();
    }
}
