//! The repository's configuration: `config.toml`, its role-dependent defaults, the environment
//! and flag layers over it, and its validation into typed [`Settings`].
//!
//! Sections follow kubo's config (`Addresses`, `Bootstrap`, `Datastore`, `Routing`, `Swarm`,
//! `Provide`, `API`) in TOML with snake_case keys, plus ipfs-kit's `role` and `[cluster]`.
//! Layers, later ones winning: the file (defaults when absent, so old repositories open), the
//! environment ([`Config::apply_env`], `IPFS_KIT_*`), explicit flags ([`Overrides`]).
//!
//! Settings whose default depends on the role (`routing.mode = "auto"`, the `[swarm]` limits)
//! stay unset in the file; they are resolved against the *effective* role, so
//! `IPFS_KIT_ROLE=leecher` also brings a leecher's limits. Unknown keys are an error naming
//! the dotted key. [`Config::resolve`] checks everything and returns the typed values the node
//! runs with; a config that does not resolve is never written.

mod bootstrap;
mod keys;
mod layers;
mod resolve;

pub use bootstrap::KUBO_DEFAULT_BOOTSTRAP;
pub use keys::KNOWN_KEYS;
pub use layers::Overrides;
pub use resolve::{DhtMode, NetworkSettings, Settings, SwarmLimits};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The configuration file's name inside the repository directory.
pub const CONFIG_FILE: &str = "config.toml";
/// Largest `config.toml` read (a config is a few hundred bytes; this leaves room for long
/// bootstrap lists).
pub const CONFIG_FILE_BYTES_MAX: u64 = 1024 * 1024;
/// Most entries in any address or peer list (`addresses.swarm`, `bootstrap`,
/// `cluster.trusted_peers`).
pub const LIST_ENTRIES_MAX: usize = 256;
/// Longest accepted API token.
pub const API_TOKEN_BYTES_MAX: usize = 1024;
/// Shortest accepted API token: a bearer token guessable by brute force protects nothing.
pub const API_TOKEN_BYTES_MIN: usize = 16;
/// Smallest `swarm.memory_max_bytes`: below it a node cannot hold one bitswap message per
/// connection.
pub const SWARM_MEMORY_BYTES_MIN: u64 = 16 * 1024 * 1024;
/// Longest `swarm.idle_timeout_secs` (one day).
pub const IDLE_TIMEOUT_SECS_MAX: u64 = 24 * 60 * 60;
/// Longest `cluster.metric_ttl_secs` (one day): a peer silent longer than that is down.
pub const CLUSTER_METRIC_TTL_SECS_MAX: u64 = 24 * 60 * 60;

/// Errors from reading, layering, validating and writing the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is {size_bytes} bytes, over the {max_bytes}-byte limit")]
    TooLarge {
        path: PathBuf,
        size_bytes: u64,
        max_bytes: u64,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("unknown config key `{key}`")]
    UnknownKey { key: String },
    #[error("config key `{key}`: {message}")]
    BadValue { key: String, message: String },
    #[error("invalid role {0:?} (expected leecher, worker or master)")]
    BadRole(String),
    #[error("`{key}`: invalid multiaddr {value:?}: {reason}")]
    BadMultiaddr {
        key: String,
        value: String,
        reason: String,
    },
    #[error("`{key}`: invalid socket address {value:?} (expected ip:port, e.g. 127.0.0.1:5001)")]
    BadSocketAddr { key: String, value: String },
    #[error("`bootstrap`: {0:?} has no /p2p/<peer id> component")]
    BootstrapWithoutPeerId(String),
    #[error("`cluster.trusted_peers`: invalid peer id {0:?}")]
    BadPeerId(String),
    #[error("`{key}` has {count} entries, over the limit of {max}")]
    TooManyEntries {
        key: String,
        count: usize,
        max: usize,
    },
    #[error("`{key}` = {addr} is not a loopback address: set api.token to bind it")]
    TokenRequired { key: String, addr: String },
    #[error("`api.token` must be {min}..={max} bytes without whitespace")]
    BadToken { min: usize, max: usize },
    #[error("`cluster.secret` must be 64 hex characters (32 bytes)")]
    BadClusterSecret,
    #[error("`swarm.{key}` = {value}: {reason}")]
    BadLimit {
        key: &'static str,
        value: u64,
        reason: String,
    },
    #[error("cannot write the config as TOML: {0}")]
    Serialize(String),
    #[error("environment variable {var}: {source}")]
    Env {
        var: &'static str,
        #[source]
        source: Box<ConfigError>,
    },
}

