//! [`ClusterHandle`]: the public, async face of a node's cluster service (the REST API, the
//! `cluster` CLI through the daemon, the harness and tests all go through it).
//!
//! The handle is cheap to clone; it sends commands over a bounded channel
//! ([`CLUSTER_COMMAND_QUEUE_LEN`]) to the service task, which owns the replica, the allocator
//! and the tracker, and answers over a oneshot. Once the service stops, every call returns
//! [`ClusterError::Closed`].
//!
//! Types are the cluster-sync ones wherever they exist: a pin's options are a [`PinSpec`]
//! (its `allocations` are chosen by the allocator, whatever the caller put there), states are
//! the tracker's [`PinState`] plus [`TrackerStatus::Unpinned`] and
//! [`TrackerStatus::Unknown`] for peers that did not answer.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use cid::Cid;
use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot};

pub use ipfs_kit_cluster_sync::allocator::AllocError;
pub use ipfs_kit_cluster_sync::export::ExportError;
pub use ipfs_kit_cluster_sync::tracker::PinState;
pub use ipfs_kit_cluster_sync::{Pin, PinMode, PinSpec, PinSpecError};

use crate::config::Role;

/// Capacity of the command channel from handles to the cluster service.
pub const CLUSTER_COMMAND_QUEUE_LEN: usize = 64;

/// Errors of cluster operations.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Pins and unpins are accepted by masters only (workers follow the pinset).
    #[error("this peer is a {0}: only a master accepts pin and unpin requests")]
    NotAMaster(Role),
    /// This node runs no cluster service (a leecher, or the cluster is off).
    #[error("this node is not in a cluster")]
    NotInCluster,
    #[error("invalid pin options: {0}")]
    InvalidPin(#[from] PinSpecError),
    /// Not enough live peers to satisfy `replication_factor_min`.
    #[error("allocation: {0}")]
    Allocation(#[from] AllocError),
    #[error("{0} is not in the cluster pinset")]
    NotPinned(Cid),
    #[error("state export/import: {0}")]
    Export(#[from] ExportError),
    #[error("cluster store: {0}")]
    Store(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A [`ClusterHandle::pin_many`] call over [`PIN_MANY_PINS_MAX`].
    #[error("{0} pins in one call, more than {PIN_MANY_PINS_MAX}")]
    TooManyPins(usize),
    /// The cluster service has stopped.
    #[error("the cluster service has stopped")]
    Closed,
}

/// A peer's state for one CID: ipfs-cluster's tracker states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrackerStatus {
    /// A state the peer's tracker holds.
    Tracked(PinState),
    /// Not in the pinset (or unpinned on that peer).
    Unpinned,
    /// The peer did not answer (down, or not reachable in time).
    Unknown,
}

impl TrackerStatus {
    /// ipfs-cluster's name: `pinned`, `pin_queued`, `pinning`, `pin_error`, `unpin_queued`,
    /// `unpinning`, `unpin_error`, `remote`, `unpinned`, `cluster_error` (no answer).
    pub fn as_str(&self) -> &'static str {
        match self {
            TrackerStatus::Tracked(s) => s.as_str(),
            TrackerStatus::Unpinned => "unpinned",
            TrackerStatus::Unknown => "cluster_error",
        }
    }
}

/// One peer's view of one CID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerPinStatus {
    pub peer: PeerId,
    pub status: TrackerStatus,
    /// The last error of a `pin_error` / `unpin_error` (or why the peer did not answer).
    pub error: Option<String>,
    /// Failed attempts since the last success.
    pub attempts: u32,
    /// Unix time in milliseconds when this status was read (on that peer).
    pub ts_ms: u64,
}

/// The status of one CID across the cluster (ipfs-cluster's `GlobalPinInfo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinStatus {
    pub cid: Cid,
    /// The pin as the pinset holds it (`None`: not pinned in the cluster).
    pub pin: Option<PinSpec>,
    /// One entry per cluster peer known (live metrics or allocated), sorted by peer id.
    pub peers: Vec<PeerPinStatus>,
}

