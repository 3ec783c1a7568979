//! Integration tests of the cache, the Arrow index and the tiers.
//!
//! One test binary per crate: each binary links the whole dependency tree (libp2p, arrow,
//! aws-sdk), so one link instead of many keeps CI time and disk down. Add a test file by adding
//! its `mod` line here.

mod arc;
mod cache;
mod common;
mod index;
mod index_observer;
mod placement;
mod s3_moto;
mod tier_faulty;
mod tiered_s3;
