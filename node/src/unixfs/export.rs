//! The exporter: cat (offset/length), get to a directory, ls, and path resolution.
//!
//! Reads through a [`Blockstore`] (which verifies every block it returns) and never trusts the
//! DAG: names written to disk are checked (no `..`, `.`, empty, `/` or NUL: CVE-2020-26279),
//! files are created with `O_EXCL` so a symlink from the DAG is never written through, HAMT
//! shards are validated ([`super::hamt::Shard::from_node`]), `blocksizes` must match the links,
//! and every depth and count is bounded by a named constant.
//!
//! `cat` streams: a walker thread lists the leaves in order and two workers fetch and verify
//! them ahead of the writer ([`cat`] and `export/cat.rs`); [`cat_with`] takes more workers for
//! a store whose misses each wait for the network. [`entity_blocks`] (`export/entity.rs`) lists
//! the blocks of one entity (a file or a byte range of it, a directory's own blocks) for CARs.

mod cat;
mod entity;

pub use cat::{cat, cat_with, FETCH_WORKERS, REMOTE_FETCH_WORKERS};
pub use entity::{entity_blocks, EntityBytes};

use super::direct_write::DirectWriter;
use super::hamt::{self, HamtError, Shard};
use crate::dag::pb::{PbError, PbLink, PbNode};
use crate::dag::unixfs_pb::{DataType, UnixFsData, UnixFsPbError};
use crate::dag::{DAG_PB_CODEC, RAW_CODEC};
use bytes::Bytes;
use cid::Cid;
use ipfs_kit_blockstore::{Blockstore, BlockstoreError};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Deepest file DAG or directory tree walked (balanced DAGs of kubo are < 10 levels; trickle
/// DAGs of terabytes < 40).
pub const DAG_DEPTH_MAX: usize = 128;
/// Most segments in a path given to [`resolve_path`].
pub const PATH_SEGMENTS_MAX: usize = 4096;
/// Most entries [`ls`] returns for one directory (a HAMT can be arbitrarily wide).
pub const LS_ENTRIES_MAX: usize = 1 << 22;
/// Longest symlink target [`get`] writes (Linux `PATH_MAX`).
pub const SYMLINK_TARGET_BYTES_MAX: usize = 4096;

/// Errors from reading UnixFS DAGs.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("block {0} not found locally")]
    NotFound(Cid),
    #[error("{0} is not a directory")]
    NotADirectory(Cid),
    #[error("this dag node is a directory")]
    IsADirectory,
    #[error("{0} is not a file (symlink or metadata node)")]
    NotAFile(Cid),
    #[error("no link named {name:?}")]
    NoSuchLink { name: String },
    #[error("refusing unsafe entry name {name:?}")]
    UnsafeName { name: String },
    #[error("path {0:?} goes above its root")]
    PathTraversal(String),
    #[error("invalid path {path:?}: {reason}")]
    BadPath { path: String, reason: String },
    #[error("block {cid}: {reason}")]
    Decode { cid: Cid, reason: String },
    #[error("block {cid}: unsupported codec 0x{codec:x}")]
    UnsupportedCodec { cid: Cid, codec: u64 },
    #[error(transparent)]
    Hamt(#[from] HamtError),
    #[error("DAG deeper than {DAG_DEPTH_MAX} levels")]
    TooDeep,
    #[error("directory has more than {LS_ENTRIES_MAX} entries")]
    TooManyEntries,
    #[error(transparent)]
    Store(#[from] BlockstoreError),
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing output: {0}")]
    Write(#[source] std::io::Error),
}

impl ExportError {
    fn decode(cid: &Cid, reason: impl std::fmt::Display) -> Self {
        ExportError::Decode {
            cid: *cid,
            reason: reason.to_string(),
        }
    }
}

// ------------------------------------------------------------------ nodes ----

/// A decoded block: a raw leaf, or a dag-pb node with its UnixFS data.
pub(crate) enum Node {
    Raw(Bytes),
    Pb { node: PbNode, fs: UnixFsData },
}

impl Node {
    /// Bytes of file content under this node (raw, File or Raw dag-pb).
    pub(crate) fn content_size(&self) -> u64 {
        match self {
            Node::Raw(b) => b.len() as u64,
            Node::Pb { fs, .. } => fs.filesize.unwrap_or_else(|| {
                fs.blocksizes
                    .iter()
                    .fold(fs.data.as_ref().map_or(0, |d| d.len() as u64), |a, &b| {
                        a.saturating_add(b)
                    })
            }),
        }
    }
}

pub(crate) fn load_block(store: &dyn Blockstore, cid: &Cid) -> Result<Bytes, ExportError> {
    store.get(cid)?.ok_or(ExportError::NotFound(*cid))
}

pub(crate) fn decode_node(cid: &Cid, bytes: Bytes) -> Result<Node, ExportError> {
    match cid.codec() {
        RAW_CODEC => Ok(Node::Raw(bytes)),
        DAG_PB_CODEC => {
            let node = PbNode::decode(&bytes).map_err(|e: PbError| ExportError::decode(cid, e))?;
            let data = node
                .data
                .as_ref()
                .ok_or_else(|| ExportError::decode(cid, "dag-pb node without UnixFS data"))?;
            let fs =
                UnixFsData::decode(data).map_err(|e: UnixFsPbError| ExportError::decode(cid, e))?;
            if matches!(fs.kind, DataType::File | DataType::Raw)
                && !node.links.is_empty()
                && fs.blocksizes.len() != node.links.len()
            {
                return Err(ExportError::decode(
                    cid,
                    format!(
                        "{} blocksizes for {} links",
                        fs.blocksizes.len(),
                        node.links.len()
                    ),
                ));
            }
            Ok(Node::Pb { node, fs })
        }
        codec => Err(ExportError::UnsupportedCodec { cid: *cid, codec }),
    }
}

pub(crate) fn load(store: &dyn Blockstore, cid: &Cid) -> Result<Node, ExportError> {
    decode_node(cid, load_block(store, cid)?)
}

fn load_shard(store: &dyn Blockstore, cid: &Cid) -> Result<Shard, ExportError> {
    match load(store, cid)? {
        Node::Pb { node, fs } => {
            Shard::from_node(&node, &fs).map_err(|e| ExportError::decode(cid, e))
        }
        Node::Raw(_) => Err(ExportError::decode(cid, "HAMT child is a raw block")),
    }
}

// ---------------------------------------------------------------- resolve ----

/// Resolves `<cid>`, `/ipfs/<cid>`, `<cid>/a/b` or `/ipfs/<cid>/a/b` through plain and HAMT
/// directories. `.` segments are ignored and `..` is applied lexically; going above the root
/// CID is refused.
pub fn resolve_path(store: &dyn Blockstore, path: &str) -> Result<Cid, ExportError> {
    let rest = match path.strip_prefix("/ipfs/") {
        Some(r) => r,
        None if path.starts_with('/') => {
            return Err(ExportError::BadPath {
                path: path.to_owned(),
                reason: "expected <cid>[/path] or /ipfs/<cid>[/path]".into(),
            })
        }
        None => path,
    };
    let mut segs: Vec<&str> = Vec::new();
    for (i, seg) in rest.split('/').enumerate() {
        if i >= PATH_SEGMENTS_MAX {
            return Err(ExportError::BadPath {
                path: path.to_owned(),
                reason: format!("more than {PATH_SEGMENTS_MAX} segments"),
            });
        }
        match seg {
            "" | "." if i > 0 => {}
            ".." => {
                if segs.len() <= 1 {
                    return Err(ExportError::PathTraversal(path.to_owned()));
                }
                segs.pop();
            }
            s => segs.push(s),
        }
    }
    let (root, names) = segs.split_first().ok_or_else(|| ExportError::BadPath {
        path: path.to_owned(),
        reason: "empty".into(),
    })?;
    let mut cid = Cid::try_from(*root).map_err(|e| ExportError::BadPath {
        path: path.to_owned(),
        reason: format!("not a CID: {e}"),
    })?;
    for name in names {
        cid = lookup(store, &cid, name)?;
    }
    Ok(cid)
}

/// The child `name` of directory `dir` (plain or HAMT).
pub fn lookup(store: &dyn Blockstore, dir: &Cid, name: &str) -> Result<Cid, ExportError> {
    let (node, fs) = match load(store, dir)? {
        Node::Pb { node, fs } => (node, fs),
        Node::Raw(_) => return Err(ExportError::NotADirectory(*dir)),
    };
    let found = match fs.kind {
        DataType::Directory => node
            .links
            .iter()
            .find(|l| l.name.as_deref() == Some(name))
            .map(|l| l.cid),
        DataType::HamtShard => {
            let shard = Shard::from_node(&node, &fs).map_err(|e| ExportError::decode(dir, e))?;
            hamt::find(shard, name, &mut |c| load_shard(store, c))?.map(|l| l.cid)
        }
        _ => return Err(ExportError::NotADirectory(*dir)),
    };
    found.ok_or_else(|| ExportError::NoSuchLink {
        name: name.to_owned(),
    })
}

/// The `(name, link)` entries of a directory node, plain or HAMT, in DAG order (HAMT: slot
/// order, as kubo enumerates a shard). `None` if the node is not a directory.
fn dir_entries(
    store: &dyn Blockstore,
    cid: &Cid,
    node: &PbNode,
    fs: &UnixFsData,
) -> Result<Option<Vec<(String, PbLink)>>, ExportError> {
    match fs.kind {
        DataType::Directory => {
            if node.links.len() > LS_ENTRIES_MAX {
                return Err(ExportError::TooManyEntries);
            }
            Ok(Some(
                node.links
                    .iter()
                    .map(|l| (l.name.clone().unwrap_or_default(), l.clone()))
                    .collect(),
            ))
        }
        DataType::HamtShard => {
            let shard = Shard::from_node(node, fs).map_err(|e| ExportError::decode(cid, e))?;
            let mut out = Vec::new();
            hamt::for_each(&shard, &mut |c| load_shard(store, c), &mut |name, link| {
                if out.len() >= LS_ENTRIES_MAX {
                    return Err(ExportError::TooManyEntries);
                }
                out.push((name.to_owned(), link.clone()));
                Ok(())
            })?;
            Ok(Some(out))
        }
        _ => Ok(None),
    }
}

// --------------------------------------------------------------------- ls ----

/// What an `ls` entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A UnixFS file (dag-pb File or Raw node).
    File,
    Directory,
    Symlink,
    /// A raw-codec block (a file of one block).
    Raw,
}

/// One line of `ls`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LsEntry {
    pub name: String,
    pub cid: Cid,
    /// As kubo's `ls` shows it: the file size for files and raw blocks, 0 for directories
    /// (printed as `-`) and symlinks.
    pub size: u64,
    /// The link's Tsize (cumulative DAG size).
    pub tsize: u64,
    pub kind: EntryKind,
}

/// Lists a directory (plain or HAMT; entries in DAG order) or, for a file, its child blocks
/// (unnamed, sized by `blocksizes`), like kubo's `ls`.
pub fn ls(store: &dyn Blockstore, cid: &Cid) -> Result<Vec<LsEntry>, ExportError> {
    let (node, fs) = match load(store, cid)? {
        Node::Pb { node, fs } => (node, fs),
        Node::Raw(_) => return Ok(Vec::new()),
    };
    if let Some(entries) = dir_entries(store, cid, &node, &fs)? {
        let mut out = Vec::with_capacity(entries.len());
        for (name, link) in entries {
            let (kind, size) = match load(store, &link.cid)? {
                Node::Raw(b) => (EntryKind::Raw, b.len() as u64),
                n @ Node::Pb { .. } => {
                    let kind = match &n {
                        Node::Pb { fs, .. } => fs.kind,
                        Node::Raw(_) => DataType::Raw,
                    };
                    match kind {
                        DataType::File | DataType::Raw => (EntryKind::File, n.content_size()),
                        DataType::Directory | DataType::HamtShard | DataType::Metadata => {
                            (EntryKind::Directory, 0)
                        }
                        DataType::Symlink => (EntryKind::Symlink, 0),
                    }
                }
            };
            out.push(LsEntry {
                name,
                cid: link.cid,
                size,
                tsize: link.tsize.unwrap_or(0),
                kind,
            });
        }
        return Ok(out);
    }
    match fs.kind {
        DataType::File | DataType::Raw => Ok(node
            .links
            .iter()
            .zip(&fs.blocksizes)
            .map(|(l, &size)| LsEntry {
                name: l.name.clone().unwrap_or_default(),
                cid: l.cid,
                size,
                tsize: l.tsize.unwrap_or(0),
                kind: if l.cid.codec() == RAW_CODEC {
                    EntryKind::Raw
                } else {
                    EntryKind::File
                },
            })
            .collect()),
        _ => Ok(Vec::new()),
    }
}

// -------------------------------------------------------------------- get ----

/// Whether a name from the DAG is safe to create inside a directory (CVE-2020-26279).
pub fn check_entry_name(name: &str) -> Result<(), ExportError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(ExportError::UnsafeName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Writes the DAG at `cid` to `out_path`: a file, a directory tree (plain and HAMT) or a
/// symlink. Entry names are validated and entries are created exclusively, so nothing is
/// written outside `out_path`. `on_progress` gets the running total of file bytes written.
pub fn get(
    store: &dyn Blockstore,
    cid: &Cid,
    out_path: &Path,
    on_progress: &mut dyn FnMut(u64),
) -> Result<(), ExportError> {
    let mut getter = Getter {
        store,
        written: 0,
        on_progress,
    };
    getter.write_any(cid, out_path, true, 0)
}

struct Getter<'a, 'b> {
    store: &'a dyn Blockstore,
    written: u64,
    on_progress: &'b mut dyn FnMut(u64),
}

impl Getter<'_, '_> {
    fn write_any(
        &mut self,
        cid: &Cid,
        path: &Path,
        top: bool,
        depth: usize,
    ) -> Result<(), ExportError> {
        if depth > DAG_DEPTH_MAX {
            return Err(ExportError::TooDeep);
        }
        let io = |source| ExportError::Io {
            path: path.to_owned(),
            source,
        };
        let node = load(self.store, cid)?;
        let (pb, fs) = match &node {
            Node::Raw(_) => return self.write_file(cid, path, top),
            Node::Pb { node, fs } => (node, fs),
        };
        match fs.kind {
            DataType::File | DataType::Raw => self.write_file(cid, path, top),
            DataType::Symlink => {
                let target = fs.data.as_deref().unwrap_or(&[]);
                if target.len() > SYMLINK_TARGET_BYTES_MAX || target.contains(&0) {
                    return Err(ExportError::decode(
                        cid,
                        "symlink target too long or has NUL",
                    ));
                }
                let target = std::ffi::OsStr::from_bytes(target);
                std::os::unix::fs::symlink(target, path).map_err(io)
            }
            DataType::Directory | DataType::HamtShard => {
                let entries = dir_entries(self.store, cid, pb, fs)?.unwrap_or_default();
                if top {
                    std::fs::create_dir_all(path).map_err(io)?;
                } else {
                    std::fs::create_dir(path).map_err(io)?;
                }
                for (name, link) in entries {
                    check_entry_name(&name)?;
                    self.write_any(&link.cid, &path.join(&name), false, depth + 1)?;
                }
                Ok(())
            }
            DataType::Metadata => Err(ExportError::NotAFile(*cid)),
        }
    }

    fn write_file(&mut self, cid: &Cid, path: &Path, top: bool) -> Result<(), ExportError> {
        let io = |source| ExportError::Io {
            path: path.to_owned(),
            source,
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true);
        if top {
            opts.create(true).truncate(true);
        } else {
            // O_EXCL: never follow a symlink or overwrite an entry made earlier in this walk.
            opts.create_new(true);
        }
        let file = opts.open(path).map_err(io)?;
        let mut w = ProgressWriter {
            inner: DirectWriter::new(file),
            written: &mut self.written,
            on_progress: &mut *self.on_progress,
        };
        cat(self.store, cid, 0, None, &mut w)?;
        w.inner.finish().map_err(io)?;
        Ok(())
    }
}

struct ProgressWriter<'a, W: Write> {
    inner: W,
    written: &'a mut u64,
    on_progress: &'a mut dyn FnMut(u64),
}

impl<W: Write> Write for ProgressWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        *self.written += n as u64;
        (self.on_progress)(*self.written);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests;
