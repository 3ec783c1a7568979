//! `ipfs-kit cluster ...`: the cluster pinset through the running daemon's cluster REST API
//! (found through `<repo>/cluster-api`), printed as `ipfs-cluster-ctl` prints it.
//!
//! `pin add|rm|ls`, `status [cid]` (one line per peer: peer and state), `peers`,
//! `recover [cid]`, `state export|import` (the pinset as JSON lines).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::cluster_api::client::ClusterClient;

/// `ipfs-kit cluster` subcommands.
#[derive(Subcommand, Debug)]
pub enum ClusterCmd {
    /// Pins of the cluster pinset.
    #[command(subcommand)]
    Pin(PinCmd),
    /// The state of pins on every cluster peer (all pins, or one).
    Status { cid: Option<String> },
    /// The cluster's peers.
    Peers,
    /// Retry failed pins and unpins (of one CID, or all).
    Recover { cid: Option<String> },
    /// Export or import the pinset as JSON lines.
    #[command(subcommand)]
    State(StateCmd),
}

/// `ipfs-kit cluster pin`.
#[derive(Subcommand, Debug)]
pub enum PinCmd {
    /// Pin a CID cluster-wide (masters only).
    Add(PinAddArgs),
    /// Unpin a CID cluster-wide (masters only).
    Rm { cid: String },
    /// List the pinset with allocations (all, or one CID).
    Ls { cid: Option<String> },
}

/// Options of `cluster pin add`, ipfs-cluster-ctl's names.
#[derive(Args, Debug)]
pub struct PinAddArgs {
    pub cid: String,
    /// A name for the pin.
    #[arg(long)]
    pub name: Option<String>,
    /// recursive (default) or direct.
    #[arg(long)]
    pub mode: Option<String>,
    /// Sets both replication factors (-1: every peer).
    #[arg(short = 'r', long, allow_hyphen_values = true)]
    pub replication: Option<i32>,
    /// Fewest peers that must pin it.
    #[arg(long = "replication-min", allow_hyphen_values = true)]
    pub replication_min: Option<i32>,
    /// Most peers that pin it.
    #[arg(long = "replication-max", allow_hyphen_values = true)]
    pub replication_max: Option<i32>,
    /// Peers to allocate first, comma-separated peer ids.
    #[arg(long = "allocations")]
    pub allocations: Option<String>,
    /// Unpin after this long (Go duration: 30s, 12h, 1h30m).
    #[arg(long = "expire-in")]
    pub expire_in: Option<String>,
    /// Metadata `key=value` (repeatable).
    #[arg(long = "metadata")]
    pub metadata: Vec<String>,
}

