//! DiskBlockstore: persistence, corruption, torn tails, compaction and the repo lock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cid::Cid;
use common::{newest_segment, random_blocks};
use ipfs_kit_blockstore::{Blockstore, BlockstoreError, DiskBlockstore, DiskOptions};
use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};

fn small_segments() -> DiskOptions {
    DiskOptions {
        segment_bytes_max: 64 * 1024,
        ..Default::default()
    }
}

/// Cold appends (direct I/O) and ordinary ones (through the page cache) of many sizes taking
/// turns in one segment, with direct writes on and off across reopens: every block reads back
/// at once and after reopening (through the checkpoint, and by a scan without it), and a closed
/// store's segments hold exactly its records (no padding of direct writes left behind).
#[test]
fn direct_and_buffered_appends_interleave_and_close_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = random_blocks(7, 120, 1..9_000);
    let mut written = 0;
    for (round, direct_writes) in [true, false, true, true].into_iter().enumerate() {
        let opts = DiskOptions {
            direct_writes,
            ..small_segments()
        };
        let s = DiskBlockstore::open_with(dir.path(), opts).unwrap();
        for (i, n) in [1, 7, 3, 19].into_iter().enumerate() {
            let batch = &blocks[written..written + n];
            if (i + round) % 2 == 0 {
                s.put_many_cold(batch).unwrap();
            } else {
                s.put_many(batch).unwrap();
            }
            written += n;
            for b in &blocks[..written] {
                assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b.data()));
            }
        }
        let records = s.stat().unwrap().disk_bytes;
        if round == 2 {
            // Closed as after a crash, without the checkpoint: reopening scans.
            s.close_without_checkpoint();
        } else {
            drop(s);
        }
        let on_disk: u64 = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".pack"))
            .map(|e| e.metadata().unwrap().len())
            .sum();
        assert_eq!(on_disk, records, "round {round}");
    }
    // What a crash in the middle of direct appends leaves: zeros past the last record.
    let seg = newest_segment(dir.path());
    let records = std::fs::metadata(&seg).unwrap().len();
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&[0u8; 4000]).unwrap();
    drop(f);
    let s = DiskBlockstore::open(dir.path()).unwrap();
    for b in &blocks[..written] {
        assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b.data()));
    }
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), records);
}

#[test]
fn reopen_after_drop_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = random_blocks(1, 50, 1..40_000);
    {
        let s = DiskBlockstore::open_with(dir.path(), small_segments()).unwrap();
        s.put_many(&blocks[..30]).unwrap();
        s.put_many(&blocks[30..]).unwrap();
        s.delete_many(&[*blocks[3].cid()]).unwrap();
    }
    // Once through the checkpoint, once by scanning every segment.
    for remove_hint in [false, true] {
        if remove_hint {
            std::fs::remove_file(dir.path().join("index.hint")).unwrap();
        }
        let s = DiskBlockstore::open_with(dir.path(), small_segments()).unwrap();
        for (i, b) in blocks.iter().enumerate() {
            let got = s.get(b.cid()).unwrap();
            if i == 3 {
                assert_eq!(got, None);
            } else {
                assert_eq!(got.as_ref(), Some(b.data()), "block {i}");
            }
        }
        assert_eq!(s.stat().unwrap().blocks, 49);
    }
}

