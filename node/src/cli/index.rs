//! `ipfs-kit index query|export|rebuild`: the Arrow index of the repository's blocks, kept in
//! `<repo>/index/` (see `ipfs_kit_tiers::index`).
//!
//! Every command opens the index against the repository's blockstore: a missing or corrupt
//! index is rebuilt, one whose row count differs from the store's is reconciled first, so what
//! is printed never lists a block the store does not hold.

use crate::repo::{PinFilter, PinKind, Repo};
use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use ipfs_kit_tiers::index::query::codec_name;
use ipfs_kit_tiers::index::{Index, IndexRow, OpenOutcome, PinType, Query};
use std::io::Write as _;
use std::path::PathBuf;

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

pub fn run(repo: &Repo, cmd: IndexCmd) -> Result<()> {
    let dir = repo.path().join("index");
    match cmd {
        IndexCmd::Rebuild => {
            let ix = Index::rebuild(&dir, repo.blocks().as_ref())
                .with_context(|| format!("rebuilding the index in {}", dir.display()))?;
            let pins = record_pins(repo, &ix)?;
            ix.compact()?;
            println!("rebuilt index: {} blocks, {pins} pinned", ix.len());
            Ok(())
        }
        IndexCmd::Export { file } => {
            let ix = open(repo, &dir)?;
            let rows = ix
                .export_parquet(&file)
                .with_context(|| format!("exporting to {}", file.display()))?;
            println!("exported {rows} rows to {}", file.display());
            Ok(())
        }
        IndexCmd::Query(a) => {
            // Parse before opening, so a typo fails fast and touches nothing.
            let q = Query::parse(a.where_.as_deref(), a.sort.as_deref(), a.desc, a.limit)?;
            let ix = open(repo, &dir)?;
            let result = ix.query(&q)?;
            let tiers = ix.tier_names();
            let rows = result.rows()?;
            let mut out = std::io::stdout().lock();
            if !a.json {
                writeln!(
                    out,
                    "cid\tsize\tcodec\tpin_type\tpin_name\ttiers\tfirst_seen\tlast_access\taccess_count\theat\treplication"
                )?;
            }
            for r in &rows {
                if a.json {
                    writeln!(out, "{}", row_json(r, &tiers))?;
                } else {
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        r.cid,
                        r.size,
                        codec_name(r.codec),
                        r.pin.name(),
                        r.pin_name.as_deref().unwrap_or("-"),
                        tier_list(r.tiers, &tiers),
                        r.first_seen_ms,
                        r.last_access_ms
                            .map(|t| t.to_string())
                            .unwrap_or("-".into()),
                        r.access_count,
                        r.heat,
                        r.replication
                    )?;
                }
            }
            eprintln!("{} of {} matching rows", rows.len(), result.matched);
            Ok(())
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

fn tier_list(mask: u32, names: &[String]) -> String {
    let v: Vec<&str> = (0..32)
        .filter(|i| mask & (1 << i) != 0)
        .map(|i| names.get(i).map(String::as_str).unwrap_or("?"))
        .collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

fn row_json(r: &IndexRow, tiers: &[String]) -> serde_json::Value {
    let tier_names: Vec<&str> = (0..32)
        .filter(|i| r.tiers & (1 << i) != 0)
        .filter_map(|i| tiers.get(i).map(String::as_str))
        .collect();
    serde_json::json!({
        "cid": r.cid.to_string(),
        "size": r.size,
        "codec": codec_name(r.codec),
        "pin_type": r.pin.name(),
        "pin_name": r.pin_name,
        "tiers": tier_names,
        "first_seen": r.first_seen_ms,
        "last_access": r.last_access_ms,
        "access_count": r.access_count,
        "heat": r.heat,
        "replication": r.replication,
    })
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
