//! [`Node`]: a libp2p swarm running on a tokio task, driven through a handle.
//!
//! The swarm is owned by one actor task. The handle sends commands over a bounded channel
//! ([`COMMAND_QUEUE_LEN`]) and each command carries a oneshot for its reply, so callers never
//! touch the swarm and the swarm never blocks on a caller. [`Node::start`] returns once every
//! listen address is bound (the daemon's "ready" point); [`Node::shutdown`] cancels the actor
//! and waits for it, and dropping the handle cancels it too.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cid::Cid;
use futures::StreamExt as _;
use ipfs_kit_blockstore::Block;
use libp2p::core::Endpoint;
use libp2p::identity::Keypair;
use libp2p::kad::{self, QueryId, QueryResult};
use libp2p::swarm::{
    dial_opts::DialOpts, ConnectionId, DialError, NetworkBehaviour as _, SwarmEvent,
};
use libp2p::{gossipsub, request_response};
use libp2p::{identify, ping, Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument as _;

use super::behaviour::{
    Behaviour, BehaviourConfig, BehaviourEvent, KAD_LAN_PROTOCOL, KAD_PROTOCOL,
};
use super::fetch::{Fetch, FetchStats, Reply};
use super::on_demand::Handover;
use crate::bitswap::behaviour::Event as BitswapEvent;
use crate::bitswap::{BitswapStat, SessionId};
use crate::cluster::wire::{StatusRequest, StatusResponse};
use crate::repo::Repo;

/// Capacity of the command channel from handles to the swarm task.
pub const COMMAND_QUEUE_LEN: usize = 64;

/// How long [`Node::start`] waits for its listeners to bind.
pub const LISTEN_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Default idle connection timeout (kubo's connection manager grace period is 20 s; idle
/// here means no protocol keeps the connection alive).
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Concurrent streams per connection, for yamux and QUIC alike (QUIC's default; yamux's is
/// 512). Per-protocol caps come with each protocol's handler.
pub const STREAMS_PER_CONNECTION_MAX: usize = 256;

/// Inbound streams still negotiating their protocol, per connection (rust-libp2p's default).
pub const NEGOTIATING_INBOUND_STREAMS_MAX: usize = 128;

/// At most this many listen addresses of a remote peer (from identify) are kept and given to
/// Kademlia; a peer announcing more is truncated.
pub const PEER_LISTEN_ADDRS_MAX: usize = 32;

/// At most this many protocol names of a remote peer are kept.
pub const PEER_PROTOCOLS_MAX: usize = 128;

/// A fetch fails after this long without receiving a block (kubo waits forever; a caller
/// that wants that can set a long [`NodeConfig::fetch_stall_timeout`]).
pub const FETCH_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Providers a bitswap session's DHT search stops at.
pub const SESSION_PROVIDERS_MAX: usize = 10;

/// Providers [`NodeHandle::find_providers`] returns at most, whatever the caller asks.
pub const FIND_PROVIDERS_LIMIT_MAX: usize = 1000;

/// How often the node checks fetches for stalls and abandoned callers.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(500);

/// Cluster status requests from peers waiting for the cluster service's answer; more are
/// refused (the requester sees a failure).
pub const CLUSTER_STATUS_INBOUND_MAX: usize = 256;

/// The cluster service's hooks into the swarm: where gossip messages and status requests go,
/// which topics to join, and the blocks bitswap serves besides the repository's (the cluster's
/// deltas and snapshots, which live in the cluster's own store).
#[derive(Clone)]
pub struct ClusterHooks {
    /// Bounded by its sender's capacity; when full, messages are dropped (gossip heals by
    /// re-announcing, status requesters time out).
    pub events: mpsc::Sender<ClusterNetEvent>,
    pub topics: Vec<String>,
    pub blocks: std::sync::Arc<dyn ipfs_kit_blockstore::Blockstore>,
}

impl std::fmt::Debug for ClusterHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterHooks")
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

/// What the swarm hands the cluster service.
#[derive(Debug)]
pub enum ClusterNetEvent {
    /// A gossipsub message on a joined topic; `source` is its signed author.
    Gossip {
        topic: String,
        source: PeerId,
        data: Vec<u8>,
    },
    /// A peer asks for our tracker states: answer with [`NodeHandle::cluster_status_respond`].
    StatusRequest {
        peer: PeerId,
        id: u64,
        request: StatusRequest,
    },
}

/// Longest [`NodeHandle::identify_peer`] (`id <peer>`): lookup, dial and identify.
pub const IDENTIFY_PEER_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors of the network node.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("building the transport: {0}")]
    Transport(String),
    #[error("listening on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
    #[error("listeners did not bind within {0:?}")]
    ListenTimeout(Duration),
    #[error("dialing {addr}: {reason}")]
    Dial { addr: Multiaddr, reason: String },
    #[error("no known peers to bootstrap from")]
    NoKnownPeers,
    #[error("DHT query failed: {0}")]
    Query(String),
    #[error("no peer took the provider record (sent to {peers} of the closest peers)")]
    ProvideFailed { peers: usize },
    #[error("the node has no repository to fetch into or serve from")]
    NoRepo,
    #[error("fetching {cid}: no block arrived for {stall:?}")]
    FetchTimeout { cid: Cid, stall: Duration },
    #[error("fetch failed: {0}")]
    Fetch(String),
    #[error("too many concurrent fetches")]
    TooManyFetches,
    #[error("the network node has stopped")]
    Stopped,
    #[error("ping {peer}: {reason}")]
    Ping { peer: PeerId, reason: String },
    #[error("peering: {0}")]
    Peering(String),
}

/// How to start a [`Node`].
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub keypair: Keypair,
    /// Addresses to listen on, e.g. `/ip4/127.0.0.1/tcp/0`, `/ip4/127.0.0.1/udp/0/quic-v1`.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start (`/ip4/../tcp/../p2p/<id>`; those with a peer ID also seed the
    /// DHT routing table). Empty in tests.
    pub bootstrap: Vec<Multiaddr>,
    pub behaviour: BehaviourConfig,
    pub idle_connection_timeout: Duration,
    /// The repository whose blocks bitswap serves and into which fetches write. Without one
    /// the node serves nothing and fetches fail with [`NetError::NoRepo`].
    pub repo: Option<Repo>,
    /// See [`FETCH_STALL_TIMEOUT`].
    pub fetch_stall_timeout: Duration,
    /// A private network's pre-shared key ([`super::psk`]): TCP only, every connection
    /// wrapped in the pnet handshake, QUIC listen addresses dropped.
    pub psk: Option<[u8; super::psk::PSK_BYTES]>,
    /// Cluster mode (masters and workers): see [`ClusterHooks`].
    pub cluster: Option<ClusterHooks>,
    /// Run the circuit relay client ([`super::relay`]): dial `/p2p-circuit` addresses and
    /// hold reservations on [`NodeConfig::relays`] (kubo's `Swarm.RelayClient.Enabled`).
    pub relay_client: bool,
    /// Static relays (`/…/p2p/<relay id>`, at most [`super::relay::STATIC_RELAYS_MAX`]) to
    /// reserve a slot on, listening on `<relay>/p2p-circuit`; needs `relay_client`.
    pub relays: Vec<Multiaddr>,
    /// Name servers for `/dns*` addresses ([`super::transport`]); empty: the system's.
    pub dns_resolvers: Vec<std::net::SocketAddr>,
    /// Peers to stay connected to (`peering.peers`: multiaddrs naming a peer), see
    /// [`super::peering`].
    pub peering: Vec<Multiaddr>,
    /// The first wait before redialing a peered peer ([`super::peering::PEERING_BACKOFF_INITIAL`]).
    pub peering_backoff_initial: Duration,
}

impl NodeConfig {
    /// Defaults with the given identity and no listen addresses.
    pub fn new(keypair: Keypair) -> Self {
        Self {
            keypair,
            listen: Vec::new(),
            bootstrap: Vec::new(),
            behaviour: BehaviourConfig::default(),
            idle_connection_timeout: IDLE_CONNECTION_TIMEOUT,
            repo: None,
            fetch_stall_timeout: FETCH_STALL_TIMEOUT,
            psk: None,
            cluster: None,
            relay_client: false,
            relays: Vec::new(),
            dns_resolvers: Vec::new(),
            peering: Vec::new(),
            peering_backoff_initial: super::peering::PEERING_BACKOFF_INITIAL,
        }
    }

    /// Serves and fetches into `repo`.
    pub fn with_repo(mut self, repo: Repo) -> Self {
        self.repo = Some(repo);
        self
    }
}

