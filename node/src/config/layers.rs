//! The layers over the file: environment variables, then explicit flags ([`Overrides`]).
//! Each layer replaces whole values (a swarm list from the environment replaces the file's).

use super::{resolve, Config, ConfigError, Role};

/// Environment variables read by [`Config::apply_env`].
pub const ENV_ROLE: &str = "IPFS_KIT_ROLE";
pub const ENV_API: &str = "IPFS_KIT_API";
pub const ENV_GATEWAY: &str = "IPFS_KIT_GATEWAY";
/// Comma-separated multiaddrs.
pub const ENV_SWARM: &str = "IPFS_KIT_SWARM";
/// Comma-separated multiaddrs; empty for none.
pub const ENV_BOOTSTRAP: &str = "IPFS_KIT_BOOTSTRAP";
/// `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`/empty.
pub const ENV_SYNC: &str = "IPFS_KIT_SYNC";
/// The cluster REST API's address, `ip:port`.
pub const ENV_CLUSTER_API: &str = "IPFS_KIT_CLUSTER_API";
/// The cluster secret, 64 hex characters; empty for none.
pub const ENV_CLUSTER_SECRET: &str = "IPFS_KIT_CLUSTER_SECRET";
/// Comma-separated peer ids trusted to change the cluster pinset.
pub const ENV_CLUSTER_TRUSTED_PEERS: &str = "IPFS_KIT_CLUSTER_TRUSTED_PEERS";
/// Seconds a peer's metric counts (`cluster.metric_ttl_secs`).
pub const ENV_CLUSTER_METRIC_TTL_SECS: &str = "IPFS_KIT_CLUSTER_METRIC_TTL_SECS";
/// `swarm.relay_client`, a boolean.
pub const ENV_RELAY_CLIENT: &str = "IPFS_KIT_RELAY_CLIENT";
/// `swarm.relays`: comma-separated multiaddrs ending in `/p2p/<relay id>`; empty for none.
pub const ENV_RELAYS: &str = "IPFS_KIT_RELAYS";
/// `swarm.relay_service`, a boolean.
pub const ENV_RELAY_SERVICE: &str = "IPFS_KIT_RELAY_SERVICE";
/// `swarm.autonat_only_global_ips`, a boolean.
pub const ENV_AUTONAT_ONLY_GLOBAL_IPS: &str = "IPFS_KIT_AUTONAT_ONLY_GLOBAL_IPS";
/// `discovery.mdns`, a boolean.
pub const ENV_MDNS: &str = "IPFS_KIT_MDNS";
/// `routing.lan_dht`, a boolean.
pub const ENV_LAN_DHT: &str = "IPFS_KIT_LAN_DHT";
/// This peer's metric tags, `key=value` comma-separated (`group=eu,rack=2`); empty for none.
pub const ENV_CLUSTER_TAGS: &str = "IPFS_KIT_CLUSTER_TAGS";
/// The allocator's order, comma-separated (`tag:group,freespace`).
pub const ENV_CLUSTER_ALLOCATE_BY: &str = "IPFS_KIT_CLUSTER_ALLOCATE_BY";

/// Values given as flags (the daemon's `--swarm`, `--api`, `--gateway`, `init --role`,
/// `--sync`): the last layer, over the environment and the file. `None` leaves a value alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub role: Option<Role>,
    pub swarm: Option<Vec<String>>,
    pub api: Option<String>,
    pub gateway: Option<String>,
    pub bootstrap: Option<Vec<String>>,
    /// `--sync` can only turn syncing on (its absence is not "off").
    pub sync: Option<bool>,
    /// The daemon's `--cluster-api`.
    pub cluster_api: Option<String>,
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn parse_bool(value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "" | "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::BadValue {
            key: "datastore.sync".into(),
            message: format!("{value:?} is not a boolean"),
        }),
    }
}

/// A boolean variable for `key`; an error names both.
fn env_bool(var: &'static str, key: &str, value: &str) -> Result<bool, ConfigError> {
    parse_bool(value).map_err(|_| ConfigError::Env {
        var,
        source: Box::new(ConfigError::BadValue {
            key: key.into(),
            message: format!("{value:?} is not a boolean"),
        }),
    })
}

fn env_err(var: &'static str) -> impl FnOnce(ConfigError) -> ConfigError {
    move |e| ConfigError::Env {
        var,
        source: Box::new(e),
    }
}

