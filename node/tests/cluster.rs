//! In-process clusters (`ipfs_kit::harness` cluster mode): real nodes in one process, real
//! gossipsub and bitswap on loopback, each master and worker running the cluster service.
//!
//! - 1 master + 2 workers: a pin on the master reaches both workers, which fetch and pin the
//!   DAG (`pinned`, every block present); the master sees their states over the status
//!   protocol; an unpin unpins them; a delta written by a peer outside the trusted set is
//!   ignored while trusted ones keep flowing;
//! - 3 masters + 7 workers, `replication_factor_min/max = 2/3`: allocations are honoured
//!   (allocated peers `pinned`, the others `remote`) and all 10 replicas hold the same state;
//! - a stopped worker's pins are re-allocated once its metric expires (short TTL); restarted,
//!   it catches up from its own store and the master's announcements, and unpins what moved
//!   away while it was down;
//! - status requests over their bounds (CID count, bytes) are refused.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use cid::Cid;
use ipfs_kit::cluster::handle::{PinSpec, PinState};
use ipfs_kit::cluster::{ClusterHandle, TrackerStatus};
use ipfs_kit::config::Role;
use ipfs_kit::harness::{ClusterMode, SplitMix64, Testnet, TestnetConfig, Topology};

const WAIT: Duration = Duration::from_secs(20);

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64(seed);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v.truncate(len);
    v
}

async fn cluster_net(mode: ClusterMode) -> Testnet {
    let mut c = TestnetConfig::new(mode.roles.len(), Topology::Full);
    c.cluster = Some(mode);
    Testnet::start_with(c).await.unwrap()
}

/// This node's own tracker state for `cid`.
async fn local_state(h: &ClusterHandle, cid: Cid) -> TrackerStatus {
    let me = h.id();
    let st = h.status(cid).await.unwrap();
    st.peers
        .iter()
        .find(|p| p.peer == me)
        .map(|p| p.status)
        .unwrap_or(TrackerStatus::Unknown)
}

/// Waits until every cluster peer knows every other (live metrics).
async fn wait_live(net: &Testnet, nodes: &[usize]) {
    for &i in nodes {
        let h = net.cluster(i).unwrap();
        let n = nodes.len();
        net.wait_for(&format!("node {i} sees {n} live peers"), WAIT, || {
            let h = h.clone();
            async move {
                let live = h.peers().await?.iter().filter(|p| p.live).count();
                Ok(live >= n)
            }
        })
        .await
        .unwrap();
    }
}

/// One master and three live workers, with a random file of `len` bytes (`seed`) added on the
/// master and pinned through it with replication `min`..=`max`.
struct PinnedOnAWorker {
    net: Testnet,
    master: ClusterHandle,
    cid: Cid,
    /// How many peers the pin was allocated to.
    allocated: usize,
    /// The first worker among them.
    worker: usize,
}

async fn pinned_on_a_worker(len: usize, seed: u64, min: i32, max: i32) -> PinnedOnAWorker {
    let net = cluster_net(ClusterMode::new(1, 3)).await;
    wait_live(&net, &[0, 1, 2, 3]).await;
    let master = net.cluster(0).unwrap();
    let cid = net.add_bytes(0, random_bytes(len, seed)).await.unwrap();
    let spec = PinSpec {
        replication_factor_min: min,
        replication_factor_max: max,
        ..PinSpec::default()
    };
    let pin = master.pin(cid, spec).await.unwrap();
    let allocated: Vec<_> = pin
        .spec
        .allocations
        .iter()
        .map(|k| k.to_peer_id().unwrap())
        .collect();
    let worker = (1..net.len())
        .find(|i| allocated.contains(&net.peer_id(*i).unwrap()))
        .expect("a worker among the allocations");
    PinnedOnAWorker {
        net,
        master,
        cid,
        allocated: allocated.len(),
        worker,
    }
}

