//! `add`, `cat`, `get`, `ls`: UnixFS in and out over the RPC API.
//!
//! `add` takes go-ipfs-cmds' multipart upload: one part per file (`application/octet-stream`),
//! directory (`application/x-directory`) or symlink (`application/symlink`), named by its
//! URL-escaped relative path. Each file streams into the importer on the blocking pool as it
//! arrives; directories are built from the paths once the upload ends, bottom-up, like
//! `ipfs add -r`. The answer is kubo's NDJSON, one `{"Name","Hash","Size"}` per file and
//! directory, the roots last. `get` answers a tar stream as kubo does.

use super::stream::{blocking_body, import_part, ChannelWriter};
use super::{blocking, ApiError, ApiState, Args, ADD_PARTS_MAX, ADD_PART_PATH_BYTES_MAX};
use crate::dag::unixfs_pb::DataType;
use crate::repo::WriteSession;
use crate::unixfs::export::{self, EntryKind};
use crate::unixfs::hamt::{DirEntry, SHARDING_THRESHOLD_BYTES_DEFAULT};
use crate::unixfs::{self, BlockSink, ChunkerSpec, ImportError, ImportOptions, Layout};
use axum::extract::{Multipart, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use cid::Cid;
use ipfs_kit_blockstore::hash::HashFn;
use ipfs_kit_blockstore::{Blockstore, BlockstoreError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

/// Longest symlink target accepted in an `add` upload (Linux `PATH_MAX`).
pub const ADD_SYMLINK_TARGET_BYTES_MAX: usize = export::SYMLINK_TARGET_BYTES_MAX;
/// Deepest directory nesting in an `add` upload.
pub const ADD_DIR_DEPTH_MAX: usize = unixfs::dir::DIR_DEPTH_MAX;
/// Deepest directory tree written by `get`.
pub const GET_DEPTH_MAX: usize = export::DAG_DEPTH_MAX;

// ---------------------------------------------------------------- options ----

/// `add`'s flags as kubo names them, shared by the CLI and the API.
#[derive(Clone, Debug)]
pub struct AddFlags<'a> {
    pub cid_version: Option<u64>,
    pub raw_leaves: Option<bool>,
    pub chunker: &'a str,
    pub trickle: bool,
    pub hash: &'a str,
    pub inline: bool,
    pub inline_limit: usize,
    pub hidden: bool,
}

/// The importer's options for kubo's `add` flags, with kubo's refusals.
pub fn import_options(a: &AddFlags<'_>) -> Result<ImportOptions, ImportError> {
    let hash = HashFn::from_name(a.hash)
        .ok_or_else(|| ImportError::BadOption(format!("unknown hash function {:?}", a.hash)))?;
    let cid_version = match a.cid_version {
        None => None,
        Some(0) => Some(cid::Version::V0),
        Some(1) => Some(cid::Version::V1),
        Some(v) => return Err(ImportError::BadOption(format!("unknown CID version {v}"))),
    };
    if cid_version == Some(cid::Version::V0) && hash != HashFn::Sha2_256 {
        return Err(ImportError::BadOption(
            "CIDv0 only supports sha2-256".into(),
        ));
    }
    // kubo allows raw leaves with CIDv0 (the leaves become CIDv1 raw); nothing to refuse.
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

// -------------------------------------------------------------------- add ----

/// One line of `add`'s answer.
#[derive(Serialize)]
struct AddLine {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Hash")]
    hash: String,
    /// kubo sends the cumulative size as a string.
    #[serde(rename = "Size")]
    size: String,
}

/// The directories of an upload, built from the parts' paths.
#[derive(Default)]
struct DirTree {
    entries: BTreeMap<String, TreeEntry>,
}

enum TreeEntry {
    Dir(DirTree),
    Leaf(DirEntry),
}

impl DirTree {
    fn dir_mut(&mut self, comps: &[String]) -> Result<&mut DirTree, ApiError> {
        let mut cur = self;
        for c in comps {
            let e = cur
                .entries
                .entry(c.clone())
                .or_insert_with(|| TreeEntry::Dir(DirTree::default()));
            cur = match e {
                TreeEntry::Dir(d) => d,
                TreeEntry::Leaf(_) => {
                    return Err(ApiError::bad_request(format!(
                        "{c:?} is both a file and a directory in the upload"
                    )))
                }
            };
        }
        Ok(cur)
    }

    fn insert_leaf(&mut self, comps: &[String], entry: DirEntry) -> Result<(), ApiError> {
        let (name, parents) = comps
            .split_last()
            .ok_or_else(|| ApiError::bad_request("empty path"))?;
        let dir = self.dir_mut(parents)?;
        if dir.entries.contains_key(name) {
            return Err(ApiError::bad_request(format!(
                "{:?} appears twice in the upload",
                comps.join("/")
            )));
        }
        dir.entries.insert(name.clone(), TreeEntry::Leaf(entry));
        Ok(())
    }

    /// Builds every directory bottom-up (children in name order, as kubo's `outputDirs`),
    /// reporting each; returns the top-level entries.
    fn finish(
        self,
        prefix: &str,
        opts: &ImportOptions,
        sink: &dyn BlockSink,
        out: &mut Vec<AddLine>,
    ) -> Result<Vec<DirEntry>, ApiError> {
        let mut done = Vec::with_capacity(self.entries.len());
        for (name, e) in self.entries {
            match e {
                TreeEntry::Leaf(l) => done.push(l),
                TreeEntry::Dir(d) => {
                    let path = if prefix.is_empty() {
                        name.clone()
                    } else {
                        format!("{prefix}/{name}")
                    };
                    let children = d.finish(&path, opts, sink, out)?;
                    let (cid, tsize) = unixfs::dir::build_directory(
                        children,
                        SHARDING_THRESHOLD_BYTES_DEFAULT,
                        opts,
                        sink,
                    )?;
                    out.push(AddLine {
                        name: path,
                        hash: cid.to_string(),
                        size: tsize.to_string(),
                    });
                    done.push(DirEntry { name, cid, tsize });
                }
            }
        }
        Ok(done)
    }
}

/// Splits an upload part's name (URL-escaped, `/`-separated) into safe components.
fn part_path(raw: &str) -> Result<Vec<String>, ApiError> {
    if raw.len() > ADD_PART_PATH_BYTES_MAX {
        return Err(ApiError::bad_request(format!(
            "part name exceeds {ADD_PART_PATH_BYTES_MAX} bytes"
        )));
    }
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("part name is not UTF-8"))?;
    let mut comps = Vec::new();
    for c in decoded.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(ApiError::bad_request(format!(
                    "refusing part path {decoded:?}: '..'"
                )))
            }
            c if c.contains('\0') => return Err(ApiError::bad_request("NUL in part path")),
            c => comps.push(c.to_owned()),
        }
    }
    if comps.len() > ADD_DIR_DEPTH_MAX {
        return Err(ApiError::bad_request("upload nests too deep"));
    }
    Ok(comps)
}

