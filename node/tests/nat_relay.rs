//! AutoNAT, circuit relay v2, mDNS and all-protocol byte counting, between in-process nodes
//! on 127.0.0.1 (AutoNAT with `only_global_ips` off, as the harness runs it), and through two
//! real daemons for `stats/bw` and the metrics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::{self, dial_addr, TestNode};
use std::time::Duration;

use bytes::Bytes;
use cid::Cid;
use ipfs_kit::net::autonat::{AutonatConfig, Reachability};
use ipfs_kit::net::{relay, KadMode, Multiaddr, NodeConfig, PeerId};
use ipfs_kit_blockstore::hash::{HashFn, RAW_CODEC};
use ipfs_kit_blockstore::Block;

const WAIT: Duration = Duration::from_secs(30);

/// A node with quick fetch stalls and AutoNAT set for loopback, then `tune`.
async fn start(tune: impl FnOnce(&mut NodeConfig)) -> TestNode {
    common::start_node(|c| {
        c.fetch_stall_timeout = Duration::from_secs(20);
        c.behaviour.autonat = AutonatConfig::for_tests();
        tune(c);
    })
    .await
}

fn raw_block(seed: u8, len: usize) -> Block {
    let data: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(seed).wrapping_add(seed))
        .collect();
    let cid = Cid::new_v1(RAW_CODEC, HashFn::Sha2_256.digest(&data).unwrap());
    Block::new(cid, Bytes::from(data)).unwrap()
}

/// Three nodes: A follows its reachability (kubo's `dht` mode) and starts as a DHT client;
/// B and C serve dial-backs. B and C dial A back at its loopback listen address, so A learns
/// `Public` and its Kademlia turns server. A node whose only peer is a leecher (which serves
/// no dial-backs) never learns anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autonat_finds_a_node_public_and_its_dht_turns_server() {
    let a = start(|c| c.behaviour.kad_mode = KadMode::ByReachability).await;
    let b = start(|_| {}).await;
    let c = start(|_| {}).await;
    assert_eq!(a.node.reachability(), Reachability::Unknown);
    assert!(
        !a.node.kad_server().await.unwrap(),
        "starts as a DHT client"
    );
    a.node.connect(dial_addr(&b.node).await).await.unwrap();
    a.node.connect(dial_addr(&c.node).await).await.unwrap();
    common::eventually(WAIT, "A learns it is public", || async {
        (a.node.reachability() == Reachability::Public).then_some(())
    })
    .await;
    common::eventually(WAIT, "A's DHT turns server", || async {
        a.node.kad_server().await.unwrap().then_some(())
    })
    .await;

    // A leecher refuses dial-backs: its only peer learns nothing from it.
    let leecher = start(|c| c.behaviour.autonat.serve = false).await;
    let lonely = start(|c| c.behaviour.kad_mode = KadMode::ByReachability).await;
    lonely
        .node
        .connect(dial_addr(&leecher.node).await)
        .await
        .unwrap();
    // Several probe rounds (first probe after 200 ms, retries every second).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(lonely.node.reachability(), Reachability::Unknown);
    assert!(!lonely.node.kad_server().await.unwrap());
    for n in [a, b, c, leecher, lonely] {
        n.node.shutdown().await;
    }
}

