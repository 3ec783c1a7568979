//! Integration tests of the `ipfs-kit` library and binary.
//!
//! One test binary per crate: each binary links the whole dependency tree (libp2p, arrow,
//! aws-sdk), so one link instead of many keeps CI time and disk down. Add a test file by adding
//! its `mod` line here.

mod api;
mod bitswap;
mod bitswap_wake;
mod cli;
mod cluster;
mod cluster_api;
mod cluster_daemon;
mod common;
mod config;
mod dht_fallback;
mod harness;
mod nat_relay;
mod net;
mod net_cli;
mod reprovide;
mod tier_cli;