/// Where an add writes: a write session (GC-safe, pinnable) or nowhere (`only-hash`).
#[derive(Clone)]
enum Sink {
    Session(Arc<WriteSession>),
    Discard,
}

impl BlockSink for Sink {
    fn put_blocks(&self, blocks: &[ipfs_kit_blockstore::Block]) -> Result<(), BlockstoreError> {
        match self {
            Sink::Session(s) => s.put_blocks(blocks),
            Sink::Discard => Ok(()),
        }
    }
}

/// `POST /api/v0/add`. Without `progress`, the answer comes once the upload is in, all lines at
/// once (an error anywhere is an error answer). With `progress=true`, as kubo does, it streams
/// while the upload runs: a `{"Name","Bytes"}` line for each chunk read, each file's line as it
/// is imported, the directories and roots last; an error then cuts the answer short (kubo's
/// `X-Stream-Error`).
pub async fn add(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
    multipart: Multipart,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let chunker = args.string("chunker", "size-262144");
    let hash = args.string("hash", "sha2-256");
    let opts = import_options(&AddFlags {
        cid_version: args.u64("cid-version")?,
        raw_leaves: match args.get("raw-leaves") {
            None => None,
            Some(_) => Some(args.bool("raw-leaves", false)?),
        },
        chunker: &chunker,
        trickle: args.bool("trickle", false)?,
        hash: &hash,
        inline: args.bool("inline", false)?,
        inline_limit: args
            .u64("inline-limit")?
            .map_or(unixfs::INLINE_LIMIT_BYTES_DEFAULT, |v| v as usize),
        hidden: true,
    })
    .map_err(ApiError::internal)?;
    let only_hash = args.bool("only-hash", false)?;
    let job = AddJob {
        pin: args.bool("pin", true)? && !only_hash,
        wrap: args.bool("wrap-with-directory", false)?,
        sink: if only_hash {
            Sink::Discard
        } else {
            Sink::Session(Arc::new(state.repo.begin_write()))
        },
        opts,
        state,
    };
    if !args.bool("progress", false)? {
        let lines = job.run(multipart, None).await?;
        let mut body = Vec::new();
        for l in &lines {
            super::blocks::push_line(&mut body, l)?;
        }
        return Ok(super::blocks::ndjson(body));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(
        super::stream::BODY_QUEUE_CHUNKS,
    );
    tokio::spawn(async move {
        if let Err(e) = job.run(multipart, Some(&tx)).await {
            tracing::warn!(error = %e, "streamed add failed");
            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
        }
    });
    Ok(super::blocks::ndjson(axum::body::Body::from_stream(
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) }),
    )))
}