/// A reserves a slot on relay R; B, connected only to R, dials A through the circuit and
/// fetches a block from A with bitswap over it. With `psk`, all three are in one private
/// network: the circuit runs the pnet handshake end to end, and still works.
async fn relayed_fetch(psk: Option<[u8; 32]>) {
    let r = start(|c| {
        c.behaviour.relay_server = true;
        c.psk = psk;
    })
    .await;
    let relay_addr = dial_addr(&r.node).await;
    // R's listen address is reachable (loopback): announced, it goes into reservations.
    let listen = r.node.listen_addrs().await.unwrap()[0].clone();
    r.node.add_external_address(listen).await.unwrap();
    let a = start(|c| {
        c.relay_client = true;
        c.relays = vec![relay_addr.clone()];
        c.psk = psk;
    })
    .await;
    let b = start(|c| {
        c.relay_client = true;
        c.psk = psk;
    })
    .await;
    let block = raw_block(7, 16 * 1024);
    a.repo.blocks().put(&block).unwrap();
    common::eventually(WAIT, "A's reservation on R", || async {
        a.node
            .relay_reservations()
            .await
            .unwrap()
            .contains(&r.node.peer_id())
            .then_some(())
    })
    .await;
    // The reservation shows among A's listen addresses.
    let circuit = relay::circuit_addr(&relay_addr, a.node.peer_id()).unwrap();
    common::eventually(WAIT, "A listens on R/p2p-circuit", || async {
        a.node
            .listen_addrs()
            .await
            .unwrap()
            .iter()
            .any(relay::is_relayed)
            .then_some(())
    })
    .await;
    assert_eq!(
        b.node.connect(relay_addr.clone()).await.unwrap(),
        r.node.peer_id()
    );
    assert_eq!(b.node.connect(circuit).await.unwrap(), a.node.peer_id());
    let info = b.node.peer_info(a.node.peer_id()).await.unwrap().unwrap();
    assert!(
        relay::is_relayed(info.addr.as_ref().unwrap()),
        "B reaches A through R: {:?}",
        info.addr
    );
    let got = tokio::time::timeout(WAIT, b.node.fetch_block(*block.cid()))
        .await
        .expect("fetch over the circuit")
        .unwrap();
    assert_eq!(got.data(), block.data());
    assert!(b.repo.blocks().has(block.cid()).unwrap());
    for n in [a, b, r] {
        n.node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_is_fetched_through_a_relay_circuit() {
    relayed_fetch(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_circuit_works_inside_a_private_network() {
    relayed_fetch(Some([9u8; 32])).await;
}

/// A node without the relay client cannot dial a circuit address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_relay_client_circuits_are_not_dialed() {
    let a = start(|_| {}).await;
    let relay_id = PeerId::random();
    let relay_addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/9/p2p/{relay_id}")
        .parse()
        .unwrap();
    let circuit = relay::circuit_addr(&relay_addr, PeerId::random()).unwrap();
    assert!(a.node.connect(circuit).await.is_err());
    a.node.shutdown().await;
}

/// Two nodes with mDNS on find each other without being told of one another. Needs IP
/// multicast on the host's interfaces, which this project's CI machine has (a container
/// without a multicast route would fail here: that is the environment, not the code).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mdns_nodes_find_each_other() {
    let a = start(|c| {
        c.behaviour.mdns = true;
        c.listen = vec!["/ip4/0.0.0.0/tcp/0".parse().unwrap()];
    })
    .await;
    let b = start(|c| {
        c.behaviour.mdns = true;
        c.listen = vec!["/ip4/0.0.0.0/tcp/0".parse().unwrap()];
    })
    .await;
    common::eventually(WAIT, "mDNS discovery", || async {
        a.node
            .peers()
            .await
            .unwrap()
            .contains(&b.node.peer_id())
            .then_some(())
    })
    .await;
    a.node.shutdown().await;
    b.node.shutdown().await;
}

/// With mDNS off (the default) two nodes on one host never meet on their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mdns_off_nodes_do_not_find_each_other() {
    let a = start(|_| {}).await;
    let b = start(|_| {}).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(a.node.peers().await.unwrap().is_empty());
    assert!(b.node.peers().await.unwrap().is_empty());
    a.node.shutdown().await;
    b.node.shutdown().await;
}

/// The transport counts every protocol: after identify, ping, a Kademlia lookup and one
/// bitswap block, the bytes received exceed the bitswap bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_of_every_protocol_are_counted() {
    let a = start(|c| c.behaviour.ping_interval = Duration::from_millis(100)).await;
    let b = start(|_| {}).await;
    let block = raw_block(3, 64 * 1024);
    b.repo.blocks().put(&block).unwrap();
    a.node.connect(dial_addr(&b.node).await).await.unwrap();
    common::eventually(WAIT, "identify", || async {
        a.node
            .peer_info(b.node.peer_id())
            .await
            .unwrap()?
            .agent_version
    })
    .await;
    let _ = a.node.closest_peers(PeerId::random()).await;
    a.node.fetch_block(*block.cid()).await.unwrap();
    let bitswap = a.node.bitswap_stat().await.unwrap();
    assert_eq!(bitswap.data_received, block.data().len() as u64);
    let (ta, tb) = (a.node.bandwidth(), b.node.bandwidth());
    eprintln!(
        "A: received {} B, sent {} B in all; bitswap block data received {} B",
        ta.total_in, ta.total_out, bitswap.data_received
    );
    assert!(ta.total_in > bitswap.data_received, "{ta:?} vs {bitswap:?}");
    assert!(ta.total_out > 0 && tb.total_in > 0 && tb.total_out > 0);
    a.node.shutdown().await;
    b.node.shutdown().await;
}

