//! In-process network tests: several [`Node`]s on one tokio runtime, over TCP and QUIC on
//! 127.0.0.1 with OS-chosen ports. They check identify, ping, Kademlia bootstrap and lookups,
//! and that connection caps refuse connections beyond the cap.

use crate::common;
use std::time::Duration;

use ipfs_kit::net::{self, ConnectionCaps, Keypair, Multiaddr, Node, NodeConfig, PeerId};

const TCP: &str = "/ip4/127.0.0.1/tcp/0";
const QUIC: &str = "/ip4/127.0.0.1/udp/0/quic-v1";
const WAIT: Duration = Duration::from_secs(20);

fn config(listen: &str) -> NodeConfig {
    let mut c = NodeConfig::new(Keypair::generate_ed25519());
    c.listen = vec![listen.parse().unwrap()];
    c.behaviour.ping_interval = Duration::from_millis(200);
    c
}

async fn start(listen: &str) -> Node {
    Node::start(config(listen)).await.unwrap()
}

/// `node`'s first listen address with its `/p2p/<id>` suffix.
async fn dial_addr(node: &Node) -> Multiaddr {
    let addrs = node.listen_addrs().await.unwrap();
    assert!(!addrs.is_empty());
    addrs[0]
        .clone()
        .with(libp2p::multiaddr::Protocol::P2p(node.peer_id()))
}

