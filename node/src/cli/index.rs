//! `ipfs-kit index query|export|rebuild`: the Arrow index of the repository's blocks, kept in
//! `<repo>/index/` (see `ipfs_kit_tiers::index`).
//!
//! The repository keeps its index open and up to date (`tiers.index`, on by default; see
//! `repo::tiers`); it was opened against the blockstore (rebuilt when missing or corrupt,
//! reconciled when its row count differs), so what is printed never lists a block the store
//! does not hold. With the index off, each command opens it for itself the same way. While a
//! daemon holds the repository, `query` and `export` go through its API (`/api/v0/index/*`).

use crate::api::client::ApiClient;
use crate::api::tiers::row_json;
use crate::repo::{PinFilter, PinKind, Repo, RepoOptions};
use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};
use ipfs_kit_tiers::index::{Index, OpenOutcome, PinType, Query};
use std::io::Write as _;
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum IndexCmd {
    /// Rows matching a filter, sorted, limited.
    Query(QueryArgs),
    /// Write every row to a Parquet file (readable by pyarrow, polars, DuckDB).
    Export {
        /// The Parquet file to write.
        file: PathBuf,
    },
    /// Rebuild the index from the blockstore and the pins.
    Rebuild,
}

#[derive(Args, Debug)]
pub struct QueryArgs {
    /// `<column> <op> <value> [and ...]`; ops: = != < <= > >=. Columns: cid, size, codec,
    /// pin_type, pin_name, tiers, first_seen, last_access (Unix ms), access_count, heat,
    /// replication.
    #[arg(long = "where", value_name = "EXPR")]
    where_: Option<String>,
    /// Column to sort by.
    #[arg(long, value_name = "COLUMN")]
    sort: Option<String>,
    /// Sort in descending order.
    #[arg(long)]
    desc: bool,
    /// Rows to print at most.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// One JSON object per row instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs through the daemon when one holds the repository, else on the repository itself.
pub fn run_at(repo_path: &Path, options: RepoOptions, cmd: IndexCmd) -> Result<()> {
    if let Some(client) = ApiClient::from_repo(repo_path)? {
        return remote(&client, cmd);
    }
    run(&super::open(repo_path, options)?, cmd)
}

pub fn run(repo: &Repo, cmd: IndexCmd) -> Result<()> {
    let dir = repo.path().join(crate::repo::INDEX_DIR);
    match cmd {
        IndexCmd::Rebuild => {
            let (blocks, pins) = match repo.index() {
                Some(_) => repo.index_rebuild()?,
                None => {
                    let ix = Index::rebuild(&dir, repo.blocks().as_ref())
                        .with_context(|| format!("rebuilding the index in {}", dir.display()))?;
                    let pins = record_pins(repo, &ix)?;
                    ix.compact()?;
                    (ix.len(), pins)
                }
            };
            println!("rebuilt index: {blocks} blocks, {pins} pinned");
            Ok(())
        }
        IndexCmd::Export { file } => {
            let rows = with_index(repo, &dir, |ix| {
                ix.export_parquet(&file)
                    .with_context(|| format!("exporting to {}", file.display()))
            })?;
            println!("exported {rows} rows to {}", file.display());
            Ok(())
        }
        IndexCmd::Query(a) => {
            // Parse before opening, so a typo fails fast and touches nothing.
            let q = Query::parse(a.where_.as_deref(), a.sort.as_deref(), a.desc, a.limit)?;
            let (rows, matched, tiers) = with_index(repo, &dir, |ix| {
                let result = ix.query(&q)?;
                Ok((result.rows()?, result.matched, ix.tier_names()))
            })?;
            let rows: Vec<serde_json::Value> = rows.iter().map(|r| row_json(r, &tiers)).collect();
            print_rows(&rows, matched, a.json)
        }
    }
}

/// Runs `f` on the repository's index, or (with `tiers.index = false`) on the index opened
/// for this command alone.
fn with_index<T>(
    repo: &Repo,
    dir: &std::path::Path,
    f: impl FnOnce(&Index) -> Result<T>,
) -> Result<T> {
    match repo.index() {
        Some(ix) => f(ix),
        None => f(&open(repo, dir)?),
    }
}

/// Prints query rows (as [`row_json`] shapes them) as a table or as JSON lines.
fn print_rows(rows: &[serde_json::Value], matched: u64, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if !json {
        writeln!(
            out,
            "cid\tsize\tcodec\tpin_type\tpin_name\ttiers\tfirst_seen\tlast_access\taccess_count\theat\treplication"
        )?;
    }
    for r in rows {
        if json {
            writeln!(out, "{r}")?;
            continue;
        }
        let text = |k: &str| match &r[k] {
            serde_json::Value::Null => "-".to_string(),
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(a) if a.is_empty() => "-".to_string(),
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(","),
            v => v.to_string(),
        };
        let cols: Vec<String> = [
            "cid",
            "size",
            "codec",
            "pin_type",
            "pin_name",
            "tiers",
            "first_seen",
            "last_access",
            "access_count",
            "heat",
            "replication",
        ]
        .iter()
        .map(|k| text(k))
        .collect();
        writeln!(out, "{}", cols.join("\t"))?;
    }
    eprintln!("{} of {matched} matching rows", rows.len());
    Ok(())
}

fn remote(c: &ApiClient, cmd: IndexCmd) -> Result<()> {
    match cmd {
        IndexCmd::Rebuild => bail!("stop the daemon to rebuild the index"),
        IndexCmd::Export { file } => {
            let mut r = c.call("index/export", &[])?;
            let mut tmp = file.clone().into_os_string();
            tmp.push(".tmp");
            let tmp = PathBuf::from(tmp);
            let mut f = std::fs::File::create(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            std::io::copy(&mut r, &mut f)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &file)?;
            let rows = ipfs_kit_tiers::index::parquet_row_count(&file)?;
            println!("exported {rows} rows to {}", file.display());
            Ok(())
        }
        IndexCmd::Query(a) => {
            // Checked here too, so a typo fails the same way with or without a daemon.
            Query::parse(a.where_.as_deref(), a.sort.as_deref(), a.desc, a.limit)?;
            let v = c.json(
                "index/query",
                &[
                    ("where", a.where_.unwrap_or_default()),
                    ("sort", a.sort.unwrap_or_default()),
                    ("desc", a.desc.to_string()),
                    ("limit", a.limit.to_string()),
                ],
            )?;
            let rows = v["Rows"].as_array().cloned().unwrap_or_default();
            print_rows(&rows, v["Matched"].as_u64().unwrap_or(0), a.json)
        }
    }
}

/// Opens (rebuilding or reconciling as needed) and says so on stderr.
fn open(repo: &Repo, dir: &std::path::Path) -> Result<Index> {
    let (ix, outcome) = Index::open_or_rebuild(dir, repo.blocks().as_ref())
        .with_context(|| format!("opening the index in {}", dir.display()))?;
    match outcome {
        OpenOutcome::Opened => {}
        OpenOutcome::Reconciled { added, removed } => {
            eprintln!("index caught up with the blockstore: {added} added, {removed} removed")
        }
        OpenOutcome::Rebuilt { rows } => {
            // A fresh index knows no pins yet.
            record_pins(repo, &ix)?;
            ix.flush()?;
            eprintln!("index rebuilt from the blockstore: {rows} blocks");
        }
    }
    Ok(ix)
}

/// Records every pin of the repository (recursive, direct, indirect) in the index.
fn record_pins(repo: &Repo, ix: &Index) -> Result<u64> {
    let mut n = 0;
    for p in repo.pin_ls(PinFilter::All, None)? {
        let kind = match p.kind {
            PinKind::Recursive => PinType::Recursive,
            PinKind::Direct => PinType::Direct,
            PinKind::Indirect => PinType::Indirect,
        };
        ix.record_pin(&p.cid, kind, p.name.as_deref())?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::cli::Cli;
    use bytes::Bytes;
    use clap::Parser as _;
    use ipfs_kit_blockstore::hash::{HashFn, RAW_CODEC};
    use ipfs_kit_blockstore::Block;

    fn cli(repo: &std::path::Path, args: &[&str]) -> Result<()> {
        let mut v = vec!["ipfs-kit", "--repo", repo.to_str().unwrap(), "index"];
        v.extend_from_slice(args);
        crate::cli::run(Cli::try_parse_from(v)?)
    }

    #[test]
    fn rebuild_query_export_through_the_cli() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("repo");
        let blocks: Vec<Block> = (0..10u8)
            .map(|i| {
                let data = Bytes::from(vec![i; 100 + i as usize]);
                let mh = HashFn::Sha2_256.digest(&data).unwrap();
                Block::new(cid::Cid::new_v1(RAW_CODEC, mh), data).unwrap()
            })
            .collect();
        {
            let repo = Repo::init(&path).unwrap();
            repo.blocks().put_many(&blocks).unwrap();
            repo.pin_add(blocks[0].cid(), false, Some("first".into()))
                .unwrap();
        }
        cli(&path, &["rebuild"]).unwrap();
        {
            let ix = Index::open(&path.join("index")).unwrap();
            assert_eq!(ix.len(), 10);
            let r = ix.get(blocks[0].cid()).unwrap().unwrap();
            assert_eq!(
                (r.pin, r.pin_name.as_deref()),
                (PinType::Direct, Some("first"))
            );
            let q =
                Query::parse(Some("size >= 105 and pin_type = none"), None, false, 100).unwrap();
            assert_eq!(ix.query(&q).unwrap().matched, 5);
        }
        cli(
            &path,
            &[
                "query",
                "--where",
                "size > 100",
                "--sort",
                "size",
                "--desc",
                "--limit",
                "3",
            ],
        )
        .unwrap();
        let err = cli(&path, &["query", "--where", "size > big"]).unwrap_err();
        assert!(
            format!("{err:#}").contains("bad value \"big\" for size"),
            "{err:#}"
        );
        let err = cli(&path, &["query", "--where", "colour = red"]).unwrap_err();
        assert!(format!("{err:#}").contains("unknown column"), "{err:#}");
        // A block added behind the index's back is caught up before the export.
        {
            let repo = Repo::open(&path).unwrap();
            let data = Bytes::from_static(b"late block");
            let mh = HashFn::Sha2_256.digest(&data).unwrap();
            repo.blocks()
                .put(&Block::new(cid::Cid::new_v1(RAW_CODEC, mh), data).unwrap())
                .unwrap();
        }
        let out = tmp.path().join("index.parquet");
        cli(&path, &["export", out.to_str().unwrap()]).unwrap();
        assert_eq!(ipfs_kit_tiers::index::parquet_row_count(&out).unwrap(), 11);
    }
}
