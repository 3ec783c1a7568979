//! `ipfs-kit id` and `ipfs-kit daemon`: the node's identity and the network node itself.
//!
//! `id` prints kubo's JSON shape (`ID`, `PublicKey`, `Addresses`, `AgentVersion`,
//! `ProtocolVersion`, `Protocols`); offline, like kubo, it lists no addresses. `daemon` prints
//! kubo's start-up lines (`PeerID: ..`, `Swarm listening on <addr>`, `Daemon is ready`) and
//! runs until SIGINT or SIGTERM.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, Result};
use base64::Engine as _;
use clap::Args;
use libp2p::Multiaddr;
use serde::Serialize;

use crate::net::{self, behaviour, Node, NodeConfig};
use crate::repo::RepoOptions;

/// Flags of `ipfs-kit daemon`.
#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// A listen address (repeatable); default /ip4/0.0.0.0/tcp/4001 and
    /// /ip4/0.0.0.0/udp/4001/quic-v1, as kubo.
    #[arg(long = "swarm", value_name = "MULTIADDR")]
    pub swarm: Vec<Multiaddr>,
    /// A peer to dial at start (repeatable), `/ip4/../tcp/../p2p/<id>`.
    #[arg(long = "bootstrap", value_name = "MULTIADDR")]
    pub bootstrap: Vec<Multiaddr>,
    /// Answer DHT queries (server) or only ask them (client). Default: config `routing.mode`
    /// (by role: a leecher is a client; a worker or master a server once AutoNAT finds it
    /// publicly reachable, a client until then).
    #[arg(long, value_enum)]
    pub dht: Option<DhtMode>,
    /// The RPC API's address, `ip:port` (default: config `addresses.api`, 127.0.0.1:5001).
    #[arg(long, value_name = "IP:PORT")]
    pub api: Option<String>,
    /// The gateway's address, `ip:port` (default: config `addresses.gateway`, 127.0.0.1:8080).
    #[arg(long, value_name = "IP:PORT")]
    pub gateway: Option<String>,
    /// Gateway requests served at once; more get 429.
    #[arg(long, default_value_t = crate::gateway::GATEWAY_CONCURRENT_REQUESTS_MAX)]
    pub gateway_requests_max: usize,
    /// Seconds the gateway may spend fetching and resolving content before answering 504.
    #[arg(long, default_value_t = crate::gateway::GATEWAY_RETRIEVAL_TIMEOUT.as_secs())]
    pub gateway_timeout_secs: u64,
    /// The cluster REST API's address, `ip:port` (default: config `cluster.api`,
    /// 127.0.0.1:9094). Served by masters and workers.
    #[arg(long, value_name = "IP:PORT")]
    pub cluster_api: Option<String>,
}

/// `--dht`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DhtMode {
    Server,
    Client,
}

/// kubo's `ipfs id` output.
#[derive(Serialize)]
struct IdOutput {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "PublicKey")]
    public_key: String,
    #[serde(rename = "Addresses")]
    addresses: Vec<String>,
    #[serde(rename = "AgentVersion")]
    agent_version: String,
    #[serde(rename = "ProtocolVersion")]
    protocol_version: String,
    #[serde(rename = "Protocols")]
    protocols: Vec<String>,
}

/// `ipfs-kit id`: the repository's identity, offline.
pub fn id(repo_path: &Path, options: RepoOptions) -> Result<()> {
    // The identity file alone is enough once it exists: reading it needs no repository lock,
    // so `id` works beside a running daemon.
    let keypair = if net::identity::identity_path(repo_path).is_file() {
        net::identity::load_or_create_in(repo_path)?
    } else {
        let repo = super::open(repo_path, options)?;
        net::load_or_create(&repo)?
    };
    let out = IdOutput {
        id: keypair.public().to_peer_id().to_string(),
        public_key: base64::engine::general_purpose::STANDARD
            .encode(keypair.public().encode_protobuf()),
        addresses: Vec::new(),
        agent_version: behaviour::agent_version(),
        protocol_version: behaviour::IDENTIFY_PROTOCOL_VERSION.to_owned(),
        protocols: behaviour::protocols()
            .iter()
            .map(|p| p.to_string())
            .collect(),
    };
    // kubo indents with tabs.
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut buf,
        serde_json::ser::PrettyFormatter::with_indent(b"\t"),
    );
    out.serialize(&mut ser)?;
    println!("{}", String::from_utf8_lossy(&buf));
    Ok(())
}

