//! The cluster as its users run it: real `ipfs-kit daemon` processes (1 master + 2 workers on
//! loopback, a short metric TTL), driven through the cluster REST API. Pin on the master, see
//! it pinned where allocated; kill an allocated worker, see the pin re-allocated to keep
//! `replication_factor_min`; restart the worker, see it converge to the master's pinset.
//! Also the private network: nodes with different swarm keys (or none) cannot connect.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::cluster_api::{client, env_with_role, lines, wait_for, ClusterDaemon};

/// Seconds a peer's metric counts in these tests (the default is far longer).
const METRIC_TTL_SECS: &str = "2";

fn allocations(c: &reqwest::blocking::Client, d: &ClusterDaemon, cid: &str) -> BTreeSet<String> {
    let r = c.get(d.url(&format!("/allocations/{cid}"))).send().unwrap();
    if r.status() != 200 {
        return BTreeSet::new();
    }
    let v: Value = r.json().unwrap();
    v["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

fn peer_status(c: &reqwest::blocking::Client, d: &ClusterDaemon, cid: &str, peer: &str) -> String {
    let g: Value = c
        .get(d.url(&format!("/pins/{cid}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    g["peer_map"][peer]["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn exported(c: &reqwest::blocking::Client, d: &ClusterDaemon) -> String {
    c.get(d.url("/state/export"))
        .send()
        .unwrap()
        .text()
        .unwrap()
}

#[test]
fn master_two_workers_reallocate_and_converge() {
    let c = client();
    let ttl = [("IPFS_KIT_CLUSTER_METRIC_TTL_SECS", METRIC_TTL_SECS)];
    let m_env = env_with_role("master");
    let master = ClusterDaemon::start(&m_env, &[], &ttl);
    let worker_vars = [
        ("IPFS_KIT_CLUSTER_METRIC_TTL_SECS", METRIC_TTL_SECS),
        ("IPFS_KIT_CLUSTER_TRUSTED_PEERS", master.peer_id.as_str()),
    ];
    let w1_env = env_with_role("worker");
    let mut w1 = ClusterDaemon::start(&w1_env, &["--bootstrap", &master.swarm], &worker_vars);
    let w2_env = env_with_role("worker");
    let w2 = ClusterDaemon::start(&w2_env, &["--bootstrap", &master.swarm], &worker_vars);

    // Every peer's metric reached the master.
    wait_for(Duration::from_secs(30), "three live peers", || {
        let peers = lines(c.get(master.url("/peers")).send().unwrap());
        let live = peers.iter().filter(|p| p["error"] == "").count();
        (live == 3).then_some(())
    });

    // Pin on the master with replication 2, w1 allocated first.
    let cid = master.add(&c, b"black-box cluster content".repeat(1000));
    let r = c
        .post(master.url(&format!(
            "/pins/{cid}?name=bb&replication-min=2&replication-max=2&user-allocations={}",
            w1.peer_id
        )))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text());
    // Deltas are batched: the pinset shows the pin once its batch is flushed.
    let before = wait_for(Duration::from_secs(10), "the pin's allocations", || {
        let a = allocations(&c, &master, &cid);
        (!a.is_empty()).then_some(a)
    });
    assert_eq!(before.len(), 2, "{before:?}");
    assert!(before.contains(&w1.peer_id), "{before:?}");
    for peer in &before {
        wait_for(Duration::from_secs(30), "pinned on the allocations", || {
            (peer_status(&c, &master, &cid, peer) == "pinned").then_some(())
        });
    }

    // Kill w1: after its metric expires the pin moves to the one peer left.
    w1.kill();
    let all: BTreeSet<String> = [&master.peer_id, &w1.peer_id, &w2.peer_id]
        .into_iter()
        .cloned()
        .collect();
    let after = wait_for(Duration::from_secs(30), "re-allocation", || {
        let a = allocations(&c, &master, &cid);
        (a.len() == 2 && !a.contains(&w1.peer_id)).then_some(a)
    });
    let expected: BTreeSet<String> = all.iter().filter(|p| **p != w1.peer_id).cloned().collect();
    assert_eq!(after, expected);
    let newcomer = after.difference(&before).next().unwrap().clone();
    wait_for(
        Duration::from_secs(30),
        "pinned on the new allocation",
        || (peer_status(&c, &master, &cid, &newcomer) == "pinned").then_some(()),
    );

    // A second pin while w1 is down, then restart w1 (same repository): it converges.
    let cid2 = master.add(&c, b"pinned while w1 was down".to_vec());
    let r = c
        .post(master.url(&format!("/pins/{cid2}?name=later")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let w1 = ClusterDaemon::start(&w1_env, &["--bootstrap", &master.swarm], &worker_vars);
    let want = wait_for(Duration::from_secs(10), "both pins in the export", || {
        let e = exported(&c, &master);
        (e.lines().count() == 2).then_some(e)
    });
    wait_for(
        Duration::from_secs(30),
        "w1 converges to the master's pinset",
        || (exported(&c, &w1) == want).then_some(()),
    );
    wait_for(Duration::from_secs(30), "w2 has the same pinset", || {
        (exported(&c, &w2) == want).then_some(())
    });
    // cid2 is pinned everywhere (replication -1), w1 included.
    wait_for(Duration::from_secs(30), "cid2 pinned on w1", || {
        (peer_status(&c, &w1, &cid2, &w1.peer_id) == "pinned").then_some(())
    });
}

/// Nodes in a private network: the same key connects, another key or none does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_key_keeps_other_networks_out() {
    use ipfs_kit::net::{Keypair, Node, NodeConfig};
    async fn node(psk: Option<[u8; 32]>) -> Node {
        let mut c = NodeConfig::new(Keypair::generate_ed25519());
        c.listen = vec![
            "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
            // Dropped under a key (QUIC has no pnet layer); kept without one.
            "/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap(),
        ];
        c.psk = psk;
        Node::start(c).await.unwrap()
    }
    async fn tcp_addr(n: &Node) -> libp2p::Multiaddr {
        let a = n
            .listen_addrs()
            .await
            .unwrap()
            .into_iter()
            .find(|a| a.to_string().contains("/tcp/"))
            .unwrap();
        a.with(libp2p::multiaddr::Protocol::P2p(n.peer_id()))
    }
    let (k1, k2) = ([1u8; 32], [2u8; 32]);
    let a = node(Some(k1)).await;
    let b = node(Some(k1)).await;
    let other = node(Some(k2)).await;
    let open = node(None).await;
    assert!(a
        .listen_addrs()
        .await
        .unwrap()
        .iter()
        .all(|x| !x.to_string().contains("quic")));

    let limit = Duration::from_secs(20);
    let dial = |from: &Node, to: libp2p::Multiaddr| {
        let h = from.handle();
        async move { tokio::time::timeout(limit, h.connect(to)).await }
    };
    assert_eq!(
        dial(&a, tcp_addr(&b).await).await.unwrap().unwrap(),
        b.peer_id()
    );
    for (from, to) in [(&a, &other), (&other, &a), (&a, &open), (&open, &a)] {
        let r = dial(from, tcp_addr(to).await).await;
        assert!(
            !matches!(r, Ok(Ok(_))),
            "{} connected to {} across networks",
            from.peer_id(),
            to.peer_id()
        );
    }
    assert!(!a.peers().await.unwrap().contains(&other.peer_id()));
    assert!(!a.peers().await.unwrap().contains(&open.peer_id()));
}