/// A cluster peer as seen from here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterPeer {
    pub peer: PeerId,
    /// True for this node.
    pub is_self: bool,
    /// In the trusted set (its pin deltas are applied).
    pub trusted: bool,
    /// Its last metric has not expired.
    pub live: bool,
    /// Free space it reported (bytes).
    pub free_bytes: u64,
    /// Tags it reported (e.g. `group`).
    pub tags: BTreeMap<String, String>,
    /// Unix time in milliseconds when its last metric expires (0: none received).
    pub expire_at_ms: u64,
}

/// What `GET /id` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterInfo {
    pub peer: PeerId,
    pub role: Role,
    /// Trusted peers (always includes this node).
    pub trusted_peers: Vec<PeerId>,
    /// Cluster pins in the local replica.
    pub pins: usize,
    /// Current heads of the Merkle-CRDT.
    pub heads: usize,
    /// The gossipsub topic of the cluster.
    pub topic: String,
    /// The latest snapshot made or installed here (`None`: none yet).
    pub snapshot: Option<Cid>,
    /// Delta bodies held in the store (compaction drops the old ones).
    pub stored_deltas: usize,
}

/// Most pins one [`ClusterHandle::pin_many`] call takes (one command on the service task;
/// larger sets go in several calls, so other commands are not starved).
pub const PIN_MANY_PINS_MAX: usize = 10_000;

/// A digest of the local pinset: equal digests mean identical states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateDigest {
    /// Pins in the state.
    pub pins: usize,
    /// SHA-256 of the state's JSON-lines export (sorted by CID, every field of every pin).
    pub sha256: [u8; 32],
}

/// Commands the service answers (crate-private: the handle is the API).
#[derive(Debug)]
pub(crate) enum Command {
    Info(oneshot::Sender<ClusterInfo>),
    Peers(oneshot::Sender<Vec<ClusterPeer>>),
    Pin(Cid, PinSpec, oneshot::Sender<Result<Pin, ClusterError>>),
    PinMany(
        Vec<(Cid, PinSpec)>,
        oneshot::Sender<Result<usize, ClusterError>>,
    ),
    Compact(oneshot::Sender<Option<Cid>>),
    Digest(oneshot::Sender<Result<StateDigest, ClusterError>>),
    Unpin(Cid, oneshot::Sender<Result<(), ClusterError>>),
    Get(Cid, oneshot::Sender<Option<PinSpec>>),
    Allocations(Option<Cid>, oneshot::Sender<Vec<Pin>>),
    Status(Option<Cid>, oneshot::Sender<Vec<PinStatus>>),
    Recover(Option<Cid>, oneshot::Sender<Vec<PinStatus>>),
    Export(oneshot::Sender<Result<Vec<u8>, ClusterError>>),
    Import(Vec<Pin>, oneshot::Sender<Result<usize, ClusterError>>),
}

/// A handle to a running cluster service. Cloneable; it does not keep the service alive.
#[derive(Clone, Debug)]
pub struct ClusterHandle {
    pub(crate) peer: PeerId,
    pub(crate) role: Role,
    pub(crate) commands: mpsc::Sender<Command>,
}

impl ClusterHandle {
    /// This node's peer id (the key that signs its deltas).
    pub fn id(&self) -> PeerId {
        self.peer
    }