/// `ipfs-kit daemon`: runs the network node until SIGINT or SIGTERM.
pub fn daemon(repo_path: &Path, options: RepoOptions, args: DaemonArgs) -> Result<()> {
    let started = Instant::now();
    // Logs go to stderr, filtered by RUST_LOG (warnings by default; kad's "no known peers"
    // at each routing-table refresh is expected with an empty bootstrap list, so not shown).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,libp2p_kad::behaviour=error")
            }),
        )
        .with_writer(std::io::stderr)
        .try_init();
    // The HTTP servers' settings first: a non-loopback address without a token is refused
    // before anything starts.
    let (serve, role) = crate::api::server::serve_options(
        repo_path,
        args.api.clone(),
        args.gateway.clone(),
        crate::gateway::GatewayLimits {
            concurrent_requests_max: args.gateway_requests_max,
            retrieval_timeout: std::time::Duration::from_secs(args.gateway_timeout_secs),
        },
    )?;
    let settings = daemon_settings(repo_path, &args)?;
    // A private network: `<repo>/swarm.key` (kubo's) or the cluster secret.
    let psk = net::psk::swarm_key(repo_path, settings.cluster_secret)?;
    let repo = super::open(repo_path, options)?;
    // Demotes cold unpinned blocks to a configured tier and promotes hot ones, until exit.
    let _placement = repo.start_placement()?;
    let keypair = net::load_or_create(&repo)?;
    let public_key = keypair.public();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async {
        // Bitswap serves the repository's blocks and fetches into it.
        let mut config = NodeConfig::new(keypair).with_repo(repo.clone());
        config.listen = if args.swarm.is_empty() {
            net::default_listen_addrs()
        } else {
            args.swarm
        };
        config.bootstrap = args.bootstrap.clone();
        config.bootstrap.extend(settings.bootstrap.iter().cloned());
        config.psk = psk;
        // AutoNAT, relay client and service, mDNS: from the config, by role.
        net::features::apply(&mut config, &settings.network, settings.role);
        config.behaviour.kad_mode = match args.dht {
            Some(DhtMode::Server) => net::KadMode::Server,
            Some(DhtMode::Client) => net::KadMode::Client,
            None => net::features::kad_mode(settings.dht_mode),
        };
        say(format_args!("Initializing daemon..."));
        say(format_args!(
            "ipfs-kit version: {}",
            env!("CARGO_PKG_VERSION")
        ));
        say(format_args!("Repo: {}", repo.path().display()));
        if let Some(key) = &psk {
            // kubo's lines for a private network.
            say(format_args!(
                "Swarm is limited to private network of peers with the swarm key"
            ));
            say(format_args!(
                "Swarm key fingerprint: {}",
                net::psk::fingerprint(key)
            ));
        }
        // The cluster service by role: masters and workers run it, leechers do not.
        let cluster_setup = match settings.role {
            crate::config::Role::Leecher => None,
            role => {
                let mut cluster_config = crate::cluster::ClusterConfig::new(
                    role,
                    config.keypair.clone(),
                    cluster_trusted(&settings, &args.bootstrap),
                    repo.path().join("cluster"),
                );
                if let Some(ttl) = settings.cluster_metric_ttl {
                    cluster_config = cluster_config.with_metric_ttl(ttl);
                }
                cluster_config.tags = settings.cluster_tags.clone();
                cluster_config.spread_tags = settings.cluster_spread_tags.clone();
                Some(
                    crate::cluster::ClusterSetup::open(cluster_config)
                        .context("opening the cluster state")?,
                )
            }
        };
        config.cluster = cluster_setup.as_ref().map(|s| s.hooks());
        let node = Node::start(config)
            .await
            .context("starting the network node")?;
        let cluster = cluster_setup.map(|s| s.start(node.handle(), repo.clone()));
        say(format_args!("PeerID: {}", node.peer_id()));
        for addr in node.listen_addrs().await? {
            say(format_args!("Swarm listening on {addr}"));
        }
        // The sweeping reprovider: announces the strategy's keys region by region over the
        // reprovide interval, and what the API adds or pins in batches.
        let reprovider = net::provide::Reprovider::for_repo(
            node.handle(),
            net::provide::ReproviderConfig::default(),
            repo.clone(),
            settings.provide,
        );
        let reprovide_stop = tokio_util::sync::CancellationToken::new();
        let reprovide_task = reprovider.clone().spawn(reprovide_stop.clone());
        let shutdown = tokio_util::sync::CancellationToken::new();
        let api_state = crate::api::ApiState {
            shutdown: Some(shutdown.clone()),
            reprovider: Some(reprovider),
            repo: repo.clone(),
            node: Some(node.handle()),
            public_key: Some(public_key),
            role,
            metrics: std::sync::Arc::new(crate::metrics::Metrics::new()),
            bw: Default::default(),
        };
        let servers = crate::api::server::start(api_state, serve)
            .await
            .context("starting the HTTP API")?;
        let ma = crate::api::server::socket_multiaddr;
        say(format_args!(
            "RPC API server listening on {}",
            ma(servers.api_addr)
        ));
        if let Some(gw) = servers.gateway_addr {
            say(format_args!("Gateway server listening on {}", ma(gw)));
        }
        // The ipfs-cluster-compatible REST API of the cluster service.
        let cluster_api = match &cluster {
            Some(c) => {
                let state = crate::cluster_api::ClusterApiState {
                    cluster: c.handle(),
                    node: Some(node.handle()),
                };
                let server = crate::cluster_api::server::start(
                    state,
                    settings.cluster_api_addr,
                    settings.api_token.clone(),
                    repo_path,
                )
                .await
                .context("starting the cluster API")?;
                say(format_args!(
                    "Cluster API server listening on {}",
                    ma(server.addr)
                ));
                Some(server)
            }
            None => None,
        };
        say(format_args!("Daemon is ready"));
        tracing::info!(
            ready_ms = started.elapsed().as_millis() as u64,
            "daemon ready"
        );
        let signal = tokio::select! {
            s = wait_for_signal() => s?,
            () = shutdown.cancelled() => "a shutdown request",
        };
        say(format_args!("Received {signal}, shutting down..."));
        servers.shutdown().await;
        if let Some(s) = cluster_api {
            s.shutdown().await;
        }
        if let Some(c) = cluster {
            c.shutdown().await;
        }
        reprovide_stop.cancel();
        let _ = reprovide_task.await;
        node.shutdown().await;
        Ok::<(), anyhow::Error>(())
    })?;
    drop(repo);
    Ok(())
}

