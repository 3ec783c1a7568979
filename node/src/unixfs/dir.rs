//! Directory import: walking a local tree into UnixFS directories (basic and HAMT-sharded).
