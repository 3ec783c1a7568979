//! `ipfs-kit tier ls|stat|move`: the storage tiers configured in config.toml (`[tiers.s3]`).
//!
//! - `tier ls`: every tier kind in eviction order, whether it is configured, and its block
//!   count (the local store's count; a listing of the bucket for S3);
//! - `tier stat <cid>`: which tiers hold the block;
//! - `tier move <cid> <local|s3>`: the whole DAG under the CID ([`Repo::tier_move`]).
//!
//! While a daemon holds the repository, each goes through its API (`/api/v0/tier/*`) and
//! prints the same lines.

use crate::api::client::ApiClient;
use crate::repo::{Repo, RepoOptions};
use anyhow::{bail, Result};
use clap::Subcommand;
use ipfs_kit_tiers::tier::TierKind;
use std::path::Path;

#[derive(Subcommand, Debug)]
pub enum TierCmd {
    /// List the tiers: configured or not, and how many blocks each holds.
    Ls,
    /// Show which tiers hold a block.
    Stat { cid: String },
    /// Move the whole DAG under a CID to a tier: local or s3.
    Move { cid: String, tier: String },
}

/// Runs through the daemon when one holds the repository, else on the repository itself.
pub fn run_at(repo_path: &Path, options: RepoOptions, cmd: TierCmd) -> Result<()> {
    if let Some(client) = ApiClient::from_repo(repo_path)? {
        return remote(&client, cmd);
    }
    run(&super::open(repo_path, options)?, cmd)
}

pub fn run(repo: &Repo, cmd: TierCmd) -> Result<()> {
    match cmd {
        TierCmd::Ls => {
            for l in repo.tier_ls()? {
                let blocks = match l.blocks {
                    Some(Ok(n)) => n.to_string(),
                    Some(Err(e)) => format!("error: {e}"),
                    None => "-".into(),
                };
                print_ls_line(l.kind.as_str(), &blocks, &l.detail);
            }
            Ok(())
        }
        TierCmd::Stat { cid } => {
            let cid = super::parse_cid(&cid)?;
            let at: Vec<&str> = repo.tier_stat(&cid)?.iter().map(|k| k.as_str()).collect();
            if at.is_empty() {
                bail!("block {cid} is in no tier");
            }
            println!("{cid} {}", at.join(" "));
            Ok(())
        }
        TierCmd::Move { cid, tier } => {
            let to: TierKind = tier.parse()?;
            let r = repo.tier_move(&super::parse_cid(&cid)?, to)?;
            print_moved(r.moved, r.blocks, r.bytes, to.as_str());
            Ok(())
        }
    }
}

fn print_ls_line(name: &str, blocks: &str, detail: &str) {
    println!("{name:<9} {blocks:>10}  {detail}");
}

fn print_moved(moved: u64, blocks: u64, bytes: u64, to: &str) {
    println!("moved {moved} of {blocks} blocks ({bytes} bytes) to {to}");
}

fn remote(c: &ApiClient, cmd: TierCmd) -> Result<()> {
    match cmd {
        TierCmd::Ls => {
            let v = c.json("tier/ls", &[])?;
            for t in v["Tiers"].as_array().into_iter().flatten() {
                let blocks = match (t["Blocks"].as_u64(), t["Error"].as_str()) {
                    (Some(n), _) => n.to_string(),
                    (None, Some(e)) => format!("error: {e}"),
                    (None, None) => "-".into(),
                };
                print_ls_line(
                    t["Name"].as_str().unwrap_or(""),
                    &blocks,
                    t["Detail"].as_str().unwrap_or(""),
                );
            }
            Ok(())
        }
        TierCmd::Stat { cid } => {
            let v = c.json("tier/stat", &[("arg", cid)])?;
            let names: Vec<&str> = v["Tiers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str())
                .collect();
            println!("{} {}", v["Cid"].as_str().unwrap_or(""), names.join(" "));
            Ok(())
        }
        TierCmd::Move { cid, tier } => {
            let to: TierKind = tier.parse()?;
            let v = c.json("tier/move", &[("arg", cid), ("arg", to.as_str().into())])?;
            let n = |k: &str| v[k].as_u64().unwrap_or(0);
            print_moved(n("Moved"), n("Blocks"), n("Bytes"), to.as_str());
            Ok(())
        }
    }
}
