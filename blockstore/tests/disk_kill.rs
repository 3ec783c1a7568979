//! A real `kill -9`: a child process (this test binary, selected by an environment variable)
//! writes blocks (batches taking turns between `put_many` and `put_many_cold`, whose direct
//! appends leave padding past the last record) and prints each CID once the write has
//! returned; the parent SIGKILLs it
//! mid-stream, reopens the store, and checks every acknowledged block is present and intact.
//! Three rounds on the same directory also exercise recovery on top of recovery.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cid::Cid;
use ipfs_kit_blockstore::{Blockstore, DiskBlockstore};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "IPFS_KIT_BLOCKSTORE_KILL_CHILD_DIR";
const ACKED_BEFORE_KILL: usize = 300;
/// The child stops by itself after this many batches if nobody kills it.
const CHILD_BATCHES_MAX: u64 = 50_000;

/// In child mode: write forever (bounded), acknowledging on stdout. Otherwise a no-op.
#[test]
fn kill_child_writer() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = DiskBlockstore::open(std::path::Path::new(&dir)).unwrap();
    let seed = std::process::id() as u64;
    let mut out = std::io::stdout().lock();
    for batch in 0..CHILD_BATCHES_MAX {
        let blocks = common::random_blocks(seed << 20 | batch, 4, 1..65_536);
        if batch % 3 == 0 {
            store.put_many(&blocks).unwrap();
        } else {
            store.put_many_cold(&blocks).unwrap();
        }
        for b in &blocks {
            writeln!(out, "ACK {}", b.cid()).unwrap();
        }
        out.flush().unwrap();
    }
}

#[test]
fn acknowledged_blocks_survive_kill_9() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut all_acked: Vec<Cid> = Vec::new();
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "kill_child_writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<Cid>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(c) = line.strip_prefix("ACK ") {
                    let _ = tx.send(c.parse().unwrap());
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut acked = Vec::new();
        while acked.len() < ACKED_BEFORE_KILL && Instant::now() < deadline {
            if let Ok(c) = rx.recv_timeout(Duration::from_millis(100)) {
                acked.push(c);
            }
        }
        assert!(
            acked.len() >= ACKED_BEFORE_KILL,
            "child acknowledged too little"
        );
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success());
        reader.join().unwrap();
        acked.extend(rx.try_iter());
        all_acked.extend(acked);

        let store = DiskBlockstore::open(dir.path()).unwrap();
        let mut present = 0;
        for c in &all_acked {
            if store.get(c).unwrap().is_some() {
                present += 1;
            }
        }
        assert_eq!(
            present,
            all_acked.len(),
            "round {round}: acknowledged blocks lost"
        );
        assert!(store.verify_all().unwrap().is_empty());
    }
}
