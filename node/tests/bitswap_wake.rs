//! A peer waiting for blocks we do not have yet is served as soon as they are stored, even when
//! they reach the repository without going through the network node (an `add` through the API
//! or the CLI writes into the repository directly).
//!
//! The waiting peer here sends one raw wantlist and never rebroadcasts (as a kubo or Helia
//! client may wait a minute before asking again), so the block can only arrive because the
//! server noticed it.

use crate::common::{self, dial_addr, TestNode};
use std::time::Duration;

use bytes::Bytes;
use cid::Cid;
use ipfs_kit::bitswap::protocol::{Message, ProtocolVersion, WantEntry, Wantlist};
use ipfs_kit::repo::Repo;
use ipfs_kit::unixfs::BlockSink as _;
use ipfs_kit_blockstore::hash::{HashFn, RAW_CODEC};
use ipfs_kit_blockstore::Block;

const WAIT: Duration = Duration::from_secs(20);

async fn start() -> TestNode {
    common::start_node(|_| {}).await
}

fn raw_block(seed: u8, len: usize) -> Block {
    let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(seed)).collect();
    let cid = Cid::new_v1(RAW_CODEC, HashFn::Sha2_256.digest(&data).unwrap());
    Block::new(cid, Bytes::from(data)).unwrap()
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_wants_wake_when_blocks_are_added_to_the_repo() {
    let a = start().await;
    let b = start().await;
    a.node.connect(dial_addr(&b.node).await).await.unwrap();
    let (ap, bp) = (a.node.peer_id(), b.node.peer_id());
    // A want-block (too big to inline) and a want-have of a small block, neither of which B has.
    let big = raw_block(3, 300 * 1024);
    let small = raw_block(5, 100);
    let msg = Message {
        wantlist: Some(Wantlist {
            entries: vec![
                WantEntry::want_block(*big.cid(), 10, true),
                WantEntry::want_have(*small.cid(), 5, true),
            ],
            full: false,
        }),
        ..Message::default()
    };
    assert!(a
        .node
        .bitswap_send_raw(bp, msg.encode_frame(ProtocolVersion::V1_2_0))
        .await
        .unwrap());
    eventually("B holds A's two wants", || async {
        b.node.wantlist(Some(ap)).await.unwrap().len() == 2
    })
    .await;
    // Nothing was sent yet: B has neither block.
    assert_eq!(b.node.bitswap_stat().await.unwrap().blocks_sent, 0);

    // The blocks reach B's repository the way an API add writes them: not through the node.
    let session = b.repo.begin_write();
    session.put_blocks(&[big.clone(), small.clone()]).unwrap();
    drop(session);

    eventually("A receives both blocks", || async {
        a.node.bitswap_stat().await.unwrap().blocks_received == 2
    })
    .await;
    let sa = a.node.bitswap_stat().await.unwrap();
    assert_eq!(
        sa.data_received,
        (big.data().len() + small.data().len()) as u64
    );
    let sb = b.node.bitswap_stat().await.unwrap();
    assert_eq!(sb.blocks_sent, 2, "{sb:?}");
    assert!(
        b.node.wantlist(Some(ap)).await.unwrap().is_empty(),
        "served wants leave B's ledger"
    );
    // A had no session for them: they were counted, not stored.
    assert!(!a.repo.blocks().has(big.cid()).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_waiting_on_a_peer_completes_when_the_peer_adds_the_dag() {
    // The whole path: A's fetch_dag waits on B, B's user adds the file, A's fetch completes.
    let a = start().await;
    let b = start().await;
    a.node.connect(dial_addr(&b.node).await).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.bin");
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    // The root CID first (hash only: a throwaway repository), so A can start waiting for it.
    let scratch = tempfile::tempdir().unwrap();
    let tmp_repo = Repo::init(&scratch.path().join("r")).unwrap();
    let root = add(&tmp_repo, &file);
    let fetch = {
        let node = a.node.handle();
        tokio::spawn(async move {
            node.fetch_dag(root)
                .await
                .map(|s| (s.root, s.blocks_fetched))
        })
    };
    let ap = a.node.peer_id();
    eventually("B holds A's want of the root", || async {
        b.node.wantlist(Some(ap)).await.unwrap().contains(&root)
    })
    .await;
    assert_eq!(add(&b.repo, &file), root);
    let stats = tokio::time::timeout(WAIT, fetch)
        .await
        .expect("fetch finished")
        .unwrap()
        .unwrap();
    assert_eq!(stats.0, root);
    assert!(stats.1 >= 4, "{stats:?}");
    let out = dir.path().join("out.bin");
    ipfs_kit::unixfs::export::get(a.repo.blocks().as_ref(), &root, &out, &mut |_| {}).unwrap();
    assert!(std::fs::read(&out).unwrap() == data, "fetched bytes differ");
}

fn add(repo: &Repo, path: &std::path::Path) -> Cid {
    let session = repo.begin_write();
    let imported = ipfs_kit::unixfs::dir::import_path(
        path,
        &ipfs_kit::unixfs::ImportOptions::default(),
        &session,
        &mut |_| {},
        &|_| {},
    )
    .unwrap();
    session.pin_imported_root(&imported.cid, None).unwrap();
    imported.cid
}
