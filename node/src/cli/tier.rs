//! `ipfs-kit tier ls|stat|move`: the storage tiers configured in config.toml (`[tiers.s3]`).
//!
//! - `tier ls`: every tier kind in eviction order, whether it is configured, and its block
//!   count (the local store's count; a listing of the bucket for S3);
//! - `tier stat <cid>`: which tiers hold the block;
//! - `tier move <cid> <local|s3>`: the whole DAG under the CID. To S3: every block is written,
//!   confirmed by the bucket, then dropped locally. To local: the DAG is fetched level by level,
//!   each level's blocks read from S3 in parallel and verified.

use crate::dag::links::links;
use crate::repo::Repo;
use anyhow::{bail, Context as _, Result};
use cid::Cid;
use clap::Subcommand;
use ipfs_kit_blockstore::hash::RAW_CODEC;
use ipfs_kit_blockstore::Blockstore as _;
use ipfs_kit_tiers::tier::TierKind;
use ipfs_kit_tiers::tiered::TieredBlockstore;
use std::collections::HashSet;

#[derive(Subcommand, Debug)]
pub enum TierCmd {
    /// List the tiers: configured or not, and how many blocks each holds.
    Ls,
    /// Show which tiers hold a block.
    Stat { cid: String },
    /// Move the whole DAG under a CID to a tier: local or s3.
    Move { cid: String, tier: String },
}

pub fn run(repo: &Repo, cmd: TierCmd) -> Result<()> {
    match cmd {
        TierCmd::Ls => ls(repo),
        TierCmd::Stat { cid } => stat(repo, &super::parse_cid(&cid)?),
        TierCmd::Move { cid, tier } => {
            let to: TierKind = tier.parse()?;
            move_dag(repo, &super::parse_cid(&cid)?, to)
        }
    }
}

fn tiered(repo: &Repo) -> Result<&TieredBlockstore> {
    match repo.tiered() {
        Some(t) => Ok(t),
        None => bail!("no storage tier is configured: add a [tiers.s3] section to config.toml"),
    }
}

fn ls(repo: &Repo) -> Result<()> {
    let counts = match repo.tiered() {
        Some(t) => t.counts()?,
        None => vec![(TierKind::Local, Ok(repo.blocks().stat()?.blocks))],
    };
    let config = crate::config::Config::load_with_env(repo.path())?;
    for kind in TierKind::EVICTION_ORDER {
        let detail = match kind {
            TierKind::Memory => "the block cache in front of the local store".to_string(),
            TierKind::Local => format!("{}", repo.path().join("blocks").display()),
            TierKind::S3 => match &config.tiers.s3 {
                Some(s3) => format!(
                    "s3://{}/{}{}",
                    s3.bucket,
                    s3.prefix,
                    s3.endpoint
                        .as_deref()
                        .map(|e| format!(" at {e}"))
                        .unwrap_or_default()
                ),
                None => "not configured".into(),
            },
            TierKind::Cluster => "cluster peers (the cluster pinset)".into(),
            TierKind::Storacha | TierKind::Filecoin => "not supported yet".into(),
        };
        let blocks = match counts.iter().find(|(k, _)| *k == kind) {
            Some((_, Ok(n))) => n.to_string(),
            Some((_, Err(e))) => format!("error: {e}"),
            None => "-".into(),
        };
        println!("{:<9} {:>10}  {detail}", kind.as_str(), blocks);
    }
    Ok(())
}

fn stat(repo: &Repo, cid: &Cid) -> Result<()> {
    let at: Vec<&str> = match repo.tiered() {
        Some(t) => t.locate(cid)?.iter().map(TierKind::as_str).collect(),
        None if repo.blocks().has(cid)? => vec!["local"],
        None => vec![],
    };
    if at.is_empty() {
        bail!("block {cid} is in no tier");
    }
    println!("{cid} {}", at.join(" "));
    Ok(())
}

/// Moves the DAG under `root` to `to`.
fn move_dag(repo: &Repo, root: &Cid, to: TierKind) -> Result<()> {
    let t = tiered(repo)?;
    if to != TierKind::Local && t.remote(to).is_none() {
        bail!("the {to} tier is not configured");
    }
    let mut seen: HashSet<Cid> = HashSet::new();
    let mut frontier = vec![*root];
    let mut all = Vec::new();
    let (mut moved, mut bytes) = (0u64, 0u64);
    seen.insert(*root);
    while !frontier.is_empty() {
        if to == TierKind::Local {
            // Fetch this level in parallel before reading its links locally.
            let r = t.promote_many(&frontier)?;
            if let Some(missing) = r.missing.first() {
                bail!("block {missing} is in no tier");
            }
            moved += r.moved;
            bytes += r.bytes;
        }
        let mut next = Vec::new();
        for cid in &frontier {
            if cid.codec() == RAW_CODEC {
                continue;
            }
            let data = t
                .get(cid)?
                .with_context(|| format!("block {cid} is in no tier"))?;
            for child in links(cid, &data)? {
                if seen.insert(child) {
                    next.push(child);
                }
            }
        }
        all.extend(frontier);
        frontier = next;
    }
    if to != TierKind::Local {
        let r = t.move_to(&all, to)?;
        if let Some(missing) = r.missing.first() {
            bail!("block {missing} is not local: `tier move` reads blocks to demote from the local store");
        }
        moved = r.moved;
        bytes = r.bytes;
    }
    println!(
        "moved {moved} of {} blocks ({bytes} bytes) to {to}",
        all.len()
    );
    Ok(())
}
