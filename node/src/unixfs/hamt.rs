//! HAMT-sharded directories (fanout 256, murmur3-x64-64), building and lookup.
