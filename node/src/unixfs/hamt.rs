//! HAMT-sharded directories (fanout 256, murmur3-x64-64), building and lookup.
//!
//! Byte-for-byte as boxo `ipld/unixfs/hamt` (kubo v0.22):
//! - the key of an entry is the first 64 bits (`h1`) of MurmurHash3 x64 128 (seed 0) of the
//!   name, as 8 big-endian bytes; each level consumes `log2(fanout)` bits of it from the most
//!   significant bit (8 bits, i.e. one byte, per level at fanout 256);
//! - a shard node is dag-pb with `UnixFsData { HamtShard, data: bitfield, hashType: 0x22,
//!   fanout }`; the bitfield is the big-endian integer with bit `i` set for each occupied slot
//!   `i`, leading zero bytes stripped (go-bitfield `Bytes()`);
//! - links in slot order; a value link is named `%02X` of the slot + the entry name and carries
//!   the entry's CID and Tsize; a child shard (made when two names share a slot) is named by
//!   the 2-character prefix alone, with the child's cumulative size as Tsize.
//!
//! The shape depends only on the set of entries (boxo never collapses on insert), so building
//! from the final entry list gives the same CIDs as kubo's incremental inserts.
//!
//! Decoding is bounded: fanout a power of two, a multiple of 8, at most
//! [`HAMT_FANOUT_MAX`] (CVE-2023-23625), hash type 0x22 only, depth at most 64 bits of hash.

use crate::dag::pb::{PbLink, PbNode};
use crate::dag::unixfs_pb::{DataType, UnixFsData};
use bytes::Bytes;
use cid::Cid;

/// kubo's shard width (boxo `DefaultShardWidth`).
pub const HAMT_FANOUT_DEFAULT: u64 = 256;
/// Largest fanout accepted when decoding (ipfs/specs `src/unixfs.md`, CVE-2023-23625).
pub const HAMT_FANOUT_MAX: u64 = 1024;
/// Multicodec of murmur3-x64-64, the only HAMT hash kubo uses.
pub const HAMT_HASH_MURMUR3_X64_64: u64 = 0x22;
/// kubo v0.22 `Internal.UnixFSShardingSizeThreshold` default: a basic directory whose
/// estimated size (sum of `len(name) + len(cid bytes)`) reaches 256 KiB becomes a HAMT
/// (boxo v0.10 `needsToSwitchToHAMTDir`: `estimatedSize >= HAMTShardingSize`).
pub const SHARDING_THRESHOLD_BYTES_DEFAULT: u64 = 262_144;
/// Hash bits available for addressing: a name whose 64 bits are exhausted cannot be placed.
const HASH_BITS: u32 = 64;

/// Errors from building or reading a HAMT shard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HamtError {
    #[error("hamt: fanout {0} is not a power of two, a multiple of 8 and at most {max}", max = HAMT_FANOUT_MAX)]
    BadFanout(u64),
    #[error("hamt: missing fanout")]
    MissingFanout,
    #[error("hamt: unsupported hash type 0x{0:x} (only murmur3-x64-64, 0x22)")]
    BadHashType(u64),
    #[error("hamt: bitfield of {len} bytes is too long for fanout {fanout}")]
    BadBitfield { len: usize, fanout: u64 },
    #[error("hamt: link name {0:?} has no valid slot prefix")]
    BadLinkName(String),
    #[error("hamt: link in slot {0} not marked in the bitfield, or out of order")]
    SlotMismatch(usize),
    #[error("hamt: node is not a HAMT shard")]
    NotAShard,
    #[error("hamt: shard is deeper than the hash allows")]
    TooDeep,
    #[error("hamt: two entries named {0:?}")]
    DuplicateName(String),
}

// ---------------------------------------------------------------- murmur3 ----

