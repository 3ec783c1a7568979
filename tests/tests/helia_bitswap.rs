//! Bitswap interop with a real Helia 7 node (`tests/interop/helia_peer.mjs`, bitswap 1.2.0
//! only, no bootstrap or routers), both ways, over TCP + noise + yamux on loopback:
//! - Helia dials an in-process ipfs-kit node and fetches a multi-chunk file (`unixfs.cat`) and
//!   a directory tree (`unixfs.ls` + `cat`) that we added with kubo's defaults (CIDv0);
//! - the ipfs-kit node dials Helia and fetches (`fetch_dag`, then export) a multi-chunk file
//!   and a tree that Helia added with its defaults (CIDv1, raw leaves).
//!
//! Every byte and every name is compared. Skipped loudly without the interop environment;
//! fails under CI (`CI` set) without it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Lines, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use cid::Cid;
use ipfs_kit::harness::{Testnet, Topology};
use ipfs_kit::unixfs::export;
use ipfs_kit_tests::fixtures;
use ipfs_kit_tests::interop::Interop;
use serde_json::Value;

/// A Helia node in a child Node.js process, one JSON line per command.
struct HeliaPeer {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    id: String,
    addrs: Vec<String>,
}

impl HeliaPeer {
    fn start(interop: &Interop) -> Result<Self> {
        let mut child = Command::new(&interop.node)
            .arg(interop.scripts.join("helia_peer.mjs"))
            .current_dir(&interop.scripts)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting helia_peer.mjs")?;
        let stdin = child.stdin.take().context("stdin")?;
        let lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let mut me = Self {
            child,
            stdin,
            lines,
            id: String::new(),
            addrs: Vec::new(),
        };
        let ready = me.read()?;
        if ready["ready"] != true {
            bail!("helia_peer.mjs did not start: {ready}");
        }
        me.id = ready["id"].as_str().context("no id")?.to_owned();
        me.addrs = ready["addrs"]
            .as_array()
            .context("no addrs")?
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect();
        Ok(me)
    }

    fn read(&mut self) -> Result<Value> {
        let line = self.lines.next().context("helia_peer.mjs exited")??;
        serde_json::from_str(&line).with_context(|| format!("bad line {line:?}"))
    }

    /// Sends one command; an answer with `"ok": false` is an error.
    fn ask(&mut self, command: &str) -> Result<Value> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        let v = self.read()?;
        if v["ok"] == false {
            bail!("helia_peer.mjs {command}: {}", v["error"]);
        }
        Ok(v)
    }

    fn add(&mut self, what: &str, path: &Path) -> Result<Cid> {
        let v = self.ask(&format!("{what} {}", path.display()))?;
        Ok(v["cid"].as_str().context("no cid")?.parse()?)
    }
}

