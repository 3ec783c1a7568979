//! Wire formats: delta blocks, snapshot blocks and head announcements, all dag-cbor.
//!
//! A delta block is `{d: body, s: signature}` where `body = {v, k, author, prio, parents, ops}`
//! and the signature is Ed25519 by `author` over `SIGNING_DOMAIN || dag-cbor(body)`. Parents are
//! IPLD links (tag 42), so any dag walker sees the Merkle DAG. The block's CID is CIDv1, dag-cbor,
//! sha2-256; a block must be the canonical encoding of what it decodes to (re-encoding gives the
//! same bytes), so one signed body has exactly one CID and cannot be replayed under another.
//!
//! A snapshot is a signed root `{d: {v, k, author, prio, heads, chunks, pins, ctx}, s}` linking to
//! unsigned chunk blocks (covered by the root's signature through their CIDs). A chunk holds a
//! table of tags (delta id, priority, author), the pins as `[cid, tag index, spec]` tuples, and a slice of
//! the causal context (ids of the deltas the snapshot covers).

use cid::Cid;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::limits::*;
use crate::types::{check_cid, DeltaId, PeerKey, PinSpec, PinSpecError, Signature};

/// The multicodec of dag-cbor.
pub const DAG_CBOR_CODEC: u64 = 0x71;
/// The multihash code of sha2-256.
pub const SHA2_256_CODE: u64 = 0x12;
/// Prefix of every signed message, so a signature made here means nothing elsewhere.
pub const SIGNING_DOMAIN: &[u8] = b"ipfs-kit/cluster-sync/v1\0";
const FORMAT_VERSION: u8 = 1;
const KIND_DELTA: u8 = 0;
const KIND_SNAPSHOT: u8 = 1;

/// Why a block or an announcement from a peer is refused.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{what} of {len} bytes, more than {max}")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{what}: {count} entries, more than {max}")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
    #[error("bytes do not hash to the CID")]
    HashMismatch,
    #[error("not a CIDv1 dag-cbor sha2-256 link: {0}")]
    BadLink(Cid),
    #[error("dag-cbor: {0}")]
    Cbor(String),
    #[error("not the canonical encoding")]
    NotCanonical,
    #[error("unsupported format version {0} or kind {1}")]
    Version(u8, u8),
    #[error("bad signature")]
    BadSignature,
    #[error("invalid pin: {0}")]
    Pin(#[from] PinSpecError),
    #[error("invalid snapshot: {0}")]
    Snapshot(&'static str),
}

/// The CID of a block of ours: CIDv1, dag-cbor, sha2-256.
pub fn block_cid(bytes: &[u8]) -> Cid {
    let digest: [u8; 32] = Sha256::digest(bytes).into();
    delta_cid(&DeltaId(digest))
}

/// The CID of a delta (or snapshot block) from its id (the sha2-256 digest).
pub fn delta_cid(id: &DeltaId) -> Cid {
    match multihash::Multihash::<64>::wrap(SHA2_256_CODE, &id.0) {
        Ok(mh) => Cid::new_v1(DAG_CBOR_CODEC, mh),
        // 32 bytes always fit in 64.
        Err(_) => Cid::default(),
    }
}

/// The id of a delta CID, refusing any other kind of CID.
pub fn delta_id(cid: &Cid) -> Result<DeltaId, DecodeError> {
    let mh = cid.hash();
    if cid.version() != cid::Version::V1
        || cid.codec() != DAG_CBOR_CODEC
        || mh.code() != SHA2_256_CODE
    {
        return Err(DecodeError::BadLink(*cid));
    }
    <[u8; 32]>::try_from(mh.digest())
        .map(DeltaId)
        .map_err(|_| DecodeError::BadLink(*cid))
}

fn check_hash(cid: &Cid, bytes: &[u8]) -> Result<DeltaId, DecodeError> {
    let id = delta_id(cid)?;
    let digest: [u8; 32] = Sha256::digest(bytes).into();
    if digest != id.0 {
        return Err(DecodeError::HashMismatch);
    }
    Ok(id)
}

fn to_cbor<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing our own plain structs into a Vec cannot fail.
    serde_ipld_dagcbor::to_vec(v).unwrap_or_default()
}

