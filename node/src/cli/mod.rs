//! The `ipfs-kit` command line: kubo's verbs over a local repository.
//!
//! Each verb parses its arguments (`args`), opens the repository and calls the library; output
//! follows kubo's text formats so scripts written for `ipfs` keep working. Errors print as one
//! `Error: ...` line and exit non-zero.

mod add;
mod args;
mod blocks;
mod cluster;
mod config;
mod files;
mod index;
mod net;
mod online;
mod pins;
mod remote;
mod tier;

pub use args::Cli;

use crate::repo::{Repo, RepoOptions};
use anyhow::{Context as _, Result};
use cid::Cid;
use clap::Parser as _;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed stdout (`ipfs-kit cat x | head`) is not an error worth a message.
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::BrokenPipe {
                    return ExitCode::SUCCESS;
                }
            }
            let msg = format!("{e:#}");
            eprintln!("Error: {}", msg.lines().collect::<Vec<_>>().join(": "));
            ExitCode::FAILURE
        }
    }
}

pub fn run(cli: Cli) -> Result<()> {
    use args::Command;
    let repo_path = repo_path(cli.repo)?;
    // While a daemon holds the repository, data commands go through its API (as kubo's do).
    if remote::through_daemon(&cli.command) {
        if let Some(client) = crate::api::client::ApiClient::from_repo(&repo_path)? {
            return remote::run(&client, cli.command);
        }
    }
    // Flag, else environment (clap reads IPFS_KIT_SYNC for --sync), else config.toml. `config`
    // itself opens no repository and must work on a config that others would refuse.
    let sync_blocks = match &cli.command {
        Command::Config(_)
        | Command::Bootstrap(_)
        | Command::Cluster(_)
        | Command::Swarm(_)
        | Command::Bitswap(_)
        | Command::Stats(_)
        | Command::Ping { .. } => cli.sync,
        _ => {
            cli.sync
                || crate::config::Config::load_with_env(&repo_path)?
                    .datastore
                    .sync
        }
    };
    let options = RepoOptions { sync_blocks };
    let open = |p: &std::path::Path| open(p, options);
    match cli.command {
        Command::Init(a) => config::init(&repo_path, options, a),
        Command::Config(c) => config::run(&repo_path, c),
        Command::Bootstrap(b) => config::bootstrap(&repo_path, b),
        Command::Cluster(c) => cluster::run(&repo_path, c),
        Command::Swarm(c) => online::swarm(&repo_path, c),
        Command::Bitswap(c) => online::bitswap(&repo_path, c),
        Command::Stats(c) => online::stats(&repo_path, c),
        Command::Shutdown => online::shutdown(&repo_path),
        Command::Ping { peer, count } => online::ping(&repo_path, peer, count),
        Command::Version => {
            println!("ipfs-kit version: {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Add(a) => add::run(&repo_path, options, a),
        Command::Id { peer: None } => net::id(&repo_path, options),
        Command::Id { peer: Some(_) } => anyhow::bail!(
            "this command must be run in online mode: start `ipfs-kit daemon` on this repository first"
        ),
        Command::Daemon(a) => net::daemon(&repo_path, options, a),
        Command::Routing(c) => net::routing(&repo_path, options, c),
        Command::Cat {
            path,
            offset,
            length,
        } => files::cat(&open(&repo_path)?, &path, offset, length),
        Command::Get { path, output } => files::get(&open(&repo_path)?, &path, output),
        Command::Ls { path } => files::ls(&open(&repo_path)?, &path),
        Command::Refs(a) => blocks::refs(&open(&repo_path)?, a),
        Command::Block(c) => blocks::block(&open(&repo_path)?, c),
        Command::Dag(c) => blocks::dag(&open(&repo_path)?, c),
        Command::Pin(c) => pins::pin(&open(&repo_path)?, c),
        Command::Repo(c) => pins::repo(&open(&repo_path)?, c),
        Command::Index(c) => index::run_at(&repo_path, options, c),
        Command::Tier(c) => tier::run_at(&repo_path, options, c),
    }
}

/// `--repo`, else `$IPFS_KIT_PATH` (clap reads it), else `~/.ipfs-kit`.
fn repo_path(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p);
    }
    let home = std::env::var_os("HOME").context("no --repo, no $IPFS_KIT_PATH and no $HOME")?;
    Ok(PathBuf::from(home).join(".ipfs-kit"))
}

/// Opens the repository, creating it on first use.
pub(crate) fn open(path: &std::path::Path, options: RepoOptions) -> Result<Repo> {
    let repo = match Repo::open_with(path, options) {
        Err(crate::repo::RepoError::NotARepo(_)) => Repo::init_with(path, options),
        other => other,
    };
    repo.with_context(|| format!("opening repository {}", path.display()))
}

/// Parses a CID, naming the argument in the error.
pub(crate) fn parse_cid(s: &str) -> Result<Cid> {
    let s = s.strip_prefix("/ipfs/").unwrap_or(s);
    s.parse::<Cid>()
        .map_err(|e| anyhow::anyhow!("invalid CID {s:?}: {e}"))
}

/// A progress bar on stderr when it is a terminal (or when forced), else nothing.
/// `total_bytes` is only called when the bar is shown (sizing an input can mean a walk).
pub(crate) fn progress_bar(
    total_bytes: impl FnOnce() -> Option<u64>,
    force: Option<bool>,
) -> indicatif::ProgressBar {
    let show = force.unwrap_or_else(|| std::io::stderr().is_terminal());
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match total_bytes() {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    let style = indicatif::ProgressStyle::with_template(
        "{bytes:>10} / {total_bytes:10} [{wide_bar}] {percent:>3}% {binary_bytes_per_sec}",
    );
    if let Ok(style) = style {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar
}