/// A node behind a NAT, made on loopback: it listens nowhere (so the address identify sees
/// is an outbound port no one accepts on) and announces an address whose port was just
/// closed. B and C try to dial it back and fail: A learns `Private`, and its Kademlia, which
/// follows reachability, stays a client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autonat_finds_a_node_behind_nat_private_and_its_dht_stays_client() {
    let a = start(|c| {
        c.listen = Vec::new();
        c.behaviour.kad_mode = KadMode::ByReachability;
    })
    .await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    a.node
        .add_external_address(format!("/ip4/127.0.0.1/tcp/{closed}").parse().unwrap())
        .await
        .unwrap();
    let b = start(|_| {}).await;
    let c = start(|_| {}).await;
    a.node.connect(dial_addr(&b.node).await).await.unwrap();
    a.node.connect(dial_addr(&c.node).await).await.unwrap();
    common::eventually(WAIT, "A learns it is private", || async {
        (a.node.reachability() == Reachability::Private).then_some(())
    })
    .await;
    assert!(
        !a.node.kad_server().await.unwrap(),
        "a private node's DHT stays a client"
    );
    for n in [a, b, c] {
        n.node.shutdown().await;
    }
}

/// `POST /api/v0/<cmd>` on a daemon; the JSON answer of a 200.
fn post(d: &common::Daemon, cmd: &str) -> serde_json::Value {
    reqwest::blocking::Client::new()
        .post(d.url(cmd))
        .send()
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .unwrap()
}

