//! The bitswap wire codec: `/ipfs/bitswap/1.0.0`, `1.1.0` and `1.2.0` (ipfs/specs
//! `src/bitswap-protocol.md`).
//!
//! One protobuf `Message` per frame, each frame prefixed by its length as an unsigned varint:
//!
//! ```text
//! Message { Wantlist wantlist = 1; repeated bytes blocks = 2;          // 1.0 blocks
//!           repeated Block payload = 3;                                // 1.1+ blocks
//!           repeated BlockPresence blockPresences = 4; int32 pendingBytes = 5; }   // 1.2
//! Wantlist { repeated Entry entries = 1; bool full = 2; }
//! Entry { bytes block = 1; int32 priority = 2; bool cancel = 3; WantType wantType = 4;
//!         bool sendDontHave = 5; }                                     // 4, 5: 1.2 only
//! Block { bytes prefix = 1; bytes data = 2; }  BlockPresence { bytes cid = 1; type = 2; }
//! ```
//!
//! Decoding is strict about what can hurt us — lengths, counts, CIDs, block sizes, hash
//! functions — and tolerant where protobuf promises forward compatibility: unknown fields of
//! wire types 0, 1, 2 and 5 are skipped. Every block is hashed on arrival: a 1.1+ block's CID is
//! rebuilt from its prefix and the digest of its data, a 1.0 block is a CIDv0 (sha2-256
//! dag-pb), so a decoded [`Message`] only ever holds blocks whose bytes match their CID.
//!
//! Encoding follows the peer's version: a 1.0 peer gets raw `blocks` and no want types,
//! presences or pending bytes; a 1.1 peer gets `payload` but no presences.

use crate::dag::pb::{put_varint, varint_len, PbError, Reader};
use bytes::Bytes;
use cid::{Cid, Version};
use ipfs_kit_blockstore::hash::{HashFn, DAG_PB_CODEC, IDENTITY, SHA2_256};
use ipfs_kit_blockstore::{limits, Block};
use multihash::Multihash;

/// Largest inbound frame (the message, without its length prefix): the spec's 4 MiB.
pub const MESSAGE_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Outbound messages are cut so their blocks total at most this (boxo's 2 MiB batches); kept
/// apart from [`MESSAGE_BYTES_MAX`] so a full batch plus framing always fits a peer's limit.
pub const OUTBOUND_BLOCK_BYTES_MAX: usize = 2 * 1024 * 1024;
/// Largest block sent or accepted (the spec's 2 MiB).
pub const BLOCK_SIZE_BYTES_MAX: usize = limits::BLOCK_SIZE_BYTES_MAX;
/// Longest CID accepted in a wantlist entry or block presence (boxo's bound).
pub const CID_BYTES_MAX: usize = limits::CID_BYTES_MAX;
/// Shortest multihash digest accepted (boxo's bound; shorter digests are too weak to name data).
pub const DIGEST_BYTES_MIN: usize = 20;
/// Longest multihash digest accepted. Boxo allows 128; our `Cid` holds at most 64, so longer
/// digests are refused with [`ProtocolError::DigestLength`].
pub const DIGEST_BYTES_MAX: usize = 64;
/// Most wantlist entries in one inbound message.
pub const MESSAGE_ENTRIES_MAX: usize = 16 * 1024;
/// Most blocks in one inbound message (bounds the per-block overhead of tiny blocks).
pub const MESSAGE_BLOCKS_MAX: usize = 16 * 1024;
/// Most block presences in one inbound message.
pub const MESSAGE_PRESENCES_MAX: usize = 16 * 1024;
/// Longest CID prefix accepted (four varints).
pub const PREFIX_BYTES_MAX: usize = 4 * 10;

/// The protocol versions we speak, newest first in [`ProtocolVersion::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProtocolVersion {
    V1_0_0,
    V1_1_0,
    V1_2_0,
}

impl ProtocolVersion {
    /// Newest first: the order to offer them in protocol negotiation.
    pub const ALL: [ProtocolVersion; 3] = [Self::V1_2_0, Self::V1_1_0, Self::V1_0_0];

