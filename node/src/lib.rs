//! ipfs-kit: a self-contained IPFS node.
//!
//! This crate is the library behind the `ipfs-kit` binary and the embedding API:
//! - [`dag`]: IPLD codecs (dag-pb strictly, raw, dag-cbor, dag-json) and link extraction;
//! - [`unixfs`]: the importer (chunkers, layouts, directories, HAMT) and the exporter;
//! - [`car`]: CAR v1 export, CAR v1/v2 import;
//! - [`repo`]: the on-disk repository (blockstore, pins, config) and garbage collection.

pub mod api;
pub mod bitswap;
pub mod car;
pub mod cli;
pub mod cluster;
pub mod cluster_api;
pub mod config;
pub mod dag;
pub mod data_pool;
pub mod gateway;
pub mod harness;
pub mod malloc;
pub mod metrics;
pub mod net;
pub mod repo;
pub mod unixfs;