/// MurmurHash3 x64 128 (Austin Appleby's public-domain algorithm); returns `(h1, h2)`.
pub fn murmur3_x64_128(data: &[u8], seed: u32) -> (u64, u64) {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;
    let mut h1 = u64::from(seed);
    let mut h2 = u64::from(seed);
    let mut blocks = data.chunks_exact(16);
    for block in &mut blocks {
        let mut k1 = u64::from_le_bytes(block[..8].try_into().unwrap_or([0; 8]));
        let mut k2 = u64::from_le_bytes(block[8..].try_into().unwrap_or([0; 8]));
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
        h1 = h1.rotate_left(27).wrapping_add(h2);
        h1 = h1.wrapping_mul(5).wrapping_add(0x52dc_e729);
        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
        h2 = h2.rotate_left(31).wrapping_add(h1);
        h2 = h2.wrapping_mul(5).wrapping_add(0x3849_5ab5);
    }
    let tail = blocks.remainder();
    let mut k1: u64 = 0;
    let mut k2: u64 = 0;
    for (i, &b) in tail.iter().enumerate() {
        if i < 8 {
            k1 |= u64::from(b) << (8 * i);
        } else {
            k2 |= u64::from(b) << (8 * (i - 8));
        }
    }
    if tail.len() > 8 {
        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
    }
    if !tail.is_empty() {
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
    }
    let len = data.len() as u64;
    h1 ^= len;
    h2 ^= len;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    (h1, h2)
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// The HAMT key of a name: murmur3-x64-64 (`h1` of x64 128, seed 0).
pub fn hamt_hash(name: &[u8]) -> u64 {
    murmur3_x64_128(name, 0).0
}

/// The slot of `hash` at `depth` for a fanout of `2^bits`: bits taken from the most
/// significant end, `bits` per level.
fn slot_at(hash: u64, depth: u32, bits: u32) -> Result<usize, HamtError> {
    let start = depth.checked_mul(bits).ok_or(HamtError::TooDeep)?;
    if start + bits > HASH_BITS {
        return Err(HamtError::TooDeep);
    }
    let shifted = hash << start;
    Ok((shifted >> (HASH_BITS - bits)) as usize)
}

/// Checks a fanout read from the wire or given by a caller; returns `log2(fanout)`.
pub fn check_fanout(fanout: u64) -> Result<u32, HamtError> {
    if fanout == 0
        || !fanout.is_power_of_two()
        || !fanout.is_multiple_of(8)
        || fanout > HAMT_FANOUT_MAX
    {
        return Err(HamtError::BadFanout(fanout));
    }
    Ok(fanout.trailing_zeros())
}

/// Width of the hex slot prefix: the length of `%X` of `fanout - 1` (2 for 256).
fn pad_len(fanout: u64) -> usize {
    format!("{:X}", fanout - 1).len()
}

fn prefix(slot: usize, pad: usize) -> String {
    format!("{slot:0pad$X}")
}

// ---------------------------------------------------------------- building ----

/// One directory entry: what a parent link needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub cid: Cid,
    pub tsize: u64,
}

/// Builds the shard nodes for `entries` bottom-up. `emit` encodes and stores a node and
/// returns its CID and cumulative size (encoded length + the links' Tsizes); the root's is
/// returned. Names must be distinct.
pub fn build_shard<E: From<HamtError>>(
    entries: Vec<DirEntry>,
    fanout: u64,
    emit: &mut dyn FnMut(PbNode) -> Result<(Cid, u64), E>,
) -> Result<(Cid, u64), E> {
    let bits = check_fanout(fanout)?;
    let mut keyed: Vec<(u64, DirEntry)> = entries
        .into_iter()
        .map(|e| (hamt_hash(e.name.as_bytes()), e))
        .collect();
    keyed.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    if let Some(w) = keyed.windows(2).find(|w| w[0].1.name == w[1].1.name) {
        return Err(HamtError::DuplicateName(w[0].1.name.clone()).into());
    }
    build_level(keyed, 0, bits, fanout, emit)
}

fn build_level<E: From<HamtError>>(
    entries: Vec<(u64, DirEntry)>,
    depth: u32,
    bits: u32,
    fanout: u64,
    emit: &mut dyn FnMut(PbNode) -> Result<(Cid, u64), E>,
) -> Result<(Cid, u64), E> {
    let pad = pad_len(fanout);
    let mut slots: Vec<Vec<(u64, DirEntry)>> = (0..fanout).map(|_| Vec::new()).collect();
    for (h, e) in entries {
        let s = slot_at(h, depth, bits)?;
        slots[s].push((h, e));
    }
    let mut bitfield = vec![0u8; (fanout / 8) as usize];
    let nbytes = bitfield.len();
    let mut links = Vec::new();
    for (slot, mut bucket) in slots.into_iter().enumerate() {
        if bucket.is_empty() {
            continue;
        }
        bitfield[nbytes - 1 - slot / 8] |= 1 << (slot % 8);
        if bucket.len() == 1 {
            if let Some((_, e)) = bucket.pop() {
                links.push(PbLink {
                    cid: e.cid,
                    name: Some(prefix(slot, pad) + &e.name),
                    tsize: Some(e.tsize),
                });
            }
        } else {
            let (cid, tsize) = build_level(bucket, depth + 1, bits, fanout, emit)?;
            links.push(PbLink {
                cid,
                name: Some(prefix(slot, pad)),
                tsize: Some(tsize),
            });
        }
    }
    let first = bitfield.iter().position(|&b| b != 0).unwrap_or(nbytes);
    let bits_data = if first == nbytes {
        None
    } else {
        Some(Bytes::copy_from_slice(&bitfield[first..]))
    };
    let mut data = UnixFsData::new(DataType::HamtShard);
    data.data = bits_data;
    data.hash_type = Some(HAMT_HASH_MURMUR3_X64_64);
    data.fanout = Some(fanout);
    emit(PbNode {
        links,
        data: Some(Bytes::from(data.encode())),
    })
}