/// Two real daemons connect through the API: `stats/bw` on each counts the identify, ping
/// and Kademlia traffic while bitswap moved nothing, in kubo's shape, rates not negative;
/// the metrics export the totals and the AutoNAT status.
#[test]
fn stats_bw_counts_all_protocols_through_the_api() {
    let (ex, ey) = (crate::common::Env::new(), crate::common::Env::new());
    let (x, y) = (
        common::Daemon::start(&ex, &[], &[]),
        common::Daemon::start(&ey, &[], &[]),
    );
    let id = post(&y, "id");
    let addr = id["Addresses"][0].as_str().unwrap().to_string();
    post(&x, &format!("swarm/connect?arg={addr}"));
    let deadline = std::time::Instant::now() + WAIT;
    let bw = loop {
        let bw = post(&x, "stats/bw");
        if bw["TotalIn"].as_u64().unwrap() > 0 && bw["TotalOut"].as_u64().unwrap() > 0 {
            break bw;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no bytes counted: {bw}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let bitswap = post(&x, "bitswap/stat");
    eprintln!("daemon stats/bw after connecting: {bw}");
    assert_eq!(bitswap["DataReceived"], 0);
    assert!(bw["TotalIn"].as_u64().unwrap() > bitswap["DataReceived"].as_u64().unwrap());
    for key in ["RateIn", "RateOut"] {
        assert!(bw[key].as_f64().unwrap() >= 0.0, "{key}: {bw}");
    }
    let again = post(&x, "stats/bw");
    assert!(again["TotalIn"].as_u64() >= bw["TotalIn"].as_u64());
    assert!(again["RateIn"].as_f64().unwrap() >= 0.0);
    let metrics = reqwest::blocking::get(format!("{}/debug/metrics/prometheus", x.api))
        .unwrap()
        .text()
        .unwrap();
    for name in [
        "ipfs_kit_swarm_received_bytes_total",
        "ipfs_kit_swarm_sent_bytes_total",
        // Loopback peers do not count for AutoNAT by default: still unknown.
        "ipfs_kit_autonat_status 0",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
}

/// `stats/bw` of one peer and of one protocol, through the API: a 300 kB file fetched over
/// bitswap counts in `peer=<holder>` and `proto=/ipfs/bitswap/1.2.0`, identify in its own
/// protocol; a peer never seen reads zero; `peer` with `proto` is kubo's error; `poll`
/// streams one object per interval.
#[test]
fn stats_bw_by_peer_and_by_protocol_and_polled() {
    let (ex, ey) = (crate::common::Env::new(), crate::common::Env::new());
    let (x, y) = (
        common::Daemon::start(&ex, &[], &[]),
        common::Daemon::start(&ey, &[], &[]),
    );
    let file = ey.path("f.bin");
    std::fs::write(&file, common::random_bytes(300_000, 9)).unwrap();
    let cid = ey.ok(&["add", "-Q", "--raw-leaves", file.to_str().unwrap()]);
    let cid = cid.trim();
    let yid = post(&y, "id");
    let addr = yid["Addresses"][0].as_str().unwrap().to_string();
    let ypeer = yid["ID"].as_str().unwrap().to_string();
    post(&x, &format!("swarm/connect?arg={addr}"));
    let got = reqwest::blocking::Client::new()
        .post(x.url(&format!("cat?arg={cid}")))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(got.len(), 300_000);

    let of = |q: &str| {
        let v = post(&x, &format!("stats/bw?{q}"));
        (
            v["TotalIn"].as_u64().unwrap(),
            v["TotalOut"].as_u64().unwrap(),
        )
    };
    let all = of("");
    let peer = of(&format!("peer={ypeer}"));
    let bitswap = of("proto=/ipfs/bitswap/1.2.0");
    let identify = of("proto=/ipfs/id/1.0.0");
    eprintln!("all {all:?}, peer {peer:?}, bitswap {bitswap:?}, identify {identify:?}");
    assert!(bitswap.0 >= 300_000 && bitswap.1 > 0, "{bitswap:?}");
    assert!(identify.0 > 0 && identify.1 > 0, "{identify:?}");
    // The only peer: everything it sent is in the totals; bitswap and identify are in both.
    assert!(peer.0 >= bitswap.0 + identify.0, "{peer:?}");
    assert!(all.0 >= peer.0 && all.1 >= peer.1, "{all:?} vs {peer:?}");
    let xpeer = post(&x, "id")["ID"].as_str().unwrap().to_string();
    assert_eq!(of(&format!("peer={xpeer}")), (0, 0), "a peer never seen");
    assert_eq!(of("proto=/no/such/1.0.0"), (0, 0));

    let c = reqwest::blocking::Client::new();
    let r = c
        .post(x.url(&format!("stats/bw?peer={ypeer}&proto=/ipfs/id/1.0.0")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 500);
    let e: serde_json::Value = r.json().unwrap();
    assert!(
        e["Message"]
            .as_str()
            .unwrap()
            .contains("both peer and proto"),
        "{e}"
    );
    let r = c
        .post(x.url("stats/bw?poll=true&interval=1ms"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);

    let r = c
        .post(x.url("stats/bw?poll=true&interval=50ms&proto=/ipfs/bitswap/1.2.0"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-chunked-output"], "1");
    use std::io::BufRead as _;
    let lines: Vec<serde_json::Value> = std::io::BufReader::new(r)
        .lines()
        .take(3)
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for l in &lines {
        assert!(l["TotalIn"].as_u64().unwrap() >= bitswap.0, "{l}");
        assert!(l["RateIn"].as_f64().unwrap() >= 0.0, "{l}");
    }
}
