//! File import: chunks -> leaves -> balanced or trickle DAG, with kubo's exact node bytes.
//!
//! What kubo v0.22 (boxo v0.11.0 `ipld/unixfs/importer`) does, and so what this does:
//!
//! - Leaves: with raw leaves, the chunk itself (codec raw, CIDv1 even when the root is CIDv0).
//!   Otherwise a dag-pb node whose Data is UnixFS `{Type, Data: chunk, filesize: len}`, with
//!   Type `File` in the balanced layout and `Raw` in the trickle layout.
//! - Internal nodes: dag-pb, links with an empty (but present) Name and Tsize = the child's
//!   cumulative size; Data = UnixFS `{Type: File, filesize, blocksizes}`.
//! - Balanced: the first leaf is the root until a second chunk arrives; then the tree grows a
//!   level at a time, every node holding up to `max_links` children. A one-chunk file's root is
//!   the leaf itself. An empty file is an empty leaf (`{Type: File, filesize: 0}`, or an empty
//!   raw block with raw leaves).
//! - Trickle: the root is always an internal node: up to `max_links` leaves, then for depth
//!   1, 2, ... four subtrees of that depth, each built the same way with a depth limit.
//! - CIDs: `opts.hash`, CIDv0 for dag-pb when `opts.version()` is 0, CIDv1 otherwise; with
//!   `--inline`, any block of at most `inline_limit` bytes gets a CIDv1 identity CID (kubo's
//!   `InlineBuilder` wraps the builder of every node). Identity blocks are not sent to the sink.
//!
//! Speed: big files run as a pipeline. A reader thread chunks the input, `W` workers build and
//! hash leaves (worker `i` takes chunks `i, i+W, ...`, so reading their outputs round-robin
//! restores the order without a reorder buffer) and put them into the sink in batches, and the
//! calling thread builds the tree. Every queue is bounded, so memory stays flat. Files of at
//! most [`INLINE_CHUNKS_MAX`] chunks are imported on the calling thread alone.

use super::chunker::{Chunk, Chunker, CHUNK_HEADROOM_BYTES, CHUNK_TAILROOM_BYTES};
use super::{BlockSink, ImportError, ImportOptions, Imported, Layout, BALANCED_LINKS_PER_NODE};
use crate::dag::pb::{put_varint, varint_len, PbLink, PbNode};
use crate::dag::unixfs_pb::{DataType, UnixFsData};
use bytes::Bytes;
use cid::{Cid, Version};
use crossbeam_channel::{bounded, Receiver, Sender};
use ipfs_kit_blockstore::hash::{HashFn, DAG_PB_CODEC, RAW_CODEC};
use ipfs_kit_blockstore::Block;
use std::collections::VecDeque;
use std::io::Read;

/// Files of at most this many chunks are imported without starting threads.
pub const INLINE_CHUNKS_MAX: usize = 4;
/// Leaf-building workers at most (bounded further by the machine's parallelism).
pub const WORKERS_MAX: usize = 4;
/// Chunks queued for each worker.
const WORKER_QUEUE_CHUNKS: usize = 4;
/// Chunks a leaf worker hashes at once (SHA-256 runs two streams at a time: `HashFn::digest_many`).
const LEAVES_HASHED_TOGETHER: usize = 2;
/// Finished leaves queued from each worker to the tree builder.
const RESULT_QUEUE_LEAVES: usize = 16;
/// A batch handed to the sink holds at most this many blocks...
pub const SINK_BATCH_BLOCKS_MAX: usize = 32;
/// ...and at most about this many bytes.
pub const SINK_BATCH_BYTES_MAX: usize = 8 << 20;
/// Links per internal node at most (`Layout::Balanced { max_links }`); keeps a node of full
/// links (about 50 bytes each) far under the block size limit.
pub const LINKS_PER_NODE_MAX: usize = 4096;
/// The largest `--inline-limit` accepted: identity CIDs here hold at most 64 digest bytes
/// (`Multihash<64>`), under the 128 bytes the identity limit allows.
pub const INLINE_LIMIT_BYTES_MAX: usize = 64;
/// kubo's trickle layout: subtrees of each depth repeat this many times.
const TRICKLE_DEPTH_REPEAT: usize = 4;

/// How CIDs are made (kubo's `cid.Builder`, maybe wrapped in an `InlineBuilder`).
#[derive(Clone, Copy, Debug)]
struct CidMaker {
    version: Version,
    hash: HashFn,
    inline_limit: Option<usize>,
}