/// A `{"Name","Bytes"}` line of a streamed add: bytes of the named file read so far.
#[derive(Serialize)]
struct ProgressLine<'a> {
    #[serde(rename = "Name")]
    name: &'a str,
    #[serde(rename = "Bytes")]
    bytes: u64,
}

type LineSender = tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>;

fn line_bytes(v: &impl Serialize) -> Result<bytes::Bytes, ApiError> {
    let mut out = Vec::new();
    super::blocks::push_line(&mut out, v)?;
    Ok(out.into())
}

/// Sends the lines gathered so far down a streamed answer.
async fn send_lines(tx: &LineSender, lines: &mut Vec<AddLine>) -> Result<(), ApiError> {
    for l in lines.drain(..) {
        tx.send(Ok(line_bytes(&l)?))
            .await
            .map_err(|_| ApiError::bad_request("client went away"))?;
    }
    Ok(())
}

/// One `add`: what it writes to and how it ends.
struct AddJob {
    state: ApiState,
    opts: ImportOptions,
    sink: Sink,
    pin: bool,
    wrap: bool,
}

impl AddJob {
    /// Imports every part of the upload; returns the answer's lines, or with `stream`, sends
    /// them (and progress lines) down it as they come and returns none.
    async fn run(
        self,
        mut multipart: Multipart,
        stream: Option<&LineSender>,
    ) -> Result<Vec<AddLine>, ApiError> {
        let AddJob {
            state,
            opts,
            sink,
            pin,
            wrap,
        } = self;
        let only_hash = matches!(sink, Sink::Discard);
        let mut lines = Vec::new();
        let mut tree = DirTree::default();
        let mut unnamed: Vec<DirEntry> = Vec::new();
        let mut parts = 0usize;
        while let Some(mut field) = multipart.next_field().await? {
            parts += 1;
            if parts > ADD_PARTS_MAX {
                return Err(ApiError::too_large(format!(
                    "more than {ADD_PARTS_MAX} parts in one add"
                )));
            }
            let comps = part_path(field.file_name().unwrap_or_default())?;
            let ctype = field.content_type().unwrap_or_default().to_owned();
            match ctype.as_str() {
                "application/x-directory" => {
                    if !comps.is_empty() {
                        tree.dir_mut(&comps)?;
                    }
                }
                "application/symlink" => {
                    let mut target = Vec::new();
                    while let Some(chunk) = field.chunk().await? {
                        if target.len() + chunk.len() > ADD_SYMLINK_TARGET_BYTES_MAX {
                            return Err(ApiError::too_large(format!(
                                "symlink target exceeds {ADD_SYMLINK_TARGET_BYTES_MAX} bytes"
                            )));
                        }
                        target.extend_from_slice(&chunk);
                    }
                    let (o, s) = (opts.clone(), sink.clone());
                    let (cid, tsize) =
                        blocking(move || Ok(unixfs::dir::build_symlink(&target, &o, &s)?)).await?;
                    place(&mut tree, &mut unnamed, &mut lines, comps, cid, tsize)?;
                }
                _ => {
                    let (o, s) = (opts.clone(), sink.clone());
                    let progress = stream.cloned().map(|p| (p, comps.join("/")));
                    let imported = import_part(&mut field, move |reader| {
                        let report = |n: u64| {
                            if let Some((p, name)) = &progress {
                                if let Ok(line) = line_bytes(&ProgressLine { name, bytes: n }) {
                                    // A client gone away ends the upload too; its error wins.
                                    let _ = p.blocking_send(Ok(line));
                                }
                            }
                        };
                        unixfs::file::import_file(reader, &o, &s, &report)
                    })
                    .await?;
                    place(
                        &mut tree,
                        &mut unnamed,
                        &mut lines,
                        comps,
                        imported.cid,
                        imported.tsize,
                    )?;
                }
            }
            if let Some(tx) = stream {
                send_lines(tx, &mut lines).await?;
            }
        }
        if parts == 0 {
            return Err(ApiError::bad_request("file argument 'path' is required"));
        }
        let (mut lines, roots) = blocking(move || {
            let mut lines = lines;
            let mut top = tree.finish("", &opts, &sink, &mut lines)?;
            let mut roots: Vec<Cid> = Vec::new();
            if wrap {
                for u in unnamed {
                    top.push(DirEntry {
                        name: u.cid.to_string(),
                        ..u
                    });
                }
                let (cid, tsize) = unixfs::dir::build_directory(
                    top,
                    SHARDING_THRESHOLD_BYTES_DEFAULT,
                    &opts,
                    &sink,
                )?;
                lines.push(AddLine {
                    name: String::new(),
                    hash: cid.to_string(),
                    size: tsize.to_string(),
                });
                roots.push(cid);
            } else {
                roots.extend(unnamed.iter().map(|u| u.cid));
                roots.extend(top.iter().map(|e| e.cid));
            }
            if let (true, Sink::Session(session)) = (pin, &sink) {
                for root in &roots {
                    session.pin_imported_root(root, None)?;
                }
            }
            drop(sink);
            Ok((lines, roots))
        })
        .await?;
        if !only_hash {
            for root in roots {
                super::provide(&state, root).await;
            }
        }
        if let Some(tx) = stream {
            send_lines(tx, &mut lines).await?;
        }
        Ok(lines)
    }
}

