//! UnixFS: the importer (files, directories, HAMT shards, symlinks) and the exporter.
//! Must produce the same CIDs as kubo v0.22 for the same options.

pub mod chunker;
pub mod dir;
pub mod export;
pub mod file;
pub mod hamt;