/// What the node knows about a connected peer.
#[derive(Clone, Debug, Default)]
pub struct PeerInfo {
    /// The remote address of one open connection.
    pub addr: Option<Multiaddr>,
    /// Identify's agent version, once identify ran.
    pub agent_version: Option<String>,
    /// Identify's protocol list.
    pub protocols: Vec<String>,
    /// Identify's listen addresses (at most [`PEER_LISTEN_ADDRS_MAX`]).
    pub listen_addrs: Vec<Multiaddr>,
    /// The last ping round trip.
    pub rtt: Option<Duration>,
    /// Identify's public key, protobuf-encoded (kubo's `PublicKey` before base64).
    pub public_key: Vec<u8>,
    /// Identify's protocol version (`ipfs/0.1.0`).
    pub protocol_version: Option<String>,
}

#[derive(Debug)]
enum Command {
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    Connect(Multiaddr, oneshot::Sender<Result<PeerId, NetError>>),
    Peers(oneshot::Sender<Vec<PeerId>>),
    PeerInfo(PeerId, oneshot::Sender<Option<PeerInfo>>),
    Bootstrap(oneshot::Sender<Result<(), NetError>>),
    ClosestPeers(
        PeerId,
        oneshot::Sender<Result<Vec<kad::PeerInfo>, NetError>>,
    ),
    FetchBlock(Cid, oneshot::Sender<Result<Block, NetError>>),
    FetchDag(
        Cid,
        Option<Arc<Handover>>,
        oneshot::Sender<Result<FetchStats, NetError>>,
    ),
    FindProviders(Cid, usize, oneshot::Sender<ProvidersResult>),
    Disconnect(PeerId, oneshot::Sender<bool>),
    BitswapStat(oneshot::Sender<BitswapStat>),
    Wantlist(Option<PeerId>, oneshot::Sender<Vec<Cid>>),
    Ledger(
        PeerId,
        oneshot::Sender<crate::bitswap::behaviour::LedgerReceipt>,
    ),
    PeeringAdd(
        PeerId,
        Vec<Multiaddr>,
        oneshot::Sender<Result<(), NetError>>,
    ),
    PeeringRemove(PeerId, oneshot::Sender<bool>),
    PeeringList(oneshot::Sender<Vec<(PeerId, Vec<Multiaddr>)>>),
    SendRaw(PeerId, Vec<u8>, oneshot::Sender<bool>),
    Publish(String, Vec<u8>, oneshot::Sender<Result<(), NetError>>),
    ClusterStatus(
        PeerId,
        StatusRequest,
        oneshot::Sender<Result<StatusResponse, NetError>>,
    ),
    ClusterStatusRespond(u64, StatusResponse),
    BlocksAdded(Vec<Cid>),
    ClosestPeersToKey(
        Vec<u8>,
        usize,
        oneshot::Sender<Result<Vec<kad::PeerInfo>, NetError>>,
    ),
    SendProviderBatch(
        PeerId,
        Vec<Multiaddr>,
        Vec<Vec<u8>>,
        oneshot::Sender<Result<usize, super::provide::sender::SendError>>,
    ),
    ProvideLocally(Vec<Vec<u8>>, oneshot::Sender<usize>),
    RelayReservations(oneshot::Sender<Vec<PeerId>>),
    AddExternalAddress(Multiaddr, oneshot::Sender<()>),
    KadServer(oneshot::Sender<bool>),
}

type ProvidersResult = Result<Vec<(PeerId, Vec<Multiaddr>)>, NetError>;

/// A running network node. Dropping it stops the swarm task.
pub struct Node {
    handle: NodeHandle,
    cancel: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Node {
    /// Builds the swarm, binds every listen address, dials the bootstrap peers and runs the
    /// swarm on a new tokio task. Returns once all listeners have an address.
    pub async fn start(mut config: NodeConfig) -> Result<Node, NetError> {
        config.behaviour.cluster |= config.cluster.is_some();
        let peer_id = config.keypair.public().to_peer_id();
        let span = tracing::info_span!("net", %peer_id);
        let bandwidth = std::sync::Arc::new(super::bandwidth::Bandwidth::default());
        let reachability = std::sync::Arc::new(super::autonat::ReachabilityCell::default());
        let mut swarm = build_swarm(&config, bandwidth.clone())?;
        let mut pending: HashMap<libp2p::core::transport::ListenerId, Multiaddr> = HashMap::new();
        for addr in &config.listen {
            if config.psk.is_some() && super::psk::unprotectable(addr) {
                tracing::warn!(%addr, "private network (swarm key): not listening on QUIC/UDP");
                continue;
            }
            let id = swarm
                .listen_on(addr.clone())
                .map_err(|e| NetError::Listen {
                    addr: addr.clone(),
                    reason: e.to_string(),
                })?;
            pending.insert(id, addr.clone());
        }
        let mut actor = Actor {
            peer_id: Some(peer_id),
            repo: config.repo.clone(),
            fetch_stall_timeout: config.fetch_stall_timeout,
            cluster_events: config.cluster.as_ref().map(|h| h.events.clone()),
            kad_follows_reachability: config.behaviour.kad_mode
                == super::behaviour::KadMode::ByReachability,
            reachability: reachability.clone(),
            peering: super::peering::Peering::new(config.peering_backoff_initial),
            ..Actor::default()
        };
        for addr in &config.peering {
            if let Some(peer) = peer_of(addr) {
                if let Err(e) = actor.peering.add(peer, vec![addr.clone()], false) {
                    tracing::warn!(%addr, error = %e, "not peered");
                    continue;
                }
                swarm.behaviour_mut().keep_alive.set(peer, true);
            }
        }
        if let (Some(hooks), Some(g)) = (&config.cluster, swarm.behaviour_mut().gossipsub.as_mut())
        {
            for t in &hooks.topics {
                if let Err(e) = g.subscribe(&gossipsub::IdentTopic::new(t)) {
                    tracing::warn!(parent: &span, topic = %t, error = %e, "gossipsub subscribe failed");
                }
            }
        }
        let wait = async {
            while !pending.is_empty() {
                let event = swarm.select_next_some().await;
                match &event {
                    SwarmEvent::NewListenAddr { listener_id, .. } => {
                        pending.remove(listener_id);
                    }
                    SwarmEvent::ListenerClosed {
                        listener_id,
                        reason: Err(e),
                        ..
                    }
                    | SwarmEvent::ListenerError {
                        listener_id,
                        error: e,
                    } => {
                        if let Some(addr) = pending.remove(listener_id) {
                            return Err(NetError::Listen {
                                addr,
                                reason: e.to_string(),
                            });
                        }
                    }
                    _ => {}
                }
                actor.on_event(&mut swarm, event);
            }
            Ok(())
        };
        tokio::time::timeout(LISTEN_READY_TIMEOUT, wait.instrument(span.clone()))
            .await
            .map_err(|_| NetError::ListenTimeout(LISTEN_READY_TIMEOUT))??;
        for addr in &config.bootstrap {
            if let Some(peer) = peer_of(addr) {
                swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
            }
            if let Err(e) = swarm.dial(addr.clone()) {
                tracing::warn!(parent: &span, %addr, error = %e, "bootstrap dial failed");
            }
        }
        if config.bootstrap.iter().any(|a| peer_of(a).is_some()) {
            // Fill the routing table from the bootstrap peers (kad dials them as needed).
            if let Err(e) = swarm.behaviour_mut().kad.bootstrap() {
                tracing::warn!(parent: &span, error = %e, "DHT bootstrap not started");
            }
        }
        if config.relay_client {
            actor.relays = config
                .relays
                .iter()
                .take(super::relay::STATIC_RELAYS_MAX)
                .cloned()
                .collect();
            // Reservations are made in the background; each one's address appears among the
            // listen addresses once its relay accepts. Failed ones are retried.
            span.in_scope(|| actor.reserve_on_relays(&mut swarm));
        }
        let own_keys = swarm.behaviour_mut().kad.store_mut().own_keys();
        let streams = super::ping::Streams(swarm.behaviour().streams.new_control());
        let (commands, inbox) = mpsc::channel(COMMAND_QUEUE_LEN);
        let (cancel, cancelled) = oneshot::channel();
        let task = tokio::spawn(actor.run(swarm, inbox, cancelled).instrument(span));
        Ok(Node {
            handle: NodeHandle {
                peer_id,
                commands,
                bandwidth,
                reachability,
                own_keys,
                streams,
            },
            cancel: Some(cancel),
            task: Some(task),
        })
    }

    /// A cloneable handle to this node, for other tasks (the API server, the harness). It
    /// does not keep the node alive: once the node stops, its calls return
    /// [`NetError::Stopped`].
    pub fn handle(&self) -> NodeHandle {
        self.handle.clone()
    }

    /// Stops the swarm (closing every connection and listener) and waits for the task to end.
    pub async fn shutdown(mut self) {
        if let Some(cancel) = self.cancel.take() {
            let _ = cancel.send(());
        }
        if let Some(task) = self.task.take() {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "network task ended abnormally");
            }
        }
    }
}

impl std::ops::Deref for Node {
    type Target = NodeHandle;
    fn deref(&self) -> &NodeHandle {
        &self.handle
    }
}

