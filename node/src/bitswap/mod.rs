//! Bitswap, written here: the wire codec and the pure state machines behind it.
//!
//! - [`protocol`]: the `/ipfs/bitswap/1.{0,1,2}.0` message codec and framing, with every
//!   inbound size bounded;
//! - [`ledger`]: the server side, [`ledger::ServerEngine`] — per-peer wantlists, HAVE /
//!   DONT_HAVE, fair scheduling with per-peer backpressure;
//! - [`session`]: the client side, [`session::ClientSession`] — who has what, want-have /
//!   want-block spreading, rebroadcast, the DHT fallback.
//!
//! Neither state machine does I/O: they take events (with the time injected) and return
//! actions, so tests drive them deterministically. On top, in the rust-libp2p shape:
//! - [`handler`]: the per-connection `ConnectionHandler` — inbound and outbound streams,
//!   length-prefixed frames, limits — that only moves frames;
//! - [`behaviour`]: the swarm-wide `NetworkBehaviour` that moves events between the handlers
//!   and the state machines, and hands received blocks to the node (`net/`).

pub mod behaviour;
pub mod handler;
pub mod ledger;
pub mod protocol;
pub mod session;

pub use behaviour::{BitswapStat, SessionId};
pub use protocol::{
    BlockPresence, Message, PresenceType, ProtocolError, ProtocolVersion, WantEntry, WantType,
    Wantlist,
};

#[cfg(test)]
mod sim_tests;