/// Records an imported file or symlink under its path (or as an unnamed top-level item).
fn place(
    tree: &mut DirTree,
    unnamed: &mut Vec<DirEntry>,
    lines: &mut Vec<AddLine>,
    comps: Vec<String>,
    cid: Cid,
    tsize: u64,
) -> Result<(), ApiError> {
    let name = if comps.is_empty() {
        cid.to_string()
    } else {
        comps.join("/")
    };
    lines.push(AddLine {
        name,
        hash: cid.to_string(),
        size: tsize.to_string(),
    });
    match comps.last() {
        None => unnamed.push(DirEntry {
            name: String::new(),
            cid,
            tsize,
        }),
        Some(last) => tree.insert_leaf(
            &comps,
            DirEntry {
                name: last.clone(),
                cid,
                tsize,
            },
        )?,
    }
    Ok(())
}

// -------------------------------------------------------------------- cat ----

/// `POST /api/v0/cat?arg=<path>&offset=&length=`: the file's bytes, streamed.
pub async fn cat(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let path = args.required_arg("ipfs-path")?;
    let offset = args.u64("offset")?.unwrap_or(0);
    let length = args.u64("length")?;
    // Resolve and check the node before the headers go out, so that a bad path is a proper
    // error answer rather than a cut stream.
    super::path_root(&path)?;
    let cid = super::resolve(&state, &path).await?;
    let size = {
        let store = super::reading_store(&state);
        blocking(move || file_size(store.as_ref(), &cid)).await?
    };
    let start = offset.min(size);
    let len = length.map_or(size - start, |l| l.min(size - start));
    // The bytes stream as the blocks arrive: the whole file behind a bulk fetch of its DAG, a
    // part of it from the blocks under that part only (as the gateway serves a `Range`, and as
    // kubo's `cat --offset --length` reads).
    let reader = if len < size {
        super::read_parts(&state)
    } else {
        super::read_dag(&state, cid).await?
    };
    let body = blocking_body(move |w| {
        reader
            .cat(&cid, offset, length, w)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain".to_owned()),
            (
                header::HeaderName::from_static("x-stream-output"),
                "1".to_owned(),
            ),
            (
                header::HeaderName::from_static("x-content-length"),
                len.to_string(),
            ),
        ],
        body,
    )
        .into_response())
}

