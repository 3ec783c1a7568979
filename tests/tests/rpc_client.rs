//! kubo's JS RPC client (`kubo-rpc-client` from npm, run with Node 22) against a real
//! `ipfs-kit daemon`: add (also with a progress callback), cat (whole and a slice), pin ls, block stat, dag put/get, id,
//! version, refs, refs local, dag resolve, pin update, repo version, swarm local addresses and
//! stop (shutdown) must work as they do against kubo.

use std::process::Command;

use anyhow::{Context as _, Result};
use ipfs_kit_tests::{cli, fixtures, interop::Interop};

#[test]
fn kubo_rpc_client_against_our_daemon() -> Result<()> {
    let Some(interop) = Interop::from_env("kubo_rpc_client_against_our_daemon") else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let repo = dir.path().join("repo");
    let mut daemon = cli::Daemon::start(&repo)?;
    let api = daemon.api.clone();
    let file = dir.path().join("input.bin");
    fixtures::write_random_file(&file, 7, 1_300_000)?;
    let out = Command::new(&interop.node)
        .arg(interop.scripts.join("rpc_client.mjs"))
        .arg(&api)
        .arg(&file)
        .output()?;
    assert!(
        out.status.success(),
        "rpc_client.mjs failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    // Our own importer names the same bytes with the same CID.
    let cid = cli::add_root(&dir.path().join("check"), &["--cid-version=1"], &file)
        .map_err(anyhow::Error::msg)?;
    assert_eq!(v["add"]["cid"], cid.as_str(), "{v}");
    assert_eq!(v["add"]["path"], "input.bin");
    assert!(v["add"]["size"].as_u64().unwrap_or(0) > 1_300_000, "{v}");
    // With a progress callback: the same CID, and the bytes read reported as they grow, up
    // to the whole file.
    assert_eq!(v["addProgress"]["cid"], cid.as_str(), "{v}");
    let calls: Vec<u64> = v["addProgress"]["calls"]
        .as_array()
        .context("progress calls")?
        .iter()
        .filter_map(|c| c["bytes"].as_u64())
        .collect();
    assert!(calls.len() >= 2, "{v}");
    assert!(calls.windows(2).all(|w| w[0] <= w[1]), "{calls:?}");
    assert_eq!(calls.last(), Some(&1_300_000), "{calls:?}");
    assert_eq!(v["catEqual"], true, "{v}");
    assert_eq!(v["catSliceEqual"], true, "{v}");
    assert!(
        v["pins"].as_array().is_some_and(|p| p
            .iter()
            .any(|p| p["cid"] == cid.as_str() && p["type"] == "recursive")),
        "{v}"
    );
    assert_eq!(v["blockStat"]["cid"], cid.as_str(), "{v}");
    assert!(v["blockStat"]["size"].as_u64().unwrap_or(0) > 0, "{v}");
    assert!(
        v["dag"]["cid"]
            .as_str()
            .is_some_and(|c| c.starts_with("bafyrei")),
        "{v}"
    );
    assert_eq!(
        v["dag"]["value"],
        serde_json::json!({"hello": "world", "n": [1, 2, 3]})
    );
    assert!(
        v["id"]["id"]
            .as_str()
            .is_some_and(|i| i.starts_with("12D3KooW")),
        "{v}"
    );
    assert_eq!(v["id"]["role"], "worker", "{v}");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"), "{v}");
    // refs -r: the file's chunks (1,300,000 bytes in 256 KiB chunks), each a local block.
    let refs: Vec<&str> = v["refs"]
        .as_array()
        .context("refs")?
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert_eq!(refs.len(), 1_300_000_usize.div_ceil(262_144), "{v}");
    let local = v["refsLocal"].as_array().context("refsLocal")?;
    for r in &refs {
        assert!(local.iter().any(|l| l == r), "{r} not in refs local: {v}");
    }
    assert_eq!(v["resolve"], cid.as_str(), "{v}");
    assert_eq!(v["pinUpdate"][0], cid.as_str(), "{v}");
    assert_eq!(v["pinUpdate"][1], v["small"], "{v}");
    assert!(v["repoVersion"].is_string(), "{v}");
    assert!(
        v["localAddrs"][0]
            .as_str()
            .is_some_and(|a| a.starts_with("/ip4/127.0.0.1/tcp/")),
        "{v}"
    );
    // stop: the daemon exits on its own, cleanly.
    assert_eq!(v["stopped"], true, "{v}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(s) = daemon.child.try_wait()? {
            break s;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "daemon still running after stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    Ok(())
}
