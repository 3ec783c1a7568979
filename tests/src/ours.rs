//! The ipfs-kit side of the comparisons: the library importer, exactly as `add` calls it.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use cid::Cid;
use ipfs_kit::unixfs::{self, BlockSink, DiscardSink, ImportOptions, Imported};

/// Imports a file or directory with `opts`, writing blocks to `sink`; returns the root.
pub fn import_into(
    path: &Path,
    opts: &ImportOptions,
    sink: &dyn BlockSink,
) -> Result<Imported, String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let progress = |_bytes: u64| {};
    if meta.is_dir() {
        let mut on_added = |_entry: &Imported| {};
        unixfs::dir::import_path(path, opts, sink, &mut on_added, &progress)
            .map_err(|e| e.to_string())
    } else {
        let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let reader = BufReader::with_capacity(1 << 20, file);
        unixfs::file::import_file(reader, opts, sink, &progress).map_err(|e| e.to_string())
    }
}

/// The root CID of a file or directory, blocks discarded (`add --only-hash`).
pub fn root_cid(path: &Path, opts: &ImportOptions) -> Result<Cid, String> {
    import_into(path, opts, &DiscardSink).map(|i| i.cid)
}

/// [`root_cid`] as a string, the form the reference tools print.
pub fn root_string(path: &Path, opts: &ImportOptions) -> Result<String, String> {
    root_cid(path, opts).map(|c| c.to_string())
}