/// The query side of a [`Node`]: cheap to clone, one command channel shared by all clones.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    bandwidth: std::sync::Arc<super::bandwidth::Bandwidth>,
    reachability: std::sync::Arc<super::autonat::ReachabilityCell>,
    /// Our provided keys, shared with the DHT store (see [`super::provide::store`]).
    own_keys: super::provide::store::OwnKeys,
    /// Opens streams of ours on demand ([`super::ping`]).
    streams: super::ping::Streams,
}

impl NodeHandle {
    /// The set of keys this node provides: the DHT answers GET_PROVIDERS from it and the
    /// reprovider sweeps it.
    pub fn own_provider_keys(&self) -> super::provide::store::OwnKeys {
        self.own_keys.clone()
    }

    /// This node's peer ID.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Pings to `peer` (the first dials it with the addresses we know for it): see
    /// [`super::ping`]. Pinging ourselves is refused, as in kubo.
    pub fn pinger(&self, peer: PeerId) -> Result<super::ping::Pinger, NetError> {
        if peer == self.peer_id {
            return Err(NetError::Ping {
                peer,
                reason: "can't ping self".to_owned(),
            });
        }
        Ok(self.streams.pinger(peer))
    }

    /// Bytes received and sent on every stream of every connection so far, all protocols.
    pub fn bandwidth(&self) -> super::bandwidth::BandwidthTotals {
        self.bandwidth.totals()
    }

    /// Bytes exchanged with `peer` on every protocol (zero for a peer never seen).
    pub fn bandwidth_of_peer(&self, peer: &PeerId) -> super::bandwidth::BandwidthTotals {
        self.bandwidth.of_peer(peer)
    }

    /// Bytes of every stream that negotiated `protocol` (zero for one never seen).
    pub fn bandwidth_of_protocol(&self, protocol: &str) -> super::bandwidth::BandwidthTotals {
        self.bandwidth.of_protocol(protocol)
    }

    /// What AutoNAT concluded about our reachability.
    pub fn reachability(&self) -> super::autonat::Reachability {
        self.reachability.get()
    }

    /// The relays holding a reservation for us now.
    pub async fn relay_reservations(&self) -> Result<Vec<PeerId>, NetError> {
        self.ask(Command::RelayReservations).await
    }

    /// Announces `addr` as an address peers can reach us at (kubo's
    /// `Addresses.AppendAnnounce`): identify sends it and a relay server hands it out in its
    /// reservations. AutoNAT adds the addresses it confirms by itself.
    pub async fn add_external_address(&self, addr: Multiaddr) -> Result<(), NetError> {
        self.ask(|tx| Command::AddExternalAddress(addr, tx)).await
    }

    /// Whether Kademlia runs in server mode now (answers queries, stores records).
    pub async fn kad_server(&self) -> Result<bool, NetError> {
        self.ask(Command::KadServer).await
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// The addresses the node listens on now.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.ask(Command::ListenAddrs).await
    }

    /// Dials `addr` (with or without a `/p2p/<id>` suffix) and returns the remote peer ID once
    /// the connection is established (at once if already connected to that peer).
    pub async fn connect(&self, addr: Multiaddr) -> Result<PeerId, NetError> {
        self.ask(|tx| Command::Connect(addr, tx)).await?
    }

    /// The peers with at least one open connection, sorted.
    pub async fn peers(&self) -> Result<Vec<PeerId>, NetError> {
        self.ask(Command::Peers).await
    }

    /// What is known about a connected peer (`None` if not connected).
    pub async fn peer_info(&self, peer: PeerId) -> Result<Option<PeerInfo>, NetError> {
        self.ask(|tx| Command::PeerInfo(peer, tx)).await
    }

    /// Runs a Kademlia bootstrap (a lookup of our own ID, then of random IDs per bucket) and
    /// waits for it to finish.
    pub async fn bootstrap(&self) -> Result<(), NetError> {
        self.ask(Command::Bootstrap).await?
    }

    /// The k closest peers to `key` found through the DHT (with the addresses learned).
    pub async fn closest_peers(&self, key: PeerId) -> Result<Vec<kad::PeerInfo>, NetError> {
        self.ask(|tx| Command::ClosestPeers(key, tx)).await?
    }

    /// The block `cid`: from the repository if it is there, else from the network (bitswap
    /// sessions, DHT providers as a fallback). Verified against its CID and stored in the
    /// repository. Not protected from GC once returned: pin it if it must stay.
    pub async fn fetch_block(&self, cid: Cid) -> Result<Block, NetError> {
        self.ask(|tx| Command::FetchBlock(cid, tx)).await?
    }

    /// Makes every block of the DAG under `root` local, fetching the missing ones with many
    /// wants in flight as the walk goes. The returned stats hold a temporary pin
    /// ([`FetchStats::guard`]) on the whole DAG: pin the root before dropping them.
    pub async fn fetch_dag(&self, root: Cid) -> Result<FetchStats, NetError> {
        self.ask(|tx| Command::FetchDag(root, None, tx)).await?
    }

    /// [`fetch_dag`](Self::fetch_dag) for a reader reading the DAG while it arrives: the
    /// fetch offers every block it receives to `handover`, and signals it as it writes.
    pub(crate) async fn fetch_dag_handing_over(
        &self,
        root: Cid,
        handover: Arc<Handover>,
    ) -> Result<FetchStats, NetError> {
        self.ask(|tx| Command::FetchDag(root, Some(handover), tx))
            .await?
    }

    /// Announces us as a provider of `cid` in the DHT (a provider record at the k closest
    /// peers, keyed by the multihash as kubo does); returns once every record has been
    /// written (or its send failed) with the number of peers that took one, see
    /// [`super::provide::provide_now`].
    pub async fn provide(&self, cid: Cid) -> Result<usize, NetError> {
        super::provide::provide_now(self, cid.hash().to_bytes()).await
    }

    /// Up to `limit` providers of `cid` from the DHT (with the addresses the search learned);
    /// this node is included when it provides `cid`.
    pub async fn find_providers(
        &self,
        cid: Cid,
        limit: usize,
    ) -> Result<Vec<(PeerId, Vec<Multiaddr>)>, NetError> {
        let limit = limit.clamp(1, FIND_PROVIDERS_LIMIT_MAX);
        self.ask(|tx| Command::FindProviders(cid, limit, tx))
            .await?
    }

    /// Closes every connection to `peer`; false if there was none.
    pub async fn disconnect(&self, peer: PeerId) -> Result<bool, NetError> {
        self.ask(|tx| Command::Disconnect(peer, tx)).await
    }

    /// Bitswap counters, our wantlist and bitswap peers (kubo's `bitswap stat`).
    pub async fn bitswap_stat(&self) -> Result<BitswapStat, NetError> {
        self.ask(Command::BitswapStat).await
    }

    /// Our wantlist (`None`), or the wantlist `peer` sent us.
    pub async fn wantlist(&self, peer: Option<PeerId>) -> Result<Vec<Cid>, NetError> {
        self.ask(|tx| Command::Wantlist(peer, tx)).await
    }

    /// Stays connected to the peer `addr` names (`swarm peering add`): dialed now if need be,
    /// its connections kept open, redialed with backoff when they close.
    pub async fn peering_add(&self, addr: Multiaddr) -> Result<PeerId, NetError> {
        let peer = peer_of(&addr).ok_or_else(|| {
            NetError::Peering(format!("{addr}: no /p2p/<peer id> in the address"))
        })?;
        let only_peer = addr.iter().count() == 1;
        let addrs = if only_peer { Vec::new() } else { vec![addr] };
        self.ask(|tx| Command::PeeringAdd(peer, addrs, tx))
            .await??;
        Ok(peer)
    }

    /// Stops keeping `peer` connected (`swarm peering rm`); false if it was not peered. Its
    /// connections stay until they idle out.
    pub async fn peering_remove(&self, peer: PeerId) -> Result<bool, NetError> {
        self.ask(|tx| Command::PeeringRemove(peer, tx)).await
    }

    /// The peered peers and their addresses (`swarm peering ls`).
    pub async fn peering_list(&self) -> Result<Vec<(PeerId, Vec<Multiaddr>)>, NetError> {
        self.ask(Command::PeeringList).await
    }

    /// What we exchanged with `peer` over bitswap while connected (kubo's `bitswap ledger`).
    pub async fn bitswap_ledger(
        &self,
        peer: PeerId,
    ) -> Result<crate::bitswap::behaviour::LedgerReceipt, NetError> {
        self.ask(|tx| Command::Ledger(peer, tx)).await
    }

    /// Writes raw bytes on the bitswap stream to `peer`: fault injection for tests (malformed
    /// and oversize frames from a real connection). False if not connected.
    #[doc(hidden)]
    pub async fn bitswap_send_raw(&self, peer: PeerId, bytes: Vec<u8>) -> Result<bool, NetError> {
        self.ask(|tx| Command::SendRaw(peer, bytes, tx)).await
    }

