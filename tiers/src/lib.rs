//! tiers: the ARC cache, the Arrow index and the storage tiers (local, S3, ...) built on the
//! blockstore (issue 5).
//!
//! - [`arc`]: the adaptive replacement cache sized in bytes, with per-block heat; [`lru`] is the
//!   baseline it is benchmarked against.
//! - [`cache`]: [`cache::CachedBlockstore`], an ARC in front of any blockstore.
//! - [`index`]: the Arrow index of every block (Parquet + delta segments, memory-mapped IPC
//!   snapshot, CID lookups by binary search, filters and sorts with Arrow kernels).
//! - [`placement`] (the pure policy), [`tiered`] (the tiered store and the mover), [`runner`]
//!   (one placement round from the index's statistics).

pub mod arc;
pub mod cache;
pub mod index;
pub mod lru;
pub mod placement;
pub mod runner;
pub mod tier;
pub mod tiered;
