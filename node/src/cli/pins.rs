//! `pin add|ls|rm` and `repo gc|stat|verify`.

use super::args::{PinCmd, RepoCmd};
use crate::repo::{PinFilter, PinKind, Repo};
use crate::unixfs::export;
use anyhow::{bail, Result};
use std::io::Write as _;

pub(super) fn pin(repo: &Repo, cmd: PinCmd) -> Result<()> {
    match cmd {
        PinCmd::Add {
            paths,
            recursive,
            name,
        } => {
            for p in paths {
                let cid = export::resolve_path(repo.blocks().as_ref(), &p)?;
                repo.pin_add(&cid, recursive, name.clone())?;
                println!(
                    "pinned {cid} {}",
                    if recursive { "recursively" } else { "directly" }
                );
            }
            Ok(())
        }
        PinCmd::Ls {
            paths,
            kind,
            quiet,
            name,
        } => {
            let filter: PinFilter = match kind.as_str() {
                "all" => PinFilter::All,
                "recursive" => PinFilter::Recursive,
                "direct" => PinFilter::Direct,
                "indirect" => PinFilter::Indirect,
                other => {
                    bail!("invalid type {other:?}, must be one of all, direct, indirect, recursive")
                }
            };
            let mut cids = Vec::new();
            for p in &paths {
                cids.push(export::resolve_path(repo.blocks().as_ref(), p)?);
            }
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut emit = |cid: &cid::Cid,
                            kind: PinKind,
                            pin_name: Option<&str>|
             -> std::io::Result<()> {
                if name.as_deref().is_some_and(|n| Some(n) != pin_name) {
                    return Ok(());
                }
                match (quiet, pin_name) {
                    (true, _) => writeln!(out, "{cid}"),
                    (false, Some(n)) if !n.is_empty() => writeln!(out, "{cid} {} {n}", kind.name()),
                    (false, _) => writeln!(out, "{cid} {}", kind.name()),
                }
            };
            if cids.is_empty() {
                for p in repo.pin_ls(filter, None)? {
                    emit(&p.cid, p.kind, p.name.as_deref())?;
                }
            } else {
                for cid in &cids {
                    let found = repo.pin_ls(filter, Some(cid))?;
                    if found.is_empty() {
                        bail!("path '{cid}' is not pinned");
                    }
                    for p in found {
                        emit(&p.cid, p.kind, p.name.as_deref())?;
                    }
                }
            }
            out.flush()?;
            Ok(())
        }
        PinCmd::Rm { paths } => {
            for p in paths {
                let cid = export::resolve_path(repo.blocks().as_ref(), &p)?;
                repo.pin_rm(&cid)?;
                println!("unpinned {cid}");
            }
            Ok(())
        }
        PinCmd::Update { from, to, unpin } => {
            let store = repo.blocks().as_ref();
            let (from, to) = (
                export::resolve_path(store, &from)?,
                export::resolve_path(store, &to)?,
            );
            repo.pin_update(&from, &to, unpin)?;
            println!("updated {from} to {to}");
            Ok(())
        }
    }
}

pub(super) fn repo(repo: &Repo, cmd: RepoCmd) -> Result<()> {
    match cmd {
        RepoCmd::Gc { quiet } => {
            let report = repo.gc()?;
            if !quiet {
                let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                for cid in &report.removed {
                    writeln!(out, "removed {cid}")?;
                }
                out.flush()?;
            }
            Ok(())
        }
        RepoCmd::Stat => {
            let s = repo.stat()?;
            println!("NumObjects: {}", s.num_objects);
            println!("RepoSize:   {}", s.repo_size);
            println!("StorageMax: {}", s.storage_max);
            println!("RepoPath:   {}", s.path.display());
            println!("Version:    {}", s.version);
            Ok(())
        }
        RepoCmd::Verify => {
            let bad = repo.verify()?;
            if bad.is_empty() {
                println!("verified repo integrity");
                Ok(())
            } else {
                for cid in &bad {
                    eprintln!("block {cid} was corrupt");
                }
                bail!(
                    "verify complete, some blocks were corrupt ({} of them)",
                    bad.len()
                )
            }
        }
    }
}
