//! Chunkers: `size-N`, `rabin[-min-avg-max]`, `buzhash` with kubo (go-ipfs-chunker) parameters.
