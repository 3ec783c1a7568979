//! The sweeping reprovider (`ipfs_kit::net::provide`) on a real in-process testnet: one node
//! announces 2,000 blocks with one DHT lookup per keyspace region instead of one per key,
//! writing many ADD_PROVIDER records per stream, and other nodes then find it as the
//! provider through ordinary `find_providers` searches. Also: the provide strategies derive
//! the provided set from the repository.

#![allow(clippy::unwrap_used)]

use std::time::Instant;

use bytes::Bytes;
use cid::Cid;
use ipfs_kit::config::ProvideStrategy;
use ipfs_kit::harness::{Testnet, Topology};
use ipfs_kit::net::provide::{strategy_keys, Reprovider, ReproviderConfig};
use ipfs_kit_blockstore::hash::HashFn;
use ipfs_kit_blockstore::Block;

const RAW: u64 = 0x55;

fn raw_block(i: u32) -> Block {
    let data = Bytes::from(format!("reprovide test block {i}").into_bytes());
    let mh = HashFn::Sha2_256.digest(&data).unwrap();
    Block::new(Cid::new_v1(RAW, mh), data).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_provides_2000_keys_with_one_lookup_per_region_and_peers_find_them() {
    let started = Instant::now();
    let n = 15;
    let keys = 2000u32;
    let net = Testnet::start(n, Topology::Random { degree: 4, seed: 3 })
        .await
        .unwrap();
    let blocks: Vec<Block> = (0..keys).map(raw_block).collect();
    net.repo(0).unwrap().blocks().put_many(&blocks).unwrap();

    let reprovider = Reprovider::for_repo(
        net.handle(0).unwrap(),
        ReproviderConfig::default(),
        net.repo(0).unwrap().clone(),
        ProvideStrategy::All,
    );
    let sweep_started = Instant::now();
    let report = reprovider.sweep_all().await.unwrap();
    let sweep_took = sweep_started.elapsed();
    println!("sweep of {keys} keys over {n} nodes: {report:?} in {sweep_took:?}");

    assert_eq!(report.keys, keys as usize);
    assert!(report.regions >= 1);
    assert!(
        report.lookups <= report.regions,
        "one lookup per region at most: {report:?}"
    );
    assert!(
        report.lookups < 10,
        "far fewer lookups than keys: {report:?}"
    );
    assert_eq!(report.send_failures, 0, "{report:?}");
    // Every other node is among the k = 20 closest of every key in a 15-node network.
    assert_eq!(report.peers, n - 1, "{report:?}");
    assert_eq!(report.records_sent, keys as usize * (n - 1), "{report:?}");
    let stat = reprovider.stat();
    assert_eq!(stat.keys_provided, keys as usize);
    assert_eq!(stat.lookups, report.lookups as u64);
    assert_eq!(stat.records_sent, report.records_sent as u64);
    assert_eq!(stat.cycles, 1);
    assert!(stat.network_size >= 2, "{stat:?}");

    // Other nodes find node 0 as the provider of a sample of the keys.
    let mut found = 0;
    for (j, i) in (0..keys).step_by(100).enumerate() {
        let cid = *blocks[i as usize].cid();
        let asker = 1 + j % (n - 1);
        let providers = net.find_providers(asker, cid, 1).await.unwrap();
        assert_eq!(providers, vec![0], "key {i} asked from node {asker}");
        found += 1;
    }
    assert_eq!(found, 20);
    // A sweep again (the reprovide) renews the same records with the same cost.
    let again = reprovider.sweep_all().await.unwrap();
    assert_eq!(again.records_sent, report.records_sent);
    assert!(again.lookups <= again.regions);
    println!("total {:?}", started.elapsed());
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_provides_are_batched_into_their_region() {
    let net = Testnet::start(6, Topology::Ring).await.unwrap();
    let reprovider = Reprovider::new(net.handle(0).unwrap(), ReproviderConfig::default(), None);
    let blocks: Vec<Block> = (10_000..10_300).map(raw_block).collect();
    net.repo(0).unwrap().blocks().put_many(&blocks).unwrap();
    let cids: Vec<Cid> = blocks.iter().map(|b| *b.cid()).collect();
    assert_eq!(reprovider.provide_cids(&cids), 300);
    assert_eq!(reprovider.provide_cids(&cids[..10]), 0, "already provided");
    let report = reprovider.flush().await.unwrap();
    assert_eq!(report.keys, 300);
    assert!(
        report.lookups <= report.regions && report.lookups >= 1,
        "{report:?}"
    );
    assert_eq!(report.records_sent, 300 * 5, "{report:?}");
    // Nothing pending any more.
    assert_eq!(reprovider.flush().await.unwrap().keys, 0);
    let providers = net.find_providers(3, cids[123], 1).await.unwrap();
    assert_eq!(providers, vec![0]);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategies_derive_the_provided_set_from_the_repo() {
    let net = Testnet::start(1, Topology::Line).await.unwrap();
    // A pinned file of three chunks (root + 3 leaves) and one loose block.
    let data: Vec<u8> = (0..(3 * 256 * 1024)).map(|i| (i % 251) as u8).collect();
    let root = net.add_bytes(0, data).await.unwrap();
    let repo = net.repo(0).unwrap();
    let loose = raw_block(7);
    repo.blocks().put(&loose).unwrap();
    let key = |c: &Cid| c.hash().to_bytes();

    let all = strategy_keys(repo, ProvideStrategy::All).unwrap();
    let pinned = strategy_keys(repo, ProvideStrategy::Pinned).unwrap();
    let roots = strategy_keys(repo, ProvideStrategy::Roots).unwrap();
    assert_eq!(roots, vec![key(&root)]);
    assert!(pinned.contains(&key(&root)));
    assert!(!pinned.contains(&key(loose.cid())));
    assert!(all.contains(&key(loose.cid())));
    assert_eq!(pinned.len(), 4, "root and three leaves");
    assert_eq!(all.len(), 5);
    // CIDv0 and v1 of the root are one key.
    let v1 = Cid::new_v1(0x70, *root.hash());
    repo.pin_add(&v1, true, None).unwrap();
    assert_eq!(
        strategy_keys(repo, ProvideStrategy::Roots).unwrap().len(),
        1
    );
    net.shutdown().await;
}

/// The reprovider's counters through the RPC API (`stats/provide`, kubo's field names plus
/// ours) and the Prometheus text (`ipfs_kit_provide_*`), read with a real HTTP client from a
/// router served on loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_in_stats_provide_and_prometheus() {
    let net = Testnet::start(4, Topology::Full).await.unwrap();
    let blocks: Vec<Block> = (20_000..20_050).map(raw_block).collect();
    let repo = net.repo(0).unwrap().clone();
    repo.blocks().put_many(&blocks).unwrap();
    let reprovider = Reprovider::for_repo(
        net.handle(0).unwrap(),
        ReproviderConfig::default(),
        repo.clone(),
        ProvideStrategy::All,
    );
    let report = reprovider.sweep_all().await.unwrap();
    assert_eq!(report.records_sent, 50 * 3, "{report:?}");

    let state = ipfs_kit::api::ApiState {
        repo,
        node: Some(net.handle(0).unwrap()),
        public_key: None,
        role: ipfs_kit::config::Role::Leecher,
        metrics: std::sync::Arc::new(ipfs_kit::metrics::Metrics::new()),
        bw: Default::default(),
        reprovider: Some(reprovider.clone()),
        shutdown: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, ipfs_kit::api::router(state))
            .await
            .unwrap();
    });
    let client = reqwest::Client::new();

    let v: serde_json::Value = client
        .post(format!("{base}/api/v0/stats/provide"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["TotalProvides"], 50, "{v}");
    assert_eq!(v["LastReprovideBatchSize"], 50, "{v}");
    assert!(v["LastReprovideDuration"].as_u64().unwrap() > 0, "{v}");
    let avg = v["AvgProvideDuration"].as_u64().unwrap();
    assert!(
        avg > 0 && avg <= v["LastReprovideDuration"].as_u64().unwrap(),
        "{v}"
    );
    assert_eq!(v["KeysProvided"], 50, "{v}");
    assert_eq!(v["RecordsSent"], 150, "{v}");
    assert_eq!(v["RecordsFailed"], 0, "{v}");
    assert_eq!(v["Sweeps"], 1, "{v}");
    assert_eq!(v["Lookups"], report.lookups, "{v}");
    assert_eq!(v["RegionsSwept"], report.regions, "{v}");
    let started = v["LastSweepStartedUnixMs"].as_u64().unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(started <= now_ms && now_ms - started < 120_000, "{v}");

    let text = client
        .get(format!("{base}{}", ipfs_kit::metrics::METRICS_PATH))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "ipfs_kit_provide_keys 50",
        "ipfs_kit_provide_keys_announced_total 50",
        "ipfs_kit_provide_records_sent_total 150",
        "ipfs_kit_provide_records_failed_total 0",
        "ipfs_kit_provide_sweeps_total 1",
        "ipfs_kit_provide_last_sweep_keys 50",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
    }
    for name in [
        "ipfs_kit_provide_lookups_total",
        "ipfs_kit_provide_regions_swept_total",
        "ipfs_kit_provide_last_sweep_duration_seconds",
        "ipfs_kit_provide_last_sweep_start_timestamp_seconds",
        "ipfs_kit_provide_next_sweep_due_timestamp_seconds",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    server.abort();
    net.shutdown().await;
}