impl Config {
    /// Applies the `IPFS_KIT_*` variables found by `env` (the process environment in the
    /// binary, a map in tests). A malformed value is an error naming the variable.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = env(ENV_ROLE) {
            self.role = v.parse().map_err(env_err(ENV_ROLE))?;
        }
        if let Some(v) = env(ENV_API) {
            resolve::socket_addr("addresses.api", &v).map_err(env_err(ENV_API))?;
            self.addresses.api = v.trim().to_string();
        }
        if let Some(v) = env(ENV_GATEWAY) {
            resolve::socket_addr("addresses.gateway", &v).map_err(env_err(ENV_GATEWAY))?;
            self.addresses.gateway = v.trim().to_string();
        }
        if let Some(v) = env(ENV_SWARM) {
            let list = split_list(&v);
            resolve::multiaddrs("addresses.swarm", &list).map_err(env_err(ENV_SWARM))?;
            self.addresses.swarm = list;
        }
        if let Some(v) = env(ENV_BOOTSTRAP) {
            let list = split_list(&v);
            resolve::bootstrap(&list).map_err(env_err(ENV_BOOTSTRAP))?;
            self.bootstrap = list;
        }
        if let Some(v) = env(ENV_SYNC) {
            self.datastore.sync = parse_bool(&v).map_err(env_err(ENV_SYNC))?;
        }
        if let Some(v) = env(ENV_RELAY_CLIENT) {
            self.swarm.relay_client = Some(env_bool(ENV_RELAY_CLIENT, "swarm.relay_client", &v)?);
        }
        if let Some(v) = env(ENV_RELAYS) {
            let list = split_list(&v);
            resolve::relays(&list).map_err(env_err(ENV_RELAYS))?;
            self.swarm.relays = list;
        }
        if let Some(v) = env(ENV_RELAY_SERVICE) {
            self.swarm.relay_service =
                Some(env_bool(ENV_RELAY_SERVICE, "swarm.relay_service", &v)?);
        }
        if let Some(v) = env(ENV_AUTONAT_ONLY_GLOBAL_IPS) {
            self.swarm.autonat_only_global_ips = Some(env_bool(
                ENV_AUTONAT_ONLY_GLOBAL_IPS,
                "swarm.autonat_only_global_ips",
                &v,
            )?);
        }
        if let Some(v) = env(ENV_MDNS) {
            self.discovery.mdns = env_bool(ENV_MDNS, "discovery.mdns", &v)?;
        }
        if let Some(v) = env(ENV_LAN_DHT) {
            self.routing.lan_dht = env_bool(ENV_LAN_DHT, "routing.lan_dht", &v)?;
        }
        if let Some(v) = env(ENV_CLUSTER_API) {
            resolve::socket_addr("cluster.api", &v).map_err(env_err(ENV_CLUSTER_API))?;
            self.cluster.api = v.trim().to_string();
        }
        if let Some(v) = env(ENV_CLUSTER_SECRET) {
            let v = v.trim();
            self.cluster.secret = if v.is_empty() {
                None
            } else {
                resolve::cluster_secret(v).map_err(env_err(ENV_CLUSTER_SECRET))?;
                Some(v.to_string())
            };
        }
        if let Some(v) = env(ENV_CLUSTER_TRUSTED_PEERS) {
            let list = split_list(&v);
            resolve::peer_ids("cluster.trusted_peers", &list)
                .map_err(env_err(ENV_CLUSTER_TRUSTED_PEERS))?;
            self.cluster.trusted_peers = list;
        }
        if let Some(v) = env(ENV_CLUSTER_METRIC_TTL_SECS) {
            let secs = v.trim().parse::<u64>().map_err(|_| ConfigError::Env {
                var: ENV_CLUSTER_METRIC_TTL_SECS,
                source: Box::new(ConfigError::BadValue {
                    key: "cluster.metric_ttl_secs".into(),
                    message: format!("{v:?} is not a number of seconds"),
                }),
            })?;
            self.cluster.metric_ttl_secs = Some(secs);
        }
        if let Some(v) = env(ENV_CLUSTER_TAGS) {
            let mut tags = std::collections::BTreeMap::new();
            for item in split_list(&v) {
                let Some((k, val)) = item.split_once('=') else {
                    return Err(ConfigError::Env {
                        var: ENV_CLUSTER_TAGS,
                        source: Box::new(ConfigError::BadValue {
                            key: "cluster.tags".into(),
                            message: format!("{item:?} is not key=value"),
                        }),
                    });
                };
                tags.insert(k.trim().to_string(), val.trim().to_string());
            }
            resolve::cluster_tags(&tags).map_err(env_err(ENV_CLUSTER_TAGS))?;
            self.cluster.tags = tags;
        }
        if let Some(v) = env(ENV_CLUSTER_ALLOCATE_BY) {
            let list = split_list(&v);
            resolve::allocate_by(&list).map_err(env_err(ENV_CLUSTER_ALLOCATE_BY))?;
            self.cluster.allocate_by = list;
        }
        Ok(())
    }

    /// Applies flags, the last layer.
    pub fn apply_overrides(&mut self, o: &Overrides) {
        if let Some(role) = o.role {
            self.role = role;
        }
        if let Some(swarm) = &o.swarm {
            self.addresses.swarm = swarm.clone();
        }
        if let Some(api) = &o.api {
            self.addresses.api = api.clone();
        }
        if let Some(gateway) = &o.gateway {
            self.addresses.gateway = gateway.clone();
        }
        if let Some(bootstrap) = &o.bootstrap {
            self.bootstrap = bootstrap.clone();
        }
        if o.sync == Some(true) {
            self.datastore.sync = true;
        }
        if let Some(api) = &o.cluster_api {
            self.cluster.api = api.clone();
        }
    }
}
