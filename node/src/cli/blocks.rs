//! `block put|get|stat|rm`, `dag put|get|export|import|stat` and `refs [local]`.

use super::args::{BlockCmd, DagCmd};
use crate::dag;
use crate::repo::Repo;
use crate::unixfs::BlockSink as _;
use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use cid::Cid;
use ipfs_kit_blockstore::{hash::HashFn, limits, Block};
use std::io::{Read as _, Write as _};
use std::path::Path;

/// Reads a file, or stdin for `-`, refusing more than `max_bytes`.
fn read_input(path: &Path, max_bytes: usize) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    let reader: Box<dyn std::io::Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path).with_context(|| format!("{}", path.display()))?)
    };
    reader.take(max_bytes as u64 + 1).read_to_end(&mut buf)?;
    if buf.len() > max_bytes {
        bail!("input exceeds the {max_bytes}-byte block limit");
    }
    Ok(buf)
}

fn codec_code(name: &str) -> Result<u64> {
    Ok(match name {
        "raw" => dag::RAW_CODEC,
        "dag-pb" | "protobuf" => dag::DAG_PB_CODEC,
        "dag-cbor" | "cbor" => dag::DAG_CBOR_CODEC,
        "dag-json" => dag::DAG_JSON_CODEC,
        other => bail!("unknown codec {other:?}"),
    })
}

pub(super) fn block(repo: &Repo, cmd: BlockCmd) -> Result<()> {
    let store = repo.blocks();
    match cmd {
        BlockCmd::Put {
            file,
            cid_codec,
            mhtype,
            pin,
        } => {
            let data = read_input(&file, limits::BLOCK_SIZE_BYTES_MAX)?;
            let hash =
                HashFn::from_name(&mhtype).with_context(|| format!("unknown hash {mhtype:?}"))?;
            let codec = codec_code(&cid_codec)?;
            let cid = Cid::new_v1(codec, hash.digest(&data)?);
            if codec != dag::RAW_CODEC {
                // Refuse bytes that do not decode as the codec they claim.
                dag::links::links(&cid, &Bytes::from(data.clone()))
                    .with_context(|| format!("block is not valid {cid_codec}"))?;
            }
            let session = repo.begin_write();
            session.put_blocks(&[Block::new(cid, Bytes::from(data))?])?;
            if pin {
                repo.pin_add(&cid, false, None)?;
            }
            drop(session);
            println!("{cid}");
        }
        BlockCmd::Get { cid } => {
            let cid = super::parse_cid(&cid)?;
            let data = store
                .get(&cid)?
                .with_context(|| format!("block {cid} not found locally"))?;
            std::io::stdout().lock().write_all(&data)?;
        }
        BlockCmd::Stat { cid } => {
            let cid = super::parse_cid(&cid)?;
            let size = store
                .size_of(&cid)?
                .with_context(|| format!("block {cid} not found locally"))?;
            println!("Key: {cid}\nSize: {size}");
        }
        BlockCmd::Rm { cids, force, quiet } => {
            let mut failed = false;
            for s in cids {
                let cid = super::parse_cid(&s)?;
                if repo.is_pinned(&cid)?.is_some() {
                    eprintln!("cannot remove {cid}: pinned");
                    failed = true;
                    continue;
                }
                let removed = store.delete_many(&[cid])?;
                if removed == 0 && !force {
                    eprintln!("cannot remove {cid}: block not found");
                    failed = true;
                } else if !quiet && removed > 0 {
                    println!("removed {cid}");
                }
            }
            if failed {
                bail!("some blocks not removed");
            }
        }
    }
    Ok(())
}

