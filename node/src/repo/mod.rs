//! The on-disk repository: blockstore, pins, config, lock; garbage collection.