#[test]
fn corrupted_byte_on_disk_is_a_corrupt_error() {
    let dir = tempfile::tempdir().unwrap();
    let s = DiskBlockstore::open(dir.path()).unwrap();
    let blocks = random_blocks(2, 3, 1000..2000);
    s.put_many(&blocks).unwrap();
    // The segment's last byte is the last data byte of the last block (the file may be longer
    // by the padding of direct writes while the store is open).
    let seg = newest_segment(dir.path());
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&seg)
        .unwrap();
    let end = f
        .seek(SeekFrom::Start(s.stat().unwrap().disk_bytes - 1))
        .unwrap();
    let mut byte = [0u8];
    std::io::Read::read_exact(&mut f, &mut byte).unwrap();
    f.seek(SeekFrom::Start(end)).unwrap();
    f.write_all(&[byte[0] ^ 0x40]).unwrap();
    drop(f);
    match s.get(blocks[2].cid()) {
        Err(BlockstoreError::Corrupt(c)) => assert_eq!(c.cid, *blocks[2].cid()),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(
        s.get(blocks[0].cid()).unwrap().as_ref(),
        Some(blocks[0].data())
    );
    // Read together (hashed two at a time), the damaged block still fails alone.
    let cids: Vec<Cid> = blocks.iter().map(|b| *b.cid()).collect();
    let many = s.get_many(&cids);
    assert_eq!(many[0].as_ref().unwrap().as_ref(), Some(blocks[0].data()));
    assert_eq!(many[1].as_ref().unwrap().as_ref(), Some(blocks[1].data()));
    match &many[2] {
        Err(BlockstoreError::Corrupt(c)) => assert_eq!(c.cid, *blocks[2].cid()),
        other => panic!("expected Corrupt from get_many, got {other:?}"),
    }
    let bad = s.verify_all().unwrap();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].hash(), blocks[2].cid().hash());
    // The crc-only read used to serve peers catches the same damage.
    match s.get_trusted(blocks[2].cid()) {
        Err(BlockstoreError::Corrupt(c)) => assert_eq!(c.cid, *blocks[2].cid()),
        other => panic!("expected Corrupt from get_trusted, got {other:?}"),
    }
    assert_eq!(
        s.get_trusted(blocks[1].cid()).unwrap().as_ref(),
        Some(blocks[1].data())
    );
}

#[test]
fn get_trusted_catches_damage_in_any_record_byte() {
    // A flipped bit in the data, the header's length-independent fields or the multihash must
    // never come back as data from the crc-only read.
    let dir = tempfile::tempdir().unwrap();
    let s = DiskBlockstore::open(dir.path()).unwrap();
    let blocks = random_blocks(3, 1, 500..600);
    s.put_many(&blocks).unwrap();
    let seg = newest_segment(dir.path());
    // The records' length (the file may be longer by the padding of direct writes).
    let len = s.stat().unwrap().disk_bytes;
    let original = std::fs::read(&seg).unwrap();
    // Skip the magic and length (bytes 0..8 of the record: checked as header fields).
    for pos in [8, 12, 14, 20, len as usize / 2, len as usize - 1] {
        let mut bytes = original.clone();
        bytes[pos] ^= 0x01;
        std::fs::write(&seg, &bytes).unwrap();
        assert!(
            !matches!(s.get_trusted(blocks[0].cid()), Ok(Some(_))),
            "byte {pos} flipped, still served"
        );
    }
    std::fs::write(&seg, &original).unwrap();
    assert_eq!(
        s.get_trusted(blocks[0].cid()).unwrap().as_ref(),
        Some(blocks[0].data())
    );
}

#[test]
fn truncated_tail_record_is_cut_off_and_earlier_blocks_survive() {
    for remove_hint in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let blocks = random_blocks(3, 10, 5000..9000);
        {
            let s = DiskBlockstore::open(dir.path()).unwrap();
            s.put_many(&blocks).unwrap();
        }
        if remove_hint {
            std::fs::remove_file(dir.path().join("index.hint")).unwrap();
        }
        let seg = newest_segment(dir.path());
        let len = std::fs::metadata(&seg).unwrap().len();
        // Tear the last record: keep its header and part of its data.
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(len - 100).unwrap();
        drop(f);
        {
            let s = DiskBlockstore::open(dir.path()).unwrap();
            for b in &blocks[..9] {
                assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b.data()));
            }
            assert_eq!(s.get(blocks[9].cid()).unwrap(), None);
            assert!(!s.has(blocks[9].cid()).unwrap());
            // Writing after the repair appends cleanly.
            s.put(&blocks[9]).unwrap();
        }
        let s = DiskBlockstore::open(dir.path()).unwrap();
        for b in &blocks {
            assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b.data()));
        }
    }
}

