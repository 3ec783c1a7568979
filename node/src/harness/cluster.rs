//! The testnet's cluster mode: every node gets a role, masters and workers run a cluster
//! service (real gossipsub and bitswap on loopback), and the trusted set is the masters unless
//! a test says otherwise (to put an untrusted writer in the cluster).
//!
//! Set [`TestnetConfig::cluster`](super::TestnetConfig) to a [`ClusterMode`]; then
//! [`Testnet::cluster`] gives a node's [`ClusterHandle`] and [`Testnet::wait_for`] polls a
//! condition under a deadline. A stopped node's cluster stops first; a restarted one reopens its
//! store under `<node dir>/cluster`.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use ipfs_kit_cluster_sync::tracker::TrackerConfig;
use ipfs_kit_cluster_sync::ReplicaConfig;

use super::{HarnessError, Testnet};
use crate::cluster::{ClusterConfig, ClusterHandle, ClusterSetup};
use crate::config::Role;

/// Metric TTL of test clusters: a stopped peer is down after this.
pub const TEST_METRIC_TTL: Duration = Duration::from_secs(2);

/// Roles and tunables of a test cluster.
#[derive(Clone, Debug)]
pub struct ClusterMode {
    /// One per node; `Leecher` runs no cluster service.
    pub roles: Vec<Role>,
    /// Indices of the trusted peers; `None`: the masters.
    pub trusted: Option<Vec<usize>>,
    pub metric_ttl: Duration,
    pub replica: ReplicaConfig,
    /// Metric tags per node (`cluster.tags`); a node past the end has none.
    pub tags: Vec<BTreeMap<String, String>>,
    /// Tag keys the allocator spreads over (`cluster.allocate_by`'s `tag:` entries).
    pub spread_tags: Vec<String>,
    /// Free space every node reports instead of its repository's (equal values make the
    /// allocation depend on tags and load only).
    pub free_bytes: Option<u64>,
    /// Tracker settings of every node.
    pub tracker: TrackerConfig,
}

impl ClusterMode {
    /// `masters` masters (nodes `0..masters`), then `workers` workers.
    pub fn new(masters: usize, workers: usize) -> Self {
        let mut roles = vec![Role::Master; masters];
        roles.extend(std::iter::repeat_n(Role::Worker, workers));
        Self {
            roles,
            trusted: None,
            metric_ttl: TEST_METRIC_TTL,
            replica: ReplicaConfig {
                batch_delay_ms: 50,
                announce_interval_ms: 1_000,
                fetch_timeout_ms: 2_000,
                ..ReplicaConfig::default()
            },
            tags: Vec::new(),
            spread_tags: Vec::new(),
            free_bytes: None,
            tracker: TrackerConfig::default(),
        }
    }

    fn trusted_indices(&self) -> Vec<usize> {
        match &self.trusted {
            Some(t) => t.clone(),
            None => (0..self.roles.len())
                .filter(|i| self.roles[*i] == Role::Master)
                .collect(),
        }
    }
}

/// The cluster setup of node `index` before its swarm starts (`None` without cluster mode or
/// for a leecher).
pub(super) fn setup(net: &Testnet, index: usize) -> Result<Option<ClusterSetup>, HarnessError> {
    let Some(mode) = &net.config.cluster else {
        return Ok(None);
    };
    let role = mode.roles.get(index).copied().unwrap_or(Role::Leecher);
    if role == Role::Leecher {
        return Ok(None);
    }
    let trusted = mode
        .trusted_indices()
        .into_iter()
        .filter(|i| *i != index)
        .map(|i| net.peer_id(i))
        .collect::<Result<Vec<_>, _>>()?;
    let slot = net.slot(index)?;
    let mut c = ClusterConfig::new(
        role,
        slot.keypair.clone(),
        trusted,
        slot.repo.path().join("cluster"),
    )
    .with_metric_ttl(mode.metric_ttl);
    c.replica = mode.replica.clone();
    c.tags = mode.tags.get(index).cloned().unwrap_or_default();
    c.spread_tags = mode.spread_tags.clone();
    c.free_bytes = mode.free_bytes;
    c.tracker = mode.tracker.clone();
    Ok(Some(ClusterSetup::open(c)?))
}

impl Testnet {
    /// The cluster handle of a running cluster node.
    pub fn cluster(&self, index: usize) -> Result<ClusterHandle, HarnessError> {
        let slot = self.slot(index)?;
        if slot.node.is_none() {
            return Err(HarnessError::Stopped(index));
        }
        slot.cluster
            .as_ref()
            .map(|c| c.handle())
            .ok_or(HarnessError::Cluster(
                crate::cluster::ClusterError::NotInCluster,
            ))
    }

    /// Polls `done` until it is true or `after` passed ([`HarnessError::Timeout`] naming
    /// `what`).
    pub async fn wait_for<F, Fut>(
        &self,
        what: &str,
        after: Duration,
        done: F,
    ) -> Result<(), HarnessError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<bool, HarnessError>>,
    {
        self.wait(what, after, done).await
    }
}
