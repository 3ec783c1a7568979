#![allow(clippy::unwrap_used, clippy::expect_used)]

//! The S3 tier against a real S3 server (moto on loopback).

use crate::common;

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use ipfs_kit_blockstore::limits::BLOCK_SIZE_BYTES_MAX;
use ipfs_kit_tiers::tier::s3::S3Tier;
use ipfs_kit_tiers::tier::{CancellationToken, Tier, TierError, TierKind};

#[tokio::test]
async fn put_get_has_list_delete_round_trip() {
    let Some(moto) = common::Moto::start("put_get_has_list_delete_round_trip") else {
        return;
    };
    let tier = moto.tier("roundtrip", "blocks/").await;
    let cancel = CancellationToken::new();
    let blocks: Vec<_> = (0..5)
        .map(|i| common::block(i, 1000 + i as usize))
        .collect();
    for b in &blocks {
        assert!(!tier.has(b.cid(), &cancel).await.unwrap());
        assert_eq!(tier.get(b.cid(), &cancel).await.unwrap(), None);
        tier.put(b.cid(), b.data().clone(), &cancel).await.unwrap();
        assert!(tier.has(b.cid(), &cancel).await.unwrap());
        assert_eq!(
            tier.get(b.cid(), &cancel).await.unwrap().as_ref(),
            Some(b.data())
        );
    }
    // The key is prefix + CID; list gives the CIDs back.
    let head = tier
        .client()
        .head_object()
        .bucket("roundtrip")
        .key(format!("blocks/{}", blocks[0].cid()))
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(1000));
    let mut listed = tier.list(&cancel).await.unwrap();
    listed.sort();
    let mut want: Vec<_> = blocks.iter().map(|b| *b.cid()).collect();
    want.sort();
    assert_eq!(listed, want);
    // Putting again is idempotent.
    tier.put(blocks[0].cid(), blocks[0].data().clone(), &cancel)
        .await
        .unwrap();
    assert!(tier.delete(blocks[0].cid(), &cancel).await.unwrap());
    assert!(!tier.has(blocks[0].cid(), &cancel).await.unwrap());
    assert_eq!(tier.list(&cancel).await.unwrap().len(), 4);
}

#[tokio::test]
async fn list_pages_through_more_than_one_page() {
    let Some(moto) = common::Moto::start("list_pages_through_more_than_one_page") else {
        return;
    };
    let tier = moto.tier("paged", "p/").await;
    let cancel = CancellationToken::new();
    let n = ipfs_kit_tiers::tier::s3::LIST_PAGE_KEYS_MAX as u64 + 7;
    let blocks: Vec<_> = (0..n).map(|i| common::block(10_000 + i, 8)).collect();
    let tier = std::sync::Arc::new(tier);
    let mut tasks = Vec::new();
    for chunk in blocks.chunks(64) {
        let (tier, chunk, cancel) = (tier.clone(), chunk.to_vec(), cancel.clone());
        tasks.push(tokio::spawn(async move {
            for b in chunk {
                tier.put(b.cid(), b.data().clone(), &cancel).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(tier.list(&cancel).await.unwrap().len() as u64, n);
}

#[tokio::test]
async fn corrupt_and_oversized_objects_are_refused_on_read() {
    let Some(moto) = common::Moto::start("corrupt_and_oversized_objects_are_refused_on_read")
    else {
        return;
    };
    let tier = moto.tier("tamper", "").await;
    let cancel = CancellationToken::new();
    let b = common::block(1, 4096);
    let key = tier.key_of(b.cid());
    // Someone overwrites the object with other bytes.
    tier.client()
        .put_object()
        .bucket("tamper")
        .key(&key)
        .body(ByteStream::from(vec![7u8; 4096]))
        .send()
        .await
        .unwrap();
    let err = tier.get(b.cid(), &cancel).await.unwrap_err();
    assert!(
        matches!(
            err,
            TierError::Corrupt {
                tier: TierKind::S3,
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.is_retryable());
    // An object one byte over the block limit is refused, not buffered.
    tier.client()
        .put_object()
        .bucket("tamper")
        .key(&key)
        .body(ByteStream::from(vec![0u8; BLOCK_SIZE_BYTES_MAX + 1]))
        .send()
        .await
        .unwrap();
    let err = tier.get(b.cid(), &cancel).await.unwrap_err();
    assert!(matches!(err, TierError::BlockTooLarge { .. }), "{err}");
    // And a block over the limit is not uploaded.
    let err = tier
        .put(b.cid(), vec![0u8; BLOCK_SIZE_BYTES_MAX + 1].into(), &cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, TierError::BlockTooLarge { .. }));
}

#[tokio::test]
async fn a_missing_bucket_is_permanent_a_dead_endpoint_is_retryable() {
    let Some(moto) =
        common::Moto::start("a_missing_bucket_is_permanent_a_dead_endpoint_is_retryable")
    else {
        return;
    };
    let cancel = CancellationToken::new();
    let b = common::block(1, 10);
    let no_bucket = S3Tier::connect(&moto.config("never-created", ""))
        .await
        .unwrap();
    let err = no_bucket
        .put(b.cid(), b.data().clone(), &cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, TierError::Permanent { .. }), "{err}");

    let mut dead = moto.config("b", "");
    dead.endpoint = Some(format!("http://127.0.0.1:{}", common::free_port()));
    let dead = S3Tier::connect(&dead).await.unwrap();
    let err = dead.has(b.cid(), &cancel).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn a_cancelled_call_returns_at_once() {
    let Some(moto) = common::Moto::start("a_cancelled_call_returns_at_once") else {
        return;
    };
    let tier = moto.tier("cancel", "").await;
    let b = common::block(1, 10);
    let cancel = CancellationToken::new();
    cancel.cancel();
    let t0 = std::time::Instant::now();
    let err = tier.get(b.cid(), &cancel).await.unwrap_err();
    assert!(matches!(err, TierError::Cancelled));
    assert!(t0.elapsed() < Duration::from_secs(5));
}