/// Who may change the pinset: `cluster.trusted_peers`, plus the peers named by the daemon's
/// `--bootstrap` flags. Joining a peer's cluster with `--bootstrap` means following its pinset
/// (as `ipfs-cluster-follow` trusts the cluster it follows); peers that only come from the
/// config's `bootstrap` list (DHT bootstrap) are not trusted for that.
fn cluster_trusted(settings: &crate::config::Settings, flags: &[Multiaddr]) -> Vec<libp2p::PeerId> {
    let mut trusted = settings.cluster_trusted_peers.clone();
    for peer in flags.iter().filter_map(net::node::peer_of) {
        if !trusted.contains(&peer) {
            trusted.push(peer);
        }
    }
    trusted
}

/// The daemon's settings for the cluster and the swarm key: `config.toml`, the environment
/// (with `IPFS_KIT_API_TOKEN` over `api.token`, as for the RPC API), then the flags.
fn daemon_settings(repo_path: &Path, args: &DaemonArgs) -> Result<crate::config::Settings> {
    let mut config = crate::config::Config::load_with_env(repo_path)?;
    if let Ok(token) = std::env::var(crate::api::server::ENV_API_TOKEN) {
        if !token.is_empty() {
            config.api.token = Some(token);
        }
    }
    config.apply_overrides(&crate::config::Overrides {
        api: args.api.clone(),
        gateway: args.gateway.clone(),
        cluster_api: args.cluster_api.clone(),
        ..Default::default()
    });
    Ok(config.resolve()?)
}

