//! `ipfs-kit add`: import files and directories, print kubo's `added <cid> <path>` lines, pin.

use super::args::AddArgs;
use crate::unixfs::{self, ChunkerSpec, DiscardSink, ImportOptions, Imported, Layout};
use anyhow::{bail, Context as _, Result};
use ipfs_kit_blockstore::hash::HashFn;
use std::io::Write as _;
use std::path::Path;

pub(super) fn run(
    repo_path: &Path,
    repo_options: crate::repo::RepoOptions,
    a: AddArgs,
) -> Result<()> {
    let opts = options(&a)?;
    for p in &a.paths {
        let meta = std::fs::symlink_metadata(p).with_context(|| format!("{}", p.display()))?;
        if meta.is_dir() && !a.recursive {
            bail!(
                "{} is a directory, use the '-r' flag to specify directories",
                p.display()
            );
        }
    }
    let total = || Some(a.paths.iter().map(|p| tree_bytes(p)).sum::<u64>());
    let bar = super::progress_bar(total, if a.silent { Some(false) } else { a.progress });
    let mut out = std::io::stdout().lock();
    let mut print = |i: &Imported| -> std::io::Result<()> {
        if a.silent || a.quieter {
            return Ok(());
        }
        bar.suspend(|| {
            if a.quiet {
                writeln!(out, "{}", i.cid)
            } else {
                writeln!(out, "added {} {}", i.cid, i.path)
            }
        })
    };
    let mut roots = Vec::new();
    let mut print_err = None;
    {
        let mut on_added = |i: &Imported| {
            if print_err.is_none() {
                print_err = print(i).err();
            }
        };
        let progress = |done: u64| bar.set_position(done);
        if a.only_hash {
            for p in &a.paths {
                roots.push(unixfs::dir::import_path(
                    p,
                    &opts,
                    &DiscardSink,
                    &mut on_added,
                    &progress,
                )?);
            }
            if a.wrap_with_directory {
                let w = wrap(&roots, &opts, &DiscardSink)?;
                on_added(&w);
                roots.push(w);
            }
        } else {
            let repo = super::open(repo_path, repo_options)?;
            let session = repo.begin_write();
            for p in &a.paths {
                let root = unixfs::dir::import_path(p, &opts, &session, &mut on_added, &progress)
                    .with_context(|| format!("adding {}", p.display()))?;
                if a.pin && !a.wrap_with_directory {
                    session.pin_imported_root(&root.cid, None)?;
                }
                roots.push(root);
            }
            if a.wrap_with_directory {
                let w = wrap(&roots, &opts, &session)?;
                on_added(&w);
                if a.pin {
                    session.pin_imported_root(&w.cid, None)?;
                }
                roots.push(w);
            }
            drop(session);
        }
    }
    bar.finish_and_clear();
    if let Some(e) = print_err {
        return Err(e.into());
    }
    if a.quieter && !a.silent {
        if let Some(last) = roots.last() {
            println!("{}", last.cid);
        }
    }
    Ok(())
}

/// `-w`: a directory holding each added root under its name, printed with an empty name (as
/// kubo prints its wrapper).
fn wrap(
    roots: &[Imported],
    opts: &ImportOptions,
    sink: &dyn unixfs::BlockSink,
) -> Result<Imported> {
    let mut names = std::collections::HashSet::new();
    if let Some(r) = roots.iter().find(|r| !names.insert(r.path.as_str())) {
        bail!("directory already has entry by that name: {:?}", r.path);
    }
    let entries = roots
        .iter()
        .map(|r| unixfs::hamt::DirEntry {
            name: r.path.clone(),
            cid: r.cid,
            tsize: r.tsize,
        })
        .collect();
    let (cid, tsize) = unixfs::dir::build_directory(
        entries,
        unixfs::hamt::SHARDING_THRESHOLD_BYTES_DEFAULT,
        opts,
        sink,
    )?;
    Ok(Imported {
        cid,
        path: String::new(),
        file_size: 0,
        tsize,
    })
}

fn options(a: &AddArgs) -> Result<ImportOptions> {
    let hash = HashFn::from_name(&a.hash)
        .with_context(|| format!("unknown hash function {:?}", a.hash))?;
    let cid_version = match a.cid_version {
        None => None,
        Some(0) => Some(cid::Version::V0),
        Some(1) => Some(cid::Version::V1),
        Some(v) => bail!("unknown CID version {v}"),
    };
    if cid_version == Some(cid::Version::V0) && hash != HashFn::Sha2_256 {
        bail!("CIDv0 only supports sha2-256");
    }
    if cid_version == Some(cid::Version::V0) && a.raw_leaves == Some(true) {
        // kubo allows raw leaves with CIDv0 (the leaves become CIDv1 raw); nothing to refuse.
    }
    let chunker: ChunkerSpec = a.chunker.parse()?;
    Ok(ImportOptions {
        chunker,
        layout: if a.trickle {
            Layout::Trickle
        } else {
            ImportOptions::default().layout
        },
        raw_leaves: a.raw_leaves,
        cid_version,
        hash,
        inline: a.inline,
        inline_limit: a.inline_limit,
        hidden: a.hidden,
    })
}

/// Bytes of file content under `p`, for the progress bar (best effort: errors count as 0).
fn tree_bytes(p: &Path) -> u64 {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_file() => m.len(),
        Ok(m) if m.is_dir() => std::fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| tree_bytes(&e.path())).sum())
            .unwrap_or(0),
        _ => 0,
    }
}