    /// `master` or `worker`.
    pub fn role(&self) -> Role {
        self.role
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, ClusterError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| ClusterError::Closed)?;
        rx.await.map_err(|_| ClusterError::Closed)
    }

    /// Identity, role, trust and pinset size (`GET /id`).
    pub async fn info(&self) -> Result<ClusterInfo, ClusterError> {
        self.ask(Command::Info).await
    }

    /// Cluster peers known here (self, trusted peers, peers whose metrics arrived), sorted by
    /// peer id (`GET /peers`).
    pub async fn peers(&self) -> Result<Vec<ClusterPeer>, ClusterError> {
        self.ask(Command::Peers).await
    }

    /// Pins `cid` cluster-wide (`POST /pins/{cid}`). Master only. The allocator fills
    /// `spec.allocations` (user allocations first); returns the pin as written.
    pub async fn pin(&self, cid: Cid, spec: PinSpec) -> Result<Pin, ClusterError> {
        self.ask(|tx| Command::Pin(cid, spec, tx)).await?
    }

    /// Pins many CIDs cluster-wide in one command (at most [`PIN_MANY_PINS_MAX`]); master
    /// only. Each is allocated as by [`ClusterHandle::pin`], balanced over the whole call. The
    /// replica batches them into deltas as usual. Returns the count written; on the first
    /// invalid pin or failed allocation, the pins before it are written and the error returned.
    pub async fn pin_many(&self, pins: Vec<(Cid, PinSpec)>) -> Result<usize, ClusterError> {
        if pins.len() > PIN_MANY_PINS_MAX {
            return Err(ClusterError::TooManyPins(pins.len()));
        }
        self.ask(|tx| Command::PinMany(pins, tx)).await?
    }

    /// Snapshots the pinset now and drops the old delta bodies (compaction also runs on its
    /// own after `compact_deltas_threshold` stored deltas). Returns the snapshot's root.
    pub async fn compact(&self) -> Result<Option<Cid>, ClusterError> {
        self.ask(Command::Compact).await
    }

    /// A digest of the local pinset (costs an export: for comparing replicas, not a hot path).
    pub async fn state_digest(&self) -> Result<StateDigest, ClusterError> {
        self.ask(Command::Digest).await?
    }

    /// Unpins `cid` cluster-wide (`DELETE /pins/{cid}`). Master only;
    /// [`ClusterError::NotPinned`] when the pinset does not hold it.
    pub async fn unpin(&self, cid: Cid) -> Result<(), ClusterError> {
        self.ask(|tx| Command::Unpin(cid, tx)).await?
    }

    /// The pin as the local replica holds it (`None`: not pinned).
    pub async fn get(&self, cid: Cid) -> Result<Option<PinSpec>, ClusterError> {
        self.ask(|tx| Command::Get(cid, tx)).await
    }

    /// Pins with their allocations: all (sorted by CID), or the one given
    /// (`GET /allocations[/{cid}]`).
    pub async fn allocations(&self, cid: Option<Cid>) -> Result<Vec<Pin>, ClusterError> {
        self.ask(|tx| Command::Allocations(cid, tx)).await
    }

    /// The status of `cid` on every cluster peer (`GET /pins/{cid}`).
    pub async fn status(&self, cid: Cid) -> Result<PinStatus, ClusterError> {
        let mut v = self.ask(|tx| Command::Status(Some(cid), tx)).await?;
        Ok(v.pop().unwrap_or(PinStatus {
            cid,
            pin: None,
            peers: Vec::new(),
        }))
    }

    /// The status of every pin of the pinset on every cluster peer, sorted by CID
    /// (`GET /pins`).
    pub async fn status_all(&self) -> Result<Vec<PinStatus>, ClusterError> {
        self.ask(|tx| Command::Status(None, tx)).await
    }

    /// Retries the failed pins/unpins of this peer: of `cid`, or all (`POST /pins/{cid}/recover`,
    /// `POST /pins/recover`). Returns the statuses after queueing.
    pub async fn recover(&self, cid: Option<Cid>) -> Result<Vec<PinStatus>, ClusterError> {
        self.ask(|tx| Command::Recover(cid, tx)).await
    }

    /// Writes the pinset as JSON lines (`cluster-sync` export format); returns the pin count.
    pub async fn export_state<W: Write + Send + 'static>(
        &self,
        mut out: W,
    ) -> Result<usize, ClusterError> {
        let bytes = self.ask(Command::Export).await??;
        let lines = bytes.iter().filter(|b| **b == b'\n').count();
        tokio::task::spawn_blocking(move || -> Result<(), std::io::Error> {
            out.write_all(&bytes)?;
            out.flush()
        })
        .await
        .map_err(|e| ClusterError::Io(std::io::Error::other(e.to_string())))??;
        Ok(lines)
    }

    /// Reads pins written by [`ClusterHandle::export_state`] (every line validated before any
    /// is applied) and pins them all; master only. Returns the pin count.
    pub async fn import_state<R: BufRead + Send + 'static>(
        &self,
        input: R,
    ) -> Result<usize, ClusterError> {
        if self.role != Role::Master {
            return Err(ClusterError::NotAMaster(self.role));
        }
        let pins =
            tokio::task::spawn_blocking(move || ipfs_kit_cluster_sync::export::import(input))
                .await
                .map_err(|e| ClusterError::Io(std::io::Error::other(e.to_string())))??;
        self.ask(|tx| Command::Import(pins, tx)).await?
    }
}