impl Drop for HeliaPeer {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every entry under `root`: relative path -> file bytes (`None` for a directory).
fn listing(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if path.is_dir() {
                out.insert(rel, None);
                walk(root, &path, out);
            } else {
                out.insert(rel, Some(std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn assert_same_tree(expected: &Path, got: &Path) {
    let (a, b) = (listing(expected), listing(got));
    let names = |m: &BTreeMap<PathBuf, Option<Vec<u8>>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b), "entry names differ");
    for (path, bytes) in &a {
        assert!(b[path] == *bytes, "{} differs", path.display());
    }
}

/// Logs of the in-process node to the test's output, filtered by `RUST_LOG` (silent without
/// it), e.g. `RUST_LOG=ipfs_kit::bitswap=trace`; `DEBUG=helia:bitswap*` does the same for Helia.
fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A multi-chunk file (3 MiB + 17: 13 chunks of 256 KiB, 4 of Helia's 1 MiB) and a tree with
/// unicode names, empty files and directories, and a nested multi-chunk file.
fn inputs(dir: &Path, seed: u64) -> (PathBuf, PathBuf) {
    let file = dir.join("big.bin");
    fixtures::write_random_file(&file, seed, 3 * 1024 * 1024 + 17).unwrap();
    let tree = fixtures::tree(dir, "tree", false).unwrap().path;
    fixtures::write_random_file(&tree.join("a/b/more"), seed + 1, 600_000).unwrap();
    (file, tree)
}

#[test]
fn helia_fetches_a_file_and_a_directory_from_ipfs_kit() {
    init_tracing();
    Interop::run_async(
        "helia_fetches_a_file_and_a_directory_from_ipfs_kit",
        |interop| async move {
            let net = Testnet::start(1, Topology::Full).await.unwrap();
            let work = tempfile::tempdir().unwrap();
            let (file, tree) = inputs(work.path(), 11);
            let file_cid = net.add_path(0, &file).await.unwrap();
            let tree_cid = net.add_path(0, &tree).await.unwrap();
            assert_eq!(file_cid.version(), cid::Version::V0, "kubo's defaults");

            let mut helia = HeliaPeer::start(&interop).unwrap();
            let ours = net.dial_addr(0).await.unwrap();
            let r = helia.ask(&format!("connect {ours}")).unwrap();
            assert_eq!(r["peer"], net.peer_id(0).unwrap().to_string());

            // The file, through unixfs.cat.
            let out = work.path().join("helia-cat");
            let r = helia
                .ask(&format!("cat {file_cid} {}", out.display()))
                .unwrap();
            assert_eq!(r["bytes"], 3 * 1024 * 1024 + 17);
            assert!(
                std::fs::read(&out).unwrap() == std::fs::read(&file).unwrap(),
                "Helia's cat differs"
            );

            // The directory: Helia's ls lists what our exporter lists, then the whole tree.
            let ls = helia.ask(&format!("ls {tree_cid}")).unwrap();
            let theirs: Vec<(String, String)> = ls["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["name"].as_str().unwrap().to_owned(),
                        e["cid"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            let repo = net.repo(0).unwrap();
            let ours_ls: Vec<(String, String)> = export::ls(repo.blocks().as_ref(), &tree_cid)
                .unwrap()
                .into_iter()
                .map(|e| (e.name, e.cid.to_string()))
                .collect();
            assert_eq!(theirs, ours_ls);
            let out = work.path().join("helia-get");
            let r = helia
                .ask(&format!("get {tree_cid} {}", out.display()))
                .unwrap();
            assert!(r["files"].as_u64().unwrap() >= 10, "{r}");
            assert_same_tree(&tree, &out);

            let stat = net.handle(0).unwrap().bitswap_stat().await.unwrap();
            assert!(stat.blocks_sent >= 13, "{stat:?}");
            assert!(
                stat.peers.iter().any(|p| p.to_string() == helia.id),
                "{stat:?}"
            );
            println!("served Helia: {stat:?}");

            // ping both ways: Helia's ping service answered by ours, and an on-demand ping
            // of ours (`ipfs-kit ping`) answered by js-libp2p's.
            let r = helia.ask(&format!("ping {ours}")).unwrap();
            assert!(r["ms"].as_f64().unwrap() >= 0.0, "{r}");
            let node = net.handle(0).unwrap();
            let mut pinger = node.pinger(helia.id.parse().unwrap()).unwrap();
            for _ in 0..3 {
                let rtt = pinger.ping().await.unwrap();
                assert!(rtt < std::time::Duration::from_secs(5), "{rtt:?}");
            }
            drop(helia);
            net.shutdown().await;
        },
    );
}

// Regression test of the issue-3 stall: Helia's 1 MiB blocks once arrived as yamux frames over
// rust-yamux's 1 MiB frame limit (js-yamux sends a whole window grant as one frame, and our
// windows auto-tuned past 1 MiB), which closed the connection mid-fetch. `net/muxer.rs` cuts
// such frames before yamux decodes them, and lets windows grow to 8 MiB: the 48 MiB file gives
// them the time to. `RUST_LOG=ipfs_kit::bitswap=trace DEBUG='helia:bitswap*'` shows both sides.
#[test]
fn ipfs_kit_fetches_a_file_and_a_directory_from_helia() {
    init_tracing();
    Interop::run_async(
        "ipfs_kit_fetches_a_file_and_a_directory_from_helia",
        |interop| async move {
            let net = Testnet::start(1, Topology::Full).await.unwrap();
            let work = tempfile::tempdir().unwrap();
            let (file, tree) = inputs(work.path(), 22);
            let mut helia = HeliaPeer::start(&interop).unwrap();
            let file_cid = helia.add("add-file", &file).unwrap();
            let tree_cid = helia.add("add-dir", &tree).unwrap();
            assert_eq!(file_cid.version(), cid::Version::V1, "Helia's defaults");
            let big = work.path().join("larger.bin");
            fixtures::write_random_file(&big, 23, 48 * 1024 * 1024).unwrap();
            let big_cid = helia.add("add-file", &big).unwrap();

            let node = net.handle(0).unwrap();
            let addr = helia.addrs[0].parse().unwrap();
            let peer = node.connect(addr).await.unwrap();
            assert_eq!(peer.to_string(), helia.id);

            let got = net.fetch(0, file_cid).await.unwrap();
            assert!(
                got == std::fs::read(&file).unwrap(),
                "the file fetched from Helia differs"
            );
            let out = work.path().join("ours-get");
            net.fetch_path(0, tree_cid, &out).await.unwrap();
            assert_same_tree(&tree, &out);
            let got = net.fetch(0, big_cid).await.unwrap();
            assert!(
                got == std::fs::read(&big).unwrap(),
                "the 48 MiB file fetched from Helia differs"
            );

            let stat = node.bitswap_stat().await.unwrap();
            assert!(stat.blocks_received >= 4 + 48, "{stat:?}");
            assert!(stat.wantlist.is_empty(), "{stat:?}");
            println!(
                "fetched from Helia: {stat:?} | {}",
                net.stats().fetch_summary()
            );
            drop(helia);
            net.shutdown().await;
        },
    );
}