/// The size of the file at `cid`, or kubo's error for something that is not a file.
pub fn file_size(store: &dyn Blockstore, cid: &Cid) -> Result<u64, ApiError> {
    node_size(cid, &export::load(store, cid)?)
}

/// [`file_size`] of a node already read.
pub(crate) fn node_size(cid: &Cid, node: &export::Node) -> Result<u64, ApiError> {
    match node {
        export::Node::Raw(b) => Ok(b.len() as u64),
        export::Node::Pb { fs, .. } => match fs.kind {
            DataType::File | DataType::Raw => Ok(fs.filesize.unwrap_or_else(|| {
                fs.blocksizes
                    .iter()
                    .fold(fs.data.as_ref().map_or(0, |d| d.len() as u64), |a, &b| {
                        a.saturating_add(b)
                    })
            })),
            DataType::Directory | DataType::HamtShard => {
                Err(ApiError::internal(export::ExportError::IsADirectory))
            }
            DataType::Symlink | DataType::Metadata => {
                Err(ApiError::internal(export::ExportError::NotAFile(*cid)))
            }
        },
    }
}

// -------------------------------------------------------------------- get ----

/// `POST /api/v0/get?arg=<path>`: a tar of the file or directory, as kubo sends it.
pub async fn get(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let path = args.required_arg("ipfs-path")?;
    if args.bool("compress", false)? {
        return Err(ApiError::internal("compress is not supported"));
    }
    super::path_root(&path)?;
    let cid = super::resolve(&state, &path).await?;
    let reader = super::read_dag(&state, cid).await?;
    // kubo names the top entry after the last path segment, or the CID.
    let last = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let name = if export::check_entry_name(last).is_ok() && !last.is_empty() {
        last.to_owned()
    } else {
        cid.to_string()
    };
    let body = blocking_body(move |w| {
        let mut tar = TarWriter { out: w };
        tar.entry(reader.store(), &cid, &name, 0)
            .and_then(|()| tar.finish())
            .map_err(|e| e.to_string())
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar"),
            (header::HeaderName::from_static("x-stream-output"), "1"),
        ],
        body,
    )
        .into_response())
}

/// Writes a UnixFS DAG as a tar (GNU long names for paths over 100 bytes).
struct TarWriter<'a> {
    out: &'a mut ChannelWriter,
}

const TAR_BLOCK_BYTES: usize = 512;