pub(super) fn dag(repo: &Repo, cmd: DagCmd) -> Result<()> {
    match cmd {
        DagCmd::Put {
            file,
            store_codec,
            input_codec,
            hash,
            pin,
        } => {
            let input = read_input(&file, dag::codec::DAG_PUT_INPUT_BYTES_MAX)?;
            let opts = dag::codec::DagPutOptions {
                input_codec: codec_code(&input_codec)?,
                store_codec: codec_code(&store_codec)?,
                hash: HashFn::from_name(&hash).with_context(|| format!("unknown hash {hash:?}"))?,
                allow_big_block: false,
            };
            let block = dag::codec::dag_put_block(&input, &opts)?;
            let cid = *block.cid();
            let session = repo.begin_write();
            session.put_blocks(&[block])?;
            if pin {
                repo.pin_add(&cid, true, None)?;
            }
            drop(session);
            println!("{cid}");
        }
        DagCmd::Get { path, output_codec } => {
            let out =
                dag::codec::dag_get(repo.blocks().as_ref(), &path, codec_code(&output_codec)?)?;
            // No trailing newline: kubo prints the encoded bytes as they are.
            std::io::stdout().lock().write_all(&out)?;
        }
        DagCmd::Stat { roots } => {
            let store = repo.blocks().as_ref();
            let mut stats = dag::refs::DagStats::new();
            for r in roots {
                let cid = crate::unixfs::export::resolve_path(store, &r)?;
                stats.add::<dag::links::DagError>(store, &cid, &mut |_| Ok(()))?;
            }
            print_dag_stat(&stats.to_json(true))?;
        }
        DagCmd::Export { cid } => {
            let cid = super::parse_cid(&cid)?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            crate::car::export_car(repo.blocks().as_ref(), &[cid], &mut out)?;
            out.flush()?;
        }
        DagCmd::Import { files, pin_roots } => {
            let mut inputs: Vec<Box<dyn std::io::Read>> = Vec::new();
            if files.is_empty() {
                inputs.push(Box::new(std::io::stdin().lock()));
            }
            for f in &files {
                inputs.push(Box::new(std::io::BufReader::with_capacity(
                    1 << 20,
                    std::fs::File::open(f).with_context(|| format!("{}", f.display()))?,
                )));
            }
            for mut input in inputs {
                let imported = repo.import_car(&mut input, pin_roots)?;
                if pin_roots {
                    for root in &imported.roots {
                        println!("Pinned root\t{root}\tsuccess");
                    }
                }
            }
        }
    }
    Ok(())
}

/// `refs`: the links under each path (kubo's options), or with `local` every block here.
pub(super) fn refs(repo: &Repo, a: super::args::RefsArgs) -> Result<()> {
    let store = repo.blocks().as_ref();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if a.paths == ["local"] {
        for c in store.all_cids()? {
            writeln!(out, "{c}")?;
        }
        return Ok(out.flush()?);
    }
    let format = if a.edges {
        if a.format != dag::refs::REFS_FORMAT_DEFAULT {
            bail!("using format argument with edges is not allowed");
        }
        dag::refs::REFS_FORMAT_EDGES.to_owned()
    } else {
        a.format
    };
    let opts = dag::refs::RefsOptions {
        format,
        unique: a.unique,
        max_depth: if a.recursive {
            u64::try_from(a.max_depth).ok()
        } else {
            Some(1)
        },
    };
    let mut seen = dag::refs::RefsSeen::default();
    for p in &a.paths {
        let root = crate::unixfs::export::resolve_path(store, p)?;
        dag::refs::refs::<anyhow::Error>(store, &root, &opts, &mut seen, &mut |r| {
            Ok(writeln!(out, "{r}")?)
        })?;
    }
    Ok(out.flush()?)
}

/// Prints `dag stat`'s summary (kubo's JSON shape, from the daemon or from here) as kubo's
/// CLI does: a tab-separated table of the DAGs, then the totals.
pub(super) fn print_dag_stat(v: &serde_json::Value) -> Result<()> {
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    writeln!(out)?;
    let stats = v["DagStats"].as_array().cloned().unwrap_or_default();
    let width = stats
        .first()
        .and_then(|s| s["Cid"].as_str())
        .map_or(3, str::len);
    writeln!(out, "{:<width$}\t{:<15}\tSize", "CID", "Blocks")?;
    for s in &stats {
        writeln!(
            out,
            "{}\t{:<15}\t{}",
            s["Cid"].as_str().unwrap_or(""),
            s["NumBlocks"].as_u64().unwrap_or(0),
            s["Size"].as_u64().unwrap_or(0)
        )?;
    }
    writeln!(out, "\nSummary")?;
    writeln!(out, "Total Size: {}", n("TotalSize"))?;
    writeln!(out, "Unique Blocks: {}", n("UniqueBlocks"))?;
    writeln!(out, "Shared Size: {}", n("SharedSize"))?;
    writeln!(out, "Ratio: {:.6}\n\n", v["Ratio"].as_f64().unwrap_or(0.0))?;
    Ok(())
}
