//! The one place of this crate that uses `unsafe`: memory-mapping an index snapshot file.
#![allow(unsafe_code)]

use std::fs::File;
use std::path::Path;

/// Maps the whole file read-only and returns it as shared bytes (the mapping lives as long as
/// the last clone).
pub(crate) fn map_file(path: &Path) -> std::io::Result<bytes::Bytes> {
    let file = File::open(path)?;
    // SAFETY: a mapping is only sound while nobody truncates or writes the file underneath it.
    // Index snapshot files are never modified after they are published: the index writes a new
    // snapshot under a temporary name, syncs it and renames it over a *new* generation's name
    // (`snapshot-<generation>.arrow`); an old generation's file is unlinked only after the
    // manifest points elsewhere, and unlinking keeps the inode (and this mapping) intact. The
    // index directory is private to this process (the repository's lock keeps others out).
    let map = unsafe { memmap2::Mmap::map(&file)? };
    Ok(bytes::Bytes::from_owner(map))
}
