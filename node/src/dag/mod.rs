//! IPLD codecs: dag-pb (strict, our own), the UnixFS Data message, raw; dag-cbor and dag-json
//! through `serde_ipld_dagcbor` / `serde_ipld_dagjson`; and link extraction for DAG walks
//! (pins, GC, CAR export).

pub mod codec;
pub mod links;
pub mod pb;
pub mod refs;
pub mod unixfs_pb;

pub use ipfs_kit_blockstore::hash::{DAG_CBOR_CODEC, DAG_JSON_CODEC, DAG_PB_CODEC, RAW_CODEC};
