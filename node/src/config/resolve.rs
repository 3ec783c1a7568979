//! Validation: a [`Config`] becomes the typed [`Settings`] a node runs with, role defaults
//! filled in, or a [`ConfigError`] naming the key at fault.

use super::{
    ConfigError, ProvideStrategy, Role, RoutingMode, API_TOKEN_BYTES_MAX, API_TOKEN_BYTES_MIN,
    CLUSTER_METRIC_TTL_SECS_MAX, IDLE_TIMEOUT_SECS_MAX, LIST_ENTRIES_MAX, SWARM_MEMORY_BYTES_MIN,
};
use crate::config::Config;
use multiaddr::{Multiaddr, PeerId, Protocol};
use std::net::SocketAddr;
use std::time::Duration;

/// The DHT mode a node runs in, `routing.mode` resolved against the role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DhtMode {
    /// Queries only; never stores records for others.
    Client,
    /// Server while AutoNAT confirms public reachability, client otherwise (kubo's `dht`).
    ByReachability,
    /// Always a server.
    Server,
}

/// Connection and memory limits, `[swarm]` resolved against the role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwarmLimits {
    pub conns_high: u32,
    pub conns_low: u32,
    pub memory_max_bytes: u64,
    pub idle_timeout: Duration,
}

impl SwarmLimits {
    /// The defaults of a role. A worker has kubo's connection manager watermarks
    /// (`Swarm.ConnMgr` LowWater 32, HighWater 96, kubo docs/config.md); a leecher a third of
    /// them and a memory cap that fits a phone; a master twice a worker's, since every peer of
    /// the cluster keeps a connection to it.
    pub fn for_role(role: Role) -> Self {
        const MIB: u64 = 1024 * 1024;
        match role {
            Role::Leecher => Self {
                conns_high: 32,
                conns_low: 8,
                memory_max_bytes: 128 * MIB,
                idle_timeout: Duration::from_secs(30),
            },
            Role::Worker => Self {
                conns_high: 96,
                conns_low: 32,
                memory_max_bytes: 512 * MIB,
                idle_timeout: Duration::from_secs(60),
            },
            Role::Master => Self {
                conns_high: 192,
                conns_low: 64,
                memory_max_bytes: 1024 * MIB,
                idle_timeout: Duration::from_secs(60),
            },
        }
    }
}

/// A validated configuration with every default resolved: what the node runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub role: Role,
    pub swarm_addrs: Vec<Multiaddr>,
    /// Each ends in `/p2p/<peer id>`.
    pub bootstrap: Vec<Multiaddr>,
    pub api_addr: SocketAddr,
    pub gateway_addr: SocketAddr,
    /// Required (and then checked on every request) when either address is not loopback.
    pub api_token: Option<String>,
    pub sync_blocks: bool,
    pub dht_mode: DhtMode,
    pub limits: SwarmLimits,
    pub provide: ProvideStrategy,
    pub cluster_secret: Option<[u8; 32]>,
    pub cluster_trusted_peers: Vec<PeerId>,
    /// The cluster REST API; like the RPC API, a non-loopback address needs `api_token`.
    pub cluster_api_addr: SocketAddr,
    /// `cluster.metric_ttl_secs`; `None`: the cluster service's default.
    pub cluster_metric_ttl: Option<Duration>,
    /// The network features beyond the defaults: relay client and server, AutoNAT, mDNS.
    pub network: NetworkSettings,
    /// `cluster.tags`, checked against the metric's bounds.
    pub cluster_tags: std::collections::BTreeMap<String, String>,
    /// The tag keys of `cluster.allocate_by`, most significant first.
    pub cluster_spread_tags: Vec<String>,
}

/// `swarm.relay_*`, `swarm.autonat_only_global_ips` and `discovery.mdns`, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkSettings {
    pub relay_client: bool,
    /// Each ends in `/p2p/<relay id>`.
    pub relays: Vec<Multiaddr>,
    pub relay_service: bool,
    pub autonat_only_global_ips: bool,
    pub mdns: bool,
    /// `routing.lan_dht`.
    pub lan_dht: bool,
    /// `dns.resolvers`; empty: the system's.
    pub dns_resolvers: Vec<SocketAddr>,
    /// `peering.peers`, each naming a peer.
    pub peering: Vec<Multiaddr>,
}

impl Config {
    /// The network features with the role's defaults: relay client on, relay service on a
    /// master only, AutoNAT from global addresses only, no mDNS.
    pub fn network_defaults(&self) -> (bool, bool, bool) {
        (
            self.swarm.relay_client.unwrap_or(true),
            self.swarm
                .relay_service
                .unwrap_or(self.role == Role::Master),
            self.swarm.autonat_only_global_ips.unwrap_or(true),
        )
    }

