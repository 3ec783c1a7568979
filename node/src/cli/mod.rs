//! The `ipfs-kit` command line: kubo's verbs over a local repository.
