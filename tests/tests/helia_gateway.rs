//! Helia's verified fetch (`@helia/verified-fetch` over `@helia/trustless-gateway-client`, run
//! with Node 22) against a real `ipfs-kit daemon`'s trustless gateway and nothing else: the
//! client asks for raw blocks (`?format=raw`) and checks each against its CID, so every answer
//! must be the exact block. A multi-chunk file by path, a small file two directories down,
//! and a byte range, byte for byte.

use std::process::Command;

use anyhow::{Context as _, Result};
use ipfs_kit_tests::{cli, fixtures, interop::Interop};

#[test]
fn helia_verified_fetch_from_our_gateway() -> Result<()> {
    let Some(interop) = Interop::from_env("helia_gateway::helia_verified_fetch_from_our_gateway")
    else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("site");
    std::fs::create_dir_all(tree.join("docs/deep"))?;
    let big = tree.join("big.bin");
    fixtures::write_random_file(&big, 11, 3_000_000)?;
    std::fs::write(tree.join("docs/deep/a.txt"), b"hello from ipfs-kit\n")?;
    let repo = dir.path().join("repo");
    let daemon = cli::Daemon::start(&repo)?;
    // Through the daemon's API (it holds the repository).
    let root = cli::add_root(&repo, &["--cid-version=1"], &tree).map_err(anyhow::Error::msg)?;
    let fetch = |path: &str, range: Option<&str>| -> Result<Vec<u8>> {
        let mut cmd = Command::new(&interop.node);
        cmd.arg(interop.scripts.join("verified_fetch.mjs"))
            .arg(&daemon.gateway)
            .arg(format!("{root}/{path}"));
        if let Some(r) = range {
            cmd.arg(r);
        }
        let out = cmd.output().context("running verified_fetch.mjs")?;
        anyhow::ensure!(
            out.status.success(),
            "verified_fetch.mjs {path} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(out.stdout)
    };
    let want = std::fs::read(&big)?;
    let got = fetch("big.bin", None)?;
    let first_diff = got.iter().zip(&want).position(|(a, b)| a != b);
    assert!(
        got == want,
        "big.bin differs: {} bytes for {}, first difference at {first_diff:?}",
        got.len(),
        want.len()
    );
    assert_eq!(fetch("docs/deep/a.txt", None)?, b"hello from ipfs-kit\n");
    // A range across the first chunk boundary (262,144).
    let part = fetch("big.bin", Some("262000-263999"))?;
    assert!(part == want[262_000..264_000], "range differs");
    Ok(())
}