impl ConfigError {
    fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// What a node does in the network. kubo has no roles; ipfs-kit's decide the DHT mode, the
/// resource limits and (with the cluster) who coordinates the pinset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Fetches and serves what it holds, but is a DHT client with small limits: laptops,
    /// phones, CI runners.
    Leecher,
    /// A full peer: DHT server, serves content, takes part in the cluster. The default,
    /// because a node started without thought should behave like kubo's default (a DHT server
    /// once reachable) and strengthen the network rather than only draw from it.
    #[default]
    Worker,
    /// A worker that also coordinates the cluster pinset; chosen deliberately, never by default.
    Master,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leecher => "leecher",
            Role::Worker => "worker",
            Role::Master => "master",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "leecher" => Ok(Role::Leecher),
            "worker" => Ok(Role::Worker),
            "master" => Ok(Role::Master),
            _ => Err(ConfigError::BadRole(s.to_string())),
        }
    }
}

/// `config.toml`. Unset optional fields take their role's default at [`Config::resolve`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `leecher`, `worker` (default) or `master`.
    pub role: Role,
    /// Peers dialled at start, as multiaddrs ending in `/p2p/<peer id>`. Empty by default
    /// (tests and private networks); public bootstrap peers are added by the operator.
    pub bootstrap: Vec<String>,
    pub addresses: Addresses,
    pub datastore: Datastore,
    pub routing: Routing,
    pub swarm: Swarm,
    pub discovery: Discovery,
    #[serde(skip_serializing_if = "Dns::is_default")]
    pub dns: Dns,
    #[serde(skip_serializing_if = "Peering::is_default")]
    pub peering: Peering,
    pub provide: Provide,
    pub api: Api,
    pub cluster: Cluster,
    /// Storage tiers beyond the local store; left out of the file while none is configured.
    #[serde(skip_serializing_if = "Tiers::is_empty")]
    pub tiers: Tiers,
}

/// Where the node listens (kubo's `Addresses`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Addresses {
    /// libp2p listen multiaddrs.
    pub swarm: Vec<String>,
    /// The RPC API (`/api/v0`), `ip:port`.
    pub api: String,
    /// The gateway, `ip:port`.
    pub gateway: String,
}

impl Default for Addresses {
    fn default() -> Self {
        // kubo's defaults, minus the IPv6 and WebTransport listeners.
        Self {
            swarm: vec![
                "/ip4/0.0.0.0/tcp/4001".into(),
                "/ip4/0.0.0.0/udp/4001/quic-v1".into(),
            ],
            api: "127.0.0.1:5001".into(),
            gateway: "127.0.0.1:8080".into(),
        }
    }
}

/// The block store (kubo's `Datastore`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Datastore {
    /// Sync blocks before pins commit (survives power loss); `--sync` / `IPFS_KIT_SYNC`.
    pub sync: bool,
}

/// DHT participation (kubo's `Routing.Type`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Routing {
    pub mode: RoutingMode,
    /// Also run kubo's LAN DHT (`/ipfs/lan/kad/1.0.0`) beside the WAN one, as kubo's dual DHT
    /// does; its routing table admits only LAN peers that the WAN DHT cannot route to (kubo
    /// nodes without a public address serve only this one). Default on.
    pub lan_dht: bool,
}

impl Default for Routing {
    fn default() -> Self {
        Self {
            mode: RoutingMode::default(),
            lan_dht: true,
        }
    }
}

/// `routing.mode`, with kubo's meanings for the `dht*` values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoutingMode {
    /// By role: a leecher is `dhtclient`, a worker or master `dht`.
    #[default]
    Auto,
    /// Server when publicly reachable (AutoNAT), else client.
    Dht,
    /// Always a client: queries the DHT, stores no records for others.
    Dhtclient,
    /// Always a server, reachable or not (in-process test networks on loopback).
    Dhtserver,
}