fn from_cbor<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, DecodeError> {
    serde_ipld_dagcbor::from_slice(bytes).map_err(|e| DecodeError::Cbor(e.to_string()))
}

/// A pin or unpin of one CID inside a delta. `pin: Some` adds a tag (this delta) carrying the
/// spec; `pin: None` is an unpin. Either way `removes` lists the tags (delta ids) the writer had
/// observed for the CID: they are superseded. Concurrent tags not listed survive: add wins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    #[serde(rename = "c")]
    pub cid: Cid,
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<PinSpec>,
    #[serde(rename = "t", default, skip_serializing_if = "Vec::is_empty")]
    pub removes: Vec<DeltaId>,
}

#[derive(Serialize, Deserialize)]
struct DeltaBody {
    v: u8,
    k: u8,
    author: PeerKey,
    prio: u64,
    parents: Vec<Cid>,
    ops: Vec<Op>,
}

#[derive(Serialize, Deserialize)]
struct Signed<B> {
    d: B,
    s: Signature,
}

/// A decoded, hash-checked, signature-checked delta (trust is the replica's business).
#[derive(Clone, Debug)]
pub struct Delta {
    pub id: DeltaId,
    pub author: PeerKey,
    pub priority: u64,
    pub parents: Vec<DeltaId>,
    pub ops: Vec<Op>,
}

fn sign_body<B: Serialize>(key: &libp2p_identity::ed25519::Keypair, body: &B) -> Signature {
    let mut msg = SIGNING_DOMAIN.to_vec();
    msg.extend_from_slice(&to_cbor(body));
    let sig = key.sign(&msg);
    let mut out = [0u8; 64];
    if sig.len() == 64 {
        out.copy_from_slice(&sig);
    }
    Signature(out)
}

fn verify_body<B: Serialize>(
    author: &PeerKey,
    body: &B,
    sig: &Signature,
) -> Result<(), DecodeError> {
    let pk = libp2p_identity::ed25519::PublicKey::try_from_bytes(&author.0)
        .map_err(|_| DecodeError::BadSignature)?;
    let mut msg = SIGNING_DOMAIN.to_vec();
    msg.extend_from_slice(&to_cbor(body));
    if pk.verify(&msg, &sig.0) {
        Ok(())
    } else {
        Err(DecodeError::BadSignature)
    }
}

/// Encode and sign a delta; returns its CID and block bytes.
pub fn encode_delta(
    key: &libp2p_identity::ed25519::Keypair,
    priority: u64,
    parents: &[DeltaId],
    ops: Vec<Op>,
) -> (Cid, Vec<u8>) {
    let body = DeltaBody {
        v: FORMAT_VERSION,
        k: KIND_DELTA,
        author: PeerKey(key.public().to_bytes()),
        prio: priority,
        parents: parents.iter().map(delta_cid).collect(),
        ops,
    };
    let s = sign_body(key, &body);
    let bytes = to_cbor(&Signed { d: body, s });
    (block_cid(&bytes), bytes)
}

/// Decode a delta block fetched for `cid`: size, hash, canonical form, bounds, signature.
pub fn decode_delta(cid: &Cid, bytes: &[u8]) -> Result<Delta, DecodeError> {
    if bytes.len() > DELTA_BYTES_MAX {
        return Err(DecodeError::TooLarge {
            what: "delta",
            len: bytes.len(),
            max: DELTA_BYTES_MAX,
        });
    }
    let id = check_hash(cid, bytes)?;
    let signed: Signed<DeltaBody> = from_cbor(bytes)?;
    let b = &signed.d;
    if b.v != FORMAT_VERSION || b.k != KIND_DELTA {
        return Err(DecodeError::Version(b.v, b.k));
    }
    if b.parents.len() > DELTA_PARENTS_MAX {
        return Err(DecodeError::TooMany {
            what: "delta parents",
            count: b.parents.len(),
            max: DELTA_PARENTS_MAX,
        });
    }
    if b.ops.len() > DELTA_OPS_MAX {
        return Err(DecodeError::TooMany {
            what: "delta ops",
            count: b.ops.len(),
            max: DELTA_OPS_MAX,
        });
    }
    for op in &b.ops {
        check_cid(&op.cid)?;
        if op.removes.len() > OP_REMOVED_TAGS_MAX {
            return Err(DecodeError::TooMany {
                what: "op removes",
                count: op.removes.len(),
                max: OP_REMOVED_TAGS_MAX,
            });
        }
        if let Some(p) = &op.pin {
            p.validate()?;
        }
    }
    if to_cbor(&signed) != bytes {
        return Err(DecodeError::NotCanonical);
    }
    verify_body(&b.author, b, &signed.s)?;
    let parents = b
        .parents
        .iter()
        .map(delta_id)
        .collect::<Result<Vec<_>, _>>()?;
    let Signed { d, .. } = signed;
    Ok(Delta {
        id,
        author: d.author,
        priority: d.prio,
        parents,
        ops: d.ops,
    })
}

