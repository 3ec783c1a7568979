//! The exporter: cat (offset/length), get to a directory, ls, and path resolution.
