//! Bitswap between in-process nodes over TCP on 127.0.0.1: whole DAGs (a multi-chunk file, a
//! directory tree) fetched node to node and exported byte for byte; a fetch through DHT
//! providers when the nodes are not connected (A – C – B); malformed frames, oversize frames
//! and want floods from a real connection, penalized and disconnected.

use crate::common::{self, dial_addr, TestNode};
use std::path::Path;
use std::time::Duration;

use cid::Cid;
use ipfs_kit::bitswap::ledger::WANTLIST_ENTRIES_PER_PEER_MAX;
use ipfs_kit::bitswap::protocol::{
    Message, ProtocolVersion, WantEntry, Wantlist, MESSAGE_BYTES_MAX,
};
use ipfs_kit::net::{NetError, PeerId};
use ipfs_kit::repo::Repo;
use ipfs_kit::unixfs::{dir::import_path, export, ImportOptions};
use rand::{RngCore as _, SeedableRng as _};

const WAIT: Duration = Duration::from_secs(30);

async fn start() -> TestNode {
    common::start_node(|c| c.fetch_stall_timeout = Duration::from_secs(20)).await
}

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// Adds `path` to `repo` with kubo's defaults and pins it; returns the root.
fn add(repo: &Repo, path: &Path) -> Cid {
    let session = repo.begin_write();
    let imported = import_path(
        path,
        &ImportOptions::default(),
        &session,
        &mut |_| {},
        &|_| {},
    )
    .unwrap();
    session.pin_imported_root(&imported.cid, None).unwrap();
    imported.cid
}

/// A tree: a 3 MiB file (12 chunks), a small file, an empty file, a nested directory.
fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::write(root.join("big.bin"), random_bytes(3 * 1024 * 1024 + 17, 1)).unwrap();
    std::fs::write(root.join("hello.txt"), b"hello bitswap\n").unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
    std::fs::write(root.join("sub/deeper/data"), random_bytes(700_000, 2)).unwrap();
}

/// The file `root` in `repo` exports byte for byte as `original`.
fn assert_exports_as(repo: &Repo, root: &Cid, original: &Path) {
    let out = tempfile::tempdir().unwrap();
    export::get(
        repo.blocks().as_ref(),
        root,
        &out.path().join("f"),
        &mut |_| {},
    )
    .unwrap();
    assert!(std::fs::read(out.path().join("f")).unwrap() == std::fs::read(original).unwrap());
}

