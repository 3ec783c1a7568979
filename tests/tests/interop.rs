//! Interop tests against real kubo, Helia and kubo-rpc-client, and the CLI end to end.
//!
//! One test binary per crate: each binary links the whole dependency tree (libp2p, arrow,
//! aws-sdk), so one link instead of many keeps CI time and disk down. Add a test file by adding
//! its `mod` line here.

mod car_interop;
mod cli_interop;
mod dns;
mod helia_bitswap;
mod helia_cids;
mod helia_gateway;
mod kubo_bitswap;
mod kubo_cids;
mod kubo_routing;
mod kubo_swarm;
mod rpc_client;