/// Prints one of the daemon's status lines. A daemon whose stdout nobody reads any more (a
/// closed pipe) goes on: the line is dropped instead of the process panicking.
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(line).and_then(|()| out.write_all(b"\n"));
    let _ = out.flush();
}

/// Waits for SIGINT or SIGTERM and names the one that came.
async fn wait_for_signal() -> Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
        tokio::select! {
            _ = term.recv() => Ok("SIGTERM"),
            _ = int.recv() => Ok("SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        Ok("interrupt")
    }
}

/// `ipfs-kit routing ...`: DHT lookups and announcements, run in a short-lived node with this
/// repository's identity (readable beside a running daemon), dialing `--bootstrap` peers and
/// the configuration's `bootstrap` list.
#[derive(clap::Subcommand, Debug)]
pub enum RoutingCmd {
    /// Find peers that provide a CID.
    Findprovs {
        cid: String,
        /// The number of providers to find.
        #[arg(short = 'n', long = "num-providers", default_value_t = 20)]
        num_providers: usize,
        #[command(flatten)]
        net: ShortLivedArgs,
    },
    /// Find the addresses of a peer.
    Findpeer {
        peer: String,
        #[command(flatten)]
        net: ShortLivedArgs,
    },
    /// Announce this node as a provider of a CID.
    Provide {
        cid: String,
        #[command(flatten)]
        net: ShortLivedArgs,
    },
}

/// Flags of the short-lived node behind `routing`.
#[derive(Args, Debug)]
pub struct ShortLivedArgs {
    /// A peer to dial first (repeatable), `/ip4/../tcp/../p2p/<id>`.
    #[arg(long = "bootstrap", value_name = "MULTIADDR")]
    pub bootstrap: Vec<Multiaddr>,
}

/// `ipfs-kit routing findprovs|findpeer|provide`.
pub fn routing(repo_path: &Path, options: RepoOptions, cmd: RoutingCmd) -> Result<()> {
    let keypair = if net::identity::identity_path(repo_path).is_file() {
        net::identity::load_or_create_in(repo_path)?
    } else {
        let repo = super::open(repo_path, options)?;
        net::load_or_create(&repo)?
    };
    let mut bootstrap = match &cmd {
        RoutingCmd::Findprovs { net, .. }
        | RoutingCmd::Findpeer { net, .. }
        | RoutingCmd::Provide { net, .. } => net.bootstrap.clone(),
    };
    if let Ok(config) = crate::config::Config::load_with_env(repo_path) {
        bootstrap.extend(config.bootstrap.iter().filter_map(|a| a.parse().ok()));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async {
        let mut config = NodeConfig::new(keypair);
        config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
        config.behaviour.kad_mode = net::KadMode::Client;
        config.behaviour.kad_bootstrap_interval = None;
        let node = Node::start(config)
            .await
            .context("starting the network node")?;
        for addr in &bootstrap {
            if let Err(e) = node.connect(addr.clone()).await {
                tracing::warn!(%addr, error = %e, "bootstrap dial failed");
            }
        }
        if node.peers().await?.is_empty() {
            anyhow::bail!("no peers reachable: pass --bootstrap or set bootstrap in config.toml");
        }
        let _ = node.bootstrap().await;
        match cmd {
            RoutingCmd::Findprovs {
                cid, num_providers, ..
            } => {
                let cid: cid::Cid = cid.parse().context("parsing the CID")?;
                for (peer, _) in node.find_providers(cid, num_providers).await? {
                    println!("{peer}");
                }
            }
            RoutingCmd::Findpeer { peer, .. } => {
                let peer: libp2p::PeerId = peer.parse().context("parsing the peer ID")?;
                match node.find_peer(peer).await? {
                    Some(addrs) if !addrs.is_empty() => {
                        for a in addrs {
                            println!("{a}");
                        }
                    }
                    _ => anyhow::bail!("routing: not found"),
                }
            }
            RoutingCmd::Provide { cid, .. } => {
                let cid: cid::Cid = cid.parse().context("parsing the CID")?;
                node.provide(cid).await?;
            }
        }
        node.shutdown().await;
        Ok::<(), anyhow::Error>(())
    })
}
