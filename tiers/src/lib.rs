//! tiers: the ARC cache, the Arrow index and the storage tiers (local, S3, ...) built on the
//! blockstore (issue 5).
//!
//! Nothing is built here yet; the crate exists so the workspace has the shape of the design.

pub mod placement;
pub mod tier;
pub mod tiered;
