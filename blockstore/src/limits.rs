//! Size bounds enforced by every store (see `shared/LIMITS.md`).

use crate::BlockstoreError;

/// Largest block accepted or produced: 2 MiB, the bitswap and UnixFS block limit
/// (ipfs/specs `src/bitswap-protocol.md`, Block Sizes).
pub const BLOCK_SIZE_BYTES_MAX: usize = 2 * 1024 * 1024;

/// Largest digest an identity CID may carry (ipfs/specs `src/unixfs.md`; kubo rejects 129).
pub const IDENTITY_DIGEST_BYTES_MAX: usize = 128;

/// Largest CID accepted from outside (boxo): 168 bytes.
pub const CID_BYTES_MAX: usize = 168;

pub fn check_block_size(len: usize) -> Result<(), BlockstoreError> {
    if len > BLOCK_SIZE_BYTES_MAX {
        return Err(BlockstoreError::BlockTooLarge {
            size_bytes: len,
            max_bytes: BLOCK_SIZE_BYTES_MAX,
        });
    }
    Ok(())
}