impl TarWriter<'_> {
    fn io(e: std::io::Error) -> ApiError {
        ApiError::internal(format!("writing tar: {e}"))
    }

    fn header(
        &mut self,
        path: &str,
        kind: tar::EntryType,
        size: u64,
        link: Option<&[u8]>,
    ) -> Result<(), ApiError> {
        if path.len() > 100 {
            self.long(
                b"././@LongLink",
                tar::EntryType::GNULongName,
                path.as_bytes(),
            )?;
        }
        if let Some(l) = link.filter(|l| l.len() > 100) {
            self.long(b"././@LongLink", tar::EntryType::GNULongLink, l)?;
        }
        let mut h = tar::Header::new_gnu();
        copy_truncated(&mut h.as_old_mut().name, path.as_bytes());
        if let Some(l) = link {
            copy_truncated(&mut h.as_old_mut().linkname, l);
        }
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_mtime(0);
        h.set_cksum();
        self.out.write_all(h.as_bytes()).map_err(Self::io)
    }

    fn long(&mut self, name: &[u8], kind: tar::EntryType, data: &[u8]) -> Result<(), ApiError> {
        let mut h = tar::Header::new_gnu();
        copy_truncated(&mut h.as_old_mut().name, name);
        h.set_entry_type(kind);
        h.set_size(data.len() as u64 + 1);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        self.out.write_all(h.as_bytes()).map_err(Self::io)?;
        self.out.write_all(data).map_err(Self::io)?;
        self.out.write_all(&[0]).map_err(Self::io)?;
        self.pad(data.len() as u64 + 1)
    }

    fn pad(&mut self, size: u64) -> Result<(), ApiError> {
        let rem = (size % TAR_BLOCK_BYTES as u64) as usize;
        if rem != 0 {
            self.out
                .write_all(&[0u8; TAR_BLOCK_BYTES][..TAR_BLOCK_BYTES - rem])
                .map_err(Self::io)?;
        }
        Ok(())
    }

    fn entry(
        &mut self,
        store: &dyn Blockstore,
        cid: &Cid,
        path: &str,
        depth: usize,
    ) -> Result<(), ApiError> {
        if depth > GET_DEPTH_MAX {
            return Err(ApiError::internal(export::ExportError::TooDeep));
        }
        let kind = match export::load(store, cid)? {
            export::Node::Raw(_) => DataType::File,
            export::Node::Pb { fs, .. } => {
                if fs.kind == DataType::Symlink {
                    let target = fs.data.unwrap_or_default();
                    if target.len() > export::SYMLINK_TARGET_BYTES_MAX {
                        return Err(ApiError::internal("symlink target too long"));
                    }
                    return self.header(path, tar::EntryType::Symlink, 0, Some(&target));
                }
                fs.kind
            }
        };
        match kind {
            DataType::File | DataType::Raw => {
                let size = file_size(store, cid)?;
                self.header(path, tar::EntryType::Regular, size, None)?;
                let written = export::cat(store, cid, 0, None, &mut *self.out)?;
                if written != size {
                    return Err(ApiError::internal(format!(
                        "{cid}: wrote {written} bytes of {size}"
                    )));
                }
                self.pad(size)
            }
            DataType::Directory | DataType::HamtShard => {
                self.header(&format!("{path}/"), tar::EntryType::Directory, 0, None)?;
                for e in export::ls(store, cid)? {
                    export::check_entry_name(&e.name)?;
                    self.entry(store, &e.cid, &format!("{path}/{}", e.name), depth + 1)?;
                }
                Ok(())
            }
            DataType::Symlink | DataType::Metadata => {
                Err(ApiError::internal(export::ExportError::NotAFile(*cid)))
            }
        }
    }

    fn finish(&mut self) -> Result<(), ApiError> {
        self.out
            .write_all(&[0u8; 2 * TAR_BLOCK_BYTES])
            .map_err(Self::io)?;
        self.out.flush().map_err(Self::io)
    }
}

fn copy_truncated(dst: &mut [u8], src: &[u8]) {
    let n = dst.len().min(src.len());
    dst[..n].copy_from_slice(&src[..n]);
}

// --------------------------------------------------------------------- ls ----

#[derive(Serialize)]
struct LsLink {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Hash")]
    hash: String,
    #[serde(rename = "Size")]
    size: u64,
    #[serde(rename = "Type")]
    kind: i32,
    #[serde(rename = "Target")]
    target: String,
}

#[derive(Serialize)]
struct LsObject {
    #[serde(rename = "Hash")]
    hash: String,
    #[serde(rename = "Links")]
    links: Vec<LsLink>,
}

#[derive(Serialize)]
struct LsOutput {
    #[serde(rename = "Objects")]
    objects: Vec<LsObject>,
}

/// kubo's `Type` of an `ls` link: the UnixFS data type (raw blocks are files).
fn unixfs_type(kind: EntryKind) -> i32 {
    match kind {
        EntryKind::Directory => 1,
        EntryKind::File | EntryKind::Raw => 2,
        EntryKind::Symlink => 4,
    }
}

/// `POST /api/v0/ls?arg=<path>...`.
pub async fn ls(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let paths = args.required_args("ipfs-path")?;
    // The directory's block and its entries' top blocks, nothing below them.
    let mut cids = Vec::new();
    for p in &paths {
        super::path_root(p)?;
        let cid = super::resolve(&state, p).await?;
        super::prefetch_dir_links(&state, cid).await?;
        cids.push(cid);
    }
    let store = super::reading_store(&state);
    let out = blocking(move || {
        let store = store.as_ref();
        let mut objects = Vec::new();
        for (p, cid) in paths.into_iter().zip(cids) {
            let links = export::ls(store, &cid)?
                .into_iter()
                .map(|e| LsLink {
                    name: e.name,
                    hash: e.cid.to_string(),
                    size: e.size,
                    kind: unixfs_type(e.kind),
                    target: String::new(),
                })
                .collect();
            objects.push(LsObject { hash: p, links });
        }
        Ok(LsOutput { objects })
    })
    .await?;
    Ok(axum::Json(out).into_response())
}
