//! cluster-sync: the gossip Merkle-CRDT pinset that replaces ipfs-cluster (issue 4).
//!
//! Everything here is pure: the replica (`replica`), the allocator (`allocator`) and the pin
//! tracker (`tracker`) are state machines taking events and injected time and returning actions;
//! `store` persists what a replica asks to persist (redb), `export` reads and writes the state as
//! JSON lines, and `sim` drives many replicas over a simulated lossy network, deterministically.
//!
//! Architecture invariant: no network I/O and no clock in this crate; the node's network layer
//! (gossipsub for announcements, bitswap for blocks) only moves events and actions.

pub mod allocator;
pub mod codec;
pub mod export;
pub mod limits;
pub mod replica;
pub mod sim;
pub mod state;
pub mod store;
pub mod tracker;
pub mod types;

pub use codec::{Announcement, DecodeError};
pub use replica::{Action, Event, MemoryStats, Persist, Replica, ReplicaConfig, Stored};
pub use state::{Changes, PinSet};
pub use types::{keypair_from_secret, DeltaId, PeerKey, Pin, PinMode, PinSpec, PinSpecError};