impl CidMaker {
    fn cid(&self, codec: u64, bytes: &[u8]) -> Result<Cid, ImportError> {
        if self.inlines(bytes) {
            return Ok(Cid::new_v1(codec, HashFn::Identity.digest(bytes)?));
        }
        self.named(codec, self.hash.digest(bytes)?)
    }

    /// [`CidMaker::cid`] of each `(codec, bytes)`, the hashed ones hashed together
    /// ([`HashFn::digest_many`]: SHA-256 two at a time).
    fn cids(&self, items: &[(u64, &[u8])]) -> Result<Vec<Cid>, ImportError> {
        let hashed: Vec<&[u8]> = items
            .iter()
            .filter(|(_, b)| !self.inlines(b))
            .map(|(_, b)| *b)
            .collect();
        let mut digests = self.hash.digest_many(&hashed)?.into_iter();
        items
            .iter()
            .map(|&(codec, bytes)| {
                if self.inlines(bytes) {
                    return self.cid(codec, bytes);
                }
                // `digest_many` answers one digest per input.
                let mh = digests.next().ok_or_else(ended)?;
                self.named(codec, mh)
            })
            .collect()
    }

    fn inlines(&self, bytes: &[u8]) -> bool {
        self.inline_limit.is_some_and(|limit| bytes.len() <= limit)
    }

    fn named(&self, codec: u64, mh: multihash::Multihash<64>) -> Result<Cid, ImportError> {
        // go-cid `Prefix.WithCodec`: a codec other than dag-pb forces CIDv1.
        if self.version == Version::V0 && codec == DAG_PB_CODEC {
            Cid::new_v0(mh).map_err(|e| ImportError::BadOption(format!("CIDv0: {e}")))
        } else {
            Ok(Cid::new_v1(codec, mh))
        }
    }
}

/// Everything fixed for one import.
#[derive(Clone, Copy, Debug)]
struct Plan {
    cids: CidMaker,
    raw_leaves: bool,
    /// UnixFS type of dag-pb leaves: File (balanced) or Raw (trickle).
    leaf_type: DataType,
    max_links: usize,
    trickle: bool,
}

impl Plan {
    fn new(opts: &ImportOptions) -> Result<Plan, ImportError> {
        opts.chunker.validate()?;
        let version = opts.version();
        if version == Version::V0 && opts.hash != HashFn::Sha2_256 {
            return Err(ImportError::BadOption(format!(
                "CIDv0 only supports sha2-256, not {}",
                opts.hash.name()
            )));
        }
        if opts.inline && opts.inline_limit > INLINE_LIMIT_BYTES_MAX {
            return Err(ImportError::BadOption(format!(
                "inline limit {} exceeds the {INLINE_LIMIT_BYTES_MAX}-byte maximum",
                opts.inline_limit
            )));
        }
        let (max_links, trickle) = match opts.layout {
            Layout::Balanced { max_links } => (max_links, false),
            Layout::Trickle => (BALANCED_LINKS_PER_NODE, true),
        };
        if !(2..=LINKS_PER_NODE_MAX).contains(&max_links) {
            return Err(ImportError::BadOption(format!(
                "links per node must be in 2..={LINKS_PER_NODE_MAX}, not {max_links}"
            )));
        }
        Ok(Plan {
            cids: CidMaker {
                version,
                hash: opts.hash,
                inline_limit: opts.inline.then_some(opts.inline_limit),
            },
            raw_leaves: opts.leaves_raw(),
            leaf_type: if trickle {
                DataType::Raw
            } else {
                DataType::File
            },
            max_links,
            trickle,
        })
    }
}

/// A finished node as its parent sees it.
#[derive(Clone, Copy, Debug)]
struct NodeRef {
    cid: Cid,
    /// Cumulative DAG size (the parent's link Tsize).
    tsize: u64,
    /// File bytes under the node (the parent's blocksize).
    file_size: u64,
}

fn is_identity(cid: &Cid) -> bool {
    cid.hash().code() == ipfs_kit_blockstore::hash::IDENTITY
}

/// Builds the leaf block for one chunk, in place in the chunk's buffer.
fn make_leaf(chunk: Chunk, plan: &Plan) -> Result<(NodeRef, Block), ImportError> {
    let mut made = make_leaves(vec![chunk], plan)?;
    made.pop().ok_or_else(ended)
}