fn assert_same_tree(a: &Path, b: &Path) {
    for rel in ["big.bin", "hello.txt", "empty", "sub/deeper/data"] {
        let x = std::fs::read(a.join(rel)).unwrap();
        let y = std::fs::read(b.join(rel)).unwrap();
        assert!(x == y, "{rel} differs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_fetch_a_file_and_a_directory() {
    let a = start().await;
    let b = start().await;
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path());
    let file_root = add(&a.repo, &src.path().join("big.bin"));
    let dir_root = add(&a.repo, src.path());

    b.node.connect(dial_addr(&a.node).await).await.unwrap();

    // The file: every block lands in B's repository; the export equals the input.
    let stats = b.node.fetch_dag(file_root).await.unwrap();
    assert!(stats.blocks_fetched > 12, "{stats:?}");
    assert!(stats.bytes_fetched > 3 * 1024 * 1024, "{stats:?}");
    assert_eq!(stats.blocks_local, 0);
    assert_exports_as(&b.repo, &file_root, &src.path().join("big.bin"));
    let out = tempfile::tempdir().unwrap();
    // Pinning through the guard: the DAG is complete, so pin_add's walk succeeds.
    b.repo.pin_add(&file_root, true, None).unwrap();
    drop(stats);

    // The directory: the big file's blocks are already local and not fetched again.
    let stats = b.node.fetch_dag(dir_root).await.unwrap();
    assert!(stats.blocks_local > 12, "{stats:?}");
    assert!(stats.blocks_fetched >= 5, "{stats:?}");
    export::get(
        b.repo.blocks().as_ref(),
        &dir_root,
        &out.path().join("d"),
        &mut |_| {},
    )
    .unwrap();
    assert_same_tree(src.path(), &out.path().join("d"));

    // A second fetch is all local.
    let again = b.node.fetch_dag(dir_root).await.unwrap();
    assert_eq!(again.blocks_fetched, 0);

    // fetch_block: a local hit, and a block only A has.
    let blk = b.node.fetch_block(dir_root).await.unwrap();
    assert_eq!(blk.cid(), &dir_root);
    let lonely = tempfile::tempdir().unwrap();
    std::fs::write(lonely.path().join("x"), b"only on A").unwrap();
    let x = add(&a.repo, &lonely.path().join("x"));
    let blk = b.node.fetch_block(x).await.unwrap();
    assert_eq!(
        &blk.data()[..],
        &a.repo.blocks().get(&x).unwrap().unwrap()[..]
    );
    assert!(b.repo.blocks().has(&x).unwrap());

    let sa = a.node.bitswap_stat().await.unwrap();
    let sb = b.node.bitswap_stat().await.unwrap();
    assert!(sa.blocks_sent >= 18 && sa.data_sent > 3_000_000, "{sa:?}");
    assert_eq!(
        sb.blocks_received - sb.dup_blks_received,
        sa.blocks_sent,
        "{sb:?} / {sa:?}"
    );
    assert!(sb.wantlist.is_empty(), "{sb:?}");
    assert_eq!(sb.peers, vec![a.node.peer_id()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_through_dht_providers_when_not_connected() {
    // A – C – B: A and B each know only C (a DHT server with nothing to share).
    let a = start().await;
    let b = start().await;
    let c = start().await;
    let c_addr = dial_addr(&c.node).await;
    a.node.connect(c_addr.clone()).await.unwrap();
    b.node.connect(c_addr).await.unwrap();
    for n in [&a.node, &b.node] {
        common::eventually(WAIT, "identify with C", || async {
            n.peer_info(c.node.peer_id()).await.unwrap()?.agent_version
        })
        .await;
        // C must have identified them too: it answers provider queries with the addresses
        // in its routing table.
        common::eventually(WAIT, "C identifies", || async {
            c.node.peer_info(n.peer_id()).await.unwrap()?.agent_version
        })
        .await;
    }
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("f"), random_bytes(1024 * 1024 + 5, 3)).unwrap();
    let root = add(&a.repo, &src.path().join("f"));
    a.node.provide(root).await.unwrap();

    // No precondition on B–A: Kademlia's automatic bootstrap (a lookup of B's own ID through C)
    // may already have connected B to A; without it the session's provider search dials A.
    let stats = b.node.fetch_dag(root).await.unwrap();
    assert!(stats.blocks_fetched >= 5, "{stats:?}");
    let out = tempfile::tempdir().unwrap();
    export::get(
        b.repo.blocks().as_ref(),
        &root,
        &out.path().join("f"),
        &mut |_| {},
    )
    .unwrap();
    assert!(
        std::fs::read(out.path().join("f")).unwrap()
            == std::fs::read(src.path().join("f")).unwrap()
    );
    // B dialed A, found through the provider record.
    assert!(b.node.peers().await.unwrap().contains(&a.node.peer_id()));
    // The record is there for anyone who asks.
    let providers = b.node.find_providers(root, 5).await.unwrap();
    let found: Vec<PeerId> = providers.iter().map(|(p, _)| *p).collect();
    assert!(found.contains(&a.node.peer_id()), "{providers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provide_fails_without_peers_and_returns_once_the_record_is_written() {
    let a = start().await;
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("f"), random_bytes(300_000, 4)).unwrap();
    let root = add(&a.repo, &src.path().join("f"));
    // As kubo's `routing provide`: no peer to give the record to is an error, not a no-op.
    let err = a.node.provide(root).await.unwrap_err();
    assert!(matches!(err, NetError::NoKnownPeers), "{err}");

    let c = start().await;
    a.node.connect(dial_addr(&c.node).await).await.unwrap();
    common::eventually(WAIT, "A has C in its routing table", || async {
        let found = a
            .node
            .closest_peers(c.node.peer_id())
            .await
            .ok()?
            .into_iter()
            .any(|p| p.peer_id == c.node.peer_id());
        found.then_some(())
    })
    .await;
    // C, A's only peer, took the record before `provide` returned.
    assert_eq!(a.node.provide(root).await.unwrap(), 1);
    let providers = c.node.find_providers(root, 1).await.unwrap();
    assert_eq!(
        providers.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        vec![a.node.peer_id()]
    );
    assert!(
        !providers[0].1.is_empty(),
        "the record carries A's addresses"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_of_missing_block_times_out_and_disconnect_works() {
    let a = start().await;
    let b = start().await;
    b.node.connect(dial_addr(&a.node).await).await.unwrap();
    let missing: Cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
        .parse()
        .unwrap();
    let started = std::time::Instant::now();
    let fetch = b.node.fetch_block(missing);
    // While it waits, A holds B's want (want-have with send-dont-have).
    let a_node = a.node.handle();
    let b_peer = b.node.peer_id();
    let watch = async {
        common::eventually(WAIT, "A sees B's want", || async {
            a_node
                .wantlist(Some(b_peer))
                .await
                .unwrap()
                .contains(&missing)
                .then_some(())
        })
        .await;
        assert!(b.node.wantlist(None).await.unwrap().contains(&missing));
    };
    let (r, ()) = tokio::join!(tokio::time::timeout(Duration::from_secs(60), fetch), watch);
    let e = r.unwrap().unwrap_err();
    assert!(
        matches!(e, ipfs_kit::net::NetError::FetchTimeout { .. }),
        "{e}"
    );
    assert!(started.elapsed() >= Duration::from_secs(20));
    assert!(b.node.wantlist(None).await.unwrap().is_empty());
    assert!(b.node.disconnect(a.node.peer_id()).await.unwrap());
    common::eventually(WAIT, "disconnected", || async {
        (!b.node.peers().await.unwrap().contains(&a.node.peer_id())).then_some(())
    })
    .await;
    assert!(!b.node.disconnect(a.node.peer_id()).await.unwrap());
}

/// A memory store whose writes fail once `writes_left` `put_many` calls have been made.
struct FailingWrites {
    inner: ipfs_kit_blockstore::MemoryBlockstore,
    writes_left: std::sync::atomic::AtomicUsize,
}

impl ipfs_kit_blockstore::Blockstore for FailingWrites {
    fn get(&self, cid: &Cid) -> Result<Option<bytes::Bytes>, ipfs_kit_blockstore::BlockstoreError> {
        self.inner.get(cid)
    }
    fn has(&self, cid: &Cid) -> Result<bool, ipfs_kit_blockstore::BlockstoreError> {
        self.inner.has(cid)
    }
    fn size_of(&self, cid: &Cid) -> Result<Option<u64>, ipfs_kit_blockstore::BlockstoreError> {
        self.inner.size_of(cid)
    }
    fn put_many(
        &self,
        blocks: &[ipfs_kit_blockstore::Block],
    ) -> Result<(), ipfs_kit_blockstore::BlockstoreError> {
        use std::sync::atomic::Ordering;
        let left = self.writes_left.load(Ordering::SeqCst);
        if left == 0 {
            return Err(ipfs_kit_blockstore::BlockstoreError::io(
                "test-store",
                std::io::Error::other("disk on fire"),
            ));
        }
        self.writes_left.store(left - 1, Ordering::SeqCst);
        self.inner.put_many(blocks)
    }
    fn delete_many(&self, cids: &[Cid]) -> Result<u64, ipfs_kit_blockstore::BlockstoreError> {
        self.inner.delete_many(cids)
    }
    fn all_cids(&self) -> Result<Vec<Cid>, ipfs_kit_blockstore::BlockstoreError> {
        self.inner.all_cids()
    }
    fn sync(&self) -> Result<(), ipfs_kit_blockstore::BlockstoreError> {
        Ok(())
    }
    fn stat(&self) -> Result<ipfs_kit_blockstore::StoreStat, ipfs_kit_blockstore::BlockstoreError> {
        self.inner.stat()
    }
}

/// A DAG fetch writes its blocks off the swarm task; a write that fails there fails the fetch
/// (it neither hangs nor reports success), and the node goes on fetching into a good store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_fails_when_its_blocks_cannot_be_written() {
    let a = start().await;
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("f"), random_bytes(4 * 1024 * 1024, 7)).unwrap();
    let root = add(&a.repo, &src.path().join("f"));

    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(FailingWrites {
        inner: ipfs_kit_blockstore::MemoryBlockstore::new(),
        writes_left: std::sync::atomic::AtomicUsize::new(3),
    });
    let repo = Repo::with_store(&dir.path().join("repo"), store.clone()).unwrap();
    let mut c = ipfs_kit::net::NodeConfig::new(ipfs_kit::net::Keypair::generate_ed25519())
        .with_repo(repo.clone());
    c.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    c.fetch_stall_timeout = Duration::from_secs(20);
    let b = ipfs_kit::net::Node::start(c).await.unwrap();
    b.connect(dial_addr(&a.node).await).await.unwrap();

    let r = tokio::time::timeout(Duration::from_secs(60), b.fetch_dag(root))
        .await
        .expect("the fetch ends");
    let e = r.unwrap_err();
    assert!(e.to_string().contains("disk on fire"), "{e}");
    // Once writes work again, the same DAG fetches completely.
    store
        .writes_left
        .store(usize::MAX, std::sync::atomic::Ordering::SeqCst);
    let stats = b.fetch_dag(root).await.unwrap();
    assert!(stats.blocks_fetched + stats.blocks_local >= 16, "{stats:?}");
    assert_exports_as(&repo, &root, &src.path().join("f"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversize_frames_are_penalized_then_disconnected() {
    let a = start().await;
    let b = start().await;
    a.node.connect(dial_addr(&b.node).await).await.unwrap();
    let bp = b.node.peer_id();
    // An oversize frame: a length prefix of MESSAGE_BYTES_MAX + 1, refused from the prefix.
    let mut oversize = Vec::new();
    let mut v = (MESSAGE_BYTES_MAX + 1) as u64;
    while v >= 0x80 {
        oversize.push((v as u8) | 0x80);
        v >>= 7;
    }
    oversize.push(v as u8);
    assert!(a.node.bitswap_send_raw(bp, oversize).await.unwrap());
    common::eventually(WAIT, "penalty for the oversize frame", || async {
        (b.node.bitswap_stat().await.unwrap().penalties >= 1).then_some(())
    })
    .await;
    assert!(b.node.peers().await.unwrap().contains(&a.node.peer_id()));
    // Garbage frames until B hangs up (MALFORMED_FRAMES_MAX in all).
    common::eventually(WAIT, "B disconnects A", || async {
        if !b.node.peers().await.unwrap().contains(&a.node.peer_id()) {
            return Some(());
        }
        let _ = a
            .node
            .bitswap_send_raw(bp, vec![4, 0xff, 0xff, 0xff, 0xff])
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        None
    })
    .await;
    assert!(b.node.bitswap_stat().await.unwrap().penalties >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn want_flood_is_bounded_and_penalized() {
    let a = start().await;
    let b = start().await;
    a.node.connect(dial_addr(&b.node).await).await.unwrap();
    let bp = b.node.peer_id();
    // WANTLIST_ENTRIES_PER_PEER_MAX + 1 distinct wants in one message.
    let entries: Vec<WantEntry> = (0..=WANTLIST_ENTRIES_PER_PEER_MAX as u32)
        .map(|i| {
            let mh = ipfs_kit_blockstore::hash::HashFn::Sha2_256
                .digest(&i.to_be_bytes())
                .unwrap();
            WantEntry::want_have(Cid::new_v1(0x55, mh), 1, false)
        })
        .collect();
    let msg = Message {
        wantlist: Some(Wantlist {
            entries,
            full: false,
        }),
        ..Message::default()
    };
    let frame = msg.encode_frame(ProtocolVersion::V1_2_0);
    assert!(a.node.bitswap_send_raw(bp, frame).await.unwrap());
    common::eventually(WAIT, "flood penalized", || async {
        (b.node.bitswap_stat().await.unwrap().penalties >= 1).then_some(())
    })
    .await;
    let held = b.node.wantlist(Some(a.node.peer_id())).await.unwrap();
    assert_eq!(
        held.len(),
        WANTLIST_ENTRIES_PER_PEER_MAX,
        "the wantlist is capped"
    );
}