/// Connection and memory limits (kubo's `Swarm.ConnMgr` and `Swarm.ResourceMgr`). Unset
/// fields take the role's defaults ([`SwarmLimits::for_role`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Swarm {
    /// Above this many connections, trim down to `conns_low`. Setting only one of the two
    /// moves the other's default to keep `conns_low <= conns_high`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conns_high: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conns_low: Option<u32>,
    /// Refuse new connections while the process uses more memory than this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_max_bytes: Option<u64>,
    /// Close a connection with no open stream after this long.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout_secs: Option<u64>,
    /// Run the circuit relay client: dial `/p2p-circuit` addresses and reserve a slot on
    /// `relays` (kubo's `Swarm.RelayClient.Enabled`). Default on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_client: Option<bool>,
    /// Static relays, multiaddrs ending in `/p2p/<relay id>`, to reserve a slot on and be
    /// reached through (kubo's `Swarm.RelayClient.StaticRelays`).
    pub relays: Vec<String>,
    /// Relay circuits for other peers, with bounded reservations and circuits (kubo's
    /// `Swarm.RelayService.Enabled`). Default: on for a master, off otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_service: Option<bool>,
    /// AutoNAT ignores peers at private and loopback addresses (kubo's behaviour). Default
    /// on; only loopback test networks turn it off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autonat_only_global_ips: Option<bool>,
}

/// Name resolution for `/dns`, `/dns4`, `/dns6` and `/dnsaddr` addresses (kubo's `DNS`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Dns {
    /// Name servers, `ip:port`, asked over UDP (then TCP) in this order. Empty (the default):
    /// the system's, from `/etc/resolv.conf`.
    pub resolvers: Vec<String>,
}

impl Dns {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

/// Peers to stay connected to (kubo's `Peering`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Peering {
    /// Multiaddrs ending in `/p2p/<peer id>`: dialed at start, their connections kept open,
    /// redialed with backoff when they close (`swarm peering add|rm` change the running set).
    pub peers: Vec<String>,
}

impl Peering {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

/// Peer discovery beyond the DHT (kubo's `Discovery`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Discovery {
    /// Find and dial peers on the local network with mDNS. Off by default, unlike kubo: a
    /// node announcing itself on every LAN it joins leaks its presence, and cluster peers
    /// are configured (`bootstrap`, `cluster.trusted_peers`) rather than found.
    pub mdns: bool,
}

/// What the node announces to the DHT (kubo's `Reprovider.Strategy`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Provide {
    pub strategy: ProvideStrategy,
}

/// `provide.strategy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProvideStrategy {
    /// Every block in the store (kubo's default).
    #[default]
    All,
    /// Every block reachable from a pin.
    Pinned,
    /// Only the roots of pins.
    Roots,
}

/// The RPC API and gateway access.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Api {
    /// Bearer token; required when the API or the gateway binds a non-loopback address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// The cluster pinset: its secret (also the swarm's pre-shared key), who may change it, and
/// where its ipfs-cluster-compatible REST API listens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cluster {
    /// Shared secret of the cluster, 32 bytes as hex (as ipfs-cluster's `secret`). When set,
    /// the swarm only talks to peers holding the same secret (a libp2p private network).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Peer ids allowed to modify the pinset.
    pub trusted_peers: Vec<String>,
    /// The cluster REST API, `ip:port` (ipfs-cluster's default port 9094); a non-loopback
    /// address needs `api.token`.
    pub api: String,
    /// How long a peer's last metric counts; a peer silent for longer is down and its pins
    /// are re-allocated. Unset: the cluster service's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric_ttl_secs: Option<u64>,
    /// Tags this peer broadcasts in its metrics (ipfs-cluster's `informer.tags`), e.g.
    /// `{ group = "eu" }`; the allocator spreads pins over the keys named in `allocate_by`.
    pub tags: std::collections::BTreeMap<String, String>,
    /// The allocator's order (ipfs-cluster's `allocator.balanced.allocate_by`): `tag:<key>`
    /// entries, most significant first, then optionally `freespace`, which is always the last
    /// criterion. Empty: by free space only.
    pub allocate_by: Vec<String>,
}

/// The cluster REST API's default address: ipfs-cluster's `restapi.http_listen_multiaddress`.
pub const CLUSTER_API_ADDR_DEFAULT: &str = "127.0.0.1:9094";