#[test]
fn garbage_tail_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = random_blocks(4, 4, 100..200);
    {
        let s = DiskBlockstore::open(dir.path()).unwrap();
        s.put_many(&blocks).unwrap();
    }
    std::fs::remove_file(dir.path().join("index.hint")).unwrap();
    let seg = newest_segment(dir.path());
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&[0xAB; 37]).unwrap();
    drop(f);
    let s = DiskBlockstore::open(dir.path()).unwrap();
    assert_eq!(s.stat().unwrap().blocks, 4);
    let data: u64 = blocks.iter().map(|b| b.data().len() as u64).sum();
    assert!(s.stat().unwrap().disk_bytes < data + 4 * 100);
}

#[test]
fn delete_and_compaction_keep_live_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = random_blocks(5, 60, 2000..6000);
    let (live, dead) = blocks.split_at(20);
    {
        let s = DiskBlockstore::open_with(dir.path(), small_segments()).unwrap();
        s.put_many(&blocks).unwrap();
        let before = s.stat().unwrap().disk_bytes;
        let dead_cids: Vec<Cid> = dead.iter().map(|b| *b.cid()).collect();
        assert_eq!(s.delete_many(&dead_cids).unwrap(), 40);
        let stats = s.compact(0.5).unwrap();
        assert!(
            stats.segments_compacted > 0 && stats.records_copied > 0,
            "{stats:?}"
        );
        let after = s.stat().unwrap().disk_bytes;
        assert!(after < before / 2, "disk {before} -> {after}");
        for b in live {
            assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b.data()));
        }
        for b in dead {
            assert!(!s.has(b.cid()).unwrap());
        }
        // Writes after compaction land above the copies.
        s.delete_many(&[*live[0].cid()]).unwrap();
        s.put(&dead[0]).unwrap();
        assert_eq!(s.verify_all().unwrap(), Vec::<Cid>::new());
    }
    for remove_hint in [false, true] {
        if remove_hint {
            std::fs::remove_file(dir.path().join("index.hint")).unwrap();
        }
        let s = DiskBlockstore::open_with(dir.path(), small_segments()).unwrap();
        assert!(!s.has(live[0].cid()).unwrap());
        assert_eq!(s.get(dead[0].cid()).unwrap().as_ref(), Some(dead[0].data()));
        for b in &live[1..] {
            assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b.data()));
        }
        for b in &dead[1..] {
            assert!(!s.has(b.cid()).unwrap(), "deleted block came back");
        }
        assert_eq!(s.stat().unwrap().blocks, 20);
    }
}

#[test]
fn reclaim_space_through_the_trait() {
    let dir = tempfile::tempdir().unwrap();
    let s = DiskBlockstore::open(dir.path()).unwrap();
    let blocks = random_blocks(6, 10, 10_000..10_001);
    s.put_many(&blocks).unwrap();
    let cids: Vec<Cid> = blocks[..9].iter().map(|b| *b.cid()).collect();
    s.delete_many(&cids).unwrap();
    let store: &dyn Blockstore = &s;
    assert!(store.reclaim_space().unwrap() > 80_000);
    assert_eq!(
        store.get(blocks[9].cid()).unwrap().as_ref(),
        Some(blocks[9].data())
    );
}

#[test]
fn second_open_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let s = DiskBlockstore::open(dir.path()).unwrap();
    match DiskBlockstore::open(dir.path()) {
        Err(BlockstoreError::Locked(_)) => {}
        other => panic!("expected Locked, got {:?}", other.map(|_| ())),
    }
    drop(s);
    DiskBlockstore::open(dir.path()).unwrap();
}

