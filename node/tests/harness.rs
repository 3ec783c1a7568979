//! The in-process testnet (`ipfs_kit::harness`) at 3, 10 and 100 nodes: content added on one
//! node is found through DHT provider records and fetched over bitswap by nodes that are not
//! linked to it, byte for byte; a stopped provider's content still comes from a second
//! provider; a restarted node serves again. Latency and overlay hops are printed (run with
//! `--nocapture` to see them).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Instant;

use futures::StreamExt as _;
use ipfs_kit::harness::{SplitMix64, Testnet, Topology};

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64(seed);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v.truncate(len);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_line_fetch_end_to_end_through_dht_providers() {
    let started = Instant::now();
    let net = Testnet::start(3, Topology::Line).await.unwrap();
    let p0 = net.peer_id(0).unwrap();
    let h2 = net.handle(2).unwrap();
    assert!(
        !h2.peers().await.unwrap().contains(&p0),
        "0 and 2 are not linked"
    );

    // Five chunks of 256 KiB: a root with links, announced by node 0.
    let data = random_bytes(5 * 256 * 1024 + 3, 1);
    let cid = net.add_bytes(0, data.clone()).await.unwrap();
    assert_eq!(net.find_providers(2, cid, 5).await.unwrap(), vec![0]);
    let got = net.fetch(2, cid).await.unwrap();
    assert!(got == data, "node 2 got different bytes");
    // Node 2 dialed node 0, learned from the provider record; node 1 never had the content.
    assert!(h2.peers().await.unwrap().contains(&p0));
    assert!(!net.repo(1).unwrap().blocks().has(&cid).unwrap());
    assert!(net.repo(2).unwrap().is_pinned(&cid).unwrap().is_some());

    let stats = net.stats();
    assert_eq!(stats.fetches.len(), 1);
    assert_eq!(stats.fetches[0].hops, Some(2), "{stats:?}");
    assert_eq!(stats.find_providers[0].hops, Some(2), "{stats:?}");
    println!(
        "3 nodes (line): find_providers {} | fetch {} | total {:?}",
        stats.find_providers_summary(),
        stats.fetch_summary(),
        started.elapsed()
    );
    net.shutdown().await;
}