/// [`make_leaf`] of each chunk, hashed together (two at a time: [`CidMaker::cids`]).
fn make_leaves(chunks: Vec<Chunk>, plan: &Plan) -> Result<Vec<(NodeRef, Block)>, ImportError> {
    let leaves: Vec<(Bytes, u64, usize)> = chunks
        .into_iter()
        .map(|chunk| leaf_bytes(chunk, plan))
        .collect();
    let items: Vec<(u64, &[u8])> = leaves
        .iter()
        .map(|(b, codec, _)| (*codec, &b[..]))
        .collect();
    let cids = plan.cids.cids(&items)?;
    Ok(leaves
        .into_iter()
        .zip(cids)
        .map(|((bytes, _, n), cid)| {
            let node = NodeRef {
                cid,
                tsize: bytes.len() as u64,
                file_size: n as u64,
            };
            (node, Block::new_unchecked(cid, bytes))
        })
        .collect())
}

/// A chunk's leaf bytes (built in place in the chunk's buffer), codec and file bytes.
fn leaf_bytes(chunk: Chunk, plan: &Plan) -> (Bytes, u64, usize) {
    let n = chunk.len();
    let (mut buf, start, end) = chunk.into_parts();
    if plan.raw_leaves {
        return (Bytes::from(buf).slice(start..end), RAW_CODEC, n);
    }
    // PBNode{Data: UnixFS{Type, Data: chunk, filesize: n}}.
    let n64 = n as u64;
    let inner_len = 2 + 1 + varint_len(n64) + n + 1 + varint_len(n64);
    let mut head = Vec::with_capacity(CHUNK_HEADROOM_BYTES);
    head.push(0x0a);
    put_varint(&mut head, inner_len as u64);
    head.extend_from_slice(&[0x08, plan.leaf_type as u8, 0x12]);
    put_varint(&mut head, n64);
    let mut tail = Vec::with_capacity(CHUNK_TAILROOM_BYTES);
    tail.push(0x18);
    put_varint(&mut tail, n64);
    debug_assert!(head.len() <= start && end + tail.len() <= buf.len());
    let from = start - head.len();
    buf[from..start].copy_from_slice(&head);
    buf[end..end + tail.len()].copy_from_slice(&tail);
    let to = end + tail.len();
    (Bytes::from(buf).slice(from..to), DAG_PB_CODEC, n)
}

/// Blocks waiting to go to the sink.
struct Batch<'s> {
    sink: &'s dyn BlockSink,
    blocks: Vec<Block>,
    bytes: usize,
}

impl<'s> Batch<'s> {
    fn new(sink: &'s dyn BlockSink) -> Self {
        Self {
            sink,
            blocks: Vec::with_capacity(SINK_BATCH_BLOCKS_MAX),
            bytes: 0,
        }
    }

    fn push(&mut self, block: Block) -> Result<(), ImportError> {
        if is_identity(block.cid()) {
            return Ok(());
        }
        self.bytes += block.data().len();
        self.blocks.push(block);
        if self.blocks.len() >= SINK_BATCH_BLOCKS_MAX || self.bytes >= SINK_BATCH_BYTES_MAX {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ImportError> {
        if !self.blocks.is_empty() {
            self.sink.put_blocks(&self.blocks)?;
            self.blocks.clear();
            self.bytes = 0;
        }
        Ok(())
    }
}

/// Leaves in file order, as the layouts pull them.
trait LeafSource {
    /// Whether the file has no more chunks (kubo `DagBuilderHelper.Done`).
    fn done(&mut self) -> Result<bool, ImportError>;
    /// The next leaf; its block is already on its way to the sink.
    fn next_leaf(&mut self, batch: &mut Batch<'_>) -> Result<NodeRef, ImportError>;
}

fn io_err(source: std::io::Error) -> ImportError {
    ImportError::Io {
        path: String::new(),
        source,
    }
}

fn ended() -> ImportError {
    ImportError::Io {
        path: String::new(),
        source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no more chunks"),
    }
}

/// Chunks and hashes on the calling thread.
struct InlineSource<'p, R> {
    plan: &'p Plan,
    pending: VecDeque<Chunk>,
    chunker: Option<Chunker<R>>,
    progress: &'p (dyn Fn(u64) + Sync),
    read_bytes: u64,
}

impl<R: Read> InlineSource<'_, R> {
    fn fill(&mut self) -> Result<(), ImportError> {
        if self.pending.is_empty() {
            if let Some(c) = self.chunker.as_mut() {
                match c.next_chunk().map_err(io_err)? {
                    Some(chunk) => self.pending.push_back(chunk),
                    None => self.chunker = None,
                }
            }
        }
        Ok(())
    }
}

impl<R: Read> LeafSource for InlineSource<'_, R> {
    fn done(&mut self) -> Result<bool, ImportError> {
        self.fill()?;
        Ok(self.pending.is_empty())
    }