impl Default for Cluster {
    fn default() -> Self {
        Self {
            secret: None,
            trusted_peers: Vec::new(),
            api: CLUSTER_API_ADDR_DEFAULT.into(),
            metric_ttl_secs: None,
            tags: std::collections::BTreeMap::new(),
            allocate_by: Vec::new(),
        }
    }
}

/// Storage tiers (`[tiers.s3]`): with one configured, the repository opens a tiered store
/// (local first, then the tier) and `ipfs-kit tier` moves DAGs between them. Also the block
/// cache (ARC) in the read path, the Arrow index, and the daemon's placement runner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tiers {
    /// Bytes of block data the ARC cache in front of the store holds (0: no cache).
    pub cache_bytes: u64,
    /// Keep the Arrow index (`<repo>/index/`) up to date as blocks are stored, read, pinned,
    /// moved and collected.
    pub index: bool,
    /// How often the daemon runs the placement policy (demotes cold unpinned blocks to S3,
    /// promotes hot ones back); 0 turns the runner off. Needs `[tiers.s3]`.
    pub placement_interval_secs: u64,
    /// An unpinned block idle this long (and cold) is demoted by the placement runner.
    pub demote_idle_secs: u64,
    /// The local store's budget for the placement watermarks (0: unbounded).
    pub local_capacity_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3: Option<TierS3>,
}

/// `tiers.cache_bytes` by default: 128 MiB of hot blocks.
pub const CACHE_BYTES_DEFAULT: u64 = 128 * 1024 * 1024;
/// `tiers.placement_interval_secs` by default: every 5 minutes.
pub const PLACEMENT_INTERVAL_SECS_DEFAULT: u64 = 300;
/// `tiers.demote_idle_secs` by default: a day.
pub const DEMOTE_IDLE_SECS_DEFAULT: u64 = 24 * 3600;

impl Default for Tiers {
    fn default() -> Self {
        Self {
            cache_bytes: CACHE_BYTES_DEFAULT,
            index: true,
            placement_interval_secs: PLACEMENT_INTERVAL_SECS_DEFAULT,
            demote_idle_secs: DEMOTE_IDLE_SECS_DEFAULT,
            local_capacity_bytes: 0,
            s3: None,
        }
    }
}

impl Tiers {
    /// Every setting at its default (the section is then left out of the file).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// `[tiers.s3]`: an S3 bucket (AWS or any S3-compatible server). Credentials come from the
/// AWS default chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `~/.aws/credentials` and
/// `config`, web identity, container or instance metadata), never from this file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TierS3 {
    pub bucket: String,
    /// Prepended to every object key (`blocks/`); the key is prefix + the block's CID.
    pub prefix: String,
    /// A custom endpoint such as `http://127.0.0.1:9000`; unset for AWS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Unset: from the AWS default chain, else `us-east-1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which most S3-compatible servers need.
    pub path_style: bool,
}

impl TierS3 {
    /// The tier library's config (credentials left to the AWS default chain).
    pub fn to_s3_config(&self) -> ipfs_kit_tiers::tier::s3::S3Config {
        ipfs_kit_tiers::tier::s3::S3Config {
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            path_style: self.path_style,
            access_key_id: None,
            secret_access_key: None,
        }
    }
}

const FILE_HEADER: &str = "\
# ipfs-kit configuration. `ipfs-kit config show` prints every setting with its effective value;
# settings left out here take their default, some of which depend on `role`.
# IPFS_KIT_* environment variables override this file, and flags override both.
";

impl Config {
    /// The default configuration for `role`.
    pub fn for_role(role: Role) -> Self {
        Self {
            role,
            ..Self::default()
        }
    }

    /// The path of the config file in the repository at `repo`.
    pub fn path(repo: &Path) -> PathBuf {
        repo.join(CONFIG_FILE)
    }

    /// Reads `config.toml` from the repository; the defaults when it does not exist (a
    /// repository made before configs). Does not validate: see [`Config::resolve`].
    pub fn load(repo: &Path) -> Result<Self, ConfigError> {
        let path = Self::path(repo);
        match read_bounded(&path)? {
            Some(text) => Self::from_toml(&text, &path),
            None => Ok(Self::default()),
        }
    }

