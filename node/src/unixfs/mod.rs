//! UnixFS: the importer (files, directories, HAMT shards, symlinks) and the exporter.
//!
//! Architecture invariant: for the same input and options, the importer produces the same root
//! CID as kubo v0.22 (`ipfs add`). Every choice that changes node bytes (leaf type, link order,
//! Tsize, the HAMT switch-over) follows kubo/boxo, not taste.
//!
//! The importer writes through a [`BlockSink`], so `add`, `add --only-hash` and tests share one
//! code path; the repository layer wraps the sink to guard in-flight blocks from GC.

pub mod chunker;
pub mod dir;
pub mod direct_write;
pub mod export;
pub mod file;
pub mod hamt;

use cid::{Cid, Version};
use ipfs_kit_blockstore::{hash::HashFn, Block, Blockstore, BlockstoreError};

/// Where the importer puts the blocks it makes. Called with batches, possibly from several
/// threads at once.
pub trait BlockSink: Sync {
    fn put_blocks(&self, blocks: &[Block]) -> Result<(), BlockstoreError>;
}

/// Writes into a blockstore.
pub struct StoreSink<'a>(pub &'a dyn Blockstore);

impl BlockSink for StoreSink<'_> {
    fn put_blocks(&self, blocks: &[Block]) -> Result<(), BlockstoreError> {
        self.0.put_many(blocks)
    }
}

/// Drops every block (`add --only-hash`).
pub struct DiscardSink;

impl BlockSink for DiscardSink {
    fn put_blocks(&self, _blocks: &[Block]) -> Result<(), BlockstoreError> {
        Ok(())
    }
}

/// `--chunker`: `size-N` (default `size-262144`), `rabin`, `rabin-AVG`, `rabin-MIN-AVG-MAX`,
/// `buzhash`, with kubo's (go-ipfs-chunker's) parameters and limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkerSpec {
    Size(usize),
    Rabin { min: usize, avg: usize, max: usize },
    Buzhash,
}

/// DAG layout of a file: `Balanced` (default, 174 links per node) or `--trickle`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Balanced { max_links: usize },
    Trickle,
}

/// Default chunk size: 256 KiB (kubo `size-262144`).
pub const CHUNK_SIZE_BYTES_DEFAULT: usize = 262_144;
/// Links per node in the balanced layout (kubo's default).
pub const BALANCED_LINKS_PER_NODE: usize = 174;
/// kubo's `--inline-limit` default: blocks up to this size become identity CIDs with `--inline`.
pub const INLINE_LIMIT_BYTES_DEFAULT: usize = 32;

/// The options of `ipfs-kit add`, with kubo's defaults and kubo's implications (see
/// [`ImportOptions::leaves_raw`] and [`ImportOptions::version`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportOptions {
    pub chunker: ChunkerSpec,
    pub layout: Layout,
    /// `--raw-leaves`; `None` = not given (CIDv1 then implies raw leaves, as in kubo).
    pub raw_leaves: Option<bool>,
    /// `--cid-version`; `None` = not given (0, or 1 when the hash is not sha2-256).
    pub cid_version: Option<Version>,
    /// `--hash`.
    pub hash: HashFn,
    /// `--inline`: blocks up to `inline_limit` bytes become identity CIDs.
    pub inline: bool,
    pub inline_limit: usize,
    /// `--hidden`: include dot-files in recursive adds (kubo's default: no).
    pub hidden: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            chunker: ChunkerSpec::Size(CHUNK_SIZE_BYTES_DEFAULT),
            layout: Layout::Balanced {
                max_links: BALANCED_LINKS_PER_NODE,
            },
            raw_leaves: None,
            cid_version: None,
            hash: HashFn::Sha2_256,
            inline: false,
            inline_limit: INLINE_LIMIT_BYTES_DEFAULT,
            hidden: false,
        }
    }
}

impl ImportOptions {
    /// The CID version in effect: as given, else 1 for a hash other than sha2-256, else 0.
    pub fn version(&self) -> Version {
        match self.cid_version {
            Some(v) => v,
            None if self.hash != HashFn::Sha2_256 => Version::V1,
            None => Version::V0,
        }
    }

    /// Whether leaves are raw blocks: as given, else true exactly for CIDv1.
    pub fn leaves_raw(&self) -> bool {
        self.raw_leaves.unwrap_or(self.version() == Version::V1)
    }
}

/// One file or directory the importer finished, as `add` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    pub cid: Cid,
    /// The path as kubo prints it in `added <cid> <path>` (relative, `/`-separated).
    pub path: String,
    /// Bytes of file content (0 for directories).
    pub file_size: u64,
    /// Cumulative size of the DAG, as kubo puts in a parent link's Tsize.
    pub tsize: u64,
}

/// Errors from importing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] BlockstoreError),
    #[error("invalid chunker {spec:?}: {reason}")]
    BadChunker { spec: String, reason: String },
    #[error("invalid option: {0}")]
    BadOption(String),
    #[error("{path}: unsupported file type")]
    UnsupportedFileType { path: String },
}