    pub fn protocol_name(self) -> &'static str {
        match self {
            Self::V1_0_0 => "/ipfs/bitswap/1.0.0",
            Self::V1_1_0 => "/ipfs/bitswap/1.1.0",
            Self::V1_2_0 => "/ipfs/bitswap/1.2.0",
        }
    }

    pub fn from_protocol_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.protocol_name() == name)
    }

    /// Whether the peer understands want-have, HAVE / DONT_HAVE and pending bytes.
    pub fn supports_have(self) -> bool {
        self >= Self::V1_2_0
    }
}

/// Errors from decoding a bitswap frame or message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("bitswap: truncated message")]
    Truncated,
    #[error("bitswap: varint overflows 64 bits")]
    VarintOverflow,
    #[error("bitswap: length {0} overruns the message")]
    BadLength(u64),
    #[error("bitswap: frame of {size_bytes} bytes exceeds the {max_bytes}-byte limit")]
    FrameTooLarge { size_bytes: u64, max_bytes: usize },
    #[error("bitswap: field {field} of {message} has wire type {wire_type}")]
    WrongWireType {
        message: &'static str,
        field: u64,
        wire_type: u64,
    },
    #[error("bitswap: unsupported wire type {0} (groups)")]
    UnsupportedWireType(u64),
    #[error("bitswap: {what} count exceeds {max}")]
    TooMany { what: &'static str, max: usize },
    #[error("bitswap: CID of {size_bytes} bytes exceeds the {max_bytes}-byte limit")]
    CidTooLong { size_bytes: usize, max_bytes: usize },
    #[error("bitswap: invalid CID: {0}")]
    BadCid(String),
    #[error("bitswap: multihash digest of {len} bytes outside {min}..={max}")]
    DigestLength { len: u64, min: usize, max: usize },
    #[error("bitswap: block of {size_bytes} bytes exceeds the {max_bytes}-byte limit")]
    BlockTooLarge { size_bytes: usize, max_bytes: usize },
    #[error("bitswap: invalid CID prefix: {0}")]
    BadPrefix(&'static str),
    #[error("bitswap: unsupported multihash function 0x{0:x}")]
    UnsupportedHash(u64),
    #[error("bitswap: unknown {what} enum value {value}")]
    BadEnum { what: &'static str, value: u64 },
    #[error("bitswap: a block has no {0}")]
    MissingField(&'static str),
}

impl From<PbError> for ProtocolError {
    fn from(e: PbError) -> Self {
        match e {
            PbError::Truncated => Self::Truncated,
            PbError::VarintOverflow => Self::VarintOverflow,
            PbError::BadLength(n) => Self::BadLength(n),
            // The shared reader only produces the three above.
            other => Self::BadCid(other.to_string()),
        }
    }
}

/// What a wantlist entry asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WantType {
    /// Send the block (the only kind before 1.2).
    Block,
    /// Tell me whether you have it (1.2).
    Have,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantEntry {
    pub cid: Cid,
    pub priority: i32,
    pub cancel: bool,
    pub want_type: WantType,
    pub send_dont_have: bool,
}

impl WantEntry {
    pub fn want_block(cid: Cid, priority: i32, send_dont_have: bool) -> Self {
        Self {
            cid,
            priority,
            cancel: false,
            want_type: WantType::Block,
            send_dont_have,
        }
    }
    pub fn want_have(cid: Cid, priority: i32, send_dont_have: bool) -> Self {
        Self {
            cid,
            priority,
            cancel: false,
            want_type: WantType::Have,
            send_dont_have,
        }
    }
    pub fn cancel(cid: Cid) -> Self {
        Self {
            cid,
            priority: 0,
            cancel: true,
            want_type: WantType::Block,
            send_dont_have: false,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Wantlist {
    pub entries: Vec<WantEntry>,
    /// The entries replace the receiver's whole view of our wantlist.
    pub full: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PresenceType {
    Have,
    DontHave,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockPresence {
    pub cid: Cid,
    pub kind: PresenceType,
}

/// One bitswap message. Blocks are verified: their CIDs were rebuilt from the data's hash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub wantlist: Option<Wantlist>,
    pub blocks: Vec<Block>,
    pub presences: Vec<BlockPresence>,
    pub pending_bytes: i32,
}

impl Message {
    pub fn is_empty(&self) -> bool {
        self.wantlist
            .as_ref()
            .is_none_or(|w| w.entries.is_empty() && !w.full)
            && self.blocks.is_empty()
            && self.presences.is_empty()
    }

    /// Bytes of block data carried.
    pub fn block_bytes(&self) -> usize {
        self.blocks.iter().map(|b| b.data().len()).sum()
    }

    /// The protobuf encoding for a peer speaking `version` (no length prefix).
    pub fn encode(&self, version: ProtocolVersion) -> Vec<u8> {
        self.encode_with(version, false).concat()
    }

    /// The encoding with its uvarint length prefix: one frame on the stream. Block data is
    /// copied once, straight into the frame.
    pub fn encode_frame(&self, version: ProtocolVersion) -> Vec<u8> {
        self.encode_with(version, true).concat()
    }

    /// [`encode_frame`](Self::encode_frame) as the pieces to write one after another: the
    /// encoded fields, and between them the blocks' data itself, shared and not copied (a
    /// served block is written from the buffer it was read into).
    pub fn encode_frame_parts(&self, version: ProtocolVersion) -> Vec<Bytes> {
        self.encode_with(version, true)
    }

    /// Fields in order: wantlist (1), blocks (2 for 1.0, 3 after), presences (4), pending
    /// bytes (5). The small parts are encoded first so that the total length is known before
    /// the block data is written.
    fn encode_with(&self, version: ProtocolVersion, length_prefix: bool) -> Vec<Bytes> {
        let wantlist = self
            .wantlist
            .as_ref()
            .map(|wl| encode_wantlist(wl, version));
        let mut tail = Vec::new();
        if version.supports_have() {
            for p in &self.presences {
                let mut body = Vec::new();
                put_bytes_field(&mut body, 1, &p.cid.to_bytes());
                if p.kind == PresenceType::DontHave {
                    put_varint_field(&mut body, 2, 1);
                }
                put_bytes_field(&mut tail, 4, &body);
            }
            if self.pending_bytes != 0 {
                // int32 is encoded as a sign-extended 64-bit varint.
                put_varint_field(&mut tail, 5, i64::from(self.pending_bytes) as u64);
            }
        }
        let v1_0 = version == ProtocolVersion::V1_0_0;
        let prefixes: Vec<Vec<u8>> = if v1_0 {
            Vec::new()
        } else {
            self.blocks.iter().map(|b| cid_prefix(b.cid())).collect()
        };
        let block_body_len = |i: usize, b: &Block| -> usize {
            if v1_0 {
                b.data().len()
            } else {
                bytes_field_len(1, prefixes[i].len()) + bytes_field_len(2, b.data().len())
            }
        };
        let blocks_field = if v1_0 { 2 } else { 3 };
        let mut len = wantlist.as_ref().map_or(0, |w| bytes_field_len(1, w.len())) + tail.len();
        for (i, b) in self.blocks.iter().enumerate() {
            len += bytes_field_len(blocks_field, block_body_len(i, b));
        }
        // Field bytes go to `out`; each block's data becomes a part of its own.
        let mut parts = Vec::with_capacity(2 * self.blocks.len() + 2);
        let mut out = Vec::new();
        if length_prefix {
            put_varint(&mut out, len as u64);
        }
        if let Some(w) = &wantlist {
            put_bytes_field(&mut out, 1, w);
        }
        for (i, b) in self.blocks.iter().enumerate() {
            if v1_0 {
                put_key(&mut out, 2, 2);
            } else {
                put_key(&mut out, 3, 2);
                put_varint(&mut out, block_body_len(i, b) as u64);
                put_bytes_field(&mut out, 1, &prefixes[i]);
                put_key(&mut out, 2, 2);
            }
            put_varint(&mut out, b.data().len() as u64);
            parts.push(Bytes::from(std::mem::take(&mut out)));
            parts.push(b.data().clone());
        }
        out.extend_from_slice(&tail);
        if !out.is_empty() {
            parts.push(Bytes::from(out));
        }
        parts
    }

    /// [`Message::decode`] of a frame body the caller owns: the blocks are slices of `buf`,
    /// not copies (they keep the frame's buffer alive until they are dropped).
    pub fn decode_owned(buf: Bytes, version: ProtocolVersion) -> Result<Message, ProtocolError> {
        Self::decode_in(&buf, version, Some(&buf))
    }

    /// Decodes one message (no length prefix) received from a peer speaking `version`.
    pub fn decode(buf: &[u8], version: ProtocolVersion) -> Result<Message, ProtocolError> {
        Self::decode_in(buf, version, None)
    }

    /// Decodes `buf`; with `shared` (the same bytes, owned), blocks are sliced from it.
    fn decode_in(
        buf: &[u8],
        version: ProtocolVersion,
        shared: Option<&Bytes>,
    ) -> Result<Message, ProtocolError> {
        let data_of = |d: &[u8]| match shared {
            Some(s) => s.slice_ref(d),
            None => Bytes::copy_from_slice(d),
        };
        if buf.len() > MESSAGE_BYTES_MAX {
            return Err(ProtocolError::FrameTooLarge {
                size_bytes: buf.len() as u64,
                max_bytes: MESSAGE_BYTES_MAX,
            });
        }
        let mut r = Reader::new(buf);
        let mut msg = Message::default();
        // Blocks are parsed first and hashed together at the end, SHA-256 two at a time.
        let mut pending: Vec<(Prefix, &[u8])> = Vec::new();
        while !r.is_empty() {
            let (field, wt) = r.key()?;
            match field {
                1 => {
                    let body = expect_bytes(&mut r, "Message", field, wt)?;
                    let wl = msg.wantlist.get_or_insert_with(Wantlist::default);
                    decode_wantlist(body, version, wl)?;
                }
                2 => {
                    let data = expect_bytes(&mut r, "Message", field, wt)?;
                    check_block_count(pending.len())?;
                    check_block_size(data.len())?;
                    pending.push((Prefix::V0, data));
                }
                3 => {
                    let body = expect_bytes(&mut r, "Message", field, wt)?;
                    check_block_count(pending.len())?;
                    pending.push(decode_payload_block(body)?);
                }
                4 => {
                    let body = expect_bytes(&mut r, "Message", field, wt)?;
                    if msg.presences.len() >= MESSAGE_PRESENCES_MAX {
                        return Err(ProtocolError::TooMany {
                            what: "block presence",
                            max: MESSAGE_PRESENCES_MAX,
                        });
                    }
                    msg.presences.push(decode_presence(body)?);
                }
                5 => {
                    let v = expect_varint(&mut r, "Message", field, wt)?;
                    // int32: take the low 32 bits, as protobuf does.
                    msg.pending_bytes = v as u32 as i32;
                }
                _ => skip_field(&mut r, wt)?,
            }
        }
        msg.blocks = hash_blocks(&pending, &data_of)?;
        Ok(msg)
    }
}

/// Reads the frame at the start of `buf`: `Ok(None)` until the whole frame is there, then the
/// message and the number of bytes it took. A declared length over [`MESSAGE_BYTES_MAX`] is an
/// error as soon as the prefix is readable, before any of the body is buffered.
pub fn decode_frame(
    buf: &[u8],
    version: ProtocolVersion,
) -> Result<Option<(Message, usize)>, ProtocolError> {
    let Some((len, prefix)) = read_length_prefix(buf)? else {
        return Ok(None);
    };
    let end = prefix + len;
    if buf.len() < end {
        return Ok(None);
    }
    let msg = Message::decode(&buf[prefix..end], version)?;
    Ok(Some((msg, end)))
}

/// The frame length declared at the start of `buf` and the prefix's size; `Ok(None)` if the
/// prefix itself is incomplete. Lengths over [`MESSAGE_BYTES_MAX`] are refused.
pub fn read_length_prefix(buf: &[u8]) -> Result<Option<(usize, usize)>, ProtocolError> {
    let mut v: u64 = 0;
    for (i, &b) in buf.iter().enumerate().take(10) {
        if i == 9 && b > 1 {
            return Err(ProtocolError::VarintOverflow);
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if v > MESSAGE_BYTES_MAX as u64 {
            return Err(ProtocolError::FrameTooLarge {
                size_bytes: v,
                max_bytes: MESSAGE_BYTES_MAX,
            });
        }
        if b < 0x80 {
            return Ok(Some((v as usize, i + 1)));
        }
    }
    if buf.len() >= 10 {
        return Err(ProtocolError::VarintOverflow);
    }
    Ok(None)
}

/// The CID prefix bitswap 1.1 sends with a block: version, codec, hash code, digest length.
pub fn cid_prefix(cid: &Cid) -> Vec<u8> {
    let mut out = Vec::with_capacity(8);
    let version: u64 = match cid.version() {
        Version::V0 => 0,
        Version::V1 => 1,
    };
    put_varint(&mut out, version);
    put_varint(&mut out, cid.codec());
    put_varint(&mut out, cid.hash().code());
    put_varint(&mut out, u64::from(cid.hash().size()));
    out
}

/// Checks a CID taken from the wire against the length and digest bounds.
pub fn check_cid(cid: &Cid) -> Result<(), ProtocolError> {
    let len = cid.encoded_len();
    if len > CID_BYTES_MAX {
        return Err(ProtocolError::CidTooLong {
            size_bytes: len,
            max_bytes: CID_BYTES_MAX,
        });
    }
    let dlen = cid.hash().size() as usize;
    if !(DIGEST_BYTES_MIN..=DIGEST_BYTES_MAX).contains(&dlen) {
        return Err(ProtocolError::DigestLength {
            len: dlen as u64,
            min: DIGEST_BYTES_MIN,
            max: DIGEST_BYTES_MAX,
        });
    }
    Ok(())
}

/// Parses CID bytes from a wantlist entry or presence (a CIDv0 is its bare multihash).
pub fn parse_cid(bytes: &[u8]) -> Result<Cid, ProtocolError> {
    if bytes.len() > CID_BYTES_MAX {
        return Err(ProtocolError::CidTooLong {
            size_bytes: bytes.len(),
            max_bytes: CID_BYTES_MAX,
        });
    }
    // A digest longer than our Cid can hold fails to parse; report it as a digest bound.
    if let Some(dlen) = declared_digest_len(bytes) {
        if dlen > DIGEST_BYTES_MAX as u64 {
            return Err(ProtocolError::DigestLength {
                len: dlen,
                min: DIGEST_BYTES_MIN,
                max: DIGEST_BYTES_MAX,
            });
        }
    }
    let cid = Cid::try_from(bytes).map_err(|e| ProtocolError::BadCid(e.to_string()))?;
    if cid.encoded_len() != bytes.len() {
        return Err(ProtocolError::BadCid("trailing bytes".into()));
    }
    check_cid(&cid)?;
    Ok(cid)
}

/// The digest length a CID's bytes declare, if they are well-formed enough to say.
fn declared_digest_len(bytes: &[u8]) -> Option<u64> {
    let mut r = Reader::new(bytes);
    if bytes.len() >= 2 && bytes[0] == 0x12 && bytes[1] == 0x20 {
        return Some(32); // CIDv0
    }
    let _version = r.varint().ok()?;
    let _codec = r.varint().ok()?;
    let _code = r.varint().ok()?;
    r.varint().ok()
}

// ---- encoding helpers ----

fn put_key(out: &mut Vec<u8>, field: u64, wire_type: u64) {
    put_varint(out, (field << 3) | wire_type);
}

/// The encoded size of a length-delimited field with a body of `len` bytes.
fn bytes_field_len(field: u64, len: usize) -> usize {
    varint_len((field << 3) | 2) + varint_len(len as u64) + len
}

fn put_bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_varint_field(out: &mut Vec<u8>, field: u64, v: u64) {
    put_key(out, field, 0);
    put_varint(out, v);
}

fn encode_wantlist(wl: &Wantlist, version: ProtocolVersion) -> Vec<u8> {
    let mut out = Vec::with_capacity(wl.entries.len() * 48);
    for e in &wl.entries {
        let mut body = Vec::with_capacity(48);
        put_bytes_field(&mut body, 1, &e.cid.to_bytes());
        if e.priority != 0 {
            put_varint_field(&mut body, 2, i64::from(e.priority) as u64);
        }
        if e.cancel {
            put_varint_field(&mut body, 3, 1);
        }
        if version.supports_have() {
            if e.want_type == WantType::Have {
                put_varint_field(&mut body, 4, 1);
            }
            if e.send_dont_have {
                put_varint_field(&mut body, 5, 1);
            }
        }
        put_bytes_field(&mut out, 1, &body);
    }
    if wl.full {
        put_varint_field(&mut out, 2, 1);
    }
    out
}

/// Encoded size of a wantlist entry inside a message (for batching).
pub fn entry_encoded_len(e: &WantEntry) -> usize {
    let c = e.cid.encoded_len();
    let body = 1 + varint_len(c as u64) + c + 11 + 2 + 2 + 2;
    1 + varint_len(body as u64) + body
}

// ---- decoding helpers ----

fn expect_bytes<'a>(
    r: &mut Reader<'a>,
    message: &'static str,
    field: u64,
    wt: u64,
) -> Result<&'a [u8], ProtocolError> {
    if wt != 2 {
        return Err(ProtocolError::WrongWireType {
            message,
            field,
            wire_type: wt,
        });
    }
    Ok(r.bytes()?)
}

fn expect_varint(
    r: &mut Reader<'_>,
    message: &'static str,
    field: u64,
    wt: u64,
) -> Result<u64, ProtocolError> {
    if wt != 0 {
        return Err(ProtocolError::WrongWireType {
            message,
            field,
            wire_type: wt,
        });
    }
    Ok(r.varint()?)
}

fn expect_bool(
    r: &mut Reader<'_>,
    message: &'static str,
    field: u64,
    wt: u64,
) -> Result<bool, ProtocolError> {
    Ok(expect_varint(r, message, field, wt)? != 0)
}

/// Skips an unknown field (forward compatibility); groups are refused.
fn skip_field(r: &mut Reader<'_>, wt: u64) -> Result<(), ProtocolError> {
    match wt {
        0 => {
            r.varint()?;
        }
        1 => skip_n(r, 8)?,
        2 => {
            r.bytes()?;
        }
        5 => skip_n(r, 4)?,
        other => return Err(ProtocolError::UnsupportedWireType(other)),
    }
    Ok(())
}

fn skip_n(r: &mut Reader<'_>, n: usize) -> Result<(), ProtocolError> {
    if r.buf.len() < n {
        return Err(ProtocolError::Truncated);
    }
    r.buf = &r.buf[n..];
    Ok(())
}

fn decode_wantlist(
    buf: &[u8],
    version: ProtocolVersion,
    wl: &mut Wantlist,
) -> Result<(), ProtocolError> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match field {
            1 => {
                let body = expect_bytes(&mut r, "Wantlist", field, wt)?;
                if wl.entries.len() >= MESSAGE_ENTRIES_MAX {
                    return Err(ProtocolError::TooMany {
                        what: "wantlist entry",
                        max: MESSAGE_ENTRIES_MAX,
                    });
                }
                wl.entries.push(decode_entry(body, version)?);
            }
            2 => wl.full = expect_bool(&mut r, "Wantlist", field, wt)?,
            _ => skip_field(&mut r, wt)?,
        }
    }
    Ok(())
}

fn decode_entry(buf: &[u8], version: ProtocolVersion) -> Result<WantEntry, ProtocolError> {
    let mut r = Reader::new(buf);
    let mut cid = None;
    let mut e = WantEntry::want_block(Cid::default(), 0, false);
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match field {
            1 => cid = Some(parse_cid(expect_bytes(&mut r, "Entry", field, wt)?)?),
            2 => e.priority = expect_varint(&mut r, "Entry", field, wt)? as u32 as i32,
            3 => e.cancel = expect_bool(&mut r, "Entry", field, wt)?,
            4 => {
                e.want_type = match expect_varint(&mut r, "Entry", field, wt)? {
                    0 => WantType::Block,
                    1 => WantType::Have,
                    value => {
                        return Err(ProtocolError::BadEnum {
                            what: "WantType",
                            value,
                        })
                    }
                }
            }
            5 => e.send_dont_have = expect_bool(&mut r, "Entry", field, wt)?,
            _ => skip_field(&mut r, wt)?,
        }
    }
    e.cid = cid.ok_or(ProtocolError::MissingField("wantlist entry CID"))?;
    if !version.supports_have() {
        // Before 1.2 every want is a want-block and there is no DONT_HAVE.
        e.want_type = WantType::Block;
        e.send_dont_have = false;
    }
    Ok(e)
}

fn check_block_count(blocks: usize) -> Result<(), ProtocolError> {
    if blocks >= MESSAGE_BLOCKS_MAX {
        return Err(ProtocolError::TooMany {
            what: "block",
            max: MESSAGE_BLOCKS_MAX,
        });
    }
    Ok(())
}

fn check_block_size(len: usize) -> Result<(), ProtocolError> {
    if len > BLOCK_SIZE_BYTES_MAX {
        return Err(ProtocolError::BlockTooLarge {
            size_bytes: len,
            max_bytes: BLOCK_SIZE_BYTES_MAX,
        });
    }
    Ok(())
}

/// How a received block's CID is made from its data: a CID prefix (version, codec, hash
/// function, digest length), checked before anything is hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prefix {
    /// A 1.0 block: sha2-256 CIDv0 (dag-pb).
    V0,
    /// A 1.1+ block's prefix.
    Parsed {
        version: u64,
        codec: u64,
        hash: HashFn,
        digest_len: usize,
    },
}

impl Prefix {
    /// Parses and checks a CID prefix (`<version><codec><hash code><digest length>`).
    fn parse(prefix: &[u8]) -> Result<Prefix, ProtocolError> {
        if prefix.len() > PREFIX_BYTES_MAX {
            return Err(ProtocolError::BadPrefix("too long"));
        }
        let mut r = Reader::new(prefix);
        let version = r.varint()?;
        let codec = r.varint()?;
        let code = r.varint()?;
        let len = r.varint()?;
        if !r.is_empty() {
            return Err(ProtocolError::BadPrefix("trailing bytes"));
        }
        if code == IDENTITY {
            return Err(ProtocolError::UnsupportedHash(code));
        }
        let hash = HashFn::from_code(code).ok_or(ProtocolError::UnsupportedHash(code))?;
        if !(DIGEST_BYTES_MIN as u64..=DIGEST_BYTES_MAX as u64).contains(&len) {
            return Err(ProtocolError::DigestLength {
                len,
                min: DIGEST_BYTES_MIN,
                max: DIGEST_BYTES_MAX,
            });
        }
        match version {
            0 if codec != DAG_PB_CODEC || code != SHA2_256 || len != 32 => {
                Err(ProtocolError::BadPrefix("CIDv0 must be dag-pb sha2-256"))
            }
            0 | 1 => Ok(Prefix::Parsed {
                version,
                codec,
                hash,
                digest_len: len as usize,
            }),
            _ => Err(ProtocolError::BadPrefix("unknown CID version")),
        }
    }

    fn hash(self) -> HashFn {
        match self {
            Prefix::V0 => HashFn::Sha2_256,
            Prefix::Parsed { hash, .. } => hash,
        }
    }

    /// The CID of data whose full digest (of [`Prefix::hash`]) is `full`.
    fn cid(self, full: &Multihash<64>) -> Result<Cid, ProtocolError> {
        let code = full.code();
        let (version, codec, len) = match self {
            Prefix::V0 => (0, DAG_PB_CODEC, 32),
            Prefix::Parsed {
                version,
                codec,
                digest_len,
                ..
            } => (version, codec, digest_len),
        };
        let digest = full.digest().get(..len).ok_or(ProtocolError::BadPrefix(
            "digest length exceeds the function's output",
        ))?;
        let mh = Multihash::<64>::wrap(code, digest)
            .map_err(|_| ProtocolError::UnsupportedHash(code))?;
        if version == 0 {
            Cid::new_v0(mh).map_err(|e| ProtocolError::BadCid(e.to_string()))
        } else {
            Ok(Cid::new_v1(codec, mh))
        }
    }
}

/// A 1.1+ block: `{prefix, data}`, parsed, not yet hashed.
fn decode_payload_block(buf: &[u8]) -> Result<(Prefix, &[u8]), ProtocolError> {
    let mut r = Reader::new(buf);
    let mut prefix = None;
    let mut data = None;
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match field {
            1 => prefix = Some(expect_bytes(&mut r, "Block", field, wt)?),
            2 => data = Some(expect_bytes(&mut r, "Block", field, wt)?),
            _ => skip_field(&mut r, wt)?,
        }
    }
    let prefix = prefix.ok_or(ProtocolError::MissingField("prefix"))?;
    let data = data.unwrap_or(&[]);
    check_block_size(data.len())?;
    Ok((Prefix::parse(prefix)?, data))
}

/// Hashes the parsed blocks (SHA-256 ones two at a time, [`HashFn::digest_many`]) and names
/// each by the CID its prefix and digest make: a received block's CID is what its bytes hash
/// to, never what the sender says.
fn hash_blocks(
    pending: &[(Prefix, &[u8])],
    data_of: &dyn Fn(&[u8]) -> Bytes,
) -> Result<Vec<Block>, ProtocolError> {
    let sha: Vec<&[u8]> = pending
        .iter()
        .filter(|(p, _)| p.hash() == HashFn::Sha2_256)
        .map(|(_, d)| *d)
        .collect();
    let mut sha_digests = HashFn::Sha2_256
        .digest_many(&sha)
        .map_err(|_| ProtocolError::UnsupportedHash(SHA2_256))?
        .into_iter();
    pending
        .iter()
        .map(|&(prefix, data)| {
            let f = prefix.hash();
            let full = match f {
                HashFn::Sha2_256 => sha_digests
                    .next()
                    .ok_or(ProtocolError::UnsupportedHash(SHA2_256))?,
                _ => f
                    .digest(data)
                    .map_err(|_| ProtocolError::UnsupportedHash(f.code()))?,
            };
            Ok(Block::new_unchecked(prefix.cid(&full)?, data_of(data)))
        })
        .collect()
}

fn decode_presence(buf: &[u8]) -> Result<BlockPresence, ProtocolError> {
    let mut r = Reader::new(buf);
    let mut cid = None;
    let mut kind = PresenceType::Have;
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match field {
            1 => {
                cid = Some(parse_cid(expect_bytes(
                    &mut r,
                    "BlockPresence",
                    field,
                    wt,
                )?)?)
            }
            2 => {
                kind = match expect_varint(&mut r, "BlockPresence", field, wt)? {
                    0 => PresenceType::Have,
                    1 => PresenceType::DontHave,
                    value => {
                        return Err(ProtocolError::BadEnum {
                            what: "BlockPresenceType",
                            value,
                        })
                    }
                }
            }
            _ => skip_field(&mut r, wt)?,
        }
    }
    Ok(BlockPresence {
        cid: cid.ok_or(ProtocolError::MissingField("presence CID"))?,
        kind,
    })
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