    /// Parses config text; `path` names it in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                path: path.to_path_buf(),
                message: describe_toml_error(text, &e),
            })?;
        Self::from_table(table).map_err(|e| match e {
            ConfigError::BadValue { key, message } => ConfigError::Parse {
                path: path.to_path_buf(),
                message: format!("key `{key}`: {message}"),
            },
            other => other,
        })
    }

    /// The config as a TOML table, unset optional fields left out.
    pub fn to_table(&self) -> Result<toml::Table, ConfigError> {
        match toml::Value::try_from(self) {
            Ok(toml::Value::Table(t)) => Ok(t),
            Ok(_) => Err(ConfigError::Serialize("not a table".into())),
            Err(e) => Err(ConfigError::Serialize(e.to_string())),
        }
    }

    /// Builds a config from a table, naming unknown keys and the key of a badly typed value.
    pub fn from_table(table: toml::Table) -> Result<Self, ConfigError> {
        keys::check_known(&table, "")?;
        toml::Value::Table(table.clone())
            .try_into::<Config>()
            .map_err(|e| ConfigError::BadValue {
                key: keys::locate_bad_key(&table).unwrap_or_else(|| "(root)".into()),
                message: e.message().trim().to_string(),
            })
    }

    /// The file's text: a short header, then the config.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        let body = toml::to_string(self).map_err(|e| ConfigError::Serialize(e.to_string()))?;
        Ok(format!("{FILE_HEADER}\n{body}"))
    }

    /// Validates, then writes `config.toml` atomically (temporary file, fsync, rename, fsync
    /// of the directory): a crash leaves the old file or the new one, never a mix.
    pub fn save(&self, repo: &Path) -> Result<(), ConfigError> {
        self.resolve()?;
        write_atomic(&Self::path(repo), self.to_toml()?.as_bytes())
    }

    /// Reads the file and applies the process environment: the configuration every command
    /// but `daemon` runs with (the daemon adds its flags with [`Config::apply_overrides`]).
    pub fn load_with_env(repo: &Path) -> Result<Self, ConfigError> {
        let mut config = Self::load(repo)?;
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    /// File, process environment, then `overrides` (the daemon's flags), validated: the
    /// settings a node runs with, in one call.
    pub fn load_settings(repo: &Path, overrides: &Overrides) -> Result<Settings, ConfigError> {
        let mut config = Self::load_with_env(repo)?;
        config.apply_overrides(overrides);
        config.resolve()
    }
}

/// Writes the default config into `repo` unless a `config.toml` is already there (`init`
/// calls it before marking the repository complete; a config written ahead, e.g. by
/// `init --role`, is kept).
pub fn write_default_if_absent(repo: &Path) -> Result<(), ConfigError> {
    let path = Config::path(repo);
    if path.exists() {
        return Ok(());
    }
    write_atomic(&path, Config::default().to_toml()?.as_bytes())
}

/// Reads at most [`CONFIG_FILE_BYTES_MAX`]; `None` when the file does not exist.
fn read_bounded(path: &Path) -> Result<Option<String>, ConfigError> {
    use std::io::Read as _;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ConfigError::io(path, e)),
    };
    let mut bytes = Vec::new();
    file.take(CONFIG_FILE_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ConfigError::io(path, e))?;
    if bytes.len() as u64 > CONFIG_FILE_BYTES_MAX {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
            size_bytes: bytes.len() as u64,
            max_bytes: CONFIG_FILE_BYTES_MAX,
        });
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| ConfigError::Parse {
            path: path.to_path_buf(),
            message: "not UTF-8".into(),
        })
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<(), ConfigError> {
    use std::io::Write as _;
    let tmp = path.with_extension("toml.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| ConfigError::io(&tmp, e))?;
    f.write_all(data).map_err(|e| ConfigError::io(&tmp, e))?;
    f.sync_all().map_err(|e| ConfigError::io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| ConfigError::io(path, e))?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    tracing::debug!(path = %path.display(), "wrote config");
    Ok(())
}

/// One line: toml's message with the line number of its span.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {}", e.message().trim())
        }
        None => e.message().trim().to_string(),
    }
}

#[cfg(test)]
mod tests;
