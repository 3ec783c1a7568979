//! `cat`, `get` and `ls`: reading UnixFS out of the repository.

use crate::repo::Repo;
use crate::unixfs::export;
use anyhow::{Context as _, Result};
use std::io::Write as _;
use std::path::PathBuf;

pub(super) fn cat(repo: &Repo, path: &str, offset: u64, length: Option<u64>) -> Result<()> {
    let cid = export::resolve_path(repo.blocks().as_ref(), path)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    export::cat(repo.blocks().as_ref(), &cid, offset, length, &mut out)?;
    out.flush()?;
    Ok(())
}

pub(super) fn get(repo: &Repo, path: &str, output: Option<PathBuf>) -> Result<()> {
    let cid = export::resolve_path(repo.blocks().as_ref(), path)?;
    // kubo names the output after the last path segment; a segment that is not a plain name
    // (`..`, `.`) would point outside the working directory, so the CID stands in for it.
    let out = output.unwrap_or_else(|| {
        let last = path
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default();
        let safe = export::check_entry_name(last).is_ok();
        PathBuf::from(if safe {
            last.to_string()
        } else {
            cid.to_string()
        })
    });
    eprintln!("Saving file(s) to {}", out.display());
    let bar = super::progress_bar(|| None, None);
    export::get(repo.blocks().as_ref(), &cid, &out, &mut |n| {
        bar.set_position(n)
    })
    .with_context(|| format!("writing {}", out.display()))?;
    bar.finish_and_clear();
    Ok(())
}

pub(super) fn ls(repo: &Repo, path: &str) -> Result<()> {
    let cid = export::resolve_path(repo.blocks().as_ref(), path)?;
    let mut out = std::io::stdout().lock();
    for e in export::ls(repo.blocks().as_ref(), &cid)? {
        if e.kind == export::EntryKind::Directory {
            writeln!(out, "{} - {}/", e.cid, e.name)?;
        } else {
            writeln!(out, "{} {} {}", e.cid, e.size, e.name)?;
        }
    }
    Ok(())
}