#[test]
fn sync_on_put_store_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments, so batches roll segments and sync covers the sealed ones too.
    let opts = DiskOptions {
        sync_on_put: true,
        segment_bytes_max: 16 * 1024,
        ..Default::default()
    };
    let blocks = random_blocks(8, 40, 1..5000);
    {
        let s = DiskBlockstore::open_with(dir.path(), opts.clone()).unwrap();
        s.put_many(&blocks[..20]).unwrap();
        for b in &blocks[20..] {
            s.put(b).unwrap();
        }
        s.sync().unwrap();
        s.close_without_checkpoint();
    }
    let s = DiskBlockstore::open_with(dir.path(), opts).unwrap();
    for b in &blocks {
        assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b.data()));
    }
}

#[test]
fn damage_before_good_records_stays_visible_after_a_scan_open() {
    // Open without a checkpoint: the scan finds a record failing its crc with good records
    // after it. That is damage, not a torn tail: the block must read as Corrupt (and be listed
    // by verify_all), not vanish.
    let dir = tempfile::tempdir().unwrap();
    let blocks = random_blocks(21, 3, 1000..2000);
    {
        let s = DiskBlockstore::open(dir.path()).unwrap();
        s.put_many(&blocks).unwrap();
        s.close_without_checkpoint();
    }
    let seg = newest_segment(dir.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    // The last block's data ends the file; a byte well inside the first record's data.
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&seg)
        .unwrap();
    let pos = 200.min(len / 4);
    f.seek(SeekFrom::Start(pos)).unwrap();
    let mut byte = [0u8];
    std::io::Read::read_exact(&mut f, &mut byte).unwrap();
    f.seek(SeekFrom::Start(pos)).unwrap();
    f.write_all(&[byte[0] ^ 0x01]).unwrap();
    drop(f);
    let _ = std::fs::remove_file(dir.path().join("index.hint"));
    let s = DiskBlockstore::open(dir.path()).unwrap();
    match s.get(blocks[0].cid()) {
        Err(BlockstoreError::Corrupt(c)) => assert_eq!(c.cid, *blocks[0].cid()),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(
        s.get(blocks[2].cid()).unwrap().as_ref(),
        Some(blocks[2].data())
    );
    let bad = s.verify_all().unwrap();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].hash(), blocks[0].cid().hash());
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        len,
        "damage is not truncated away"
    );
}

#[test]
fn concurrent_readers_and_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let s = DiskBlockstore::open_with(dir.path(), small_segments()).unwrap();
    let blocks = random_blocks(9, 200, 100..3000);
    s.put_many(&blocks[..100]).unwrap();
    std::thread::scope(|sc| {
        sc.spawn(|| {
            for chunk in blocks[100..].chunks(7) {
                s.put_many(chunk).unwrap();
            }
        });
        for _ in 0..2 {
            sc.spawn(|| {
                for _ in 0..5 {
                    for b in &blocks[..100] {
                        assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b.data()));
                    }
                }
            });
        }
    });
    assert_eq!(s.stat().unwrap().blocks, 200);
}

#[test]
fn damage_in_a_sealed_segment_is_not_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = random_blocks(10, 40, 3000..5000);
    {
        let s = DiskBlockstore::open_with(dir.path(), small_segments()).unwrap();
        for b in &blocks {
            s.put(b).unwrap();
        }
    }
    std::fs::remove_file(dir.path().join("index.hint")).unwrap();
    let first = dir.path().join("seg-0000000001.pack");
    let len = std::fs::metadata(&first).unwrap().len();
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[0] ^= 0xFF; // the first record's magic
    std::fs::write(&first, &bytes).unwrap();
    let s = DiskBlockstore::open_with(dir.path(), small_segments()).unwrap();
    assert_eq!(
        std::fs::metadata(&first).unwrap().len(),
        len,
        "sealed segment was cut"
    );
    assert!(!s.has(blocks[0].cid()).unwrap());
    // Blocks in later segments are all served.
    let last = blocks.last().unwrap();
    assert_eq!(s.get(last.cid()).unwrap().as_ref(), Some(last.data()));
    assert!(s.stat().unwrap().blocks > 20);
}