/// The encoded size one op adds to a delta (for cutting batches by size).
pub fn op_encoded_len(op: &Op) -> usize {
    to_cbor(op).len()
}

/// What a replica broadcasts on the cluster topic: its heads and its latest snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Announcement {
    #[serde(rename = "h")]
    pub heads: Vec<Cid>,
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Cid>,
}

impl Announcement {
    /// The gossip message bytes (at most `BROADCAST_BYTES_MAX` when `heads` is within bounds).
    pub fn encode(&self) -> Vec<u8> {
        to_cbor(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Announcement, DecodeError> {
        if bytes.len() > BROADCAST_BYTES_MAX {
            return Err(DecodeError::TooLarge {
                what: "announcement",
                len: bytes.len(),
                max: BROADCAST_BYTES_MAX,
            });
        }
        let a: Announcement = from_cbor(bytes)?;
        a.check()?;
        Ok(a)
    }

    /// Bounds and link kinds (also applied to announcements handed over already decoded).
    pub fn check(&self) -> Result<(), DecodeError> {
        if self.heads.len() > ANNOUNCED_HEADS_MAX {
            return Err(DecodeError::TooMany {
                what: "announced heads",
                count: self.heads.len(),
                max: ANNOUNCED_HEADS_MAX,
            });
        }
        for h in self.heads.iter().chain(self.snapshot.iter()) {
            delta_id(h)?;
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct SnapBody {
    v: u8,
    k: u8,
    author: PeerKey,
    prio: u64,
    heads: Vec<(Cid, u64)>,
    chunks: Vec<Cid>,
    pins: u64,
    ctx: u64,
    trust: Vec<PeerKey>,
}

/// A decoded snapshot root.
#[derive(Clone, Debug)]
pub struct SnapshotRoot {
    pub author: PeerKey,
    pub priority: u64,
    pub heads: Vec<(DeltaId, u64)>,
    pub chunks: Vec<Cid>,
    pub pins: u64,
    pub context_len: u64,
    /// The author's trust set when it wrote the snapshot (sorted).
    pub trust: Vec<PeerKey>,
}

/// A pin with allocations inside a chunk: (CID, tag index, spec without its peer lists,
/// allocation indexes, user allocation indexes).
pub type AllocatedPin = (Cid, u32, PinSpec, Vec<u16>, Vec<u16>);
/// A tag as a snapshot carries it: (delta id, priority, author).
pub type SnapshotTag = (DeltaId, u64, PeerKey);

/// One chunk of a snapshot.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SnapshotChunk {
    /// (delta id, priority, author) of the tags the pins below refer to by index.
    pub tags: Vec<(DeltaId, u64, PeerKey)>,
    /// (pinned CID, index into `tags`, spec) of pins without allocations.
    pub pins: Vec<(Cid, u32, PinSpec)>,
    /// Peers the allocations below refer to by index (a peer key costs 34 bytes, an index 1-3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<PeerKey>,
    /// (CID, tag index, spec without its peer lists, allocations, user allocations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allocated: Vec<AllocatedPin>,
    /// Part of the causal context: ids of deltas the snapshot covers.
    pub ctx: Vec<DeltaId>,
}

impl SnapshotChunk {
    /// Every pin with its tag (delta id, priority, author) and full spec.
    pub fn resolve(self) -> Result<Vec<(Cid, SnapshotTag, PinSpec)>, DecodeError> {
        let tag = |i: u32| {
            self.tags
                .get(i as usize)
                .copied()
                .ok_or(DecodeError::Snapshot("tag index out of range"))
        };
        let peers = |v: &[u16]| {
            v.iter()
                .map(|i| {
                    self.peers
                        .get(*i as usize)
                        .copied()
                        .ok_or(DecodeError::Snapshot("peer index out of range"))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let mut out = Vec::with_capacity(self.pins.len() + self.allocated.len());
        for (c, t, spec) in &self.pins {
            out.push((*c, tag(*t)?, spec.clone()));
        }
        for (c, t, spec, a, u) in &self.allocated {
            let spec = PinSpec {
                allocations: peers(a)?,
                user_allocations: peers(u)?,
                ..spec.clone()
            };
            spec.validate()?;
            out.push((*c, tag(*t)?, spec));
        }
        Ok(out)
    }
}

/// Builds snapshot chunks, cutting one when it reaches `SNAPSHOT_CHUNK_BYTES_TARGET`.
#[derive(Default)]
pub struct ChunkBuilder {
    chunk: SnapshotChunk,
    tag_index: std::collections::HashMap<DeltaId, u32>,
    peer_index: std::collections::HashMap<PeerKey, u16>,
    est_bytes: usize,
    /// Finished chunks: (CID, bytes).
    pub blocks: Vec<(Cid, Vec<u8>)>,
}

impl ChunkBuilder {
    fn cut(&mut self) {
        let chunk = std::mem::take(&mut self.chunk);
        self.blocks.push(encode_chunk(&chunk));
        self.tag_index.clear();
        self.peer_index.clear();
        self.est_bytes = 0;
    }

    fn peer_ix(&mut self, p: &PeerKey) -> u16 {
        if let Some(i) = self.peer_index.get(p) {
            return *i;
        }
        let i = self.chunk.peers.len() as u16;
        self.chunk.peers.push(*p);
        self.peer_index.insert(*p, i);
        self.est_bytes += 35;
        i
    }

    pub fn add_pin(&mut self, cid: Cid, tag: (DeltaId, u64, PeerKey), spec: &PinSpec) {
        let peers_needed = spec.allocations.len() + spec.user_allocations.len();
        if self.chunk.peers.len() + peers_needed >= u16::MAX as usize {
            self.cut();
        }
        let t = match self.tag_index.get(&tag.0) {
            Some(i) => *i,
            None => {
                let i = self.chunk.tags.len() as u32;
                self.chunk.tags.push(tag);
                self.tag_index.insert(tag.0, i);
                self.est_bytes += 80;
                i
            }
        };
        self.est_bytes += cid.encoded_len() + 8 + spec.name.len() + 3 * peers_needed + 16;
        self.est_bytes += spec
            .metadata
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum::<usize>();
        if peers_needed == 0 {
            self.chunk.pins.push((cid, t, spec.clone()));
        } else {
            let a: Vec<u16> = spec.allocations.iter().map(|p| self.peer_ix(p)).collect();
            let u: Vec<u16> = spec
                .user_allocations
                .iter()
                .map(|p| self.peer_ix(p))
                .collect();
            let bare = PinSpec {
                allocations: Vec::new(),
                user_allocations: Vec::new(),
                ..spec.clone()
            };
            self.chunk.allocated.push((cid, t, bare, a, u));
        }
        if self.est_bytes >= SNAPSHOT_CHUNK_BYTES_TARGET {
            self.cut();
        }
    }

    pub fn add_context(&mut self, id: DeltaId) {
        self.chunk.ctx.push(id);
        self.est_bytes += 35;
        if self.est_bytes >= SNAPSHOT_CHUNK_BYTES_TARGET {
            self.cut();
        }
    }

    /// Cut the last chunk; returns all chunk blocks.
    pub fn finish(mut self) -> Vec<(Cid, Vec<u8>)> {
        let c = &self.chunk;
        if !c.pins.is_empty() || !c.allocated.is_empty() || !c.ctx.is_empty() {
            self.cut();
        }
        self.blocks
    }
}

/// Encode a snapshot root over already-encoded chunks.
pub fn encode_snapshot_root(
    key: &libp2p_identity::ed25519::Keypair,
    priority: u64,
    heads: &[(DeltaId, u64)],
    chunks: Vec<Cid>,
    pins: u64,
    context_len: u64,
    trust: Vec<PeerKey>,
) -> (Cid, Vec<u8>) {
    let body = SnapBody {
        v: FORMAT_VERSION,
        k: KIND_SNAPSHOT,
        author: PeerKey(key.public().to_bytes()),
        prio: priority,
        heads: heads.iter().map(|(id, p)| (delta_cid(id), *p)).collect(),
        chunks,
        pins,
        ctx: context_len,
        trust,
    };
    let s = sign_body(key, &body);
    let bytes = to_cbor(&Signed { d: body, s });
    (block_cid(&bytes), bytes)
}

pub fn decode_snapshot_root(cid: &Cid, bytes: &[u8]) -> Result<SnapshotRoot, DecodeError> {
    if bytes.len() > SNAPSHOT_ROOT_BYTES_MAX {
        return Err(DecodeError::TooLarge {
            what: "snapshot root",
            len: bytes.len(),
            max: SNAPSHOT_ROOT_BYTES_MAX,
        });
    }
    check_hash(cid, bytes)?;
    let signed: Signed<SnapBody> = from_cbor(bytes)?;
    let b = &signed.d;
    if b.v != FORMAT_VERSION || b.k != KIND_SNAPSHOT {
        return Err(DecodeError::Version(b.v, b.k));
    }
    if b.chunks.len() > SNAPSHOT_CHUNKS_MAX {
        return Err(DecodeError::TooMany {
            what: "snapshot chunks",
            count: b.chunks.len(),
            max: SNAPSHOT_CHUNKS_MAX,
        });
    }
    if b.heads.len() > DELTA_PARENTS_MAX {
        return Err(DecodeError::TooMany {
            what: "snapshot heads",
            count: b.heads.len(),
            max: DELTA_PARENTS_MAX,
        });
    }
    if b.trust.len() > TRUSTED_PEERS_MAX {
        return Err(DecodeError::TooMany {
            what: "snapshot trust set",
            count: b.trust.len(),
            max: TRUSTED_PEERS_MAX,
        });
    }
    for c in &b.chunks {
        delta_id(c)?;
    }
    if to_cbor(&signed) != bytes {
        return Err(DecodeError::NotCanonical);
    }
    verify_body(&b.author, b, &signed.s)?;
    let heads = b
        .heads
        .iter()
        .map(|(c, p)| Ok((delta_id(c)?, *p)))
        .collect::<Result<Vec<_>, DecodeError>>()?;
    let Signed { d, .. } = signed;
    Ok(SnapshotRoot {
        author: d.author,
        priority: d.prio,
        heads,
        chunks: d.chunks,
        pins: d.pins,
        context_len: d.ctx,
        trust: d.trust,
    })
}

pub fn encode_chunk(chunk: &SnapshotChunk) -> (Cid, Vec<u8>) {
    let bytes = to_cbor(chunk);
    (block_cid(&bytes), bytes)
}

pub fn decode_chunk(cid: &Cid, bytes: &[u8]) -> Result<SnapshotChunk, DecodeError> {
    if bytes.len() > SNAPSHOT_CHUNK_BYTES_MAX {
        return Err(DecodeError::TooLarge {
            what: "snapshot chunk",
            len: bytes.len(),
            max: SNAPSHOT_CHUNK_BYTES_MAX,
        });
    }
    check_hash(cid, bytes)?;
    let chunk: SnapshotChunk = from_cbor(bytes)?;
    for (c, idx, spec) in &chunk.pins {
        check_cid(c)?;
        spec.validate()?;
        if *idx as usize >= chunk.tags.len() {
            return Err(DecodeError::Snapshot("tag index out of range"));
        }
    }
    for (c, idx, bare, a, u) in &chunk.allocated {
        check_cid(c)?;
        bare.validate()?;
        if *idx as usize >= chunk.tags.len() {
            return Err(DecodeError::Snapshot("tag index out of range"));
        }
        if a.len() > PIN_ALLOCATIONS_MAX || u.len() > PIN_ALLOCATIONS_MAX {
            return Err(DecodeError::TooMany {
                what: "allocations",
                count: a.len().max(u.len()),
                max: PIN_ALLOCATIONS_MAX,
            });
        }
        if a.iter()
            .chain(u.iter())
            .any(|i| *i as usize >= chunk.peers.len())
        {
            return Err(DecodeError::Snapshot("peer index out of range"));
        }
    }
    Ok(chunk)
}
