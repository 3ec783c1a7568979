//! Commands that only a running daemon can answer, as in kubo ("this command must be run in
//! online mode"): `swarm peers|connect|disconnect`, `bitswap stat|wantlist|ledger`,
//! `stats bw [--peer|--proto] [--poll]`, `ping` and `shutdown`. Each calls the daemon's RPC
//! API and prints kubo's text.

use crate::api::client::{ndjson_lines, ApiClient};
use anyhow::{bail, Context as _, Result};
use clap::Subcommand;
use std::io::Write as _;
use std::path::Path;

/// `ipfs-kit swarm`.
#[derive(Subcommand, Debug)]
pub enum SwarmCmd {
    /// List the peers this node is connected to (`<addr>/p2p/<peer>` per line).
    Peers,
    /// Open a connection to each address (`/ip4/../tcp/../p2p/<id>`).
    Connect {
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Close the connections to each address's peer.
    Disconnect {
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Peers the daemon stays connected to (kubo's `swarm peering`).
    #[command(subcommand)]
    Peering(PeeringCmd),
}

/// `ipfs-kit swarm peering`.
#[derive(Subcommand, Debug)]
pub enum PeeringCmd {
    /// Stay connected to each peer (`<multiaddr>/p2p/<id>`): kept open, redialed when closed.
    Add {
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// The peered peers.
    Ls,
    /// Stop redialing each peer (by peer ID).
    Rm {
        #[arg(required = true)]
        peers: Vec<String>,
    },
}

/// `ipfs-kit bitswap`.
#[derive(Subcommand, Debug)]
pub enum BitswapCmd {
    /// Counters of blocks and bytes exchanged, the wantlist and the partners.
    Stat,
    /// The CIDs this node wants (or that `--peer` wants from us).
    Wantlist {
        #[arg(short = 'p', long)]
        peer: Option<String>,
    },
    /// What this node and a peer exchanged (bytes each way, blocks, the debt ratio).
    Ledger { peer: String },
}

/// `ipfs-kit stats`.
#[derive(Subcommand, Debug)]
pub enum StatsCmd {
    /// Bytes sent and received: in all, with one peer, or on one protocol.
    Bw {
        /// Only the bytes exchanged with this peer.
        #[arg(short = 't', long, conflicts_with = "proto")]
        peer: Option<String>,
        /// Only the bytes of this protocol (e.g. `/ipfs/bitswap/1.2.0`).
        #[arg(long)]
        proto: Option<String>,
        /// Print again every `--interval` until interrupted.
        #[arg(short = 'p', long)]
        poll: bool,
        /// Time between two prints with `--poll` (a Go duration).
        #[arg(short = 'i', long, default_value = "1s")]
        interval: String,
    },
}

/// The daemon's API client, or kubo's online-mode error.
fn daemon(repo: &Path) -> Result<ApiClient> {
    ApiClient::from_repo(repo)?.context(
        "this command must be run in online mode: start `ipfs-kit daemon` on this repository first",
    )
}

/// `ipfs-kit swarm ...`.
pub fn swarm(repo: &Path, cmd: SwarmCmd) -> Result<()> {
    let c = daemon(repo)?;
    let mut out = std::io::stdout().lock();
    match cmd {
        SwarmCmd::Peers => {
            let v = c.json("swarm/peers", &[])?;
            for p in v["Peers"].as_array().into_iter().flatten() {
                let (addr, peer) = (
                    p["Addr"].as_str().unwrap_or(""),
                    p["Peer"].as_str().unwrap_or(""),
                );
                writeln!(out, "{addr}/p2p/{peer}")?;
            }
        }
        SwarmCmd::Connect { addresses } => print_strings(&c, "swarm/connect", addresses)?,
        SwarmCmd::Disconnect { addresses } => print_strings(&c, "swarm/disconnect", addresses)?,
        SwarmCmd::Peering(cmd) => {
            let (command, verb, args) = match cmd {
                PeeringCmd::Ls => {
                    let v = c.json("swarm/peering/ls", &[])?;
                    for p in v["Peers"].as_array().into_iter().flatten() {
                        writeln!(out, "{}", p["ID"].as_str().unwrap_or(""))?;
                    }
                    return Ok(());
                }
                PeeringCmd::Add { addresses } => ("swarm/peering/add", "add", addresses),
                PeeringCmd::Rm { peers } => ("swarm/peering/rm", "remove", peers),
            };
            let args: Vec<(&str, String)> = args.into_iter().map(|a| ("arg", a)).collect();
            for v in ndjson_lines(c.call(command, &args)?) {
                let v = v?;
                let (id, status) = (
                    v["ID"].as_str().unwrap_or(""),
                    v["Status"].as_str().unwrap_or(""),
                );
                writeln!(out, "{verb} {id} {status}")?;
            }
        }
    }
    Ok(())
}

/// Calls `command` with every address as an `arg` and prints its `Strings`.
fn print_strings(c: &ApiClient, command: &str, addresses: Vec<String>) -> Result<()> {
    let args: Vec<(&str, String)> = addresses.into_iter().map(|a| ("arg", a)).collect();
    let v = c.json(command, &args)?;
    let mut out = std::io::stdout().lock();
    for s in v["Strings"].as_array().into_iter().flatten() {
        writeln!(out, "{}", s.as_str().unwrap_or(""))?;
    }
    Ok(())
}

/// `ipfs-kit bitswap ...`.
pub fn bitswap(repo: &Path, cmd: BitswapCmd) -> Result<()> {
    let c = daemon(repo)?;
    let mut out = std::io::stdout().lock();
    match cmd {
        BitswapCmd::Stat => {
            let s = c.json("bitswap/stat", &[])?;
            let n = |k: &str| s[k].as_u64().unwrap_or(0);
            writeln!(out, "bitswap status")?;
            writeln!(out, "\tblocks received: {}", n("BlocksReceived"))?;
            writeln!(out, "\tblocks sent: {}", n("BlocksSent"))?;
            writeln!(out, "\tdata received: {}", n("DataReceived"))?;
            writeln!(out, "\tdata sent: {}", n("DataSent"))?;
            writeln!(out, "\tdup blocks received: {}", n("DupBlksReceived"))?;
            writeln!(out, "\tdup data received: {}", n("DupDataReceived"))?;
            let wants = s["Wantlist"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            writeln!(out, "\twantlist [{} keys]", wants.len())?;
            for w in wants {
                writeln!(out, "\t\t{}", w["/"].as_str().unwrap_or(""))?;
            }
            let peers = s["Peers"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            writeln!(out, "\tpartners [{}]", peers.len())?;
        }
        BitswapCmd::Wantlist { peer } => {
            let args: Vec<(&str, String)> = peer.into_iter().map(|p| ("peer", p)).collect();
            let v = c.json("bitswap/wantlist", &args)?;
            for k in v["Keys"].as_array().into_iter().flatten() {
                writeln!(out, "{}", k["/"].as_str().unwrap_or(""))?;
            }
        }
        BitswapCmd::Ledger { peer } => {
            let v = c.json("bitswap/ledger", &[("arg", peer)])?;
            let n = |k: &str| v[k].as_u64().unwrap_or(0);
            writeln!(out, "Ledger for {}", v["Peer"].as_str().unwrap_or(""))?;
            writeln!(
                out,
                "Debt ratio:\t{:.6}",
                v["Value"].as_f64().unwrap_or(0.0)
            )?;
            writeln!(out, "Exchanges:\t{}", n("Exchanged"))?;
            writeln!(out, "Bytes sent:\t{}", n("Sent"))?;
            writeln!(out, "Bytes received:\t{}", n("Recv"))?;
        }
    }
    Ok(())
}

/// `ipfs-kit stats ...`.
pub fn stats(repo: &Path, cmd: StatsCmd) -> Result<()> {
    let c = daemon(repo)?;
    let StatsCmd::Bw {
        peer,
        proto,
        poll,
        interval,
    } = cmd;
    let mut args: Vec<(&str, String)> = Vec::new();
    if let Some(p) = peer {
        args.push(("peer", p));
    }
    if let Some(p) = proto {
        args.push(("proto", p));
    }
    let mut out = std::io::stdout().lock();
    if !poll {
        return print_bw(&mut out, &c.json("stats/bw", &args)?);
    }
    args.push(("poll", "true".into()));
    args.push(("interval", interval));
    for (i, v) in ndjson_lines(c.call("stats/bw", &args)?).enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        print_bw(&mut out, &v?)?;
        out.flush()?;
    }
    bail!("the daemon ended the stream")
}

fn print_bw(out: &mut impl std::io::Write, v: &serde_json::Value) -> Result<()> {
    let n = |k: &str| v[k].as_f64().unwrap_or(0.0);
    writeln!(out, "Bandwidth")?;
    writeln!(out, "TotalIn: {}", human_bytes(n("TotalIn")))?;
    writeln!(out, "TotalOut: {}", human_bytes(n("TotalOut")))?;
    writeln!(out, "RateIn: {}/s", human_bytes(n("RateIn")))?;
    writeln!(out, "RateOut: {}/s", human_bytes(n("RateOut")))?;
    Ok(())
}

/// Bytes in SI units as kubo prints them (go-humanize's `Bytes`): `512 B`, `1.2 kB`, `35 MB`.
pub fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let bytes = if bytes.is_finite() && bytes > 0.0 {
        bytes.floor()
    } else {
        0.0
    };
    if bytes < 10.0 {
        return format!("{bytes} B");
    }
    let e = (bytes.log10() / 3.0).floor().min(6.0);
    let value = (bytes / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    let unit = UNITS[e as usize];
    if value < 10.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.0} {unit}")
    }
}

/// `ipfs-kit ping <peer> [-n count]`: kubo's text, a line per answer as it comes.
pub fn ping(repo: &Path, peer: String, count: i64) -> Result<()> {
    let c = daemon(repo)?;
    let mut out = std::io::stdout().lock();
    let mut answered = 0u64;
    for v in ndjson_lines(c.call("ping", &[("arg", peer), ("count", count.to_string())])?) {
        let v = v?;
        let text = v["Text"].as_str().unwrap_or("");
        let success = v["Success"].as_bool().unwrap_or(false);
        if !text.is_empty() {
            writeln!(out, "{text}")?;
        } else if success {
            answered += 1;
            let ms = v["Time"].as_f64().unwrap_or(0.0) / 1e6;
            writeln!(out, "Pong received: time={ms:.2} ms")?;
        } else {
            writeln!(out, "Pong failed")?;
        }
        out.flush()?;
    }
    if answered == 0 {
        bail!("ping failed");
    }
    Ok(())
}

/// `ipfs-kit shutdown`: asks the daemon to stop.
pub fn shutdown(repo: &Path) -> Result<()> {
    daemon(repo)?.call("shutdown", &[])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn bytes_print_like_go_humanize() {
        assert_eq!(human_bytes(0.0), "0 B");
        assert_eq!(human_bytes(9.0), "9 B");
        assert_eq!(human_bytes(10.0), "10 B");
        assert_eq!(human_bytes(999.0), "999 B");
        assert_eq!(human_bytes(1000.0), "1.0 kB");
        assert_eq!(human_bytes(1234.0), "1.2 kB");
        assert_eq!(human_bytes(300_000.0), "300 kB");
        assert_eq!(human_bytes(35_500_000.0), "36 MB");
        assert_eq!(human_bytes(-3.0), "0 B");
        assert_eq!(human_bytes(f64::NAN), "0 B");
    }
}