    /// The DHT mode: `routing.mode`, or with `auto` the role's (leecher: client; worker and
    /// master: server when reachable).
    pub fn dht_mode(&self) -> DhtMode {
        match (self.routing.mode, self.role) {
            (RoutingMode::Auto, Role::Leecher) | (RoutingMode::Dhtclient, _) => DhtMode::Client,
            (RoutingMode::Auto, _) | (RoutingMode::Dht, _) => DhtMode::ByReachability,
            (RoutingMode::Dhtserver, _) => DhtMode::Server,
        }
    }

    /// The swarm limits: the `[swarm]` values set, the role's defaults for the others.
    pub fn swarm_limits(&self) -> SwarmLimits {
        let d = SwarmLimits::for_role(self.role);
        // A watermark left to its default follows the one that is set, so that setting only
        // `conns_high = 50` on a master (default low 64) means 50/50, not an error.
        let (conns_high, conns_low) = match (self.swarm.conns_high, self.swarm.conns_low) {
            (Some(high), Some(low)) => (high, low),
            (Some(high), None) => (high, d.conns_low.min(high)),
            (None, Some(low)) => (d.conns_high.max(low), low),
            (None, None) => (d.conns_high, d.conns_low),
        };
        SwarmLimits {
            conns_high,
            conns_low,
            memory_max_bytes: self.swarm.memory_max_bytes.unwrap_or(d.memory_max_bytes),
            idle_timeout: self
                .swarm
                .idle_timeout_secs
                .map(Duration::from_secs)
                .unwrap_or(d.idle_timeout),
        }
    }

    /// This config with the role's defaults written into the unset `[swarm]` fields: what
    /// `config show` prints. (`routing.mode = "auto"` stays: it is a value, not a gap.)
    pub fn effective(&self) -> Config {
        let limits = self.swarm_limits();
        let mut c = self.clone();
        c.swarm.conns_high = Some(limits.conns_high);
        c.swarm.conns_low = Some(limits.conns_low);
        c.swarm.memory_max_bytes = Some(limits.memory_max_bytes);
        c.swarm.idle_timeout_secs = Some(limits.idle_timeout.as_secs());
        let (relay_client, relay_service, only_global) = self.network_defaults();
        c.swarm.relay_client = Some(relay_client);
        c.swarm.relay_service = Some(relay_service);
        c.swarm.autonat_only_global_ips = Some(only_global);
        c
    }

    /// Validates every value and resolves the defaults.
    pub fn resolve(&self) -> Result<Settings, ConfigError> {
        let swarm_addrs = multiaddrs("addresses.swarm", &self.addresses.swarm)?;
        let bootstrap = bootstrap(&self.bootstrap)?;
        let api_addr = socket_addr("addresses.api", &self.addresses.api)?;
        let gateway_addr = socket_addr("addresses.gateway", &self.addresses.gateway)?;
        let cluster_api_addr = socket_addr("cluster.api", &self.cluster.api)?;
        let api_token = match &self.api.token {
            Some(t) => {
                let ok = (API_TOKEN_BYTES_MIN..=API_TOKEN_BYTES_MAX).contains(&t.len())
                    && !t.chars().any(char::is_whitespace);
                if !ok {
                    return Err(ConfigError::BadToken {
                        min: API_TOKEN_BYTES_MIN,
                        max: API_TOKEN_BYTES_MAX,
                    });
                }
                Some(t.clone())
            }
            None => None,
        };
        if api_token.is_none() {
            for (key, addr) in [
                ("addresses.api", api_addr),
                ("addresses.gateway", gateway_addr),
                ("cluster.api", cluster_api_addr),
            ] {
                if !addr.ip().is_loopback() {
                    return Err(ConfigError::TokenRequired {
                        key: key.into(),
                        addr: addr.to_string(),
                    });
                }
            }
        }
        let limits = self.swarm_limits();
        check_limits(&limits)?;
        let cluster_secret = match &self.cluster.secret {
            Some(s) => Some(cluster_secret(s)?),
            None => None,
        };
        if let Some(s3) = &self.tiers.s3 {
            check_tier_s3(s3)?;
        }
        let cluster_metric_ttl = match self.cluster.metric_ttl_secs {
            Some(secs) if secs == 0 || secs > CLUSTER_METRIC_TTL_SECS_MAX => {
                return Err(ConfigError::BadValue {
                    key: "cluster.metric_ttl_secs".into(),
                    message: format!("{secs} is not in 1..={CLUSTER_METRIC_TTL_SECS_MAX}"),
                })
            }
            Some(secs) => Some(Duration::from_secs(secs)),
            None => None,
        };
        let cluster_trusted_peers = peer_ids("cluster.trusted_peers", &self.cluster.trusted_peers)?;
        let network = self.network_settings()?;
        let cluster_tags = cluster_tags(&self.cluster.tags)?;
        let cluster_spread_tags = allocate_by(&self.cluster.allocate_by)?;
        Ok(Settings {
            role: self.role,
            swarm_addrs,
            bootstrap,
            api_addr,
            gateway_addr,
            api_token,
            sync_blocks: self.datastore.sync,
            dht_mode: self.dht_mode(),
            limits,
            provide: self.provide.strategy,
            cluster_secret,
            cluster_trusted_peers,
            cluster_api_addr,
            cluster_metric_ttl,
            network,
            cluster_tags,
            cluster_spread_tags,
        })
    }
}