async fn identified_and_pinged(a: &Node, b: PeerId) -> (String, Vec<String>) {
    common::eventually(WAIT, "identify and ping", || async {
        let info = a.peer_info(b).await.unwrap()?;
        info.rtt?;
        Some((info.agent_version?, info.protocols))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_connect_identify_and_ping_over_tcp() {
    let a = start(TCP).await;
    let b = start(TCP).await;
    let addr = dial_addr(&b).await;
    assert_eq!(a.connect(addr.clone()).await.unwrap(), b.peer_id());
    // Connecting again to a connected peer answers at once.
    assert_eq!(a.connect(addr).await.unwrap(), b.peer_id());

    for (x, y) in [(&a, &b), (&b, &a)] {
        let (agent, protocols) = identified_and_pinged(x, y.peer_id()).await;
        assert_eq!(agent, net::agent_version());
        // What identify announces is what `ipfs-kit id` prints.
        let mut expected: Vec<String> = net::protocols().iter().map(|p| p.to_string()).collect();
        let mut got = protocols;
        got.sort();
        expected.sort();
        assert_eq!(got, expected);
    }
    assert_eq!(a.peers().await.unwrap(), vec![b.peer_id()]);
    assert_eq!(b.peers().await.unwrap(), vec![a.peer_id()]);

    // Shutting b down closes the connection; a notices.
    b.shutdown().await;
    common::eventually(WAIT, "a sees b gone", || async {
        a.peers().await.unwrap().is_empty().then_some(())
    })
    .await;
    a.shutdown().await;
}

/// On-demand pings between two of our nodes, whose ping behaviours each answer one inbound
/// stream per connection and probe every 200 ms here: from the first moment of the connection
/// (both behaviours open their streams then) and all along, every ping comes back. Then the
/// one that cannot: ourselves, and a peer we have no address for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_pings_between_our_nodes() {
    let a = start(TCP).await;
    let b = start(TCP).await;
    a.connect(dial_addr(&b).await).await.unwrap();
    let mut pinger = a.pinger(b.peer_id()).unwrap();
    for _ in 0..30 {
        let rtt = pinger.ping().await.unwrap();
        assert!(rtt < Duration::from_secs(2), "{rtt:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // b's periodic pings of a kept working beside them.
    let (_, _) = identified_and_pinged(&b, a.peer_id()).await;
    assert!(matches!(
        a.pinger(a.peer_id()),
        Err(net::NetError::Ping { .. })
    ));
    let nobody = Keypair::generate_ed25519().public().to_peer_id();
    let err = a.pinger(nobody).unwrap().ping().await.unwrap_err();
    assert!(matches!(err, net::NetError::Ping { .. }), "{err}");
    a.shutdown().await;
    b.shutdown().await;
}

/// Peering: a peered peer is dialed at start, its connection outlives the idle timeout that
/// closes an ordinary one, and a closed connection is dialed again after the backoff; once
/// removed from the set, it is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peered_peers_are_kept_and_redialed() {
    let b = start(TCP).await;
    let c = start(TCP).await;
    let mut ca = config(TCP);
    ca.idle_connection_timeout = Duration::from_secs(1);
    ca.peering_backoff_initial = Duration::from_millis(300);
    ca.peering = vec![dial_addr(&b).await];
    let a = Node::start(ca).await.unwrap();
    let connected = |n: &Node, p: PeerId| {
        let n = n.handle();
        async move { n.peers().await.unwrap().contains(&p) }
    };
    common::eventually(WAIT, "a dials its peered peer at start", || async {
        connected(&a, b.peer_id()).await.then_some(())
    })
    .await;
    assert_eq!(a.peering_list().await.unwrap()[0].0, b.peer_id());
    // An ordinary connection from a closes once idle (1 s); the peered one stays.
    a.connect(dial_addr(&c).await).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!connected(&a, c.peer_id()).await, "idle connection kept");
    assert!(connected(&a, b.peer_id()).await, "peered connection closed");
    // b closes it: a dials again.
    assert!(b.disconnect(a.peer_id()).await.unwrap());
    common::eventually(WAIT, "a sees the connection closed", || async {
        (!connected(&a, b.peer_id()).await).then_some(())
    })
    .await;
    common::eventually(WAIT, "a redials its peered peer", || async {
        (connected(&a, b.peer_id()).await && connected(&b, a.peer_id()).await).then_some(())
    })
    .await;
    // Removed: b's next disconnect stays.
    assert!(a.peering_remove(b.peer_id()).await.unwrap());
    assert!(!a.peering_remove(b.peer_id()).await.unwrap());
    assert!(b.disconnect(a.peer_id()).await.unwrap());
    common::eventually(WAIT, "a sees the connection closed again", || async {
        (!connected(&a, b.peer_id()).await).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!connected(&a, b.peer_id()).await, "redialed after removal");
    // Added again at run time (`swarm peering add`): dialed at once.
    let peer = a.peering_add(dial_addr(&b).await).await.unwrap();
    assert_eq!(peer, b.peer_id());
    common::eventually(WAIT, "a dials a peer added at run time", || async {
        connected(&a, b.peer_id()).await.then_some(())
    })
    .await;
    assert!(a
        .peering_add("/ip4/127.0.0.1/tcp/1".parse().unwrap())
        .await
        .is_err());
    for n in [a, b, c] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_connect_over_quic() {
    let a = start(QUIC).await;
    let b = start(QUIC).await;
    let addr = dial_addr(&b).await;
    assert!(addr.to_string().contains("/quic-v1"));
    assert_eq!(a.connect(addr).await.unwrap(), b.peer_id());
    let (agent, _) = identified_and_pinged(&a, b.peer_id()).await;
    assert_eq!(agent, net::agent_version());
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_errors_are_typed() {
    let a = start(TCP).await;
    // Nobody listens there (a port just released by another node).
    let b = start(TCP).await;
    let addr = dial_addr(&b).await;
    b.shutdown().await;
    let err = a.connect(addr).await.unwrap_err();
    assert!(matches!(err, net::NetError::Dial { .. }), "{err}");
    // Bootstrapping with no known peer says so.
    let err = a.bootstrap().await.unwrap_err();
    assert!(matches!(err, net::NetError::NoKnownPeers), "{err}");
    // A handle works from another task while the node runs, and says Stopped after.
    let handle = a.handle();
    let peer_id = a.peer_id();
    let from_task = tokio::spawn(async move { handle.listen_addrs().await.map(|_| handle) });
    let handle = from_task.await.unwrap().unwrap();
    assert_eq!(handle.peer_id(), peer_id);
    a.shutdown().await;
    let err = handle.peers().await.unwrap_err();
    assert!(matches!(err, net::NetError::Stopped), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_on_a_bad_address_is_an_error() {
    let mut c = config(TCP);
    // An address of another host: binding fails.
    c.listen = vec!["/ip4/192.0.2.1/tcp/0".parse().unwrap()];
    let err = Node::start(c).await.err().expect("bind must fail");
    assert!(matches!(err, net::NetError::Listen { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cap_refuses_beyond_it() {
    const CAP: u32 = 2;
    let mut c = config(TCP);
    c.behaviour.caps = ConnectionCaps {
        max_established_incoming: Some(CAP),
        ..ConnectionCaps::default()
    };
    let limited = Node::start(c).await.unwrap();
    let addr = dial_addr(&limited).await;
    let mut dialers = Vec::new();
    for _ in 0..CAP {
        let d = start(TCP).await;
        assert_eq!(d.connect(addr.clone()).await.unwrap(), limited.peer_id());
        dialers.push(d);
    }
    common::eventually(WAIT, "cap reached", || async {
        (limited.peers().await.unwrap().len() == CAP as usize).then_some(())
    })
    .await;
    // One more: the listener denies it after the handshake, so the dialer ends up without
    // the connection (its connect may report establishment before the denial closes it).
    let extra = start(TCP).await;
    let _ = extra.connect(addr.clone()).await;
    common::eventually(WAIT, "extra connection closed", || async {
        extra.peers().await.unwrap().is_empty().then_some(())
    })
    .await;
    let peers = limited.peers().await.unwrap();
    assert_eq!(peers.len(), CAP as usize);
    assert!(!peers.contains(&extra.peer_id()));
    // Once one dialer leaves, there is room again.
    let gone = dialers.pop().unwrap();
    gone.shutdown().await;
    common::eventually(WAIT, "room again", || async {
        (limited.peers().await.unwrap().len() < CAP as usize).then_some(())
    })
    .await;
    assert_eq!(extra.connect(addr).await.unwrap(), limited.peer_id());
    common::eventually(WAIT, "extra admitted", || async {
        limited
            .peers()
            .await
            .unwrap()
            .contains(&extra.peer_id())
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_nodes_bootstrap_and_find_each_other_through_the_dht() {
    const N: usize = 10;
    let mut nodes = Vec::new();
    for _ in 0..N {
        nodes.push(start(TCP).await);
    }
    // Star around node 0: every other node knows only node 0.
    let hub = dial_addr(&nodes[0]).await;
    for n in &nodes[1..] {
        n.connect(hub.clone()).await.unwrap();
    }
    // Node 0 must have identified everyone (and so put them in its routing table) before
    // the others can learn about each other from it.
    for n in &nodes[1..] {
        identified_and_pinged(&nodes[0], n.peer_id()).await;
        identified_and_pinged(n, nodes[0].peer_id()).await;
    }
    for n in &nodes {
        n.bootstrap().await.unwrap();
    }
    // The last node finds the first non-hub node's addresses through the DHT, though it was
    // never told about it.
    let target = nodes[1].peer_id();
    let found = nodes[N - 1].find_peer(target).await.unwrap();
    let addrs = found.expect("target found through the DHT");
    assert!(!addrs.is_empty());
    // Closest-peer lookups from any node see the whole (small) network.
    let key = PeerId::random();
    let closest = nodes[3].closest_peers(key).await.unwrap();
    assert!(closest.len() >= N - 2, "only {} peers found", closest.len());
    // And the found address is dialable.
    let mut addr = addrs[0].clone();
    if net::node::peer_of(&addr).is_none() {
        addr = addr.with(libp2p::multiaddr::Protocol::P2p(target));
    }
    assert_eq!(nodes[N - 1].connect(addr).await.unwrap(), target);
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_peers_are_dialed_at_start_and_fill_the_routing_table() {
    let hub = start(TCP).await;
    let first = start(TCP).await;
    first.connect(dial_addr(&hub).await).await.unwrap();
    identified_and_pinged(&hub, first.peer_id()).await;
    // A node configured with the hub as its bootstrap peer connects by itself and, through
    // the DHT bootstrap that follows, learns of `first`.
    let mut c = config(TCP);
    c.bootstrap = vec![dial_addr(&hub).await];
    let late = Node::start(c).await.unwrap();
    common::eventually(WAIT, "late connected to hub", || async {
        late.peers()
            .await
            .unwrap()
            .contains(&hub.peer_id())
            .then_some(())
    })
    .await;
    let found = late.find_peer(first.peer_id()).await.unwrap();
    assert!(found.is_some_and(|a| !a.is_empty()));
}