/// `id <peer>` for a peer not connected (kubo looks it up): node 0 finds node 2 through the
/// DHT (node 1 between them), dials it, and reports what identify said: agent, key,
/// protocols. A peer nobody knows is an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identify_a_peer_found_through_the_dht() {
    let net = Testnet::start(3, Topology::Line).await.unwrap();
    let (h0, p2) = (net.handle(0).unwrap(), net.peer_id(2).unwrap());
    assert!(
        !h0.peers().await.unwrap().contains(&p2),
        "0 and 2 are not linked"
    );
    let info = h0.identify_peer(p2).await.unwrap();
    assert_eq!(
        info.agent_version.as_deref(),
        Some(ipfs_kit::net::agent_version().as_str())
    );
    assert_eq!(
        info.protocol_version.as_deref(),
        Some(ipfs_kit::net::behaviour::IDENTIFY_PROTOCOL_VERSION)
    );
    let key = libp2p::identity::PublicKey::try_decode_protobuf(&info.public_key).unwrap();
    assert_eq!(key.to_peer_id(), p2);
    assert!(info.protocols.iter().any(|p| p == "/ipfs/bitswap/1.2.0"));
    assert!(!info.listen_addrs.is_empty());
    assert!(h0.peers().await.unwrap().contains(&p2));
    let nobody = ipfs_kit::net::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    assert!(h0.identify_peer(nobody).await.is_err());
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_nodes_random_every_node_fetches_and_a_second_provider_survives_a_stop() {
    let started = Instant::now();
    let n = 10;
    let mut net = Testnet::start(
        n,
        Topology::Random {
            degree: 3,
            seed: 10,
        },
    )
    .await
    .unwrap();
    // Every node adds its own content (two chunks and a bit).
    let mut data = Vec::new();
    let mut cids = Vec::new();
    for i in 0..n {
        let d = random_bytes(2 * 256 * 1024 + 100 + i, 100 + i as u64);
        cids.push(net.add_bytes(i, d.clone()).await.unwrap());
        data.push(d);
    }
    // Every node fetches the content added three nodes further on, all at once.
    let source = |j: usize| (j + 3) % n;
    let fetched: Vec<(usize, Vec<u8>)> = futures::stream::iter(0..n)
        .map(|j| {
            let net = &net;
            let cid = cids[source(j)];
            async move { (j, net.fetch(j, cid).await.unwrap()) }
        })
        .buffer_unordered(n)
        .collect()
        .await;
    for (j, got) in &fetched {
        assert!(*got == data[source(*j)], "node {j} got different bytes");
    }
    let first = net.stats().fetch_summary();

    // Node 7 fetched node 0's content: it announces it too, then node 0 stops.
    assert_eq!(source(7), 0);
    net.provide(7, cids[0]).await.unwrap();
    net.stop(0).await.unwrap();
    // A node that has neither: it finds node 7 through the DHT and fetches from it.
    let asker = (1..n)
        .find(|&k| k != 7 && !net.repo(k).unwrap().blocks().has(&cids[0]).unwrap())
        .unwrap();
    let providers = net.find_providers(asker, cids[0], 10).await.unwrap();
    assert!(providers.contains(&7), "{providers:?}");
    let got = net.fetch(asker, cids[0]).await.unwrap();
    assert!(
        got == data[0],
        "node {asker} got different bytes from the second provider"
    );
    assert!(!net.is_running(0));

    // Node 0 comes back with its repository and serves its content again; a cut link stays
    // cut in the harness's view.
    net.restart(0).await.unwrap();
    let (a, b) = *net.edges().iter().next().unwrap();
    net.disconnect(a, b).await.unwrap();
    assert!(!net.edges().contains(&(a, b)));
    let far = (1..n)
        .find(|&k| !net.repo(k).unwrap().blocks().has(&cids[0]).unwrap())
        .unwrap_or(asker);
    let got = net.fetch(far, cids[0]).await.unwrap();
    assert!(got == data[0]);
    let all = net.stats();
    println!(
        "10 nodes (random, degree 3): first round fetch {first} | all fetches {} | find_providers {} | total {:?}",
        all.fetch_summary(),
        all.find_providers_summary(),
        started.elapsed()
    );
    net.shutdown().await;
}