    /// Publishes `data` on the gossipsub `topic` (cluster mode). Fails when no peer is on the
    /// topic yet (announcements are repeated, so callers log it and carry on).
    pub async fn publish(&self, topic: String, data: Vec<u8>) -> Result<(), NetError> {
        self.ask(|tx| Command::Publish(topic, data, tx)).await?
    }

    /// Asks `peer` for its cluster tracker states (cluster mode).
    pub async fn cluster_status(
        &self,
        peer: PeerId,
        request: StatusRequest,
    ) -> Result<StatusResponse, NetError> {
        self.ask(|tx| Command::ClusterStatus(peer, request, tx))
            .await?
    }

    /// Answers the status request `id` handed over in [`ClusterNetEvent::StatusRequest`].
    pub async fn cluster_status_respond(
        &self,
        id: u64,
        response: StatusResponse,
    ) -> Result<(), NetError> {
        self.commands
            .send(Command::ClusterStatusRespond(id, response))
            .await
            .map_err(|_| NetError::Stopped)
    }

    /// Tells bitswap that these blocks became available outside the repository (the
    /// cluster's deltas), so peers already wanting them are served now.
    pub async fn blocks_added(&self, cids: Vec<Cid>) -> Result<(), NetError> {
        self.commands
            .send(Command::BlocksAdded(cids))
            .await
            .map_err(|_| NetError::Stopped)
    }

    /// The `count` peers closest to the record key `key` (multihash bytes; the keyspace point
    /// is its SHA-256) found by one DHT lookup, with the addresses learned. `count` is at
    /// least 1 and at most [`FIND_PROVIDERS_LIMIT_MAX`].
    pub async fn closest_peers_to_key(
        &self,
        key: Vec<u8>,
        count: usize,
    ) -> Result<Vec<kad::PeerInfo>, NetError> {
        let count = count.clamp(1, FIND_PROVIDERS_LIMIT_MAX);
        self.ask(|tx| Command::ClosestPeersToKey(key, count, tx))
            .await?
    }

    /// Sends `peer` one ADD_PROVIDER record per key (multihash bytes) naming this node at its
    /// listen addresses, all on one kad stream (dialing `addrs` first when not connected).
    /// Returns the number of records written.
    pub async fn send_provider_batch(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        keys: Vec<Vec<u8>>,
    ) -> Result<Result<usize, super::provide::sender::SendError>, NetError> {
        self.ask(|tx| Command::SendProviderBatch(peer, addrs, keys, tx))
            .await
    }

    /// Records in the local DHT store that this node provides `keys` (multihash bytes), so
    /// that GET_PROVIDERS asked of us names us. Returns how many were stored.
    pub async fn provide_locally(&self, keys: Vec<Vec<u8>>) -> Result<usize, NetError> {
        self.ask(|tx| Command::ProvideLocally(keys, tx)).await
    }

