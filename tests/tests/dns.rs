//! Names in addresses against a real DNS server: dnsmasq (`.ci/run` installs Debian's
//! `dnsmasq-base`; its path in `IPFS_KIT_DNSMASQ`) on a loopback port, answering for a test
//! zone only. Our nodes dial `/dns4/<name>/tcp/..` (an A record) and bootstrap from
//! `/dnsaddr/<name>/p2p/<id>` (TXT records at `_dnsaddr.<name>`, as kubo's default bootstrap
//! peers are published); the daemon takes its name servers from `dns.resolvers`.
//!
//! Skipped loudly without dnsmasq; fails under CI (`CI` set) without it.

use std::io::{BufRead as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipfs_kit::net::{Keypair, Multiaddr, NetError, Node, NodeConfig, PeerId};

const WAIT: Duration = Duration::from_secs(20);
const ZONE: &str = "ipfs-kit.test";

/// A dnsmasq on 127.0.0.1 that knows only what it is given; killed when dropped.
struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Dnsmasq {
    /// `None` (after a SKIP line) without dnsmasq, outside CI.
    fn start(test: &str, records: &[String]) -> Option<Dnsmasq> {
        let bin = match std::env::var_os("IPFS_KIT_DNSMASQ").map(PathBuf::from) {
            Some(p) if p.exists() => p,
            other => {
                let why = match other {
                    Some(p) => format!("IPFS_KIT_DNSMASQ={} does not exist", p.display()),
                    None => "env IPFS_KIT_DNSMASQ is not set".to_owned(),
                };
                assert!(
                    std::env::var_os("CI").is_none(),
                    "{test}: {why} under CI (run .ci/run)"
                );
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** SKIP {test}: {why}\n*** eval \"$(.ci/run --install-only)\"\n"
                );
                return None;
            }
        };
        // A free port (UDP and TCP are both served on it).
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(bin)
            .args([
                "--keep-in-foreground",
                "--log-facility=-",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--no-poll",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .args(records)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Ready once it says it started (it binds before that line).
        let stderr = child.stderr.take().unwrap();
        let mut lines = std::io::BufReader::new(stderr).lines();
        loop {
            let line = lines.next().expect("dnsmasq exited").unwrap();
            assert!(!line.contains("FAILED"), "dnsmasq: {line}");
            if line.contains("started, version") {
                break;
            }
        }
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Some(Dnsmasq {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _dir: dir,
        })
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn node(resolver: SocketAddr, bootstrap: Vec<Multiaddr>) -> Node {
    let mut c = NodeConfig::new(Keypair::generate_ed25519());
    c.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    c.dns_resolvers = vec![resolver];
    c.bootstrap = bootstrap;
    Node::start(c).await.unwrap()
}

fn tcp_port(node_addrs: &[Multiaddr]) -> u16 {
    node_addrs
        .iter()
        .find_map(|a| {
            let text = a.to_string();
            let (_, rest) = text.split_once("/tcp/")?;
            rest.split('/').next()?.parse().ok()
        })
        .expect("a TCP listen address")
}

/// A records and `/dnsaddr` TXT records (the first pointing at a dead port, which the dial
/// skips), and a name nobody has.
#[test]
fn dns_and_dnsaddr_addresses_are_resolved_and_dialed() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // The peer to be found, with no name server (it dials nothing).
        let mut c = NodeConfig::new(Keypair::generate_ed25519());
        c.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
        let target = Node::start(c).await.unwrap();
        let id = target.peer_id();
        let port = tcp_port(&target.listen_addrs().await.unwrap());
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_port = dead.local_addr().unwrap().port();
        drop(dead);
        let records = vec![
            format!("--address=/peer.{ZONE}/127.0.0.1"),
            format!(
                "--txt-record=_dnsaddr.boot.{ZONE},dnsaddr=/ip4/127.0.0.1/tcp/{dead_port}/p2p/{id}"
            ),
            format!(
                "--txt-record=_dnsaddr.boot.{ZONE},dnsaddr=/dns4/peer.{ZONE}/tcp/{port}/p2p/{id}"
            ),
        ];
        let Some(dns) = Dnsmasq::start(
            "dns_and_dnsaddr_addresses_are_resolved_and_dialed",
            &records,
        ) else {
            return;
        };

        // /dns4: the A record.
        let a = node(dns.addr, Vec::new()).await;
        let addr: Multiaddr = format!("/dns4/peer.{ZONE}/tcp/{port}/p2p/{id}")
            .parse()
            .unwrap();
        assert_eq!(a.connect(addr).await.unwrap(), id);

        // A name nobody has: a typed dial error.
        let absent: Multiaddr = format!("/dns4/absent.{ZONE}/tcp/{port}/p2p/{id}")
            .parse()
            .unwrap();
        match a.connect(absent).await {
            Err(NetError::Dial { reason, .. }) => assert!(!reason.is_empty()),
            other => panic!("expected a dial error, got {other:?}"),
        }
        a.shutdown().await;

        // /dnsaddr as a bootstrap peer: the TXT records, then the A record inside one.
        let boot: Multiaddr = format!("/dnsaddr/boot.{ZONE}/p2p/{id}").parse().unwrap();
        let b = node(dns.addr, vec![boot]).await;
        let deadline = Instant::now() + WAIT;
        while !b.peers().await.unwrap().contains(&id) {
            assert!(
                Instant::now() < deadline,
                "never connected through /dnsaddr"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        b.shutdown().await;
        target.shutdown().await;
    });
}

/// The daemon takes its name servers from `dns.resolvers` and `swarm connect` dials a
/// `/dns4` address through them.
#[test]
fn daemon_dials_names_with_configured_resolvers() {
    use ipfs_kit_tests::cli;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (target, id, port) = rt.block_on(async {
        let mut c = NodeConfig::new(Keypair::generate_ed25519());
        c.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
        let target = Node::start(c).await.unwrap();
        let id: PeerId = target.peer_id();
        let port = tcp_port(&target.listen_addrs().await.unwrap());
        (target, id, port)
    });
    let records = vec![format!("--address=/daemon-peer.{ZONE}/127.0.0.1")];
    let Some(dns) = Dnsmasq::start("daemon_dials_names_with_configured_resolvers", &records) else {
        return;
    };
    let repo = tempfile::tempdir().unwrap();
    let repo = repo.path().join("repo");
    cli::run(&repo, &["init"]).unwrap();
    let list = format!("[\"{}\"]", dns.addr);
    cli::run(&repo, &["config", "set", "dns.resolvers", &list]).unwrap();
    let shown = String::from_utf8(
        cli::run(&repo, &["config", "dns.resolvers"])
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(shown.contains(&dns.addr.to_string()), "{shown}");
    let _daemon = cli::Daemon::start(&repo).unwrap();
    let addr = format!("/dns4/daemon-peer.{ZONE}/tcp/{port}/p2p/{id}");
    let out = cli::run(&repo, &["swarm", "connect", &addr]).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("connect {id} success")
    );
    rt.block_on(target.shutdown());
}