/// Each of `pairs` random (provider, fetcher) pairs: the provider adds fresh content, the
/// fetcher finds it as a provider through the DHT and fetches it byte for byte.
async fn many_nodes_find_and_fetch(n: usize, pairs: usize, seed: u64) {
    // Where the time goes: IPFS_KIT_HARNESS_LOG=ipfs_kit=debug,libp2p_kad=debug (an
    // EnvFilter) logs to stderr.
    if let Ok(filter) = std::env::var("IPFS_KIT_HARNESS_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
    let started = Instant::now();
    let net = Testnet::start(n, Topology::Random { degree: 4, seed })
        .await
        .unwrap();
    let up = started.elapsed();
    let mut rng = SplitMix64(seed);
    let mut seen = BTreeSet::new();
    for k in 0..pairs {
        let provider = rng.below(n);
        let fetcher = loop {
            let f = rng.below(n);
            if f != provider {
                break f;
            }
        };
        seen.insert((provider, fetcher));
        let data = random_bytes(300 * 1024 + k, seed ^ k as u64);
        let t = Instant::now();
        let cid = net.add_bytes(provider, data.clone()).await.unwrap();
        let t_add = t.elapsed();
        let found = net.find_providers(fetcher, cid, 1).await.unwrap();
        let t_find = t.elapsed() - t_add;
        assert!(
            found.contains(&provider),
            "pair {k}: node {fetcher} did not find node {provider}: {found:?}"
        );
        let got = net.fetch(fetcher, cid).await.unwrap();
        assert!(got == data, "pair {k}: node {fetcher} got different bytes");
        println!(
            "  pair {k:2}: {provider:3} -> {fetcher:3}  add+provide {t_add:?}  find {t_find:?}  fetch {:?}",
            t.elapsed() - t_add - t_find
        );
    }
    let stats = net.stats();
    assert_eq!(stats.fetches.len(), pairs);
    println!(
        "{n} nodes (random, degree 4, {} links), {pairs} pairs: up in {up:?} (boot {:?}, link {:?})\n  provide        {}\n  find_providers {}\n  fetch          {}\n  total {:?}",
        net.edges().len(),
        stats.boot,
        stats.link,
        stats.provide_summary(),
        stats.find_providers_summary(),
        stats.fetch_summary(),
        started.elapsed()
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_nodes_random_pairs_find_providers_and_fetch() {
    many_nodes_find_and_fetch(40, 20, 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// Traced 2026-11-22 (test profile, 2 cores shared with other builds, load average ~5):
// 67-72 s in all. Start-up is ~1.1 s (boot 0.34 s, 8 nodes at a time; link 0.58 s); pairs
// 9-19 take 0.1-0.4 s; the rest is pairs 0-8 (3-10 s each) running beside rust-libp2p kad's
// *automatic* bootstrap: every routing table holds only its 4 linked neighbours (< 20), so
// each node refreshes all its buckets at once (IPFS_KIT_HARNESS_LOG=libp2p_swarm=debug showed
// ~5,600 new connections in the first 40 s: the network becomes nearly a full mesh). That
// bootstrap cannot be turned off (libp2p-kad 0.49's `set_automatic_bootstrap_throttle` is
// test-only) and is what a real node joining does; running it explicitly on all 100 nodes
// before the pairs (tried) did not finish within 60 s on this shared machine. So the cost is
// the CPU of ~5,600 handshakes + identify + kad RPCs, not waiting; < 60 s was not reached here.
#[ignore = "28 s alone, 67-72 s beside other work (kad's automatic bootstrap storm): .ci/run \
            runs it alone after the workspace tests, not beside them. Run with: \
            cargo test -p ipfs-kit --test integration harness::hundred -- --ignored --nocapture"]
async fn hundred_nodes_random_pairs_find_providers_and_fetch() {
    many_nodes_find_and_fetch(100, 20, 100).await;
}

/// A gateway over a running node, for a block no peer gives: the fetch gives up (here after
/// a short stall, long before the retrieval timeout) and the answer is 502 with the reason —
/// not 404, which would say the content does not exist. Content a peer has still comes back
/// whole through the same gateway. Read with a real HTTP client from a router served on
/// loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_answers_502_for_a_block_no_peer_gives() {
    use ipfs_kit::gateway::{router, GatewayLimits};
    use ipfs_kit::harness::TestnetConfig;
    let mut config = TestnetConfig::new(2, Topology::Full);
    config.fetch_stall_timeout = std::time::Duration::from_millis(500);
    let net = Testnet::start_with(config).await.unwrap();
    let data = random_bytes(700_000, 17);
    let present = net.add_bytes(1, data.clone()).await.unwrap();
    let state = ipfs_kit::api::ApiState {
        repo: net.repo(0).unwrap().clone(),
        node: Some(net.handle(0).unwrap()),
        public_key: None,
        role: ipfs_kit::config::Role::Leecher,
        metrics: std::sync::Arc::new(ipfs_kit::metrics::Metrics::new()),
        bw: Default::default(),
        reprovider: None,
        shutdown: None,
    };
    let limits = GatewayLimits {
        retrieval_timeout: std::time::Duration::from_secs(30),
        ..GatewayLimits::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, router(state, limits)).await.unwrap();
    });
    let client = reqwest::Client::new();

    let absent = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
    for query in ["", "?format=raw", "?format=car"] {
        let started = Instant::now();
        let r = client
            .get(format!("{base}/ipfs/{absent}{query}"))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert_eq!(status, 502, "{query}: {body}");
        assert!(body.contains("could not be retrieved"), "{query}: {body}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "{query}: answered after {:?}",
            started.elapsed()
        );
    }
    // A dag-pb root nobody has (a directory would be listed, a file streamed): the same.
    let mh = ipfs_kit_blockstore::hash::HashFn::Sha2_256
        .digest(b"a dag-pb node nobody has")
        .unwrap();
    let absent_pb = cid::Cid::new_v0(mh).unwrap();
    for query in ["", "?format=car"] {
        let r = client
            .get(format!("{base}/ipfs/{absent_pb}{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 502, "{query}");
    }
    // A path under content that does not come: 502 as well, not "no such link".
    let r = client
        .get(format!("{base}/ipfs/{absent}/a/b"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 502);

    let r = client
        .get(format!("{base}/ipfs/{present}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[..]);
    server.abort();
    net.shutdown().await;
}
