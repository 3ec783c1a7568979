//! Directory import: walking a local tree into UnixFS directories (basic and HAMT-sharded).
//!
//! Follows kubo v0.22 `ipfs add -r` (core/coreunix/add.go over boxo MFS):
//! - entries are visited depth first in name-byte order (Go's `os.ReadDir` order); dot-files
//!   are skipped unless `--hidden`; symlinks become UnixFS Symlink nodes and are not followed;
//!   sockets, fifos and devices are refused;
//! - `added` events: every file and symlink as it is imported, then every directory bottom-up
//!   in the same depth-first name order, the root last (`Adder.outputDirs`);
//! - a directory node is dag-pb, links sorted by name bytes, each link's Tsize the child's
//!   cumulative size, Data = `UnixFsData{Directory}` (`08 01`); the directory becomes a HAMT
//!   shard when `sum(len(name) + len(cid bytes)) >= threshold` (boxo v0.10
//!   `needsToSwitchToHAMTDir`), see [`super::hamt`];
//! - directory and symlink CIDs use `--cid-version`/`--hash`, and `--inline` turns nodes up to
//!   `--inline-limit` bytes into identity CIDs (kubo's `InlineBuilder` wraps the CID builder
//!   used for every node).
//!
//! Memory: only `(name, cid, tsize)` per entry of the directories on the current path is held,
//! never file contents.

use super::hamt::{self, DirEntry, HAMT_FANOUT_DEFAULT, SHARDING_THRESHOLD_BYTES_DEFAULT};
use super::{BlockSink, ImportError, ImportOptions, Imported};
use crate::dag::pb::PbNode;
use crate::dag::unixfs_pb::{DataType, UnixFsData};
use crate::dag::DAG_PB_CODEC;
use bytes::Bytes;
use cid::{Cid, Version};
use ipfs_kit_blockstore::hash::{HashFn, IDENTITY};
use ipfs_kit_blockstore::Block;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Deepest directory nesting `add -r` descends into; deeper trees are refused rather than
/// exhausting the stack.
pub const DIR_DEPTH_MAX: usize = 1024;