impl Config {
    fn network_settings(&self) -> Result<NetworkSettings, ConfigError> {
        let (relay_client, relay_service, autonat_only_global_ips) = self.network_defaults();
        Ok(NetworkSettings {
            relay_client,
            relays: relays(&self.swarm.relays)?,
            relay_service,
            autonat_only_global_ips,
            mdns: self.discovery.mdns,
            lan_dht: self.routing.lan_dht,
            dns_resolvers: {
                check_count("dns.resolvers", self.dns.resolvers.len())?;
                self.dns
                    .resolvers
                    .iter()
                    .map(|r| socket_addr("dns.resolvers", r))
                    .collect::<Result<_, _>>()?
            },
            peering: peer_addrs("peering.peers", &self.peering.peers)?,
        })
    }
}

/// Parses `swarm.relays`: at most `STATIC_RELAYS_MAX` multiaddrs, each ending in
/// `/p2p/<relay id>` and not itself a circuit.
pub(super) fn relays(values: &[String]) -> Result<Vec<Multiaddr>, ConfigError> {
    use crate::net::relay::STATIC_RELAYS_MAX;
    if values.len() > STATIC_RELAYS_MAX {
        return Err(ConfigError::TooManyEntries {
            key: "swarm.relays".into(),
            count: values.len(),
            max: STATIC_RELAYS_MAX,
        });
    }
    let addrs = multiaddrs("swarm.relays", values)?;
    for (addr, text) in addrs.iter().zip(values) {
        if let Err(e) = crate::net::relay::listen_addr(addr) {
            return Err(ConfigError::BadValue {
                key: "swarm.relays".into(),
                message: format!("{text:?}: {e}"),
            });
        }
    }
    Ok(addrs)
}

/// `[tiers.s3]`: a bucket name and, when set, an http(s) endpoint.
fn check_tier_s3(s3: &super::TierS3) -> Result<(), ConfigError> {
    let bad = |key: &str, message: &str| ConfigError::BadValue {
        key: key.into(),
        message: message.into(),
    };
    if s3.bucket.trim().is_empty() {
        return Err(bad("tiers.s3.bucket", "must name a bucket"));
    }
    if let Some(ep) = &s3.endpoint {
        if !(ep.starts_with("http://") || ep.starts_with("https://")) {
            return Err(bad(
                "tiers.s3.endpoint",
                "must be an http:// or https:// URL",
            ));
        }
    }
    Ok(())
}

fn check_count(key: &str, count: usize) -> Result<(), ConfigError> {
    if count > LIST_ENTRIES_MAX {
        return Err(ConfigError::TooManyEntries {
            key: key.into(),
            count,
            max: LIST_ENTRIES_MAX,
        });
    }
    Ok(())
}

/// Parses `ip:port` (no host names: binding needs an address, and resolving one at startup
/// would make the bound address depend on DNS).
pub(super) fn socket_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| ConfigError::BadSocketAddr {
            key: key.into(),
            value: value.into(),
        })
}

/// Parses a list of multiaddrs.
pub(super) fn multiaddrs(key: &str, values: &[String]) -> Result<Vec<Multiaddr>, ConfigError> {
    check_count(key, values.len())?;
    values
        .iter()
        .map(|v| {
            v.trim()
                .parse::<Multiaddr>()
                .map_err(|e| ConfigError::BadMultiaddr {
                    key: key.into(),
                    value: v.clone(),
                    reason: e.to_string(),
                })
        })
        .collect()
}

/// Parses the bootstrap list: multiaddrs that each name a peer (as kubo requires).
pub(super) fn bootstrap(values: &[String]) -> Result<Vec<Multiaddr>, ConfigError> {
    peer_addrs("bootstrap", values)
}

/// Parses a list of multiaddrs that each name a peer (`/p2p/<id>`).
fn peer_addrs(key: &str, values: &[String]) -> Result<Vec<Multiaddr>, ConfigError> {
    let addrs = multiaddrs(key, values)?;
    for (addr, text) in addrs.iter().zip(values) {
        if !addr.iter().any(|p| matches!(p, Protocol::P2p(_))) {
            return Err(match key {
                "bootstrap" => ConfigError::BootstrapWithoutPeerId(text.clone()),
                _ => ConfigError::BadValue {
                    key: key.into(),
                    message: format!("{text:?} has no /p2p/<peer id> component"),
                },
            });
        }
    }
    Ok(addrs)
}