    /// What identify says of `peer` (kubo's `id <peer>`): at once when connected and
    /// identified; otherwise found through the DHT if not connected, dialed, and waited for
    /// until identify answers, all within [`IDENTIFY_PEER_TIMEOUT`].
    pub async fn identify_peer(&self, peer: PeerId) -> Result<PeerInfo, NetError> {
        let deadline = tokio::time::Instant::now() + IDENTIFY_PEER_TIMEOUT;
        let identified = |i: Option<PeerInfo>| i.filter(|i| i.agent_version.is_some());
        if let Some(info) = identified(self.peer_info(peer).await?) {
            return Ok(info);
        }
        if !self.peers().await?.contains(&peer) {
            let addrs = tokio::time::timeout_at(deadline, self.find_peer(peer))
                .await
                .map_err(|_| NetError::Query(format!("routing: {peer} not found in time")))??
                .ok_or_else(|| NetError::Query(format!("routing: {peer} not found")))?;
            let mut failed = None;
            for a in addrs {
                let a = a.with_p2p(peer).unwrap_or_else(|a| a);
                match tokio::time::timeout_at(deadline, self.connect(a)).await {
                    Ok(Ok(_)) => {
                        failed = None;
                        break;
                    }
                    Ok(Err(e)) => failed = Some(e),
                    Err(_) => break,
                }
            }
            if let Some(e) = failed {
                return Err(e);
            }
        }
        loop {
            if let Some(info) = identified(self.peer_info(peer).await?) {
                return Ok(info);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(NetError::Query(format!(
                    "{peer} did not identify itself within {IDENTIFY_PEER_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Finds `peer` through the DHT: its addresses, or `Ok(None)` if the lookup did not meet it.
    pub async fn find_peer(&self, peer: PeerId) -> Result<Option<Vec<Multiaddr>>, NetError> {
        let found = self.closest_peers(peer).await?;
        Ok(found
            .into_iter()
            .find(|p| p.peer_id == peer)
            .map(|p| p.addrs))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Dropping `cancel` wakes the actor, which then stops.
        self.cancel.take();
    }
}

/// The swarm: [`super::transport`] (TCP, QUIC unless private, the relay client when on, all
/// counted into `bandwidth`) under the root behaviour.
fn build_swarm(
    config: &NodeConfig,
    bandwidth: std::sync::Arc<super::bandwidth::Bandwidth>,
) -> Result<Swarm<Behaviour>, NetError> {
    let behaviour_config = config.behaviour.clone();
    let store = served_store(config);
    // A repository with a remote tier may fetch a block it serves from the network.
    let reads_may_wait = config.repo.as_ref().is_some_and(|r| r.tiered().is_some());
    let idle = config.idle_connection_timeout;
    let psk = config.psk.map(libp2p::pnet::PreSharedKey::new);
    if let Some(psk) = &psk {
        tracing::info!(fingerprint = %psk.fingerprint(), "private network: swarm key in use");
    }
    let peer_id = config.keypair.public().to_peer_id();
    let (relay_transport, relay_behaviour) = if config.relay_client {
        let (t, b) = libp2p::relay::client::new(peer_id);
        (Some(t), Some(b))
    } else {
        (None, None)
    };
    let parts = super::transport::TransportParts {
        psk,
        relay: relay_transport,
        bandwidth,
        streams_per_connection_max: STREAMS_PER_CONNECTION_MAX,
        dns_resolvers: config.dns_resolvers.clone(),
    };
    Ok(
        libp2p::SwarmBuilder::with_existing_identity(config.keypair.clone())
            .with_tokio()
            .with_other_transport(|key| super::transport::build(key, parts))
            .map_err(|e| NetError::Transport(e.to_string()))?
            .with_behaviour(|key| {
                Behaviour::new(
                    key,
                    &behaviour_config,
                    store,
                    reads_may_wait,
                    relay_behaviour,
                )
            })
            .map_err(|e| match e {})?
            .with_swarm_config(|c| {
                c.with_idle_connection_timeout(idle)
                    .with_max_negotiating_inbound_streams(NEGOTIATING_INBOUND_STREAMS_MAX)
            })
            .build(),
    )
}

/// What bitswap serves: the repository's blocks, then (cluster mode) the cluster's.
fn served_store(
    config: &NodeConfig,
) -> Option<std::sync::Arc<dyn ipfs_kit_blockstore::Blockstore>> {
    let repo = config.repo.as_ref().map(|r| r.blocks().clone());
    match (repo, &config.cluster) {
        (Some(r), Some(h)) => Some(std::sync::Arc::new(
            crate::cluster::blocks::UnionBlockstore::new(r, h.blocks.clone()),
        )),
        (None, Some(h)) => Some(h.blocks.clone()),
        (r, None) => r,
    }
}

/// Peers found by mDNS: dialed unless already connected (as kubo does), their addresses
/// given to Kademlia.
fn on_mdns(swarm: &mut Swarm<Behaviour>, event: libp2p::mdns::Event) {
    let libp2p::mdns::Event::Discovered(found) = event else {
        return;
    };
    for (peer, addr) in found.into_iter().take(PEER_LISTEN_ADDRS_MAX) {
        tracing::debug!(%peer, %addr, "found on the local network (mDNS)");
        swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
        let opts = DialOpts::peer_id(peer)
            .addresses(vec![addr])
            .condition(libp2p::swarm::dial_opts::PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(e) = swarm.dial(opts) {
            tracing::debug!(%peer, error = %e, "mDNS peer not dialed");
        }
    }
}

/// The peer ID in a multiaddr's trailing `/p2p/<id>`, if any.
pub fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

/// Which of the node's two Kademlia behaviours (kubo's dual DHT).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Dht {
    /// `/ipfs/kad/1.0.0`.
    Wan,
    /// `/ipfs/lan/kad/1.0.0`, when on.
    Lan,
}

/// The Kademlia behaviour `dht` (`None`: the LAN DHT is off).
fn kad_of(
    swarm: &mut Swarm<Behaviour>,
    dht: Dht,
) -> Option<&mut kad::Behaviour<super::provide::store::ProviderStore>> {
    match dht {
        Dht::Wan => Some(&mut swarm.behaviour_mut().kad),
        Dht::Lan => swarm.behaviour_mut().kad_lan.as_mut(),
    }
}

/// The DHTs a query runs on: the WAN DHT, and the LAN DHT while its routing table holds a
/// peer (an empty LAN table would only end the query at once).
fn query_dhts(swarm: &mut Swarm<Behaviour>) -> Vec<Dht> {
    let lan = swarm
        .behaviour_mut()
        .kad_lan
        .as_mut()
        .is_some_and(|k| k.kbuckets().any(|b| b.num_entries() > 0));
    if lan {
        vec![Dht::Wan, Dht::Lan]
    } else {
        vec![Dht::Wan]
    }
}

/// Where a joined query's answer goes.
enum JoinTx {
    Unit(oneshot::Sender<Result<(), NetError>>),
    Peers(oneshot::Sender<Result<Vec<kad::PeerInfo>, NetError>>),
    Providers(oneshot::Sender<ProvidersResult>),
}

/// One command run as a query on each DHT ([`query_dhts`]), answered once every part ended
/// (or, for providers, once `limit` were found): peers merged by ID, providers up to
/// `limit`, an error only when every part failed.
struct Join {
    parts: Vec<(Dht, QueryId)>,
    peers: Vec<kad::PeerInfo>,
    providers: Vec<(PeerId, Vec<Multiaddr>)>,
    limit: usize,
    ok: bool,
    err: Option<NetError>,
    tx: JoinTx,
}

impl Join {
    fn new(tx: JoinTx, limit: usize) -> Self {
        Self {
            parts: Vec::new(),
            peers: Vec::new(),
            providers: Vec::new(),
            limit,
            ok: false,
            err: None,
            tx,
        }
    }

    /// A part's outcome.
    fn part(&mut self, result: Result<Vec<kad::PeerInfo>, NetError>) {
        match result {
            Ok(peers) => {
                self.ok = true;
                for p in peers {
                    match self.peers.iter_mut().find(|q| q.peer_id == p.peer_id) {
                        Some(q) => {
                            for a in p.addrs {
                                if !q.addrs.contains(&a) {
                                    q.addrs.push(a);
                                }
                            }
                        }
                        None => self.peers.push(p),
                    }
                }
            }
            Err(e) => {
                self.err.get_or_insert(e);
            }
        }
    }

    fn add_providers(&mut self, found: Vec<(PeerId, Vec<Multiaddr>)>) {
        self.ok = true;
        for (p, a) in found {
            if self.providers.len() < self.limit && !self.providers.iter().any(|(q, _)| *q == p) {
                self.providers.push((p, a));
            }
        }
    }

    fn finish(self) {
        let failed = match (self.ok, self.err) {
            (false, Some(e)) => Some(e),
            _ => None,
        };
        match self.tx {
            JoinTx::Unit(tx) => {
                let _ = tx.send(failed.map_or(Ok(()), Err));
            }
            JoinTx::Peers(tx) => {
                let _ = tx.send(failed.map_or(Ok(self.peers), Err));
            }
            JoinTx::Providers(tx) => {
                let _ = tx.send(failed.map_or(Ok(self.providers), Err));
            }
        }
    }
}

enum QueryReply {
    /// A part of the [`Join`] with this ID.
    Joined(u64),
    Session {
        session: SessionId,
        cid: Cid,
        found: usize,
    },
    /// A provider came without addresses: look the peer up, then hand it to the session.
    Resolve {
        session: SessionId,
        cid: Cid,
        peer: PeerId,
    },
}

/// The state the swarm task keeps beside the swarm.
#[derive(Default)]
struct Actor {
    peer_id: Option<PeerId>,
    repo: Option<Repo>,
    fetch_stall_timeout: Duration,
    listen_addrs: Vec<Multiaddr>,
    dials: HashMap<ConnectionId, (Multiaddr, oneshot::Sender<Result<PeerId, NetError>>)>,
    peers: HashMap<PeerId, (usize, PeerInfo)>,
    queries: HashMap<(Dht, QueryId), QueryReply>,
    joins: HashMap<u64, Join>,
    join_next: u64,
    fetches: HashMap<SessionId, Fetch>,
    cluster_events: Option<mpsc::Sender<ClusterNetEvent>>,
    status_out: HashMap<
        request_response::OutboundRequestId,
        oneshot::Sender<Result<StatusResponse, NetError>>,
    >,
    status_in: HashMap<u64, request_response::ResponseChannel<StatusResponse>>,
    status_next: u64,
    /// Kademlia's mode follows AutoNAT ([`super::behaviour::KadMode::ByReachability`]).
    kad_follows_reachability: bool,
    reachability: std::sync::Arc<super::autonat::ReachabilityCell>,
    /// Relays holding a reservation for us.
    relay_reservations: Vec<PeerId>,
    /// The static relays to hold reservations on, and the listener of each (none while a
    /// retry is due).
    relays: Vec<Multiaddr>,
    relay_listeners: HashMap<libp2p::core::transport::ListenerId, Multiaddr>,
    relay_retry_at: Option<std::time::Instant>,
    /// Peers to stay connected to, and when to dial each.
    peering: super::peering::Peering,
}

impl Actor {
    async fn run(
        mut self,
        mut swarm: Swarm<Behaviour>,
        mut inbox: mpsc::Receiver<Command>,
        mut cancelled: oneshot::Receiver<()>,
    ) {
        tracing::debug!("network task running");
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING_INTERVAL);
        loop {
            tokio::select! {
                biased;
                _ = &mut cancelled => break,
                event = swarm.select_next_some() => self.on_event(&mut swarm, event),
                _ = housekeeping.tick() => self.housekeeping(&mut swarm),
                command = inbox.recv() => match command {
                    Some(c) => self.on_command(&mut swarm, c),
                    None => break,
                },
            }
        }
        let listeners: Vec<_> = self.listen_addrs.drain(..).collect();
        tracing::info!(
            listeners = listeners.len(),
            peers = self.peers.len(),
            "network task stopping"
        );
        for (_, f) in self.fetches.drain() {
            f.reply.fail(NetError::Stopped);
        }
        for (_, (addr, reply)) in self.dials.drain() {
            let _ = reply.send(Err(NetError::Dial {
                addr,
                reason: "node shutting down".into(),
            }));
        }
        // Dropping the swarm closes every connection and listener.
        drop(swarm);
    }

    fn on_command(&mut self, swarm: &mut Swarm<Behaviour>, command: Command) {
        match command {
            Command::ListenAddrs(tx) => {
                let _ = tx.send(self.listen_addrs.clone());
            }
            Command::RelayReservations(tx) => {
                let _ = tx.send(self.relay_reservations.clone());
            }
            Command::AddExternalAddress(addr, tx) => {
                swarm.add_external_address(addr);
                let _ = tx.send(());
            }
            Command::KadServer(tx) => {
                let _ = tx.send(swarm.behaviour().kad.mode() == kad::Mode::Server);
            }
            Command::Peers(tx) => {
                let mut peers: Vec<PeerId> = self.peers.keys().copied().collect();
                peers.sort();
                let _ = tx.send(peers);
            }
            Command::PeerInfo(peer, tx) => {
                let _ = tx.send(self.peers.get(&peer).map(|(_, info)| info.clone()));
            }
            Command::Connect(addr, tx) => {
                let opts = DialOpts::from(addr.clone());
                let id = opts.connection_id();
                match swarm.dial(opts) {
                    Ok(()) => {
                        self.dials.insert(id, (addr, tx));
                    }
                    Err(DialError::DialPeerConditionFalse(_)) => {
                        // Already connected (or dialing): the peer is in the address.
                        let reply = match peer_of(&addr) {
                            Some(p) => Ok(p),
                            None => Err(NetError::Dial {
                                addr,
                                reason: "dial condition false without a peer ID".into(),
                            }),
                        };
                        let _ = tx.send(reply);
                    }
                    Err(e) => {
                        let _ = tx.send(Err(NetError::Dial {
                            addr,
                            reason: e.to_string(),
                        }));
                    }
                }
            }
            Command::Bootstrap(tx) => {
                self.start_join(swarm, Join::new(JoinTx::Unit(tx), 0), |k| {
                    k.bootstrap()
                        .map_err(|kad::NoKnownPeers()| NetError::NoKnownPeers)
                });
            }
            Command::ClosestPeers(key, tx) => {
                self.start_join(swarm, Join::new(JoinTx::Peers(tx), 0), |k| {
                    Ok(k.get_closest_peers(key))
                });
            }
            Command::FetchBlock(cid, tx) => self.start_fetch(swarm, cid, Reply::Block(tx)),
            Command::FetchDag(cid, handover, tx) => {
                self.start_fetch(swarm, cid, Reply::Dag(tx, handover))
            }
            Command::FindProviders(cid, limit, tx) => {
                let key = kad::RecordKey::new(&cid.hash().to_bytes());
                self.start_join(swarm, Join::new(JoinTx::Providers(tx), limit), |k| {
                    Ok(k.get_providers(key.clone()))
                });
            }
            Command::Disconnect(peer, tx) => {
                let _ = tx.send(swarm.disconnect_peer_id(peer).is_ok());
            }
            Command::BitswapStat(tx) => {
                let _ = tx.send(swarm.behaviour().bitswap.stat());
            }
            Command::Wantlist(peer, tx) => {
                let _ = tx.send(swarm.behaviour().bitswap.wantlist(peer));
            }
            Command::Ledger(peer, tx) => {
                let _ = tx.send(swarm.behaviour().bitswap.ledger(&peer));
            }
            Command::PeeringAdd(peer, addrs, tx) => {
                let connected = self.peers.contains_key(&peer);
                let r = self
                    .peering
                    .add(peer, addrs, connected)
                    .map_err(|e| NetError::Peering(e.to_string()));
                if r.is_ok() {
                    swarm.behaviour_mut().keep_alive.set(peer, true);
                    // Dial now rather than at the next housekeeping tick.
                    self.housekeeping_peering(swarm);
                }
                let _ = tx.send(r);
            }
            Command::PeeringRemove(peer, tx) => {
                swarm.behaviour_mut().keep_alive.set(peer, false);
                let _ = tx.send(self.peering.remove(&peer));
            }
            Command::PeeringList(tx) => {
                let _ = tx.send(self.peering.list());
            }
            Command::SendRaw(peer, bytes, tx) => {
                let _ = tx.send(swarm.behaviour_mut().bitswap.send_raw(peer, bytes));
            }
            Command::Publish(topic, data, tx) => {
                let r = match swarm.behaviour_mut().gossipsub.as_mut() {
                    None => Err(NetError::Fetch("not in cluster mode".into())),
                    // "No peers on the topic yet" is an error too: the caller logs it and
                    // announces again later.
                    Some(g) => g
                        .publish(gossipsub::IdentTopic::new(topic), data)
                        .map(|_| ())
                        .map_err(|e| NetError::Fetch(format!("publish: {e}"))),
                };
                let _ = tx.send(r);
            }
            Command::ClusterStatus(peer, request, tx) => {
                match swarm.behaviour_mut().cluster_status.as_mut() {
                    None => {
                        let _ = tx.send(Err(NetError::Fetch("not in cluster mode".into())));
                    }
                    Some(rr) => {
                        let id = rr.send_request(&peer, request);
                        self.status_out.insert(id, tx);
                    }
                }
            }
            Command::ClusterStatusRespond(id, response) => {
                if let (Some(channel), Some(rr)) = (
                    self.status_in.remove(&id),
                    swarm.behaviour_mut().cluster_status.as_mut(),
                ) {
                    let _ = rr.send_response(channel, response);
                }
            }
            Command::BlocksAdded(cids) => {
                for c in cids {
                    swarm.behaviour_mut().bitswap.block_added(c);
                }
            }
            Command::ClosestPeersToKey(key, count, tx) => {
                let count =
                    std::num::NonZeroUsize::new(count).unwrap_or(std::num::NonZeroUsize::MIN);
                self.start_join(swarm, Join::new(JoinTx::Peers(tx), 0), |k| {
                    Ok(k.get_n_closest_peers(key.clone(), count))
                });
            }
            Command::SendProviderBatch(peer, addrs, keys, tx) => {
                self.send_provider_batch(swarm, peer, addrs, keys, tx);
            }
            Command::ProvideLocally(keys, tx) => {
                let Some(me) = self.peer_id else {
                    let _ = tx.send(0);
                    return;
                };
                let store = swarm.behaviour_mut().kad.store_mut();
                let mut stored = 0;
                for k in keys {
                    let record = kad::ProviderRecord::new(kad::RecordKey::from(k), me, Vec::new());
                    match kad::store::RecordStore::add_provider(store, record) {
                        Ok(()) => stored += 1,
                        Err(e) => tracing::debug!(error = %e, "local provider record not stored"),
                    }
                }
                let _ = tx.send(stored);
            }
        }
    }

    /// Frames one ADD_PROVIDER record per key naming us at our listen addresses and hands
    /// them to the provide sender as one stream's batch.
    fn send_provider_batch(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        keys: Vec<Vec<u8>>,
        tx: oneshot::Sender<Result<usize, super::provide::sender::SendError>>,
    ) {
        let Some(me) = self.peer_id else {
            return;
        };
        let mut ours = self.listen_addrs.clone();
        ours.truncate(PEER_LISTEN_ADDRS_MAX);
        let mut frames = Vec::with_capacity(keys.len());
        for k in &keys {
            match super::provide::wire::add_provider_frame(k, &me, &ours) {
                Ok(f) => frames.push(f),
                Err(e) => tracing::debug!(error = %e, "provider record not sent"),
            }
        }
        let job = super::provide::sender::Job {
            protocols: self.kad_protocols_of(swarm, peer),
            frames,
            reply: tx,
        };
        swarm.behaviour_mut().provide_sender.send(peer, addrs, job);
    }

    /// The kad protocols to send `peer` records on, preferred first: the one identify says it
    /// serves (the WAN one when both), else the WAN one then (when on) the LAN one.
    fn kad_protocols_of(
        &self,
        swarm: &Swarm<Behaviour>,
        peer: PeerId,
    ) -> Vec<libp2p::StreamProtocol> {
        let lan_on = swarm.behaviour().kad_lan.is_enabled();
        if let Some((_, info)) = self.peers.get(&peer) {
            let speaks =
                |p: &libp2p::StreamProtocol| info.protocols.iter().any(|q| q == p.as_ref());
            if speaks(&KAD_PROTOCOL) {
                return vec![KAD_PROTOCOL];
            }
            if lan_on && speaks(&KAD_LAN_PROTOCOL) {
                return vec![KAD_LAN_PROTOCOL];
            }
        }
        if lan_on {
            vec![KAD_PROTOCOL, KAD_LAN_PROTOCOL]
        } else {
            vec![KAD_PROTOCOL]
        }
    }

    /// Starts `start` on every DHT of [`query_dhts`] as the parts of `join`; answers at once
    /// when no part started.
    fn start_join(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        mut join: Join,
        start: impl Fn(
            &mut kad::Behaviour<super::provide::store::ProviderStore>,
        ) -> Result<QueryId, NetError>,
    ) {
        let id = self.join_next;
        self.join_next += 1;
        for dht in query_dhts(swarm) {
            let Some(k) = kad_of(swarm, dht) else {
                continue;
            };
            match start(k) {
                Ok(q) => {
                    join.parts.push((dht, q));
                    self.queries.insert((dht, q), QueryReply::Joined(id));
                }
                Err(e) => join.part(Err(e)),
            }
        }
        if join.parts.is_empty() {
            join.finish();
        } else {
            self.joins.insert(id, join);
        }
    }

    /// Ends part `(dht, q)` of join `id`, answering once it was the last.
    fn end_part(&mut self, id: u64, dht: Dht, q: QueryId) {
        let Some(join) = self.joins.get_mut(&id) else {
            return;
        };
        join.parts.retain(|p| *p != (dht, q));
        if join.parts.is_empty() {
            if let Some(j) = self.joins.remove(&id) {
                j.finish();
            }
        }
    }

    fn start_fetch(&mut self, swarm: &mut Swarm<Behaviour>, cid: Cid, reply: Reply) {
        let Some(repo) = &self.repo else {
            reply.fail(NetError::NoRepo);
            return;
        };
        if let Reply::Block(tx) = reply {
            // A local hit needs no session.
            match repo.blocks().get(&cid) {
                Ok(Some(data)) => {
                    let _ = tx.send(Ok(Block::new_unchecked(cid, data)));
                    return;
                }
                Ok(None) => return self.start_session(swarm, cid, Reply::Block(tx)),
                Err(e) => {
                    let _ = tx.send(Err(NetError::Fetch(e.to_string())));
                    return;
                }
            }
        }
        self.start_session(swarm, cid, reply);
    }

    fn start_session(&mut self, swarm: &mut Swarm<Behaviour>, cid: Cid, reply: Reply) {
        let Some(repo) = &self.repo else {
            reply.fail(NetError::NoRepo);
            return;
        };
        let Some(session) = swarm.behaviour_mut().bitswap.new_session() else {
            reply.fail(NetError::TooManyFetches);
            return;
        };
        let mut fetch = Fetch::new(repo, cid, reply);
        tracing::debug!(%cid, session, "fetch started");
        match fetch.expand(vec![cid]) {
            Ok(wants) => {
                self.fetches.insert(session, fetch);
                self.want(swarm, session, wants);
            }
            Err(e) => {
                swarm.behaviour_mut().bitswap.close_session(session);
                fetch.reply.fail(e);
            }
        }
    }

    /// Hands `wants` to the session, or ends the fetch when nothing is left.
    fn want(&mut self, swarm: &mut Swarm<Behaviour>, session: SessionId, wants: Vec<Cid>) {
        let done = self.fetches.get(&session).is_some_and(|f| f.pending == 0);
        if done {
            if let Some(f) = self.fetches.remove(&session) {
                swarm.behaviour_mut().bitswap.close_session(session);
                f.finish(None);
            }
            return;
        }
        if wants.is_empty() {
            return;
        }
        if let Err(e) = swarm.behaviour_mut().bitswap.want(session, &wants) {
            self.fail_fetch(swarm, session, NetError::Fetch(e.to_string()));
        }
    }

    fn fail_fetch(&mut self, swarm: &mut Swarm<Behaviour>, session: SessionId, e: NetError) {
        swarm.behaviour_mut().bitswap.close_session(session);
        if let Some(f) = self.fetches.remove(&session) {
            tracing::debug!(root = %f.root, error = %e, "fetch failed");
            f.reply.fail(e);
        }
    }

    fn on_bitswap(&mut self, swarm: &mut Swarm<Behaviour>, event: BitswapEvent) {
        match event {
            BitswapEvent::BlockReceived {
                session,
                block,
                from,
            } => {
                // A DAG fetch's block may still be queued for its writer: a peer waiting for
                // it is then served at the server's next tick re-check (250 ms), not at once.
                swarm.behaviour_mut().bitswap.block_added(*block.cid());
                let Some(f) = self.fetches.get_mut(&session) else {
                    return;
                };
                tracing::trace!(cid = %block.cid(), %from, "block received");
                match f.on_block(&block) {
                    Ok(wants) => {
                        if matches!(f.reply, Reply::Block(_)) {
                            if let Some(f) = self.fetches.remove(&session) {
                                swarm.behaviour_mut().bitswap.close_session(session);
                                f.finish(Some(block));
                            }
                            return;
                        }
                        self.want(swarm, session, wants);
                    }
                    Err(e) => self.fail_fetch(swarm, session, e),
                }
            }
            // Completion is tracked by the fetch (`pending`), which also knows about the
            // children still to be added.
            BitswapEvent::SessionDone { .. } => {}
            BitswapEvent::FindProviders { session, cid } => {
                let key = kad::RecordKey::new(&cid.hash().to_bytes());
                // Each DHT's search feeds the session on its own.
                for dht in query_dhts(swarm) {
                    let Some(k) = kad_of(swarm, dht) else {
                        continue;
                    };
                    let q = k.get_providers(key.clone());
                    self.queries.insert(
                        (dht, q),
                        QueryReply::Session {
                            session,
                            cid,
                            found: 0,
                        },
                    );
                }
            }
            BitswapEvent::Penalized { peer, reason } => {
                tracing::debug!(%peer, %reason, "bitswap penalty");
            }
        }
    }

    fn on_gossip(&mut self, message: gossipsub::Message) {
        let (Some(events), Some(source)) = (&self.cluster_events, message.source) else {
            return;
        };
        let event = ClusterNetEvent::Gossip {
            topic: message.topic.into_string(),
            source,
            data: message.data,
        };
        if events.try_send(event).is_err() {
            tracing::debug!(%source, "cluster inbox full: gossip message dropped");
        }
    }

    fn on_cluster_status(&mut self, event: request_response::Event<StatusRequest, StatusResponse>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let Some(events) = &self.cluster_events else {
                    return;
                };
                self.status_in.retain(|_, c| c.is_open());
                if self.status_in.len() >= CLUSTER_STATUS_INBOUND_MAX {
                    tracing::debug!(%peer, "too many cluster status requests: refused");
                    return;
                }
                self.status_next += 1;
                let id = self.status_next;
                if events
                    .try_send(ClusterNetEvent::StatusRequest { peer, id, request })
                    .is_ok()
                {
                    self.status_in.insert(id, channel);
                }
            }
            request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(tx) = self.status_out.remove(&request_id) {
                    let _ = tx.send(Ok(response));
                }
            }
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some(tx) = self.status_out.remove(&request_id) {
                    let _ = tx.send(Err(NetError::Fetch(format!("cluster status: {error}"))));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "cluster status request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn housekeeping(&mut self, swarm: &mut Swarm<Behaviour>) {
        self.housekeeping_peering(swarm);
        if self
            .relay_retry_at
            .is_some_and(|at| std::time::Instant::now() >= at)
        {
            self.reserve_on_relays(swarm);
        }
        self.housekeeping_fetches(swarm);
    }

    /// Dials the peered peers that are due ([`super::peering::Peering::due`]).
    fn housekeeping_peering(&mut self, swarm: &mut Swarm<Behaviour>) {
        for (peer, addrs) in self.peering.due(std::time::Instant::now()) {
            let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(libp2p::swarm::dial_opts::PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = swarm.dial(opts) {
                tracing::debug!(%peer, error = %e, "peering dial not started");
            }
        }
    }

    /// Ends the fetches whose caller went away or that made no progress for the stall timeout.
    fn housekeeping_fetches(&mut self, swarm: &mut Swarm<Behaviour>) {
        let stall = self.fetch_stall_timeout;
        let mut ended = Vec::new();
        for (s, f) in &self.fetches {
            if f.reply.is_closed() {
                ended.push((*s, None));
            } else if f.last_progress.elapsed() > stall {
                ended.push((*s, Some(f.root)));
            }
        }
        for (session, root) in ended {
            match root {
                Some(cid) => self.fail_fetch(swarm, session, NetError::FetchTimeout { cid, stall }),
                None => {
                    swarm.behaviour_mut().bitswap.close_session(session);
                    self.fetches.remove(&session);
                }
            }
        }
    }

    /// The addresses known for `peer`: identify's, then the DHT's (routing table and running
    /// queries).
    fn addresses_of(&mut self, swarm: &mut Swarm<Behaviour>, peer: PeerId) -> Vec<Multiaddr> {
        let mut addrs: Vec<Multiaddr> = self
            .peers
            .get(&peer)
            .map(|(_, i)| i.listen_addrs.clone())
            .unwrap_or_default();
        for dht in [Dht::Wan, Dht::Lan] {
            let Some(k) = kad_of(swarm, dht) else {
                continue;
            };
            if let Ok(found) = k.handle_pending_outbound_connection(
                ConnectionId::new_unchecked(0),
                Some(peer),
                &[],
                Endpoint::Dialer,
            ) {
                for a in found {
                    if !addrs.contains(&a) {
                        addrs.push(a);
                    }
                }
            }
        }
        addrs.truncate(PEER_LISTEN_ADDRS_MAX);
        addrs
    }

    fn on_providers(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        dht: Dht,
        id: QueryId,
        result: Result<kad::GetProvidersOk, kad::GetProvidersError>,
        last: bool,
    ) {
        let providers: Vec<PeerId> = match &result {
            Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) => {
                let mut v: Vec<PeerId> = providers.iter().copied().collect();
                v.sort();
                v
            }
            _ => Vec::new(),
        };
        let with_addrs: Vec<(PeerId, Vec<Multiaddr>)> = providers
            .iter()
            .map(|p| (*p, self.addresses_of(swarm, *p)))
            .collect();
        let Some(reply) = self.queries.remove(&(dht, id)) else {
            return;
        };
        let finished = last || result.is_err();
        match reply {
            QueryReply::Joined(join) => {
                let Some(j) = self.joins.get_mut(&join) else {
                    return;
                };
                // A search that found nothing is not a failure.
                j.add_providers(with_addrs);
                if j.providers.len() >= j.limit {
                    // Enough: end every part now.
                    if let Some(j) = self.joins.remove(&join) {
                        for (d, q) in &j.parts {
                            self.queries.remove(&(*d, *q));
                            if let Some(mut q) = kad_of(swarm, *d).and_then(|k| k.query_mut(q)) {
                                q.finish();
                            }
                        }
                        j.finish();
                    }
                } else if finished {
                    self.end_part(join, dht, id);
                } else {
                    self.queries.insert((dht, id), QueryReply::Joined(join));
                }
            }
            QueryReply::Session {
                session,
                cid,
                mut found,
            } => {
                let me = self.peer_id;
                let mut peers = Vec::new();
                for (p, a) in with_addrs {
                    if Some(p) == me {
                        continue;
                    }
                    if a.is_empty() && !self.peers.contains_key(&p) {
                        // No address came with the record: find the peer first.
                        let Some(k) = kad_of(swarm, dht) else {
                            continue;
                        };
                        let q = k.get_closest_peers(p);
                        self.queries.insert(
                            (dht, q),
                            QueryReply::Resolve {
                                session,
                                cid,
                                peer: p,
                            },
                        );
                        continue;
                    }
                    swarm.behaviour_mut().bitswap.add_addresses(p, a);
                    peers.push(p);
                }
                found += peers.len();
                if !peers.is_empty() && self.fetches.contains_key(&session) {
                    tracing::debug!(%cid, providers = peers.len(), "providers found");
                    swarm
                        .behaviour_mut()
                        .bitswap
                        .providers_found(session, cid, peers);
                }
                let enough = found >= SESSION_PROVIDERS_MAX || !self.fetches.contains_key(&session);
                if finished || enough {
                    if let Some(mut q) = kad_of(swarm, dht).and_then(|k| k.query_mut(&id)) {
                        q.finish();
                    }
                } else {
                    self.queries.insert(
                        (dht, id),
                        QueryReply::Session {
                            session,
                            cid,
                            found,
                        },
                    );
                }
            }
            other => {
                self.queries.insert((dht, id), other);
            }
        }
    }

    fn on_event(&mut self, swarm: &mut Swarm<Behaviour>, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                self.listen_addrs.push(address);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs.retain(|a| a != &address);
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                addresses,
            } => {
                self.listen_addrs.retain(|a| !addresses.contains(a));
                if let Some(relay) = self.relay_listeners.remove(&listener_id) {
                    tracing::info!(%relay, ?reason, "relay reservation ended; retrying later");
                    self.relay_retry_at =
                        Some(std::time::Instant::now() + super::relay::RELAY_RESERVATION_RETRY);
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                tracing::debug!(peer = %peer_id, addr = %endpoint.get_remote_address(), "connected");
                let entry = self.peers.entry(peer_id).or_default();
                entry.0 += 1;
                entry.1.addr = Some(endpoint.get_remote_address().clone());
                self.peering.connected(&peer_id);
                if let Some((_, reply)) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => {
                tracing::debug!(peer = %peer_id, ?cause, "connection closed");
                if num_established == 0 {
                    self.peers.remove(&peer_id);
                    self.relay_reservations.retain(|r| *r != peer_id);
                    self.peering.disconnected(&peer_id);
                } else if let Some(entry) = self.peers.get_mut(&peer_id) {
                    entry.0 = num_established as usize;
                }
                if let Some((addr, reply)) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Err(NetError::Dial {
                        addr,
                        reason: "connection closed".into(),
                    }));
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                error,
                ..
            } => {
                if let Some((addr, reply)) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Err(NetError::Dial {
                        addr,
                        reason: error.to_string(),
                    }));
                }
            }
            SwarmEvent::IncomingConnectionError {
                error,
                send_back_addr,
                ..
            } => {
                tracing::debug!(from = %send_back_addr, %error, "incoming connection refused");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => self.on_identify(swarm, peer_id, info),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                result: Ok(rtt),
                ..
            })) => {
                if let Some((_, info)) = self.peers.get_mut(&peer) {
                    info.rtt = Some(rtt);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id,
                result,
                step,
                ..
            })) => self.on_kad_query(swarm, Dht::Wan, id, result, step.last),
            SwarmEvent::Behaviour(BehaviourEvent::KadLan(
                kad::Event::OutboundQueryProgressed {
                    id, result, step, ..
                },
            )) => self.on_kad_query(swarm, Dht::Lan, id, result, step.last),
            SwarmEvent::Behaviour(BehaviourEvent::Bitswap(e)) => self.on_bitswap(swarm, e),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                message,
                ..
            })) => self.on_gossip(message),
            SwarmEvent::Behaviour(BehaviourEvent::ClusterStatus(e)) => self.on_cluster_status(e),
            SwarmEvent::Behaviour(BehaviourEvent::Autonat(e)) => self.on_autonat(swarm, e),
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(e)) => self.on_relay_client(e),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(e)) => on_mdns(swarm, e),
            _ => {}
        }
    }

    /// Listens on `<relay>/p2p-circuit` for every static relay without a live listener.
    fn reserve_on_relays(&mut self, swarm: &mut Swarm<Behaviour>) {
        self.relay_retry_at = None;
        for relay in self.relays.clone() {
            if self.relay_listeners.values().any(|r| *r == relay) {
                continue;
            }
            let listen = super::relay::listen_addr(&relay)
                .map_err(|e| e.to_string())
                .and_then(|a| swarm.listen_on(a).map_err(|e| e.to_string()));
            match listen {
                Ok(id) => {
                    self.relay_listeners.insert(id, relay);
                }
                Err(e) => tracing::warn!(%relay, error = %e, "relay reservation not started"),
            }
        }
    }

    fn on_autonat(&mut self, swarm: &mut Swarm<Behaviour>, event: libp2p::autonat::Event) {
        let libp2p::autonat::Event::StatusChanged { old, new } = event else {
            return;
        };
        let now = super::autonat::Reachability::from(&new);
        tracing::info!(from = ?old, to = ?new, "reachability changed (AutoNAT)");
        self.reachability.set(now);
        if self.kad_follows_reachability {
            let mode = if super::autonat::kad_server_for(now) {
                kad::Mode::Server
            } else {
                kad::Mode::Client
            };
            tracing::info!(?mode, "DHT mode follows reachability");
            swarm.behaviour_mut().kad.set_mode(Some(mode));
        }
    }

    fn on_relay_client(&mut self, event: libp2p::relay::client::Event) {
        match event {
            libp2p::relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            } => {
                tracing::info!(relay = %relay_peer_id, renewal, "relay reservation accepted");
                if !self.relay_reservations.contains(&relay_peer_id) {
                    self.relay_reservations.push(relay_peer_id);
                }
            }
            other => tracing::debug!(event = ?other, "relay client"),
        }
    }

    fn on_kad_query(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        dht: Dht,
        id: QueryId,
        result: QueryResult,
        last: bool,
    ) {
        match result {
            QueryResult::GetProviders(r) => self.on_providers(swarm, dht, id, r, last),
            other => self.on_query(swarm, dht, id, other, last),
        }
    }

    fn on_identify(&mut self, swarm: &mut Swarm<Behaviour>, peer: PeerId, info: identify::Info) {
        let mut listen_addrs = info.listen_addrs;
        listen_addrs.truncate(PEER_LISTEN_ADDRS_MAX);
        let speaks_kad = info.protocols.contains(&KAD_PROTOCOL);
        if speaks_kad {
            for addr in &listen_addrs {
                swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
            }
        }
        let connected = self.peers.get(&peer).and_then(|(_, i)| i.addr.clone());
        let lan = connected.is_some_and(|c| super::behaviour::lan_admits(&info.protocols, &c));
        if let (true, Some(k)) = (lan, swarm.behaviour_mut().kad_lan.as_mut()) {
            tracing::debug!(%peer, "admitted to the LAN DHT");
            for addr in listen_addrs
                .iter()
                .filter(|a| super::behaviour::is_lan_addr(a))
            {
                k.add_address(&peer, addr.clone());
            }
        }
        if let Some((_, known)) = self.peers.get_mut(&peer) {
            tracing::debug!(%peer, agent = %info.agent_version, "identified");
            known.agent_version = Some(info.agent_version);
            known.public_key = info.public_key.encode_protobuf();
            known.protocol_version = Some(info.protocol_version);
            known.protocols = info
                .protocols
                .iter()
                .take(PEER_PROTOCOLS_MAX)
                .map(|p| p.to_string())
                .collect();
            known.listen_addrs = listen_addrs;
        }
    }

    /// A joined part ended with `result`.
    fn joined_part(&mut self, dht: Dht, id: QueryId, result: Result<Vec<kad::PeerInfo>, NetError>) {
        if let Some(QueryReply::Joined(join)) = self.queries.remove(&(dht, id)) {
            if let Some(j) = self.joins.get_mut(&join) {
                j.part(result);
            }
            self.end_part(join, dht, id);
        }
    }

    fn on_query(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        dht: Dht,
        id: QueryId,
        result: QueryResult,
        last: bool,
    ) {
        match result {
            QueryResult::Bootstrap(r) => {
                let failed = r.is_err();
                if last || failed {
                    let r = r
                        .map(|_| Vec::new())
                        .map_err(|e| NetError::Query(e.to_string()));
                    self.joined_part(dht, id, r);
                }
            }
            QueryResult::GetClosestPeers(r) => match self.queries.remove(&(dht, id)) {
                Some(QueryReply::Joined(join)) => {
                    self.queries.insert((dht, id), QueryReply::Joined(join));
                    let r = r
                        .map(|ok| ok.peers)
                        .map_err(|e| NetError::Query(e.to_string()));
                    self.joined_part(dht, id, r);
                }
                Some(QueryReply::Resolve { session, cid, peer }) => {
                    let addrs = match r {
                        Ok(ok) => ok.peers,
                        Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                    }
                    .into_iter()
                    .find(|p| p.peer_id == peer)
                    .map(|p| p.addrs)
                    .unwrap_or_default();
                    if addrs.is_empty() {
                        tracing::debug!(%peer, "provider not found in the DHT");
                    } else {
                        swarm.behaviour_mut().bitswap.add_addresses(peer, addrs);
                        swarm
                            .behaviour_mut()
                            .bitswap
                            .providers_found(session, cid, vec![peer]);
                    }
                }
                Some(other) => {
                    self.queries.insert((dht, id), other);
                }
                None => {}
            },
            _ => {}
        }
    }
}