/// Imports a file, symlink or directory tree like `ipfs add -r`, with kubo's sharding
/// threshold ([`SHARDING_THRESHOLD_BYTES_DEFAULT`]).
pub fn import_path(
    path: &Path,
    opts: &ImportOptions,
    sink: &dyn BlockSink,
    on_added: &mut dyn FnMut(&Imported),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Imported, ImportError> {
    import_path_sharded(
        path,
        opts,
        SHARDING_THRESHOLD_BYTES_DEFAULT,
        sink,
        on_added,
        progress,
    )
}

/// [`import_path`] with an explicit `Internal.UnixFSShardingSizeThreshold` in bytes
/// (0 = never shard, as in boxo).
pub fn import_path_sharded(
    path: &Path,
    opts: &ImportOptions,
    shard_threshold_bytes: u64,
    sink: &dyn BlockSink,
    on_added: &mut dyn FnMut(&Imported),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Imported, ImportError> {
    // As go-ipfs-cmds `appendFile`: clean the path first (so `link/` is the symlink itself,
    // not its target), then lstat it.
    let cleaned: std::path::PathBuf = path.components().collect();
    let path = if cleaned.as_os_str().is_empty() {
        Path::new(".")
    } else {
        cleaned.as_path()
    };
    let name = base_name(path)?;
    let mut walker = Walker {
        emitter: NodeEmitter { opts, sink },
        threshold: shard_threshold_bytes,
        on_added,
        progress,
        dirs_done: Vec::new(),
    };
    let meta = std::fs::symlink_metadata(path).map_err(|e| io_err(path, e))?;
    let root = walker.import_any(path, &name, &meta, 0)?;
    let dirs = std::mem::take(&mut walker.dirs_done);
    for d in &dirs {
        (walker.on_added)(d);
    }
    Ok(root)
}

/// The name kubo prints for a top-level argument: its base name (`dir/` -> `dir`, `.` -> the
/// current directory's name).
fn base_name(path: &Path) -> Result<String, ImportError> {
    let name = match path.file_name() {
        Some(n) => n.to_owned(),
        None => {
            let abs = std::fs::canonicalize(path).map_err(|e| io_err(path, e))?;
            abs.file_name().map(|n| n.to_owned()).unwrap_or_default()
        }
    };
    utf8_name(path, &name)
}

fn utf8_name(path: &Path, name: &std::ffi::OsStr) -> Result<String, ImportError> {
    name.to_str().map(str::to_owned).ok_or_else(|| {
        io_err(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, "file name is not UTF-8"),
        )
    })
}

fn io_err(path: &Path, source: std::io::Error) -> ImportError {
    ImportError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Encodes dag-pb nodes, names them with the options' CID builder and writes them to the sink.
pub(crate) struct NodeEmitter<'a> {
    pub(crate) opts: &'a ImportOptions,
    pub(crate) sink: &'a dyn BlockSink,
}

impl NodeEmitter<'_> {
    /// The CID of dag-pb `bytes` under the options (version, hash, `--inline`).
    pub(crate) fn cid_for(&self, bytes: &[u8]) -> Result<Cid, ImportError> {
        if self.opts.inline && bytes.len() <= self.opts.inline_limit {
            let mh = HashFn::from_code(IDENTITY)
                .ok_or_else(|| ImportError::BadOption("identity hash unavailable".into()))?
                .digest(bytes)?;
            return Ok(Cid::new_v1(DAG_PB_CODEC, mh));
        }
        let mh = self.opts.hash.digest(bytes)?;
        match self.opts.version() {
            Version::V0 => Cid::new_v0(mh)
                .map_err(|e| ImportError::BadOption(format!("CIDv0 needs sha2-256: {e}"))),
            Version::V1 => Ok(Cid::new_v1(DAG_PB_CODEC, mh)),
        }
    }

    /// Stores `node`; returns its CID and cumulative size (bytes + the links' Tsizes).
    pub(crate) fn emit(&self, node: &PbNode) -> Result<(Cid, u64), ImportError> {
        let bytes = node.encode();
        let cid = self.cid_for(&bytes)?;
        let tsize =
            bytes.len() as u64 + node.links.iter().map(|l| l.tsize.unwrap_or(0)).sum::<u64>();
        if cid.hash().code() != IDENTITY {
            self.sink
                .put_blocks(&[Block::new_unchecked(cid, Bytes::from(bytes))])?;
        }
        Ok((cid, tsize))
    }
}

/// Builds the node for a directory with these entries: basic, or a HAMT when the estimated
/// size reaches `threshold` (0 disables sharding). Returns its CID and cumulative size.
pub fn build_directory(
    mut entries: Vec<DirEntry>,
    threshold: u64,
    opts: &ImportOptions,
    sink: &dyn BlockSink,
) -> Result<(Cid, u64), ImportError> {
    let emitter = NodeEmitter { opts, sink };
    entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let estimated: u64 = entries
        .iter()
        .map(|e| (e.name.len() + e.cid.encoded_len()) as u64)
        .sum();
    if threshold > 0 && estimated >= threshold {
        return hamt::build_shard(entries, HAMT_FANOUT_DEFAULT, &mut |node| {
            emitter.emit(&node).map_err(HamtBuildError)
        })
        .map_err(|e: HamtBuildError| e.0);
    }
    let links = entries
        .into_iter()
        .map(|e| crate::dag::pb::PbLink {
            cid: e.cid,
            name: Some(e.name),
            tsize: Some(e.tsize),
        })
        .collect();
    let node = PbNode {
        links,
        data: Some(Bytes::from(UnixFsData::new(DataType::Directory).encode())),
    };
    emitter.emit(&node)
}

/// Carries an [`ImportError`] through the HAMT builder's generic error.
struct HamtBuildError(ImportError);

impl From<hamt::HamtError> for HamtBuildError {
    fn from(e: hamt::HamtError) -> Self {
        HamtBuildError(ImportError::BadOption(e.to_string()))
    }
}

impl From<ImportError> for HamtBuildError {
    fn from(e: ImportError) -> Self {
        HamtBuildError(e)
    }
}

