//! cluster-sync: the gossip Merkle-CRDT pinset that replaces ipfs-cluster (issue 4).
//!
//! Nothing is built here yet; the crate exists so the workspace has the shape of the design.
//! Architecture invariant (to hold once it has code): the merge logic is a pure state machine
//! with no I/O; the network layer only moves events.