/// `ipfs-kit cluster state`.
#[derive(Subcommand, Debug)]
pub enum StateCmd {
    /// Write the pinset as JSON lines (to stdout, or a file).
    Export {
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
    /// Pin every line of a JSON-lines export (a file, or `-` for stdin); masters only.
    Import {
        #[arg(default_value = "-")]
        file: PathBuf,
    },
}

/// Runs `ipfs-kit cluster ...` against the daemon of `repo`.
pub fn run(repo: &Path, cmd: ClusterCmd) -> Result<()> {
    let c = ClusterClient::from_repo(repo)?;
    let mut out = std::io::stdout().lock();
    match cmd {
        ClusterCmd::Pin(PinCmd::Add(a)) => {
            let cid = cid_arg(&a.cid)?;
            let pin = c.post(&format!("/pins/{cid}"), &pin_query(&a)?)?;
            print_pin(&mut out, &pin)?;
        }
        ClusterCmd::Pin(PinCmd::Rm { cid }) => {
            let cid = cid_arg(&cid)?;
            c.delete(&format!("/pins/{cid}"))?;
            writeln!(out, "{cid}")?;
        }
        ClusterCmd::Pin(PinCmd::Ls { cid }) => {
            let pins = match cid {
                Some(cid) => vec![c.get(&format!("/allocations/{}", cid_arg(&cid)?))?],
                None => c.get_lines("/allocations")?,
            };
            for p in &pins {
                print_pin(&mut out, p)?;
            }
        }
        ClusterCmd::Status { cid } => {
            let all = match cid {
                Some(cid) => vec![c.get(&format!("/pins/{}", cid_arg(&cid)?))?],
                None => c.get_lines("/pins")?,
            };
            for g in &all {
                print_status(&mut out, g)?;
            }
        }
        ClusterCmd::Peers => {
            for p in c.get_lines("/peers")? {
                print_peer(&mut out, &p)?;
            }
        }
        ClusterCmd::Recover { cid } => {
            let all = match cid {
                Some(cid) => vec![c.post(&format!("/pins/{}/recover", cid_arg(&cid)?), &[])?],
                None => c.post_lines("/pins/recover")?,
            };
            for g in &all {
                print_status(&mut out, g)?;
            }
        }
        ClusterCmd::State(StateCmd::Export { output }) => match output {
            Some(path) => {
                let mut f = std::fs::File::create(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                c.export(&mut f)?;
                f.sync_all()?;
            }
            None => {
                c.export(&mut out)?;
            }
        },
        ClusterCmd::State(StateCmd::Import { file }) => {
            let body = if file.as_os_str() == "-" {
                reqwest::blocking::Body::new(std::io::stdin())
            } else {
                let f = std::fs::File::open(&file)
                    .with_context(|| format!("opening {}", file.display()))?;
                reqwest::blocking::Body::from(f)
            };
            let n = c.import(body)?;
            writeln!(out, "imported {n} pins")?;
        }
    }
    out.flush()?;
    Ok(())
}

fn cid_arg(s: &str) -> Result<cid::Cid> {
    super::parse_cid(s)
}

/// The query string of `POST /pins/{cid}` (ipfs-cluster's parameter names).
fn pin_query(a: &PinAddArgs) -> Result<Vec<(String, String)>> {
    let mut q = Vec::new();
    let mut push = |k: &str, v: String| q.push((k.to_owned(), v));
    if let Some(v) = &a.name {
        push("name", v.clone());
    }
    if let Some(v) = &a.mode {
        push("mode", v.clone());
    }
    if let Some(v) = a.replication {
        push("replication", v.to_string());
    }
    if let Some(v) = a.replication_min {
        push("replication-min", v.to_string());
    }
    if let Some(v) = a.replication_max {
        push("replication-max", v.to_string());
    }
    if let Some(v) = &a.allocations {
        push("user-allocations", v.clone());
    }
    if let Some(v) = &a.expire_in {
        push("expire-in", v.clone());
    }
    for m in &a.metadata {
        let (k, v) = m
            .split_once('=')
            .with_context(|| format!("--metadata {m:?}: expected key=value"))?;
        push(&format!("meta-{k}"), v.to_owned());
    }
    Ok(q)
}

fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect();
    out.sort();
    out
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// `ipfs-cluster-ctl pin ls`'s line.
fn print_pin(out: &mut impl std::io::Write, p: &Value) -> Result<()> {
    let mut kind = text(p, "type").to_uppercase();
    if text(p, "mode") == "direct" {
        kind.push_str("-DIRECT");
    }
    write!(out, "{} | {} | {kind} | ", text(p, "cid"), text(p, "name"))?;
    let (min, max) = (
        p["replication_factor_min"].as_i64().unwrap_or(-1),
        p["replication_factor_max"].as_i64().unwrap_or(-1),
    );
    if min == -1 && max == -1 {
        write!(out, "Repl. Factor: -1 | Allocations: [everywhere]")?;
    } else {
        write!(
            out,
            "Repl. Factor: {min}--{max} | Allocations: [{}]",
            strings(&p["allocations"]).join(" ")
        )?;
    }
    let depth = if p["max_depth"].as_i64() == Some(0) {
        "Direct"
    } else {
        "Recursive"
    };
    let meta = if p["metadata"].as_object().is_some_and(|m| !m.is_empty()) {
        "yes"
    } else {
        "no"
    };
    let exp = match text(p, "expire_at") {
        "" | crate::cluster_api::json::GO_ZERO_TIME => "∞".to_owned(),
        t => t.replacen('T', " ", 1),
    };
    writeln!(out, " | {depth} | Metadata: {meta} | Exp: {exp}")?;
    Ok(())
}

/// `ipfs-cluster-ctl status`: the CID (and name), then one line per peer with its state.
fn print_status(out: &mut impl std::io::Write, g: &Value) -> Result<()> {
    write!(out, "{}", text(g, "cid"))?;
    if !text(g, "name").is_empty() {
        write!(out, " | {}", text(g, "name"))?;
    }
    writeln!(out, ":")?;
    if let Some(map) = g["peer_map"].as_object() {
        for (peer, info) in map {
            let who = match text(info, "peername") {
                "" => peer.as_str(),
                name => name,
            };
            write!(
                out,
                "    > {who:<20} : {}",
                text(info, "status").to_uppercase()
            )?;
            if !text(info, "error").is_empty() {
                write!(out, ": {}", text(info, "error"))?;
            }
            writeln!(
                out,
                " | {} | Attempts: {} | Priority: {}",
                text(info, "timestamp"),
                info["attempt_count"].as_u64().unwrap_or(0),
                info["priority_pin"].as_bool().unwrap_or(false)
            )?;
        }
    }
    Ok(())
}

/// `ipfs-cluster-ctl peers ls`: the peer, its name and how many peers it sees, addresses.
fn print_peer(out: &mut impl std::io::Write, p: &Value) -> Result<()> {
    if !text(p, "error").is_empty() {
        writeln!(out, "{} | ERROR: {}", text(p, "id"), text(p, "error"))?;
        return Ok(());
    }
    let seen = p["cluster_peers"].as_array().map_or(0, Vec::len);
    writeln!(
        out,
        "{} | {} | Sees {} other peers",
        text(p, "id"),
        text(p, "peername"),
        seen.saturating_sub(1)
    )?;
    writeln!(out, "  > Addresses:")?;
    for a in strings(&p["addresses"]) {
        writeln!(out, "    - {a}")?;
    }
    Ok(())
}