fn check_limits(l: &SwarmLimits) -> Result<(), ConfigError> {
    let bad = |key, value, reason: &str| ConfigError::BadLimit {
        key,
        value,
        reason: reason.into(),
    };
    if l.conns_high == 0 {
        return Err(bad("conns_high", 0, "must be at least 1"));
    }
    if l.conns_low > l.conns_high {
        return Err(bad(
            "conns_low",
            u64::from(l.conns_low),
            &format!("must not exceed conns_high ({})", l.conns_high),
        ));
    }
    if l.memory_max_bytes < SWARM_MEMORY_BYTES_MIN {
        return Err(bad(
            "memory_max_bytes",
            l.memory_max_bytes,
            &format!("must be at least {SWARM_MEMORY_BYTES_MIN}"),
        ));
    }
    let idle_secs = l.idle_timeout.as_secs();
    if idle_secs > IDLE_TIMEOUT_SECS_MAX {
        return Err(bad(
            "idle_timeout_secs",
            idle_secs,
            &format!("must be at most {IDLE_TIMEOUT_SECS_MAX}"),
        ));
    }
    Ok(())
}

/// Parses a list of peer ids (`cluster.trusted_peers`).
pub(super) fn peer_ids(key: &str, values: &[String]) -> Result<Vec<PeerId>, ConfigError> {
    check_count(key, values.len())?;
    values
        .iter()
        .map(|p| {
            p.trim()
                .parse::<PeerId>()
                .map_err(|_| ConfigError::BadPeerId(p.clone()))
        })
        .collect()
}

/// Checks `cluster.tags` against what a metric may carry (`METRIC_TAGS_MAX` tags, keys and
/// values of at most `METRIC_TAG_BYTES_MAX` bytes, keys not empty).
pub(super) fn cluster_tags(
    tags: &std::collections::BTreeMap<String, String>,
) -> Result<std::collections::BTreeMap<String, String>, ConfigError> {
    use ipfs_kit_cluster_sync::allocator::{METRIC_TAGS_MAX, METRIC_TAG_BYTES_MAX};
    let bad = |message: String| ConfigError::BadValue {
        key: "cluster.tags".into(),
        message,
    };
    if tags.len() > METRIC_TAGS_MAX {
        return Err(bad(format!(
            "{} tags, at most {METRIC_TAGS_MAX}",
            tags.len()
        )));
    }
    for (k, v) in tags {
        if k.trim().is_empty() {
            return Err(bad("a tag key is empty".into()));
        }
        if k.len() > METRIC_TAG_BYTES_MAX || v.len() > METRIC_TAG_BYTES_MAX {
            return Err(bad(format!(
                "tag {k:?}: keys and values are at most {METRIC_TAG_BYTES_MAX} bytes"
            )));
        }
    }
    Ok(tags.clone())
}

/// Parses `cluster.allocate_by` (ipfs-cluster's balanced allocator order) into the tag keys
/// to spread over: `tag:<key>` entries first, then at most a final `freespace` (free space
/// always breaks the remaining ties, so nothing may follow it).
pub(super) fn allocate_by(values: &[String]) -> Result<Vec<String>, ConfigError> {
    use ipfs_kit_cluster_sync::allocator::{METRIC_TAGS_MAX, METRIC_TAG_BYTES_MAX};
    let bad = |message: String| ConfigError::BadValue {
        key: "cluster.allocate_by".into(),
        message,
    };
    if values.len() > METRIC_TAGS_MAX + 1 {
        return Err(bad(format!(
            "{} entries, at most {}",
            values.len(),
            METRIC_TAGS_MAX + 1
        )));
    }
    let mut keys: Vec<String> = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let v = v.trim();
        if v == "freespace" {
            if i + 1 != values.len() {
                return Err(bad("`freespace` must be the last entry".into()));
            }
        } else if let Some(key) = v.strip_prefix("tag:") {
            if key.is_empty() || key.len() > METRIC_TAG_BYTES_MAX {
                return Err(bad(format!(
                    "{v:?}: a tag key of 1..={METRIC_TAG_BYTES_MAX} bytes"
                )));
            }
            if !keys.iter().any(|k| k == key) {
                keys.push(key.to_string());
            }
        } else {
            return Err(bad(format!("{v:?}: expected `tag:<key>` or `freespace`")));
        }
    }
    Ok(keys)
}

/// Parses `cluster.secret`: 32 bytes as 64 hex characters.
pub(crate) fn cluster_secret(s: &str) -> Result<[u8; 32], ConfigError> {
    let bytes = hex::decode(s.trim()).map_err(|_| ConfigError::BadClusterSecret)?;
    bytes.try_into().map_err(|_| ConfigError::BadClusterSecret)
}