/// Every block of the DAG under `cid` is in `index`'s repository.
fn dag_complete(net: &Testnet, index: usize, cid: &Cid) -> bool {
    let repo = net.repo(index).unwrap();
    let mut stack = vec![*cid];
    while let Some(c) = stack.pop() {
        let Ok(Some(data)) = repo.blocks().get(&c) else {
            return false;
        };
        stack.extend(ipfs_kit::dag::links::links(&c, &data).unwrap());
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_master_two_workers_pin_unpin_and_untrusted_deltas_ignored() {
    let started = Instant::now();
    // 0: master, 1-2: workers, 3: a "master" nobody trusts (it trusts node 0 and itself).
    let mut mode = ClusterMode::new(1, 2);
    mode.roles.push(Role::Master);
    mode.trusted = Some(vec![0]);
    let net = cluster_net(mode).await;
    wait_live(&net, &[0, 1, 2, 3]).await;
    let master = net.cluster(0).unwrap();
    let workers = [net.cluster(1).unwrap(), net.cluster(2).unwrap()];

    // A 3-chunk file on the master; pinned everywhere (replication -1).
    let data = random_bytes(3 * 256 * 1024 + 11, 7);
    let cid = net.add_bytes(0, data).await.unwrap();
    let pin = master.pin(cid, PinSpec::default()).await.unwrap();
    assert!(
        pin.spec.allocations.is_empty(),
        "everywhere: no allocations"
    );
    for (i, w) in workers.iter().enumerate() {
        let w = w.clone();
        net.wait_for(&format!("worker {} pinned", i + 1), WAIT, || {
            let w = w.clone();
            async move { Ok(local_state(&w, cid).await == TrackerStatus::Tracked(PinState::Pinned)) }
        })
        .await
        .unwrap();
        assert!(net.repo(i + 1).unwrap().is_pinned(&cid).unwrap().is_some());
        assert!(
            dag_complete(&net, i + 1, &cid),
            "worker {} has the DAG",
            i + 1
        );
    }
    // The master's global status shows each peer's own state.
    let st = master.status(cid).await.unwrap();
    for i in 0..3 {
        let p = net.peer_id(i).unwrap();
        let e = st.peers.iter().find(|e| e.peer == p).unwrap();
        assert_eq!(e.status, TrackerStatus::Tracked(PinState::Pinned), "{st:?}");
    }
    // Workers refuse pins.
    assert!(workers[0].pin(cid, PinSpec::default()).await.is_err());

    // The untrusted writer pins something: it applies it itself, nobody else does.
    let rogue = net.cluster(3).unwrap();
    let bad = net.add_bytes(3, random_bytes(1000, 8)).await.unwrap();
    rogue.pin(bad, PinSpec::default()).await.unwrap();
    // A trusted pin after it: once that arrived everywhere, the rogue's announcements had
    // their chance too.
    let good = net.add_bytes(0, random_bytes(1000, 9)).await.unwrap();
    master.pin(good, PinSpec::default()).await.unwrap();
    for i in 0..3 {
        let h = net.cluster(i).unwrap();
        net.wait_for(&format!("node {i} has the trusted pin"), WAIT, || {
            let h = h.clone();
            async move { Ok(h.get(good).await?.is_some()) }
        })
        .await
        .unwrap();
    }
    // Two more announcement rounds.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    for i in 0..3 {
        let h = net.cluster(i).unwrap();
        assert!(
            h.get(bad).await.unwrap().is_none(),
            "node {i} applied an untrusted delta"
        );
        assert!(!net.repo(i).unwrap().blocks().has(&bad).unwrap() || i == 3);
    }
    assert!(rogue.get(bad).await.unwrap().is_some());
    assert!(
        rogue.get(good).await.unwrap().is_some(),
        "the rogue follows the trusted master"
    );

    // Unpin on the master: the workers unpin.
    master.unpin(cid).await.unwrap();
    for (i, w) in workers.iter().enumerate() {
        let w = w.clone();
        net.wait_for(&format!("worker {} unpinned", i + 1), WAIT, || {
            let w = w.clone();
            async move { Ok(local_state(&w, cid).await == TrackerStatus::Unpinned) }
        })
        .await
        .unwrap();
        assert!(net.repo(i + 1).unwrap().is_pinned(&cid).unwrap().is_none());
    }
    assert!(
        master.unpin(cid).await.is_err(),
        "unpinning twice: not pinned"
    );
    println!("1 master + 2 workers: {:?}", started.elapsed());
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_masters_seven_workers_allocations_honoured_state_identical() {
    let started = Instant::now();
    let net = cluster_net(ClusterMode::new(3, 7)).await;
    let all: Vec<usize> = (0..10).collect();
    wait_live(&net, &all).await;

    let mut adders = std::collections::HashMap::new();
    for k in 0..6u64 {
        let master = net.cluster((k % 3) as usize).unwrap();
        let cid = net
            .add_bytes((k % 3) as usize, random_bytes(300 * 1024, 100 + k))
            .await
            .unwrap();
        let spec = PinSpec {
            replication_factor_min: 2,
            replication_factor_max: 3,
            name: format!("pin-{k}"),
            ..PinSpec::default()
        };
        let pin = master.pin(cid, spec).await.unwrap();
        assert_eq!(
            pin.spec.allocations.len(),
            3,
            "max when enough peers are live"
        );
        adders.insert(cid, (k % 3) as usize);
    }
    // Same state on all 10.
    let reference = net.cluster(0).unwrap();
    net.wait_for("identical state on 10 peers", WAIT, || {
        let reference = reference.clone();
        let net = &net;
        async move {
            let want = reference.allocations(None).await?;
            if want.len() != 6 {
                return Ok(false);
            }
            for i in 1..10 {
                if net.cluster(i)?.allocations(None).await? != want {
                    return Ok(false);
                }
            }
            Ok(true)
        }
    })
    .await
    .unwrap();
    // Allocated peers pin, the others hold it as remote.
    let pins = reference.allocations(None).await.unwrap();
    for pin in &pins {
        let allocated: Vec<_> = pin
            .spec
            .allocations
            .iter()
            .map(|k| k.to_peer_id().unwrap())
            .collect();
        assert!((2..=3).contains(&allocated.len()));
        for i in 0..10 {
            let h = net.cluster(i).unwrap();
            let mine = allocated.contains(&h.id());
            let want = if mine {
                TrackerStatus::Tracked(PinState::Pinned)
            } else {
                TrackerStatus::Tracked(PinState::Remote)
            };
            let cid = pin.cid;
            net.wait_for(&format!("node {i}: {cid} {}", want.as_str()), WAIT, || {
                let h = h.clone();
                async move { Ok(local_state(&h, cid).await == want) }
            })
            .await
            .unwrap();
            // The master that added the file keeps its own `add` pin either way.
            if adders.get(&cid) != Some(&i) {
                assert_eq!(
                    net.repo(i).unwrap().is_pinned(&cid).unwrap().is_some(),
                    mine,
                    "node {i} repo pin of {cid}"
                );
            }
        }
    }
    println!("3 masters + 7 workers: {:?}", started.elapsed());
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_worker_pins_reallocated_after_metric_ttl() {
    let started = Instant::now();
    let PinnedOnAWorker {
        mut net,
        master,
        cid,
        allocated,
        worker: victim,
    } = pinned_on_a_worker(100_000, 5, 2, 2).await;
    assert_eq!(allocated, 2);
    // Stop an allocated worker.
    let victim_id = net.peer_id(victim).unwrap();
    net.wait_for("victim pinned", WAIT, || {
        let h = net.cluster(victim).unwrap();
        async move { Ok(local_state(&h, cid).await == TrackerStatus::Tracked(PinState::Pinned)) }
    })
    .await
    .unwrap();
    net.stop(victim).await.unwrap();
    let stopped_at = Instant::now();
    // After the TTL the master re-allocates to a live peer, which pins.
    net.wait_for("re-allocation", WAIT, || {
        let master = master.clone();
        async move {
            let a = master
                .get(cid)
                .await?
                .map(|s| s.allocations)
                .unwrap_or_default();
            Ok(a.len() == 2 && a.iter().all(|k| k.to_peer_id() != Some(victim_id)))
        }
    })
    .await
    .unwrap();
    let reallocated_after = stopped_at.elapsed();
    let new_spec = master.get(cid).await.unwrap().unwrap();
    for k in &new_spec.allocations {
        let i = net.index_of(&k.to_peer_id().unwrap()).unwrap();
        let h = net.cluster(i).unwrap();
        net.wait_for(&format!("node {i} pinned after re-allocation"), WAIT, || {
            let h = h.clone();
            async move { Ok(local_state(&h, cid).await == TrackerStatus::Tracked(PinState::Pinned)) }
        })
        .await
        .unwrap();
    }
    assert!(
        reallocated_after >= Duration::from_millis(1_000),
        "not before the metric could expire: {reallocated_after:?}"
    );

    // The stopped worker comes back (same store): it restores its replica, catches up with
    // what was pinned while it was down, and ends with the master's state.
    let late = net.add_bytes(0, random_bytes(50_000, 6)).await.unwrap();
    master.pin(late, PinSpec::default()).await.unwrap();
    net.restart(victim).await.unwrap();
    let back = net.cluster(victim).unwrap();
    net.wait_for("restarted worker pinned the pin it missed", WAIT, || {
        let back = back.clone();
        async move { Ok(local_state(&back, late).await == TrackerStatus::Tracked(PinState::Pinned)) }
    })
    .await
    .unwrap();
    // The pin moved away while it was down: its repository pin goes (at start when the
    // restored state already says so, else when the re-allocation arrives).
    net.wait_for("restarted worker dropped the moved pin", WAIT, || {
        let repo = net.repo(victim).unwrap().clone();
        async move { Ok(repo.is_pinned(&cid)?.is_none()) }
    })
    .await
    .unwrap();
    // Not pinned here any more: `remote`, or forgotten after the tracker's unpin.
    let st = local_state(&back, cid).await;
    assert!(
        matches!(
            st,
            TrackerStatus::Tracked(PinState::Remote) | TrackerStatus::Unpinned
        ),
        "{st:?}"
    );
    net.wait_for("restarted worker has the master's state", WAIT, || {
        let (back, master) = (back.clone(), master.clone());
        async move { Ok(back.allocations(None).await? == master.allocations(None).await?) }
    })
    .await
    .unwrap();
    println!(
        "re-allocated {reallocated_after:?} after the stop; total {:?}",
        started.elapsed()
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_requests_over_their_limits_are_refused() {
    use ipfs_kit::cluster::wire::{
        StatusRequest, STATUS_REQUEST_BYTES_MAX, STATUS_REQUEST_CIDS_MAX,
    };
    let net = cluster_net(ClusterMode::new(1, 1)).await;
    let asker = net.handle(0).unwrap();
    let peer = net.peer_id(1).unwrap();
    let cid = net
        .add_bytes(1, random_bytes(10, 1))
        .await
        .unwrap()
        .to_bytes();
    // At the limit: answered, one entry per CID.
    let ok = StatusRequest {
        cids: Some(vec![cid.clone(); STATUS_REQUEST_CIDS_MAX]),
        recover: false,
    };
    let r = asker.cluster_status(peer, ok).await.unwrap();
    assert_eq!(r.entries.len(), STATUS_REQUEST_CIDS_MAX);
    // Limit + 1 CIDs: refused (an empty answer).
    let over = StatusRequest {
        cids: Some(vec![cid.clone(); STATUS_REQUEST_CIDS_MAX + 1]),
        recover: false,
    };
    assert!(asker
        .cluster_status(peer, over)
        .await
        .unwrap()
        .entries
        .is_empty());
    // More bytes than STATUS_REQUEST_BYTES_MAX: the codec refuses it, the request fails.
    let huge = StatusRequest {
        cids: Some(vec![vec![0u8; STATUS_REQUEST_BYTES_MAX + 1]]),
        recover: false,
    };
    assert!(asker.cluster_status(peer, huge).await.is_err());
    // The peer is still there for well-formed requests.
    let again = StatusRequest {
        cids: Some(vec![cid]),
        recover: false,
    };
    assert_eq!(
        asker
            .cluster_status(peer, again)
            .await
            .unwrap()
            .entries
            .len(),
        1
    );
    net.shutdown().await;
}

/// Unix time in milliseconds (pin expiry is wall-clock, as in ipfs-cluster).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_tags_spread_allocations_one_per_group() {
    // 0: master (eu), 1-2: workers (eu), 3-4: workers (us); equal free space, so only the
    // tag and the load decide.
    let mut mode = ClusterMode::new(1, 4);
    let group = |g: &str| [("group".to_string(), g.to_string())].into_iter().collect();
    mode.tags = vec![
        group("eu"),
        group("eu"),
        group("eu"),
        group("us"),
        group("us"),
    ];
    mode.spread_tags = vec!["group".into()];
    mode.free_bytes = Some(1 << 40);
    let net = cluster_net(mode).await;
    let all = [0, 1, 2, 3, 4];
    wait_live(&net, &all).await;
    let master = net.cluster(0).unwrap();
    // The tags arrived in the metrics.
    let peers = master.peers().await.unwrap();
    for i in all {
        let p = peers
            .iter()
            .find(|p| p.peer == net.peer_id(i).unwrap())
            .unwrap();
        let want = if i < 3 { "eu" } else { "us" };
        assert_eq!(p.tags.get("group").map(String::as_str), Some(want), "{p:?}");
    }
    let group_of = |k: &ipfs_kit_cluster_sync::PeerKey| {
        let i = net.index_of(&k.to_peer_id().unwrap()).unwrap();
        if i < 3 {
            "eu"
        } else {
            "us"
        }
    };
    let mut cids = Vec::new();
    for k in 0..6u64 {
        let cid = net.add_bytes(0, random_bytes(2000, 300 + k)).await.unwrap();
        let spec = PinSpec {
            replication_factor_min: 2,
            replication_factor_max: 2,
            ..PinSpec::default()
        };
        let pin = master.pin(cid, spec).await.unwrap();
        let mut groups: Vec<&str> = pin.spec.allocations.iter().map(group_of).collect();
        groups.sort();
        assert_eq!(groups, ["eu", "us"], "one allocation per group: {pin:?}");
        cids.push(cid);
    }
    // Local pins reach the state when the batch is cut (`batch_delay_ms`).
    net.wait_for("the master's batch flushed", WAIT, || {
        let master = master.clone();
        async move { Ok(master.allocations(None).await?.len() == 6) }
    })
    .await
    .unwrap();
    // A worker holds the same allocations, and every allocated peer pins.
    let want = master.allocations(None).await.unwrap();
    let w = net.cluster(3).unwrap();
    net.wait_for("worker 3 has the allocations", WAIT, || {
        let (w, want) = (w.clone(), want.clone());
        async move { Ok(w.allocations(None).await? == want) }
    })
    .await
    .unwrap();
    for cid in cids {
        let spec = master.get(cid).await.unwrap().unwrap();
        for k in &spec.allocations {
            let i = net.index_of(&k.to_peer_id().unwrap()).unwrap();
            let h = net.cluster(i).unwrap();
            net.wait_for(&format!("node {i} pinned {cid}"), WAIT, || {
                let h = h.clone();
                async move {
                    Ok(local_state(&h, cid).await == TrackerStatus::Tracked(PinState::Pinned))
                }
            })
            .await
            .unwrap();
        }
    }
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_pin_leaves_the_state_and_workers_unpin() {
    let net = cluster_net(ClusterMode::new(1, 2)).await;
    wait_live(&net, &[0, 1, 2]).await;
    let master = net.cluster(0).unwrap();
    let cid = net.add_bytes(0, random_bytes(5000, 11)).await.unwrap();
    let keep = net.add_bytes(0, random_bytes(5000, 12)).await.unwrap();
    let expire_at = unix_ms() + 3_000;
    let spec = PinSpec {
        expire_at_ms: Some(expire_at),
        ..PinSpec::default()
    };
    master.pin(cid, spec).await.unwrap();
    master.pin(keep, PinSpec::default()).await.unwrap();
    for i in 1..3 {
        let h = net.cluster(i).unwrap();
        net.wait_for(&format!("worker {i} pinned"), WAIT, || {
            let h = h.clone();
            async move { Ok(local_state(&h, cid).await == TrackerStatus::Tracked(PinState::Pinned)) }
        })
        .await
        .unwrap();
    }
    for i in 0..3 {
        let h = net.cluster(i).unwrap();
        net.wait_for(&format!("node {i}: expired pin gone"), WAIT, || {
            let h = h.clone();
            async move { Ok(h.get(cid).await?.is_none()) }
        })
        .await
        .unwrap();
        assert!(unix_ms() >= expire_at, "gone before its expiry");
        assert!(h.get(keep).await.unwrap().is_some(), "the other pin stays");
    }
    for i in 1..3 {
        let h = net.cluster(i).unwrap();
        net.wait_for(&format!("worker {i} unpinned"), WAIT, || {
            let h = h.clone();
            async move { Ok(local_state(&h, cid).await == TrackerStatus::Unpinned) }
        })
        .await
        .unwrap();
        assert!(net.repo(i).unwrap().is_pinned(&cid).unwrap().is_none());
        assert!(net.repo(i).unwrap().is_pinned(&keep).unwrap().is_some());
    }
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_peer_catches_up_from_a_snapshot_over_bitswap() {
    // 0: master, 1: worker, 2: a worker that joins after compaction. The pinset layer only
    // (no tracker work): the CIDs are not content anyone holds.
    let mut mode = ClusterMode::new(1, 2);
    mode.replica.emit_state_changes = false;
    mode.replica.batch_ops_max = 25;
    mode.replica.compact_keep_priorities = 0;
    mode.replica.compact_deltas_threshold = 0;
    let mut net = cluster_net(mode).await;
    net.stop(2).await.unwrap();
    wait_live(&net, &[0, 1]).await;
    let master = net.cluster(0).unwrap();
    const PINS: u64 = 1_000;
    let pins: Vec<(Cid, PinSpec)> = (0..PINS)
        .map(|i| {
            let spec = PinSpec {
                name: format!("p{i}"),
                ..PinSpec::default()
            };
            (ipfs_kit_cluster_sync::sim::sim_cid("snap", i), spec)
        })
        .collect();
    for chunk in pins.chunks(300) {
        master.pin_many(chunk.to_vec()).await.unwrap();
    }
    let worker = net.cluster(1).unwrap();
    let want = loop {
        let d = master.state_digest().await.unwrap();
        if d.pins == PINS as usize {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    net.wait_for("worker 1 follows the deltas", WAIT, || {
        let worker = worker.clone();
        async move { Ok(worker.state_digest().await? == want) }
    })
    .await
    .unwrap();
    let written = worker.info().await.unwrap().stored_deltas;
    assert!(written >= (PINS / 25) as usize, "{written} deltas");
    // Both compact (as every peer does past `compact_deltas_threshold`).
    let root = master.compact().await.unwrap().unwrap();
    worker.compact().await.unwrap().unwrap();
    for h in [&master, &worker] {
        let info = h.info().await.unwrap();
        assert!(info.snapshot.is_some());
        assert!(info.stored_deltas <= 1, "compaction dropped the old deltas");
    }

    // The joiner has an empty store: the deltas are gone from every peer, so only the
    // master's snapshot (root + chunks over bitswap) can give it the state (the worker's
    // snapshot is not signed by a trusted peer). The master's snapshot declares the trust set
    // {master}, the joiner's is {master, joiner}: they differ by the joiner's own key only,
    // which must not make the joiner refuse it (the cause of this test's session-4 failure).
    net.restart(2).await.unwrap();
    let joiner = net.cluster(2).unwrap();
    let started = Instant::now();
    net.wait_for("the joiner has the state", WAIT, || {
        let joiner = joiner.clone();
        async move { Ok(joiner.state_digest().await? == want) }
    })
    .await
    .unwrap();
    let j = joiner.info().await.unwrap();
    assert_eq!(j.snapshot, Some(root), "installed the master's snapshot");
    assert!(j.stored_deltas <= 1, "{} deltas fetched", j.stored_deltas);
    println!(
        "joiner caught up from the snapshot in {:?}",
        started.elapsed()
    );

    // It keeps following: a pin after the snapshot arrives as a delta.
    let after = ipfs_kit_cluster_sync::sim::sim_cid("snap", PINS);
    master.pin(after, PinSpec::default()).await.unwrap();
    net.wait_for("the joiner has the new pin", WAIT, || {
        let joiner = joiner.clone();
        async move { Ok(joiner.get(after).await?.is_some()) }
    })
    .await
    .unwrap();
    net.shutdown().await;
}

/// A peer allocated a pin whose metrics expired is down: the status names it
/// `cluster_error` with [`ipfs_kit::cluster::PEER_DOWN`] at once, without asking it (a
/// request to an unreachable host would hold the whole answer for its timeout). The pin keeps
/// that allocation while the live ones still meet `replication_factor_min`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_names_a_down_allocated_peer_without_asking_it() {
    let PinnedOnAWorker {
        mut net,
        master,
        cid,
        allocated,
        worker: victim,
    } = pinned_on_a_worker(20_000, 31, 1, 3).await;
    assert!(allocated >= 2, "{allocated} allocations");
    let victim_id = net.peer_id(victim).unwrap();
    net.stop(victim).await.unwrap();
    net.wait_for("the master sees the victim down", WAIT, || {
        let master = master.clone();
        async move {
            let peers = master.peers().await?;
            Ok(peers.iter().any(|p| p.peer == victim_id && !p.live))
        }
    })
    .await
    .unwrap();
    let spec = master.get(cid).await.unwrap().unwrap();
    assert!(
        spec.allocations
            .iter()
            .any(|k| k.to_peer_id() == Some(victim_id)),
        "still allocated: the live allocations meet the minimum"
    );
    let st = master.status(cid).await.unwrap();
    let down = st.peers.iter().find(|p| p.peer == victim_id).unwrap();
    assert_eq!(down.status, TrackerStatus::Unknown);
    assert_eq!(down.status.as_str(), "cluster_error");
    assert_eq!(down.error.as_deref(), Some(ipfs_kit::cluster::PEER_DOWN));
    // The live ones answered for themselves.
    for p in st.peers.iter().filter(|p| p.peer != victim_id) {
        assert!(p.error.is_none(), "{p:?}");
    }
    net.shutdown().await;
}
