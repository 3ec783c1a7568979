//! The storage engines the pack store was measured against (feature `bench-candidates`).
//! Both key blocks by multihash bytes and honour the trait's durability contract: fjall
//! flushes its journal to the kernel on every batch, sled is flushed after every batch
//! (it would otherwise buffer up to 500 ms in process memory).

mod fjall_store;
mod sled_store;

pub use fjall_store::FjallBlockstore;
pub use sled_store::SledBlockstore;

use crate::BlockstoreError;

fn engine(e: impl std::fmt::Display) -> BlockstoreError {
    BlockstoreError::Engine(e.to_string())
}

fn mh_of_key(key: &[u8]) -> Result<multihash::Multihash<64>, BlockstoreError> {
    multihash::Multihash::<64>::from_bytes(key)
        .map_err(|e| BlockstoreError::CorruptRepo(format!("bad key in store: {e}")))
}
