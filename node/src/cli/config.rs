//! `ipfs-kit config` (show, get, set), `ipfs-kit bootstrap` (list, add, rm) and
//! `ipfs-kit init --role`.
//!
//! `show` and `get` print the effective configuration (file, then `IPFS_KIT_*` variables, role
//! defaults filled in); `set` changes the file only, validates the whole result and writes it
//! atomically, so a rejected value leaves `config.toml` as it was.

use crate::config::{Config, Role};
use crate::repo::{Repo, RepoError, RepoOptions};
use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};
use std::path::Path;

/// `ipfs-kit init` arguments.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// The node's role: leecher, worker (default) or master. Written to config.toml.
    #[arg(long, value_parser = |s: &str| s.parse::<Role>())]
    pub role: Option<Role>,
}

/// `ipfs-kit config` arguments: a key to print (or, as in kubo, a key and a value to set), or a
/// subcommand.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: Option<ConfigCmd>,
    /// A dotted key (`role`, `addresses.api`, `swarm.conns_high`): print its effective value.
    pub key: Option<String>,
    /// With a key: set it to this value (same as `config set KEY VALUE`).
    pub value: Option<String>,
    /// Read the value as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Print the effective configuration as TOML (file and environment, defaults filled in;
    /// secrets redacted).
    Show,
    /// Set a key in config.toml. The value is read as TOML (`50`, `true`, `["a", "b"]`) when it
    /// parses as one of the right type, else as a string.
    Set {
        key: String,
        value: String,
        /// Read the value as JSON (`null` resets the key to its default).
        #[arg(long)]
        json: bool,
    },
}

/// `ipfs-kit bootstrap` arguments: kubo's verbs; none lists.
#[derive(Args, Debug)]
pub struct BootstrapArgs {
    #[command(subcommand)]
    pub command: Option<BootstrapCmd>,
}

#[derive(Subcommand, Debug)]
pub enum BootstrapCmd {
    /// Print the bootstrap list.
    List,
    /// Add peers (multiaddrs ending in `/p2p/<id>`) to the list; `add default` or `--default`
    /// adds kubo's default public peers.
    Add {
        peers: Vec<String>,
        #[arg(long)]
        default: bool,
    },
    /// Remove peers: `/p2p/<id>` removes every entry of the peer, a whole address that entry;
    /// `rm all` or `--all` empties the list.
    Rm {
        peers: Vec<String>,
        #[arg(long)]
        all: bool,
    },
}

/// Runs `ipfs-kit bootstrap ...`: edits `config.toml` (validated, written atomically); a
/// running daemon uses the list from its next start, as kubo's does.
pub fn bootstrap(repo: &Path, args: BootstrapArgs) -> Result<()> {
    let mut config = Config::load(repo)?;
    let mut out = std::io::stdout().lock();
    use std::io::Write as _;
    let (verb, changed) = match args.command.unwrap_or(BootstrapCmd::List) {
        BootstrapCmd::List => {
            for p in &Config::load_with_env(repo)?.bootstrap {
                writeln!(out, "{p}")?;
            }
            return Ok(());
        }
        BootstrapCmd::Add { mut peers, default } => {
            // kubo's `bootstrap add default` subcommand.
            let default = default || peers == ["default"];
            peers.retain(|p| p != "default");
            if default {
                peers.extend(
                    crate::config::KUBO_DEFAULT_BOOTSTRAP
                        .iter()
                        .map(|s| s.to_string()),
                );
            }
            if peers.is_empty() {
                bail!("no bootstrap peers to add");
            }
            ("added", config.bootstrap_add(&peers)?)
        }
        BootstrapCmd::Rm { peers, all } => {
            if all || peers == ["all"] {
                ("removed", config.bootstrap_rm_all())
            } else if peers.is_empty() {
                bail!("no bootstrap peers to remove");
            } else {
                ("removed", config.bootstrap_rm(&peers)?)
            }
        }
    };
    std::fs::create_dir_all(repo).with_context(|| format!("creating {}", repo.display()))?;
    config.save(repo)?;
    for p in changed {
        writeln!(out, "{verb} {p}")?;
    }
    Ok(())
}

const REDACTED: &str = "<redacted>";

/// Runs `ipfs-kit config ...`.
pub fn run(repo: &Path, args: ConfigArgs) -> Result<()> {
    match (args.command, args.key, args.value) {
        (Some(ConfigCmd::Show), _, _) => show(repo),
        (Some(ConfigCmd::Set { key, value, json }), _, _) => set(repo, &key, &value, json),
        (None, Some(key), Some(value)) => set(repo, &key, &value, args.json),
        (None, Some(key), None) => get(repo, &key),
        (None, None, _) => bail!("config: give a key, `show` or `set KEY VALUE`"),
    }
}

fn show(repo: &Path) -> Result<()> {
    let mut effective = Config::load_with_env(repo)?.effective();
    if effective.api.token.is_some() {
        effective.api.token = Some(REDACTED.into());
    }
    if effective.cluster.secret.is_some() {
        effective.cluster.secret = Some(REDACTED.into());
    }
    print!(
        "{}",
        toml::to_string(&effective).context("printing the config")?
    );
    Ok(())
}

fn get(repo: &Path, key: &str) -> Result<()> {
    let config = Config::load_with_env(repo)?;
    match config.get(key)? {
        Some(toml::Value::String(s)) => println!("{s}"),
        Some(toml::Value::Table(t)) => {
            print!("{}", toml::to_string(&t).context("printing the config")?)
        }
        Some(other) => println!("{other}"),
        None => bail!("config key `{key}` is not set"),
    }
    Ok(())
}

fn set(repo: &Path, key: &str, value: &str, json: bool) -> Result<()> {
    let config = Config::load(repo)?.with_text_value(key, value, json)?;
    std::fs::create_dir_all(repo).with_context(|| format!("creating {}", repo.display()))?;
    config.save(repo)?;
    Ok(())
}

/// `ipfs-kit init [--role R]`: the config with the role is written first (keeping any other
/// settings of a config.toml already there), then the repository, whose completion mark comes
/// last. An existing repository is refused before anything is written.
pub fn init(repo_path: &Path, options: RepoOptions, args: InitArgs) -> Result<()> {
    if let Some(role) = args.role {
        // Only a directory that is not yet a repository gets a config written here.
        // Anything else (a repository, a damaged one) is for `init_with` to refuse.
        if let Err(RepoError::NotARepo(_)) = Repo::open_with(repo_path, options) {
            let mut config = Config::load(repo_path)?;
            config.role = role;
            std::fs::create_dir_all(repo_path)
                .with_context(|| format!("creating {}", repo_path.display()))?;
            config.save(repo_path)?;
        }
    }
    let repo = Repo::init_with(repo_path, options)
        .with_context(|| format!("initializing {}", repo_path.display()))?;
    println!(
        "initialized ipfs-kit repository at {}",
        repo.path().display()
    );
    Ok(())
}