/// Makes and stores a UnixFS Symlink node whose Data is `target`.
pub fn build_symlink(
    target: &[u8],
    opts: &ImportOptions,
    sink: &dyn BlockSink,
) -> Result<(Cid, u64), ImportError> {
    let mut data = UnixFsData::new(DataType::Symlink);
    data.data = Some(Bytes::copy_from_slice(target));
    let node = PbNode {
        links: Vec::new(),
        data: Some(Bytes::from(data.encode())),
    };
    NodeEmitter { opts, sink }.emit(&node)
}

struct Walker<'a, 'b> {
    emitter: NodeEmitter<'a>,
    threshold: u64,
    on_added: &'b mut dyn FnMut(&Imported),
    progress: &'a (dyn Fn(u64) + Sync),
    /// Directories finished so far, in kubo's output order (post-order, name order).
    dirs_done: Vec<Imported>,
}

impl Walker<'_, '_> {
    fn import_any(
        &mut self,
        path: &Path,
        rel: &str,
        meta: &std::fs::Metadata,
        depth: usize,
    ) -> Result<Imported, ImportError> {
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = std::fs::read_link(path).map_err(|e| io_err(path, e))?;
            let (cid, tsize) = build_symlink(
                target.as_os_str().as_bytes(),
                self.emitter.opts,
                self.emitter.sink,
            )?;
            let done = Imported {
                cid,
                path: rel.to_owned(),
                file_size: 0,
                tsize,
            };
            (self.on_added)(&done);
            Ok(done)
        } else if ft.is_file() {
            let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
            let mut done = super::file::import_file(
                file,
                self.emitter.opts,
                self.emitter.sink,
                self.progress,
            )?;
            done.path = rel.to_owned();
            (self.on_added)(&done);
            Ok(done)
        } else if ft.is_dir() {
            self.import_dir(path, rel, depth)
        } else {
            Err(ImportError::UnsupportedFileType {
                path: path.display().to_string(),
            })
        }
    }

    fn import_dir(
        &mut self,
        path: &Path,
        rel: &str,
        depth: usize,
    ) -> Result<Imported, ImportError> {
        if depth >= DIR_DEPTH_MAX {
            return Err(io_err(
                path,
                std::io::Error::other(format!("directory nesting exceeds {DIR_DEPTH_MAX}")),
            ));
        }
        let mut names = Vec::new();
        for item in std::fs::read_dir(path).map_err(|e| io_err(path, e))? {
            let item = item.map_err(|e| io_err(path, e))?;
            let name = utf8_name(&item.path(), &item.file_name())?;
            if !self.emitter.opts.hidden && name.starts_with('.') {
                continue;
            }
            names.push(name);
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            let child = path.join(&name);
            let child_rel = format!("{rel}/{name}");
            let meta = std::fs::symlink_metadata(&child).map_err(|e| io_err(&child, e))?;
            let done = self.import_any(&child, &child_rel, &meta, depth + 1)?;
            entries.push(DirEntry {
                name,
                cid: done.cid,
                tsize: done.tsize,
            });
        }
        let (cid, tsize) = build_directory(
            entries,
            self.threshold,
            self.emitter.opts,
            self.emitter.sink,
        )?;
        let done = Imported {
            cid,
            path: rel.to_owned(),
            file_size: 0,
            tsize,
        };
        self.dirs_done.push(done.clone());
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unixfs::StoreSink;
    use ipfs_kit_blockstore::MemoryBlockstore;
    use std::os::unix::fs::symlink;

    fn import(
        path: &Path,
        opts: &ImportOptions,
        threshold: u64,
        store: &MemoryBlockstore,
    ) -> (Imported, Vec<Imported>) {
        let mut added = Vec::new();
        let root = import_path_sharded(
            path,
            opts,
            threshold,
            &StoreSink(store),
            &mut |i| added.push(i.clone()),
            &|_| {},
        )
        .unwrap();
        (root, added)
    }

    /// The empty directory: QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn (kubo
    /// `unixfs.EmptyDirNode`, e.g. test/sharness/t0250-files-api.sh).
    #[test]
    fn empty_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("empty");
        std::fs::create_dir(&d).unwrap();
        let store = MemoryBlockstore::default();
        let (root, added) = import(&d, &ImportOptions::default(), 1, &store);
        assert_eq!(
            root.cid.to_string(),
            "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
        );
        assert_eq!(root.tsize, 4);
        assert_eq!(added.len(), 1);
        assert_eq!(added[0].path, "empty");
        // --inline: the 4-byte directory node becomes an identity CID
        let opts = ImportOptions {
            inline: true,
            ..ImportOptions::default()
        };
        let (root, _) = import(&d, &opts, 0, &store);
        assert_eq!(root.cid.hash().code(), IDENTITY);
        assert_eq!(root.cid.codec(), DAG_PB_CODEC);
    }

    /// kubo test/sharness/t0044-add-symlink.sh: a symlink is added as the link itself.
    #[test]
    fn symlink_vectors_from_kubo_sharness() {
        let tmp = tempfile::tempdir().unwrap();
        let good = tmp.path().join("baz");
        let bad = tmp.path().join("bad");
        symlink("files/foo/baz", &good).unwrap();
        symlink("files/does/not/exist", &bad).unwrap();
        let store = MemoryBlockstore::default();
        let (g, added) = import(&good, &ImportOptions::default(), 0, &store);
        assert_eq!(
            g.cid.to_string(),
            "QmdocmZeF7qwPT9Z8SiVhMSyKA2KKoA2J7jToW6z6WBmxR"
        );
        assert_eq!(added[0].path, "baz");
        let (b, _) = import(&bad, &ImportOptions::default(), 0, &store);
        assert_eq!(
            b.cid.to_string(),
            "QmWYN8SEXCgNT2PSjB6BnxAx6NJQtazWoBkTRH9GRfPFFQ"
        );
    }

    /// go-ipfs-cmds cleans an argument before `Lstat`: `link/` names the symlink itself.
    #[test]
    fn trailing_slash_does_not_follow_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("real")).unwrap();
        symlink("real", tmp.path().join("link")).unwrap();
        let store = MemoryBlockstore::default();
        let arg = format!("{}/link/", tmp.path().display());
        let (root, added) = import(Path::new(&arg), &ImportOptions::default(), 0, &store);
        let (sym, _) =
            build_symlink(b"real", &ImportOptions::default(), &StoreSink(&store)).unwrap();
        assert_eq!(root.cid, sym);
        assert_eq!(added[0].path, "link");
    }

    #[test]
    fn fifo_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("d");
        std::fs::create_dir(&d).unwrap();
        let fifo = d.join("pipe");
        // The crate denies unsafe code, so make the fifo with the mkfifo tool.
        let ok = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return; // no mkfifo on this system
        }
        let store = MemoryBlockstore::default();
        let err = import_path(
            &d,
            &ImportOptions::default(),
            &StoreSink(&store),
            &mut |_| {},
            &|_| {},
        )
        .unwrap_err();
        assert!(
            matches!(err, ImportError::UnsupportedFileType { .. }),
            "{err}"
        );
    }

    #[test]
    fn shards_exactly_at_threshold() {
        // Directory entries built by hand: the switch happens when the estimate reaches the
        // threshold (>=), as boxo v0.10 `needsToSwitchToHAMTDir`.
        let store = MemoryBlockstore::default();
        let sink = StoreSink(&store);
        let opts = ImportOptions::default();
        let (leaf, leaf_size) = build_symlink(b"x", &opts, &sink).unwrap();
        let entries: Vec<DirEntry> = (0..10)
            .map(|i| DirEntry {
                name: format!("n{i}"),
                cid: leaf,
                tsize: leaf_size,
            })
            .collect();
        let estimate: u64 = entries.iter().map(|e| (e.name.len() + 34) as u64).sum();
        let kind = |cid: &Cid| {
            let b = ipfs_kit_blockstore::Blockstore::get(&store, cid)
                .unwrap()
                .unwrap();
            let n = PbNode::decode(&b).unwrap();
            UnixFsData::decode(n.data.as_ref().unwrap()).unwrap().kind
        };
        let (at, _) = build_directory(entries.clone(), estimate, &opts, &sink).unwrap();
        assert_eq!(kind(&at), DataType::HamtShard);
        let (below, _) = build_directory(entries, estimate + 1, &opts, &sink).unwrap();
        assert_eq!(kind(&below), DataType::Directory);
    }
}
