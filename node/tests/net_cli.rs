//! End-to-end tests of `ipfs-kit id` and `ipfs-kit daemon` through the real binary.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn ipfs_kit(repo: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ipfs-kit"));
    c.arg("--repo")
        .arg(repo)
        .env_remove("IPFS_KIT_PATH")
        // Daemons run side by side in tests: no fixed cluster API port (see common/mod.rs).
        .env("IPFS_KIT_CLUSTER_API", "127.0.0.1:0");
    c
}

fn id_json(repo: &Path) -> serde_json::Value {
    let o = ipfs_kit(repo).arg("id").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn id_prints_kubo_shape_and_is_stable_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let first = id_json(&repo);
    let second = id_json(&repo);
    assert_eq!(first, second, "same key, same output");
    let id = first["ID"].as_str().unwrap();
    assert!(
        id.starts_with("12D3KooW"),
        "Ed25519 peer IDs are identity multihashes: {id}"
    );
    // PublicKey is the base64 protobuf public key; it hashes to the ID.
    let pk = first["PublicKey"].as_str().unwrap();
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(pk)
        .unwrap();
    let key = libp2p::identity::PublicKey::try_decode_protobuf(&bytes).unwrap();
    assert_eq!(key.to_peer_id().to_string(), id);
    assert_eq!(
        first["Addresses"],
        serde_json::json!([]),
        "offline: no addresses"
    );
    assert_eq!(
        first["AgentVersion"],
        format!("ipfs-kit/{}", env!("CARGO_PKG_VERSION"))
    );
    let protocols: Vec<&str> = first["Protocols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(protocols.contains(&"/ipfs/kad/1.0.0"), "{protocols:?}");
    assert!(protocols.contains(&"/ipfs/id/1.0.0"), "{protocols:?}");
    // Another repository, another identity.
    let other = id_json(&dir.path().join("other"));
    assert_ne!(other["ID"], first["ID"]);
}

#[test]
fn corrupt_identity_is_an_error_not_a_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    id_json(&repo);
    std::fs::write(repo.join("identity.key"), b"garbage").unwrap();
    let o = ipfs_kit(&repo).arg("id").output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("corrupt"), "{err}");
    assert_eq!(
        std::fs::read(repo.join("identity.key")).unwrap(),
        b"garbage"
    );
}

#[test]
fn daemon_listens_reports_ready_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let id = id_json(&repo)["ID"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let mut child = ipfs_kit(&repo)
        .args([
            "daemon",
            "--swarm",
            "/ip4/127.0.0.1/tcp/0",
            "--swarm",
            "/ip4/127.0.0.1/udp/0/quic-v1",
            "--api",
            "127.0.0.1:0",
            "--gateway",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut listening = Vec::new();
    let mut peer_line = None;
    loop {
        let line = lines.next().expect("daemon exited before ready").unwrap();
        if let Some(a) = line.strip_prefix("Swarm listening on ") {
            listening.push(a.to_owned());
        }
        if let Some(p) = line.strip_prefix("PeerID: ") {
            peer_line = Some(p.to_owned());
        }
        if line == "Daemon is ready" {
            break;
        }
    }
    let ready = started.elapsed();
    assert_eq!(peer_line.as_deref(), Some(id.as_str()));
    assert!(
        listening
            .iter()
            .any(|a| a.starts_with("/ip4/127.0.0.1/tcp/")),
        "{listening:?}"
    );
    assert!(
        listening.iter().any(|a| a.ends_with("/quic-v1")),
        "{listening:?}"
    );
    assert!(ready < Duration::from_secs(10), "ready after {ready:?}");

    // `id` works beside the running daemon (it reads only the key file).
    assert_eq!(id_json(&repo)["ID"], id.as_str());

    // An in-process node can dial the daemon.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = ipfs_kit::net::NodeConfig::new(libp2p::identity::Keypair::generate_ed25519());
        c.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
        let node = ipfs_kit::net::Node::start(c).await.unwrap();
        let tcp = listening.iter().find(|a| a.contains("/tcp/")).unwrap();
        let addr: libp2p::Multiaddr = format!("{tcp}/p2p/{id}").parse().unwrap();
        assert_eq!(node.connect(addr).await.unwrap().to_string(), id);
        node.shutdown().await;
    });

    // SIGTERM: graceful exit with status 0.
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(rest.iter().any(|l| l.contains("SIGTERM")), "{rest:?}");
}

/// `swarm`, `bitswap` and `stats bw` run through a daemon and print kubo's text; without a
/// daemon they refuse (online mode only), and `--peer` with `--proto` is a usage error.
#[test]
fn swarm_bitswap_and_stats_bw_through_the_daemon() {
    use crate::common::{random_bytes, Daemon, Env};
    let (ex, ey) = (Env::new(), Env::new());
    let offline = ex.fails_one_line(&["swarm", "peers"]);
    assert!(offline.contains("online mode"), "{offline}");
    let (_x, _y) = (Daemon::start(&ex, &[], &[]), Daemon::start(&ey, &[], &[]));
    let file = ey.path("f.bin");
    std::fs::write(&file, random_bytes(300_000, 21)).unwrap();
    let cid = ey.ok(&["add", "-Q", "--raw-leaves", file.to_str().unwrap()]);
    let yid: serde_json::Value = serde_json::from_str(&ey.ok(&["id"])).unwrap();
    let ypeer = yid["ID"].as_str().unwrap();
    let yaddr = yid["Addresses"][0].as_str().unwrap();

    assert_eq!(
        ex.ok(&["swarm", "connect", yaddr]).trim(),
        format!("connect {ypeer} success")
    );
    let peers = ex.ok(&["swarm", "peers"]);
    assert!(
        peers.lines().any(|l| l.ends_with(&format!("/p2p/{ypeer}"))),
        "{peers}"
    );
    assert_eq!(ex.ok_bytes(&["cat", cid.trim()]).len(), 300_000);

    let stat = ex.ok(&["bitswap", "stat"]);
    assert!(stat.starts_with("bitswap status\n"), "{stat}");
    let received: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("\tdata received: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(received >= 300_000, "the leaves and the root: {stat}");
    assert!(stat.contains("\tpartners [1]"), "{stat}");

    let bw = ex.ok(&["stats", "bw", "--proto", "/ipfs/bitswap/1.2.0"]);
    let lines: Vec<&str> = bw.lines().collect();
    assert_eq!(lines[0], "Bandwidth", "{bw}");
    assert!(
        lines[1].starts_with("TotalIn: 30"),
        "300 kB and a little more: {bw}"
    );
    assert!(
        lines[3].starts_with("RateIn: ") && lines[3].ends_with("/s"),
        "{bw}"
    );
    let all = ex.ok(&["stats", "bw", "--peer", ypeer]);
    assert!(all.starts_with("Bandwidth\nTotalIn: "), "{all}");
    let usage = ex.run(&["stats", "bw", "--peer", ypeer, "--proto", "/ipfs/id/1.0.0"]);
    assert!(!usage.status.success());

    assert_eq!(
        ex.ok(&["swarm", "disconnect", yaddr]).trim(),
        format!("disconnect {ypeer} success")
    );
}