    fn next_leaf(&mut self, batch: &mut Batch<'_>) -> Result<NodeRef, ImportError> {
        self.fill()?;
        let chunk = self.pending.pop_front().ok_or_else(ended)?;
        let (node, block) = make_leaf(chunk, self.plan)?;
        batch.push(block)?;
        self.read_bytes += node.file_size;
        (self.progress)(self.read_bytes);
        Ok(node)
    }
}

/// Receives leaves from the workers, round-robin, which is file order.
struct PipelineSource<'p> {
    results: Vec<Receiver<Result<NodeRef, ImportError>>>,
    seq: usize,
    peeked: Option<NodeRef>,
    finished: bool,
    progress: &'p (dyn Fn(u64) + Sync),
    read_bytes: u64,
}

impl PipelineSource<'_> {
    fn peek(&mut self) -> Result<(), ImportError> {
        if self.peeked.is_some() || self.finished {
            return Ok(());
        }
        let rx = &self.results[self.seq % self.results.len()];
        match rx.recv() {
            Ok(Ok(node)) => {
                self.seq += 1;
                self.peeked = Some(node);
            }
            Ok(Err(e)) => return Err(e),
            // The worker for this position is gone: the input ended here (checked against the
            // reader's count when the threads are joined).
            Err(_) => self.finished = true,
        }
        Ok(())
    }
}

impl LeafSource for PipelineSource<'_> {
    fn done(&mut self) -> Result<bool, ImportError> {
        self.peek()?;
        Ok(self.peeked.is_none())
    }

    fn next_leaf(&mut self, _batch: &mut Batch<'_>) -> Result<NodeRef, ImportError> {
        self.peek()?;
        let node = self.peeked.take().ok_or_else(ended)?;
        self.read_bytes += node.file_size;
        (self.progress)(self.read_bytes);
        Ok(node)
    }
}

/// An internal node being filled (kubo `FSNodeOverDag`).
struct Internal {
    links: Vec<PbLink>,
    blocksizes: Vec<u64>,
    file_size: u64,
    children_tsize: u64,
}

impl Internal {
    fn new(max_links: usize) -> Self {
        Self {
            links: Vec::with_capacity(max_links),
            blocksizes: Vec::with_capacity(max_links),
            file_size: 0,
            children_tsize: 0,
        }
    }

    fn add(&mut self, child: NodeRef) {
        self.links.push(PbLink {
            cid: child.cid,
            name: Some(String::new()),
            tsize: Some(child.tsize),
        });
        self.blocksizes.push(child.file_size);
        self.file_size += child.file_size;
        self.children_tsize += child.tsize;
    }

    fn len(&self) -> usize {
        self.links.len()
    }

    fn commit(self, plan: &Plan, batch: &mut Batch<'_>) -> Result<NodeRef, ImportError> {
        let mut data = UnixFsData::new(DataType::File);
        data.filesize = Some(self.file_size);
        data.blocksizes = self.blocksizes;
        let node = PbNode {
            links: self.links,
            data: Some(Bytes::from(data.encode())),
        };
        let bytes = Bytes::from(node.encode());
        let cid = plan.cids.cid(DAG_PB_CODEC, &bytes)?;
        let r = NodeRef {
            cid,
            tsize: bytes.len() as u64 + self.children_tsize,
            file_size: self.file_size,
        };
        batch.push(Block::new_unchecked(cid, bytes))?;
        Ok(r)
    }
}

/// The root of an empty file in the balanced layout (kubo `NewLeafNode(nil, TFile)`).
fn empty_leaf(plan: &Plan, batch: &mut Batch<'_>) -> Result<NodeRef, ImportError> {
    let (bytes, codec) = if plan.raw_leaves {
        (Bytes::new(), RAW_CODEC)
    } else {
        let mut data = UnixFsData::new(DataType::File);
        data.filesize = Some(0);
        let node = PbNode {
            links: Vec::new(),
            data: Some(Bytes::from(data.encode())),
        };
        (Bytes::from(node.encode()), DAG_PB_CODEC)
    };
    let cid = plan.cids.cid(codec, &bytes)?;
    let r = NodeRef {
        cid,
        tsize: bytes.len() as u64,
        file_size: 0,
    };
    batch.push(Block::new_unchecked(cid, bytes))?;
    Ok(r)
}

