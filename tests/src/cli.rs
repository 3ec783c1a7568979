//! The `ipfs-kit` binary for end-to-end tests from this crate. Another package's binary has no
//! `CARGO_BIN_EXE_*`, so it is built once per test process with the cargo that runs the tests
//! (a no-op when `cargo test --workspace` has built it already) and found from cargo's JSON.
//!
//! `IPFS_KIT_BIN` names a prebuilt binary instead. `.ci/run` sets it to the binary that
//! `cargo test --workspace --no-run` built: a nested `cargo build -p ipfs-kit` resolves features
//! for one package, not the workspace, and so rebuilt a different copy of half the dependency
//! tree (parquet, arrow, aws-sdk) in the middle of the test run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};

static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Path of a freshly built `ipfs-kit` (dev profile).
pub fn ipfs_kit_bin() -> Result<PathBuf> {
    BIN.get_or_init(|| build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn build() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("IPFS_KIT_BIN") {
        let bin = PathBuf::from(bin);
        if !bin.is_file() {
            bail!("IPFS_KIT_BIN={} is not a file", bin.display());
        }
        return Ok(bin);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(cargo)
        .current_dir(&workspace)
        .args([
            "build",
            "-p",
            "ipfs-kit",
            "--bin",
            "ipfs-kit",
            "--message-format=json",
        ])
        .output()
        .context("running cargo build -p ipfs-kit")?;
    if !out.status.success() {
        bail!(
            "cargo build -p ipfs-kit failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] == "compiler-artifact" && v["target"]["name"] == "ipfs-kit" {
            if let Some(exe) = v["executable"].as_str() {
                return Ok(PathBuf::from(exe));
            }
        }
    }
    bail!("cargo build -p ipfs-kit reported no ipfs-kit executable")
}

/// Runs `ipfs-kit --repo <repo> <args>`; `Err` with its stderr unless it exits 0.
pub fn run(repo: &Path, args: &[&str]) -> Result<Output> {
    let bin = ipfs_kit_bin()?;
    let out = Command::new(&bin)
        .arg("--repo")
        .arg(repo)
        .args(args)
        .env_remove("IPFS_KIT_PATH")
        .output()
        .with_context(|| format!("starting {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "ipfs-kit {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// `ipfs-kit add -Q <flags> <path>` (recursive for a directory): the root CID.
pub fn add_root(repo: &Path, flags: &[&str], path: &Path) -> Result<String, String> {
    let mut args = vec!["add", "-Q"];
    if path.is_dir() {
        args.push("-r");
    }
    args.extend_from_slice(flags);
    let p = path.to_str().ok_or("non-UTF-8 path")?;
    args.push(p);
    let out = run(repo, &args).map_err(|e| format!("{e:#}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A running `ipfs-kit daemon` on loopback (ephemeral ports), stopped when dropped.
pub struct Daemon {
    pub child: std::process::Child,
    /// `http://127.0.0.1:PORT` of the RPC API.
    pub api: String,
    /// `http://127.0.0.1:PORT` of the gateway.
    pub gateway: String,
}

impl Daemon {
    /// `ipfs-kit --repo <repo> daemon` (the repository is created by the daemon's first run if
    /// needed), once it prints `Daemon is ready`.
    pub fn start(repo: &Path) -> Result<Daemon> {
        use std::io::BufRead as _;
        let mut child = Command::new(ipfs_kit_bin()?)
            .arg("--repo")
            .arg(repo)
            .args(ipfs_kit::harness::LOOPBACK_DAEMON_ARGS)
            .env_remove("IPFS_KIT_PATH")
            .env_remove("IPFS_KIT_API_TOKEN")
            .env_remove("IPFS_KIT_API")
            .env_remove("IPFS_KIT_GATEWAY")
            .env("IPFS_KIT_CLUSTER_API", "127.0.0.1:0")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut daemon = Daemon {
            child,
            api: String::new(),
            gateway: String::new(),
        };
        // `/ip4/<host>/tcp/<port>` -> `http://<host>:<port>`.
        let url = |ma: &str| {
            let p: Vec<&str> = ma.split('/').collect();
            format!("http://{}:{}", p[2], p[4])
        };
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line?;
            if let Some(ma) = line.strip_prefix("RPC API server listening on ") {
                daemon.api = url(ma);
            }
            if let Some(ma) = line.strip_prefix("Gateway server listening on ") {
                daemon.gateway = url(ma);
            }
            if line == "Daemon is ready" {
                break;
            }
        }
        if daemon.api.is_empty() || daemon.gateway.is_empty() {
            bail!("the daemon printed no API or gateway address");
        }
        Ok(daemon)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
