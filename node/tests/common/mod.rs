//! The harness shared by the binary's end-to-end tests: a fresh repository in a temp dir, and
//! the real `ipfs-kit` executable run against it with every `IPFS_KIT_*` variable cleared, so
//! the developer's environment never leaks into a test.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Output, Stdio};

/// Every environment variable the binary reads.
const IPFS_KIT_VARS: [&str; 10] = [
    "IPFS_KIT_PATH",
    "IPFS_KIT_ROLE",
    "IPFS_KIT_API",
    "IPFS_KIT_GATEWAY",
    "IPFS_KIT_SWARM",
    "IPFS_KIT_BOOTSTRAP",
    "IPFS_KIT_SYNC",
    "IPFS_KIT_CLUSTER_SECRET",
    "IPFS_KIT_CLUSTER_TRUSTED_PEERS",
    "IPFS_KIT_CLUSTER_METRIC_TTL_SECS",
];

pub struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }
    pub fn config_file(&self) -> PathBuf {
        self.repo().join("config.toml")
    }
    /// A path inside the test's temp dir.
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    /// The command, not yet run: `ipfs-kit --repo <repo> <args>` with a clean environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ipfs-kit"));
        c.arg("--repo").arg(self.repo()).args(args);
        for var in IPFS_KIT_VARS {
            c.env_remove(var);
        }
        // Tests run daemons side by side: the cluster REST API's default port (9094, as
        // ipfs-cluster) would collide, so each daemon takes an ephemeral one unless a test says.
        c.env("IPFS_KIT_CLUSTER_API", "127.0.0.1:0");
        c
    }
    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.cmd(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.stdin(Stdio::null()).output().unwrap()
    }
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }
    /// Runs and expects success; returns stdout.
    pub fn ok_with(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        String::from_utf8(self.ok_bytes_with(args, env)).unwrap()
    }
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, &[])
    }
    pub fn ok_bytes_with(&self, args: &[&str], env: &[(&str, &str)]) -> Vec<u8> {
        let o = self.run_with(args, env);
        assert!(
            o.status.success(),
            "ipfs-kit {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        );
        o.stdout
    }
    pub fn ok_bytes(&self, args: &[&str]) -> Vec<u8> {
        self.ok_bytes_with(args, &[])
    }
    /// Expects failure whose last stderr line is an `Error:` line; returns that line.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(!o.status.success(), "ipfs-kit {args:?} should have failed");
        let err = String::from_utf8(o.stderr).unwrap();
        let last = err.lines().last().unwrap_or_default().to_string();
        assert!(last.starts_with("Error: "), "no Error line in {err:?}");
        last
    }
    /// Expects failure with exactly one line on stderr, an `Error:` line; returns it.
    pub fn fails_one_line_with(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let o = self.run_with(args, env);
        assert!(!o.status.success(), "ipfs-kit {args:?} should have failed");
        let err = String::from_utf8(o.stderr).unwrap();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "one line expected: {err:?}");
        assert!(lines[0].starts_with("Error: "), "no Error line in {err:?}");
        lines[0].to_string()
    }
    pub fn fails_one_line(&self, args: &[&str]) -> String {
        self.fails_one_line_with(args, &[])
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or panics naming `what` after `wait`.
pub async fn eventually<T, F, Fut>(wait: std::time::Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// An in-process node on a fresh on-disk repository (kept while the value lives).
pub struct TestNode {
    pub node: ipfs_kit::net::Node,
    pub repo: ipfs_kit::repo::Repo,
    _dir: tempfile::TempDir,
}

/// Starts a node with a new identity, a fresh repository and a loopback TCP listener, after
/// `tune` adjusted its config.
pub async fn start_node(tune: impl FnOnce(&mut ipfs_kit::net::NodeConfig)) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let repo = ipfs_kit::repo::Repo::init(&dir.path().join("repo")).unwrap();
    let mut c = ipfs_kit::net::NodeConfig::new(ipfs_kit::net::Keypair::generate_ed25519())
        .with_repo(repo.clone());
    c.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    tune(&mut c);
    TestNode {
        node: ipfs_kit::net::Node::start(c).await.unwrap(),
        repo,
        _dir: dir,
    }
}

/// The node's first direct (not relayed) listen address, with its peer ID.
pub async fn dial_addr(node: &ipfs_kit::net::Node) -> ipfs_kit::net::Multiaddr {
    let addrs = node.listen_addrs().await.unwrap();
    let direct = addrs
        .iter()
        .find(|a| !ipfs_kit::net::relay::is_relayed(a))
        .expect("a direct listen address");
    direct
        .clone()
        .with(libp2p::multiaddr::Protocol::P2p(node.peer_id()))
}

/// `n` deterministic pseudo-random bytes from `seed`.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore as _, SeedableRng as _};
    let mut v = vec![0u8; n];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// A running `ipfs-kit daemon` process on `Env`'s repository, with its swarm, RPC API,
/// gateway (and cluster API when asked for) on ephemeral loopback ports; killed when dropped.
pub struct Daemon {
    pub child: Child,
    pub peer_id: String,
    /// A dialable swarm address ending in `/p2p/<peer id>`.
    pub swarm: String,
    /// `http://127.0.0.1:PORT` of the RPC API.
    pub api: String,
    /// `http://127.0.0.1:PORT` of the gateway.
    pub gateway: String,
    /// `http://127.0.0.1:PORT` of the cluster REST API, when it runs.
    pub cluster: Option<String>,
    /// The rest of the daemon's stdout, held so that its writes never hit a closed pipe.
    pub rest: Option<std::io::Lines<BufReader<ChildStdout>>>,
}

impl Daemon {
    /// Starts the daemon with `extra` arguments and `vars` in its environment (no API token
    /// unless `vars` sets one) and waits for `Daemon is ready`.
    pub fn start(env: &Env, extra: &[&str], vars: &[(&str, &str)]) -> Daemon {
        Self::try_start(env, extra, vars).unwrap_or_else(|e| panic!("daemon failed: {e}"))
    }

    /// [`Daemon::start`], or `Err(stderr)` when the daemon exits before it is ready.
    pub fn try_start(env: &Env, extra: &[&str], vars: &[(&str, &str)]) -> Result<Daemon, String> {
        let mut args = ipfs_kit::harness::LOOPBACK_DAEMON_ARGS.to_vec();
        args.extend_from_slice(extra);
        let mut cmd = env.cmd(&args);
        cmd.env_remove("IPFS_KIT_API_TOKEN");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut peer_id, mut swarm, mut api, mut gateway, mut cluster) =
            (None, None, None, None, None);
        let mut ready = false;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(id) = line.strip_prefix("PeerID: ") {
                peer_id = Some(id.to_owned());
            } else if let Some(a) = line.strip_prefix("Swarm listening on ") {
                if swarm.is_none() && a.contains("/tcp/") {
                    swarm = Some(a.trim().to_owned());
                }
            } else if let Some(a) = line.strip_prefix("RPC API server listening on ") {
                api = Some(http_of(a));
            } else if let Some(a) = line.strip_prefix("Gateway server listening on ") {
                gateway = Some(http_of(a));
            } else if let Some(a) = line.strip_prefix("Cluster API server listening on ") {
                cluster = Some(http_of(a));
            } else if line == "Daemon is ready" {
                ready = true;
                break;
            }
        }
        let stderr = child.stderr.take();
        if !ready {
            let _ = child.wait();
            let mut err = String::new();
            if let Some(mut e) = stderr {
                std::io::Read::read_to_string(&mut e, &mut err).unwrap();
            }
            return Err(err);
        }
        // Keep stderr drained (and shown) so the daemon never blocks on a full pipe.
        if let Some(e) = stderr {
            std::thread::spawn(move || {
                for line in BufReader::new(e).lines().map_while(Result::ok) {
                    eprintln!("[daemon] {line}");
                }
            });
        }
        let peer_id = peer_id.expect("no PeerID line");
        Ok(Daemon {
            child,
            swarm: format!("{}/p2p/{peer_id}", swarm.expect("no swarm line")),
            peer_id,
            api: api.expect("no API line"),
            gateway: gateway.expect("no gateway line"),
            cluster,
            rest: Some(lines),
        })
    }

    /// The URL of RPC command `cmd` (`"add"`, `"pin/ls"`, ...).
    pub fn url(&self, cmd: &str) -> String {
        format!("{}/api/v0/{cmd}", self.api)
    }

    /// Asks the daemon to shut down gracefully.
    pub fn sigterm(&mut self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `http://HOST:PORT` of a printed `/ip4/HOST/tcp/PORT` address.
pub fn http_of(multiaddr: &str) -> String {
    let p: Vec<&str> = multiaddr.trim().split('/').collect();
    format!("http://{}:{}", p[2], p[4])
}