// ---------------------------------------------------------------- reading ----

/// A decoded, validated shard node.
#[derive(Debug)]
pub struct Shard {
    pub fanout: u64,
    bits: u32,
    pad: usize,
    /// `(slot, link)` in slot order; child shards have `entry == None`.
    pub slots: Vec<ShardLink>,
}

/// One link of a shard node.
#[derive(Debug, Clone)]
pub struct ShardLink {
    pub slot: usize,
    /// The entry name for a value link; `None` for a child shard.
    pub entry: Option<String>,
    pub link: PbLink,
}

impl Shard {
    /// Validates a shard node: its UnixFS data and its links' slot prefixes.
    pub fn from_node(node: &PbNode, fs: &UnixFsData) -> Result<Shard, HamtError> {
        if fs.kind != DataType::HamtShard {
            return Err(HamtError::NotAShard);
        }
        let fanout = fs.fanout.ok_or(HamtError::MissingFanout)?;
        let bits = check_fanout(fanout)?;
        match fs.hash_type {
            Some(HAMT_HASH_MURMUR3_X64_64) => {}
            other => return Err(HamtError::BadHashType(other.unwrap_or(0))),
        }
        let bf = fs.data.as_deref().unwrap_or(&[]);
        let nbytes = (fanout / 8) as usize;
        if bf.len() > nbytes {
            return Err(HamtError::BadBitfield {
                len: bf.len(),
                fanout,
            });
        }
        let has = |slot: usize| -> bool {
            let from_end = slot / 8;
            from_end < bf.len() && bf[bf.len() - 1 - from_end] & (1 << (slot % 8)) != 0
        };
        let pad = pad_len(fanout);
        let mut slots = Vec::with_capacity(node.links.len());
        let mut last: Option<usize> = None;
        for link in &node.links {
            let name = link.name.as_deref().unwrap_or("");
            let (hex, rest) = match (name.get(..pad), name.get(pad..)) {
                (Some(h), Some(r)) => (h, r),
                _ => return Err(HamtError::BadLinkName(name.to_owned())),
            };
            let slot = usize::from_str_radix(hex, 16)
                .ok()
                .filter(|&s| (s as u64) < fanout && hex.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| HamtError::BadLinkName(name.to_owned()))?;
            if !has(slot) || last.is_some_and(|l| l >= slot) {
                return Err(HamtError::SlotMismatch(slot));
            }
            last = Some(slot);
            slots.push(ShardLink {
                slot,
                entry: if rest.is_empty() {
                    None
                } else {
                    Some(rest.to_owned())
                },
                link: link.clone(),
            });
        }
        Ok(Shard {
            fanout,
            bits,
            pad,
            slots,
        })
    }

    /// The slot `name` falls in at `depth`.
    pub fn slot_for(&self, name: &str, depth: u32) -> Result<usize, HamtError> {
        slot_at(hamt_hash(name.as_bytes()), depth, self.bits)
    }

    /// The link in `slot`, if any.
    pub fn link_in(&self, slot: usize) -> Option<&ShardLink> {
        self.slots
            .binary_search_by_key(&slot, |l| l.slot)
            .ok()
            .and_then(|i| self.slots.get(i))
    }

    /// Most levels a shard of this fanout can have.
    pub fn depth_max(&self) -> u32 {
        HASH_BITS / self.bits
    }

    /// Width of the slot prefix in link names.
    pub fn prefix_len(&self) -> usize {
        self.pad
    }
}

/// Looks `name` up in a sharded directory. `load` fetches and validates a child shard.
pub fn find<E: From<HamtError>>(
    root: Shard,
    name: &str,
    load: &mut dyn FnMut(&Cid) -> Result<Shard, E>,
) -> Result<Option<PbLink>, E> {
    let mut shard = root;
    let mut depth = 0u32;
    loop {
        let slot = shard.slot_for(name, depth)?;
        let Some(sl) = shard.link_in(slot) else {
            return Ok(None);
        };
        match &sl.entry {
            Some(entry) => {
                return Ok(if entry == name {
                    Some(sl.link.clone())
                } else {
                    None
                })
            }
            None => {
                let cid = sl.link.cid;
                depth += 1;
                if depth >= shard.depth_max() {
                    return Err(HamtError::TooDeep.into());
                }
                let child = load(&cid)?;
                if child.fanout != shard.fanout {
                    return Err(HamtError::BadFanout(child.fanout).into());
                }
                shard = child;
            }
        }
    }
}