/// boxo `balanced.Layout`.
fn balanced(
    src: &mut dyn LeafSource,
    plan: &Plan,
    batch: &mut Batch<'_>,
) -> Result<NodeRef, ImportError> {
    if src.done()? {
        return empty_leaf(plan, batch);
    }
    let mut root = src.next_leaf(batch)?;
    let mut depth = 1;
    while !src.done()? {
        let mut node = Internal::new(plan.max_links);
        node.add(root);
        root = balanced_fill(src, plan, batch, node, depth)?;
        depth += 1;
    }
    Ok(root)
}

/// boxo `balanced.fillNodeRec`.
fn balanced_fill(
    src: &mut dyn LeafSource,
    plan: &Plan,
    batch: &mut Batch<'_>,
    mut node: Internal,
    depth: usize,
) -> Result<NodeRef, ImportError> {
    while node.len() < plan.max_links && !src.done()? {
        let child = if depth == 1 {
            src.next_leaf(batch)?
        } else {
            balanced_fill(src, plan, batch, Internal::new(plan.max_links), depth - 1)?
        };
        node.add(child);
    }
    node.commit(plan, batch)
}

/// boxo `trickle.Layout`.
fn trickle(
    src: &mut dyn LeafSource,
    plan: &Plan,
    batch: &mut Batch<'_>,
) -> Result<NodeRef, ImportError> {
    trickle_fill(src, plan, batch, None)
}

/// boxo `trickle.fillTrickleRec`; `max_depth` None is the unlimited root call.
fn trickle_fill(
    src: &mut dyn LeafSource,
    plan: &Plan,
    batch: &mut Batch<'_>,
    max_depth: Option<usize>,
) -> Result<NodeRef, ImportError> {
    let mut node = Internal::new(plan.max_links);
    while node.len() < plan.max_links && !src.done()? {
        node.add(src.next_leaf(batch)?);
    }
    let mut depth = 1;
    while max_depth.is_none_or(|m| depth < m) {
        if src.done()? {
            break;
        }
        for _ in 0..TRICKLE_DEPTH_REPEAT {
            if src.done()? {
                break;
            }
            node.add(trickle_fill(src, plan, batch, Some(depth))?);
        }
        depth += 1;
    }
    node.commit(plan, batch)
}

fn build(
    src: &mut dyn LeafSource,
    plan: &Plan,
    batch: &mut Batch<'_>,
) -> Result<NodeRef, ImportError> {
    if plan.trickle {
        trickle(src, plan, batch)
    } else {
        balanced(src, plan, batch)
    }
}

/// Leaf workers for this machine (asked once: the answer comes from cgroup files).
fn workers_for_machine() -> usize {
    static WORKERS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *WORKERS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, WORKERS_MAX)
    })
}

