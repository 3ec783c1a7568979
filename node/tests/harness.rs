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
        "{n} nodes (random, degree 4, {} links), {pairs} pairs: up in {up:?}\n  provide        {}\n  find_providers {}\n  fetch          {}\n  total {:?}",
        net.edges().len(),
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
// Measured 2026-11-22 (debug, 2 cores under a parallel build): 136 s in all; start-up 1.4 s;
// pairs 1-8 take 5-25 s each (provide p99 9.7 s, find p99 3.4 s, fetch p99 9.2 s), pairs 9-19
// 0.1-0.6 s. Most likely (inferred from that shape, not traced) the time goes into the first
// DHT walks: without a kad bootstrap every routing table holds only the 4 linked neighbours,
// so each early query dials and handshakes (noise + yamux, debug build) many new peers; once
// connections and tables are warm a pair takes ~0.3 s. Next: a parallel kad bootstrap at start would move, not remove, that cost.
#[ignore = "~140 s in a debug build on 2 shared cores (the 60 s CI budget is for the whole \
            test set); forty_nodes_random_pairs_find_providers_and_fetch runs in CI instead. \
            Run with: cargo test -p ipfs-kit --test integration harness:: -- --ignored --nocapture"]
async fn hundred_nodes_random_pairs_find_providers_and_fetch() {
    many_nodes_find_and_fetch(100, 20, 100).await;
}