/// Visits every entry of a sharded directory in slot order (depth first), calling `visit`
/// with the entry name and its link.
pub fn for_each<E: From<HamtError>>(
    root: &Shard,
    load: &mut dyn FnMut(&Cid) -> Result<Shard, E>,
    visit: &mut dyn FnMut(&str, &PbLink) -> Result<(), E>,
) -> Result<(), E> {
    walk(root, 0, load, visit)
}

fn walk<E: From<HamtError>>(
    shard: &Shard,
    depth: u32,
    load: &mut dyn FnMut(&Cid) -> Result<Shard, E>,
    visit: &mut dyn FnMut(&str, &PbLink) -> Result<(), E>,
) -> Result<(), E> {
    for sl in &shard.slots {
        match &sl.entry {
            Some(name) => visit(name, &sl.link)?,
            None => {
                if depth + 1 >= shard.depth_max() {
                    return Err(HamtError::TooDeep.into());
                }
                let child = load(&sl.link.cid)?;
                if child.fanout != shard.fanout {
                    return Err(HamtError::BadFanout(child.fanout).into());
                }
                walk(&child, depth + 1, load, visit)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use multihash::Multihash;
    use std::collections::HashMap;

    /// Published MurmurHash3 x64 128 vectors, seed 0 (as in spaolacci/murmur3 `murmur_test.go`,
    /// the package boxo's HAMT hashes with).
    #[test]
    fn murmur3_vectors() {
        let v: &[(&str, u64, u64)] = &[
            ("", 0, 0),
            ("hello", 0xcbd8a7b341bd9b02, 0x5b1e906a48ae1d19),
            ("hello, world", 0x342fac623a5ebc8e, 0x4cdcbc079642414d),
            (
                "19 Jan 2038 at 3:14:07 AM",
                0xb89e5988b737affc,
                0x664fc2950231b2cb,
            ),
            (
                "The quick brown fox jumps over the lazy dog.",
                0xcd99481f9ee902c9,
                0x695da1a38987b6e7,
            ),
        ];
        for &(s, h1, h2) in v {
            assert_eq!(murmur3_x64_128(s.as_bytes(), 0), (h1, h2), "{s:?}");
        }
        // seed 1 vectors from the same table
        assert_eq!(
            murmur3_x64_128(b"", 1),
            (0x4610abe56eff5cb5, 0x51622daa78f83583)
        );
        assert_eq!(
            murmur3_x64_128(b"hello", 1),
            (0xa78ddff5adae8d10, 0x128900ef20900135)
        );
    }

    #[test]
    fn slots_take_high_bits_first() {
        let h = 0xABCD_0000_0000_0012u64;
        assert_eq!(slot_at(h, 0, 8), Ok(0xAB));
        assert_eq!(slot_at(h, 1, 8), Ok(0xCD));
        assert_eq!(slot_at(h, 7, 8), Ok(0x12));
        assert_eq!(slot_at(h, 8, 8), Err(HamtError::TooDeep));
        assert_eq!(slot_at(h, 0, 4), Ok(0xA));
        assert_eq!(slot_at(h, 1, 4), Ok(0xB));
    }

    #[test]
    fn fanout_bounds() {
        assert_eq!(check_fanout(256), Ok(8));
        assert_eq!(check_fanout(1024), Ok(10));
        assert_eq!(check_fanout(8), Ok(3));
        for bad in [0, 4, 7, 12, 100, 2048, 1 << 40] {
            assert_eq!(check_fanout(bad), Err(HamtError::BadFanout(bad)));
        }
    }

    fn fake_cid(n: u64) -> Cid {
        let mh = Multihash::<64>::wrap(0x12, &[n as u8; 32]).unwrap();
        Cid::new_v0(mh).unwrap()
    }

    #[test]
    fn build_then_find_and_list_every_name() {
        let mut nodes: HashMap<Cid, PbNode> = HashMap::new();
        let mut emit = |node: PbNode| -> Result<(Cid, u64), HamtError> {
            let bytes = node.encode();
            let mh = ipfs_kit_blockstore::hash::HashFn::Sha2_256
                .digest(&bytes)
                .unwrap();
            let cid = Cid::new_v0(mh).unwrap();
            let tsize =
                bytes.len() as u64 + node.links.iter().map(|l| l.tsize.unwrap_or(0)).sum::<u64>();
            nodes.insert(cid, node);
            Ok((cid, tsize))
        };
        let entries: Vec<DirEntry> = (0..3000)
            .map(|i| DirEntry {
                name: format!("entry-{i}"),
                cid: fake_cid(i),
                tsize: i,
            })
            .collect();
        let (root, _) = build_shard(entries.clone(), 256, &mut emit).unwrap();
        let shard_of = |nodes: &HashMap<Cid, PbNode>, c: &Cid| -> Result<Shard, HamtError> {
            let n = nodes.get(c).unwrap();
            let fs = UnixFsData::decode(n.data.as_ref().unwrap()).unwrap();
            Shard::from_node(n, &fs)
        };
        let mut deepest = 0;
        for e in &entries {
            let root_shard = shard_of(&nodes, &root).unwrap();
            let mut loads = 0;
            let got = find(root_shard, &e.name, &mut |c| {
                loads += 1;
                shard_of(&nodes, c)
            })
            .unwrap()
            .unwrap();
            deepest = deepest.max(loads);
            assert_eq!(got.cid, e.cid);
            assert_eq!(got.tsize, Some(e.tsize));
        }
        assert!(deepest >= 1, "3000 names in 256 slots must collide");
        let root_shard = shard_of(&nodes, &root).unwrap();
        assert!(find(root_shard, "absent", &mut |c| shard_of(&nodes, c))
            .unwrap()
            .is_none());
        let mut seen = Vec::new();
        let root_shard = shard_of(&nodes, &root).unwrap();
        for_each(&root_shard, &mut |c| shard_of(&nodes, c), &mut |n, _| {
            seen.push(n.to_owned());
            Ok(())
        })
        .unwrap();
        seen.sort();
        let mut want: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
        want.sort();
        assert_eq!(seen, want);
    }

    #[test]
    fn bitfield_is_minimal_big_endian() {
        let mut data = None;
        let one = vec![DirEntry {
            name: "a".into(),
            cid: fake_cid(1),
            tsize: 1,
        }];
        build_shard(
            one,
            256,
            &mut |n: PbNode| -> Result<(Cid, u64), HamtError> {
                data = Some(UnixFsData::decode(n.data.as_ref().unwrap()).unwrap());
                Ok((fake_cid(0), 0))
            },
        )
        .unwrap();
        let data = data.unwrap();
        let slot = (hamt_hash(b"a") >> 56) as usize;
        let bf = data.data.unwrap();
        // one bit set: the bitfield is as long as needed to hold it, no leading zeros
        assert_eq!(bf.len(), slot / 8 + 1);
        assert_eq!(bf[0], 1 << (slot % 8));
        assert_eq!(data.fanout, Some(256));
        assert_eq!(data.hash_type, Some(0x22));
    }

    #[test]
    fn rejects_malformed_shards() {
        let mut fs = UnixFsData::new(DataType::HamtShard);
        fs.fanout = Some(4096);
        fs.hash_type = Some(0x22);
        let node = PbNode::default();
        assert_eq!(
            Shard::from_node(&node, &fs).unwrap_err(),
            HamtError::BadFanout(4096)
        );
        fs.fanout = Some(256);
        fs.hash_type = Some(0x11);
        assert_eq!(
            Shard::from_node(&node, &fs).unwrap_err(),
            HamtError::BadHashType(0x11)
        );
        fs.hash_type = Some(0x22);
        fs.data = Some(Bytes::from(vec![1u8; 33]));
        assert!(matches!(
            Shard::from_node(&node, &fs),
            Err(HamtError::BadBitfield { .. })
        ));
        // a link whose slot is not in the bitfield
        fs.data = Some(Bytes::from(vec![1u8]));
        let node = PbNode {
            links: vec![PbLink {
                cid: fake_cid(1),
                name: Some("05x".into()),
                tsize: Some(1),
            }],
            data: None,
        };
        assert_eq!(
            Shard::from_node(&node, &fs).unwrap_err(),
            HamtError::SlotMismatch(5)
        );
        let node = PbNode {
            links: vec![PbLink {
                cid: fake_cid(1),
                name: Some("zz".into()),
                tsize: Some(1),
            }],
            data: None,
        };
        assert!(matches!(
            Shard::from_node(&node, &fs),
            Err(HamtError::BadLinkName(_))
        ));
    }
}
