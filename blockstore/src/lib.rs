//! Content-addressed block storage for ipfs-kit.
//!
//! A block is a byte string named by a CID. This crate owns:
//! - [`Blockstore`], the trait every store implements (sync; callers on an async runtime use
//!   `spawn_blocking`), keyed by the CID's *multihash* so CIDv0 and CIDv1 of the same bytes share
//!   one stored copy, as in kubo;
//! - [`hash`], the multihash functions ipfs-kit can produce and verify;
//! - [`limits`], the size bounds every store enforces;
//! - the persistent default store and the in-memory store used by tests.
//!
//! Architecture invariant: this crate never does network I/O and knows nothing of UnixFS, pins
//! or peers. Every block `get` returns has been checked against its CID (`get_trusted`, for
//! bytes sent to peers who hash them, may rely on a store's crc instead).

pub mod aligned;
mod disk;
mod error;
mod flatfs;
pub mod hash;
pub mod limits;
mod memory;
mod sha256x2;

pub use disk::{CompactStats, DiskBlockstore, DiskOptions};
pub use error::{BlockstoreError, CorruptBlock};
pub use flatfs::FlatfsBlockstore;
pub use memory::MemoryBlockstore;

#[cfg(feature = "bench-candidates")]
mod candidates;
#[cfg(feature = "bench-candidates")]
pub use candidates::{FjallBlockstore, SledBlockstore};

use bytes::Bytes;
use cid::Cid;

/// A block: its CID and its bytes. Constructing one with [`Block::new`] hashes the data, so a
/// `Block` in hand is always consistent with its CID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    cid: Cid,
    data: Bytes,
}

impl Block {
    /// Checks `data` against `cid` and the block size limit.
    pub fn new(cid: Cid, data: Bytes) -> Result<Self, BlockstoreError> {
        limits::check_block_size(data.len())?;
        hash::verify(&cid, &data)?;
        Ok(Self { cid, data })
    }

    /// For callers that just computed `cid` from `data` themselves (the importer). Debug builds
    /// re-check the hash.
    pub fn new_unchecked(cid: Cid, data: Bytes) -> Self {
        debug_assert!(hash::verify(&cid, &data).is_ok());
        Self { cid, data }
    }

    pub fn cid(&self) -> &Cid {
        &self.cid
    }
    pub fn data(&self) -> &Bytes {
        &self.data
    }
    pub fn into_parts(self) -> (Cid, Bytes) {
        (self.cid, self.data)
    }
}

/// A store of blocks, keyed by multihash.
///
/// Contract, for every implementation:
/// - `get` verifies the bytes against the CID before returning them; a mismatch is
///   [`BlockstoreError::Corrupt`], never data.
/// - `get_trusted` may check the bytes with the store's own cheaper integrity check instead of
///   re-hashing them (the pack store's per-record crc32); damage it detects is still
///   [`BlockstoreError::Corrupt`]. Only for bytes handed to a party that hashes them itself
///   (bitswap serving peers); everything the node interprets reads through `get`. A cache in
///   front serves `get_trusted` hits but is not filled by its misses (tiers' `CachedBlockstore`).
/// - `put` of a block over [`limits::BLOCK_SIZE_BYTES_MAX`] is refused.
/// - After `put_many` returns `Ok`, the blocks survive the process being killed (`kill -9`).
///   After `sync` returns `Ok`, they also survive power loss.
/// - Identity CIDs are never stored: `get` answers them from the CID itself, `has` is true.
pub trait Blockstore: Send + Sync {
    /// The block's bytes, checked against `cid`; `None` if absent.
    fn get(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError>;

    /// The block's bytes for a reader that verifies them itself (see the contract above): the
    /// store may skip the hash and rely on its own integrity check. Defaults to [`Self::get`].
    fn get_trusted(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
        self.get(cid)
    }

    /// [`Self::get`] of each CID, in order, with the same checks. A store that hashes what it
    /// returns may verify the blocks together (the pack store: SHA-256 two at a time,
    /// [`hash::HashFn::digest_many`]), so readers holding several CIDs ask here. Defaults to
    /// one `get` each.
    fn get_many(&self, cids: &[Cid]) -> Vec<Result<Option<Bytes>, BlockstoreError>> {
        cids.iter().map(|c| self.get(c)).collect()
    }

    /// Whether the block is present (no verification).
    fn has(&self, cid: &Cid) -> Result<bool, BlockstoreError>;

    /// The stored size of the block, if present.
    fn size_of(&self, cid: &Cid) -> Result<Option<u64>, BlockstoreError>;

    /// Stores blocks. Blocks already present are skipped cheaply.
    fn put_many(&self, blocks: &[Block]) -> Result<(), BlockstoreError>;

    /// Stores blocks that are not expected to be read again soon — what a fetch brought for a
    /// reader that took the blocks as they arrived, or to keep for later — so the store may
    /// write them past its caches (the pack store: with direct I/O, past the page cache, see
    /// [`DiskOptions::direct_writes`]). Defaults to [`Self::put_many`].
    fn put_many_cold(&self, blocks: &[Block]) -> Result<(), BlockstoreError> {
        self.put_many(blocks)
    }

    /// Stores one block.
    fn put(&self, block: &Block) -> Result<(), BlockstoreError> {
        self.put_many(std::slice::from_ref(block))
    }

    /// Removes blocks by CID; returns how many were present.
    fn delete_many(&self, cids: &[Cid]) -> Result<u64, BlockstoreError>;

    /// Every stored block's CID. Stores keep multihashes, so each comes back as a CIDv1 with the
    /// `raw` codec (as kubo's `refs local` does).
    fn all_cids(&self) -> Result<Vec<Cid>, BlockstoreError>;

    /// Makes everything written so far durable against power loss.
    fn sync(&self) -> Result<(), BlockstoreError>;

    /// Number of blocks and total bytes of block data stored.
    fn stat(&self) -> Result<StoreStat, BlockstoreError>;

    /// Gives back the disk space of deleted blocks where the store defers that (the pack
    /// store compacts); returns the bytes reclaimed. Call after a GC's `delete_many`.
    fn reclaim_space(&self) -> Result<u64, BlockstoreError> {
        Ok(0)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStat {
    pub blocks: u64,
    pub data_bytes: u64,
    /// Bytes the store occupies on disk (0 for memory stores).
    pub disk_bytes: u64,
}

/// The CID a store reports for a stored multihash.
pub fn raw_cid_of(mh: multihash::Multihash<64>) -> Cid {
    Cid::new_v1(hash::RAW_CODEC, mh)
}