/// Imports one file's bytes. `path` in the result is empty; the caller fills it in.
pub fn import_file<R: Read + Send>(
    reader: R,
    opts: &ImportOptions,
    sink: &dyn BlockSink,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Imported, ImportError> {
    import_file_with_workers(reader, opts, sink, progress, workers_for_machine())
}

/// [`import_file`] with a given number of leaf workers (1 = everything on this thread).
pub fn import_file_with_workers<R: Read + Send>(
    reader: R,
    opts: &ImportOptions,
    sink: &dyn BlockSink,
    progress: &(dyn Fn(u64) + Sync),
    workers: usize,
) -> Result<Imported, ImportError> {
    let plan = Plan::new(opts)?;
    let mut chunker = Chunker::new(opts.chunker, reader)?;
    let mut pending = VecDeque::new();
    let mut ended = false;
    while pending.len() < INLINE_CHUNKS_MAX {
        match chunker.next_chunk().map_err(io_err)? {
            Some(c) => pending.push_back(c),
            None => {
                ended = true;
                break;
            }
        }
    }
    let workers = workers.clamp(1, WORKERS_MAX);
    let mut batch = Batch::new(sink);
    let root = if ended || workers == 1 {
        let mut src = InlineSource {
            plan: &plan,
            pending,
            chunker: (!ended).then_some(chunker),
            progress,
            read_bytes: 0,
        };
        let root = build(&mut src, &plan, &mut batch)?;
        batch.flush()?;
        root
    } else {
        pipelined(chunker, pending, &plan, sink, progress, workers, &mut batch)?
    };
    Ok(Imported {
        cid: root.cid,
        path: String::new(),
        file_size: root.file_size,
        tsize: root.tsize,
    })
}

type ChunkMsg = Result<Chunk, std::io::Error>;

fn pipelined<R: Read + Send>(
    mut chunker: Chunker<R>,
    pending: VecDeque<Chunk>,
    plan: &Plan,
    sink: &dyn BlockSink,
    progress: &(dyn Fn(u64) + Sync),
    workers: usize,
    batch: &mut Batch<'_>,
) -> Result<NodeRef, ImportError> {
    std::thread::scope(|s| {
        let mut inputs: Vec<Sender<ChunkMsg>> = Vec::with_capacity(workers);
        let mut results = Vec::with_capacity(workers);
        let mut worker_handles = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (in_tx, in_rx) = bounded::<ChunkMsg>(WORKER_QUEUE_CHUNKS);
            let (out_tx, out_rx) = bounded(RESULT_QUEUE_LEAVES);
            inputs.push(in_tx);
            results.push(out_rx);
            worker_handles.push(s.spawn(move || leaf_worker(in_rx, out_tx, plan, sink)));
        }
        let reader = s.spawn(move || {
            let mut seq = 0usize;
            let send = |msg: ChunkMsg, seq: &mut usize| -> bool {
                let ok = inputs[*seq % inputs.len()].send(msg).is_ok();
                *seq += 1;
                ok
            };
            for chunk in pending {
                if !send(Ok(chunk), &mut seq) {
                    return seq;
                }
            }
            loop {
                match chunker.next_chunk() {
                    Ok(Some(chunk)) => {
                        if !send(Ok(chunk), &mut seq) {
                            return seq;
                        }
                    }
                    Ok(None) => return seq,
                    Err(e) => {
                        send(Err(e), &mut seq);
                        return seq;
                    }
                }
            }
        });
        let mut src = PipelineSource {
            results,
            seq: 0,
            peeked: None,
            finished: false,
            progress,
            read_bytes: 0,
        };
        let built = build(&mut src, plan, batch).and_then(|root| {
            batch.flush()?;
            Ok(root)
        });
        let consumed = src.seq;
        // Closing the result queues stops the workers and, through them, the reader.
        drop(src);
        let mut worker_err = None;
        for h in worker_handles {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => worker_err = worker_err.or(Some(e)),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        let sent = match reader.join() {
            Ok(n) => n,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        let root = built?;
        if let Some(e) = worker_err {
            return Err(e);
        }
        if sent != consumed {
            return Err(ImportError::Io {
                path: String::new(),
                source: std::io::Error::other(format!(
                    "importer pipeline lost chunks: {sent} read, {consumed} placed"
                )),
            });
        }
        Ok(root)
    })
}

/// Builds, hashes and stores leaves; sends each leaf's reference on in order.
fn leaf_worker(
    input: Receiver<ChunkMsg>,
    output: Sender<Result<NodeRef, ImportError>>,
    plan: &Plan,
    sink: &dyn BlockSink,
) -> Result<(), ImportError> {
    let mut batch = Batch::new(sink);
    while let Ok(first) = input.recv() {
        // Two chunks when a second is already queued (never waiting for one), hashed together.
        let mut chunks = Vec::with_capacity(LEAVES_HASHED_TOGETHER);
        let mut failed = None;
        for msg in std::iter::once(first).chain(input.try_iter().take(LEAVES_HASHED_TOGETHER - 1)) {
            match msg {
                Ok(chunk) => chunks.push(chunk),
                Err(e) => {
                    failed = Some(io_err(e));
                    break;
                }
            }
        }
        let made = make_leaves(chunks, plan).and_then(|leaves| {
            let mut nodes = Vec::with_capacity(leaves.len());
            for (node, block) in leaves {
                batch.push(block)?;
                nodes.push(node);
            }
            Ok(nodes)
        });
        match made {
            Ok(nodes) => {
                for node in nodes {
                    if output.send(Ok(node)).is_err() {
                        return Ok(());
                    }
                }
            }
            Err(e) => failed = Some(e),
        }
        if let Some(e) = failed {
            let _ = output.send(Err(e));
            return Ok(());
        }
    }
    // Store the last leaves before the tree builder can see the end of this queue.
    let flushed = batch.flush();
    drop(output);
    flushed
}

#[cfg(test)]
#[path = "file/gorand.rs"]
pub(crate) mod gorand;
#[cfg(test)]
mod tests;
