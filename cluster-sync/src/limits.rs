//! Every bound of cluster-sync in one place: sizes of what peers send us, counts the replica keeps
//! in memory, and the defaults of batching, gossip and compaction.
//!
//! Sources: gossipsub's default `max_transmit_size` is 64 KiB (rust-libp2p and go-libp2p), so an
//! announcement of heads must fit in it; bitswap moves blocks of at most 2 MiB, so deltas and
//! snapshot blocks stay below that (`ipfs_kit_blockstore` enforces 2 MiB on every block).
//! ipfs-cluster's defaults: `replication_factor_min/max = -1` (everywhere), `concurrent_pins = 10`.

/// gossipsub's default maximum message size; an encoded `Announcement` never exceeds it.
pub const BROADCAST_BYTES_MAX: usize = 64 * 1024;
/// Heads carried in one announcement (1,024 CIDs of 36 bytes encode to ~40 KiB, under 64 KiB).
pub const ANNOUNCED_HEADS_MAX: usize = 1024;
/// Parents one delta may link to (the newest heads first).
pub const DELTA_PARENTS_MAX: usize = 1024;
/// Encoded size of one delta block we accept (well under bitswap's 2 MiB block limit).
pub const DELTA_BYTES_MAX: usize = 1024 * 1024;
/// Ops in one delta we accept.
pub const DELTA_OPS_MAX: usize = 8192;
/// Tags one op may supersede (each is a delta id the writer had observed for the CID).
pub const OP_REMOVED_TAGS_MAX: usize = 256;
/// A pinned CID in binary form (LIMITS.md: CIDs <= 168 bytes).
pub const CID_BYTES_MAX: usize = 168;

/// Batching is on by default: a delta is cut when it has this many ops...
pub const BATCH_OPS_MAX_DEFAULT: usize = 1000;
/// ...or when its encoded ops reach this size...
pub const BATCH_BYTES_MAX: usize = 512 * 1024;
/// ...or when its oldest op has waited this long.
pub const BATCH_DELAY_MS_DEFAULT: u64 = 200;

/// Heads are re-announced this often even when nothing changed (heals lost messages and partitions).
pub const ANNOUNCE_INTERVAL_MS_DEFAULT: u64 = 5_000;
/// A block fetch not answered within this time is asked again.
pub const FETCH_TIMEOUT_MS_DEFAULT: u64 = 2_000;
/// After this many unanswered attempts at one peer, the next known peer is asked; after all of
/// them, a snapshot is fetched when one is usable.
pub const FETCH_ATTEMPTS_MAX: u32 = 4;
/// Blocks requested and not yet received, across all peers.
pub const FETCHES_IN_FLIGHT_MAX: usize = 4096;
/// Deltas received whose ancestors are still missing.
pub const PENDING_DELTAS_MAX: usize = 16 * 1024;
/// Bytes of those pending deltas.
pub const PENDING_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Ids of deltas refused (untrusted author, bad signature, undecodable), remembered so they are
/// not fetched again; the oldest is forgotten first.
pub const REJECTED_IDS_MAX: usize = 64 * 1024;
/// Peers whose last announced snapshot is remembered.
pub const PEERS_TRACKED_MAX: usize = 4096;

/// One snapshot chunk is cut at this size when written...
pub const SNAPSHOT_CHUNK_BYTES_TARGET: usize = 1024 * 1024;
/// ...and accepted up to this size (bitswap's block limit).
pub const SNAPSHOT_CHUNK_BYTES_MAX: usize = 2 * 1024 * 1024;
/// Chunks one snapshot may have (4,096 x 2 MiB = 8 GiB, tens of millions of pins).
pub const SNAPSHOT_CHUNKS_MAX: usize = 4096;
/// Snapshot root block size.
pub const SNAPSHOT_ROOT_BYTES_MAX: usize = 1024 * 1024;
/// Compaction keeps the bodies of the newest deltas (by priority distance from the highest) so
/// peers a little behind can still fetch them instead of the whole snapshot.
pub const COMPACT_KEEP_PRIORITIES_DEFAULT: u64 = 16;
/// A replica compacts by itself once it stores this many delta bodies (0 turns it off).
pub const COMPACT_DELTAS_THRESHOLD_DEFAULT: usize = 10_000;

/// Keys in a trust set written into a snapshot.
pub const TRUSTED_PEERS_MAX: usize = 1024;
/// Pin name (ipfs-cluster puts no limit; 256 bytes as the node's pin names).
pub const PIN_NAME_BYTES_MAX: usize = 256;
/// Metadata entries per pin.
pub const PIN_METADATA_ENTRIES_MAX: usize = 32;
/// Metadata key size.
pub const PIN_METADATA_KEY_BYTES_MAX: usize = 128;
/// Metadata value size.
pub const PIN_METADATA_VALUE_BYTES_MAX: usize = 1024;
/// Allocations (and user allocations) per pin; also bounds replication factors.
pub const PIN_ALLOCATIONS_MAX: usize = 256;

/// One line of a JSON-lines state export.
pub const EXPORT_LINE_BYTES_MAX: usize = 256 * 1024;
