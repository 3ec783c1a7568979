//! Link extraction and DAG walking, shared by pins, GC and CAR export.
//!
//! [`links`] decodes one block by its CID's codec (dag-pb, raw, dag-cbor, dag-json; identity
//! CIDs carry their own codec) and returns the CIDs it links to, in encoding order. [`walk`]
//! visits a DAG depth-first, pre-order, links in order, each block once — the order kubo's
//! `ipfs dag export` writes blocks in. It uses an explicit stack, never recursion, so a deep DAG
//! cannot overflow the thread's stack.

use super::pb::{PbError, PbNode};
use super::{DAG_CBOR_CODEC, DAG_JSON_CODEC, DAG_PB_CODEC, RAW_CODEC};
use bytes::Bytes;
use cid::Cid;
use ipfs_kit_blockstore::{Blockstore, BlockstoreError};
use ipld_core::ipld::Ipld;
use multihash::Multihash;
use std::collections::HashSet;

/// Deepest nesting of lists/maps accepted in a dag-cbor or dag-json block. serde_ipld_dagcbor
/// (cbor4ii) stops at 256 levels and serde_json at 128; we check the same bound ourselves
/// before handing bytes to the decoder.
pub const IPLD_NESTING_DEPTH_MAX: usize = 256;

/// Errors from decoding blocks, walking DAGs, `dag put` and `dag get`.
#[derive(Debug, thiserror::Error)]
pub enum DagError {
    #[error("unsupported codec 0x{0:x}")]
    UnknownCodec(u64),
    #[error(transparent)]
    Pb(#[from] PbError),
    #[error("dag-cbor: {0}")]
    Cbor(String),
    #[error("dag-json: {0}")]
    Json(String),
    #[error("nesting deeper than {depth_max} levels")]
    TooDeep { depth_max: usize },
    #[error("block {0} not found locally")]
    Missing(Cid),
    #[error(transparent)]
    Store(#[from] BlockstoreError),
    #[error("input of {size_bytes} bytes exceeds the {max_bytes}-byte limit")]
    InputTooLarge { size_bytes: usize, max_bytes: usize },
    #[error("produced block is over 1MiB ({size_bytes} > {max_bytes} bytes): big blocks can't be exchanged with other peers; use UnixFS for automatic chunking of bigger files, or pass --allow-big-block to override")]
    OverSoftBlockLimit { size_bytes: usize, max_bytes: usize },
    #[error("invalid path {path:?}: {reason}")]
    BadPath { path: String, reason: String },
    #[error("no link named {segment:?} under {cid}")]
    NoSuchLink { cid: Cid, segment: String },
    #[error("cannot encode as {codec}: {reason}")]
    Encode { codec: &'static str, reason: String },
}

/// The CIDs `data` (the block named `cid`) links to, in the order they are encoded.
pub fn links(cid: &Cid, data: &Bytes) -> Result<Vec<Cid>, DagError> {
    match cid.codec() {
        RAW_CODEC => Ok(Vec::new()),
        DAG_PB_CODEC => Ok(PbNode::decode(data)?
            .links
            .into_iter()
            .map(|l| l.cid)
            .collect()),
        DAG_CBOR_CODEC => super::codec::cbor_links(data),
        DAG_JSON_CODEC => {
            let ipld = super::codec::decode_ipld(cid.codec(), data)?;
            Ok(ipld_links(&ipld, false))
        }
        other => Err(DagError::UnknownCodec(other)),
    }
}

/// Every `Link` inside an IPLD value, in document order, without recursion. Map entries come in
/// the order the codec writes keys: length-first for dag-cbor (RFC 7049 canonical order, as
/// `length_first`), bytewise for dag-json.
pub fn ipld_links(root: &Ipld, length_first: bool) -> Vec<Cid> {
    let mut out = Vec::new();
    let mut stack: Vec<&Ipld> = vec![root];
    while let Some(node) = stack.pop() {
        match node {
            Ipld::Link(c) => out.push(*c),
            Ipld::List(items) => stack.extend(items.iter().rev()),
            Ipld::Map(m) if length_first => {
                let mut entries: Vec<(&String, &Ipld)> = m.iter().collect();
                entries.sort_by(|a, b| (a.0.len(), a.0).cmp(&(b.0.len(), b.0)));
                stack.extend(entries.into_iter().rev().map(|(_, v)| v));
            }
            Ipld::Map(m) => stack.extend(m.values().rev()),
            _ => {}
        }
    }
    out
}

/// Bytes kept inline in a [`ByteKey`]: enough for CIDv0/CIDv1 and multihashes of 32-byte digests.
const KEY_INLINE_BYTES: usize = 40;
/// Longest encoded CID or multihash (`Cid<64>`: two varints plus a 64-byte digest).
const KEY_BYTES_MAX: usize = 96;

/// An exact set key made of a CID's or multihash's bytes, stored inline when short: 48 bytes a
/// key against 96 for a `Cid`, which halves the memory of walks and GC marks over big repos.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ByteKey {
    Inline {
        len: u8,
        bytes: [u8; KEY_INLINE_BYTES],
    },
    Heap(Box<[u8]>),
}

impl ByteKey {
    fn new(encoded: &[u8]) -> Self {
        if encoded.len() <= KEY_INLINE_BYTES {
            let mut bytes = [0u8; KEY_INLINE_BYTES];
            bytes[..encoded.len()].copy_from_slice(encoded);
            ByteKey::Inline {
                len: encoded.len() as u8,
                bytes,
            }
        } else {
            ByteKey::Heap(encoded.into())
        }
    }

    fn of_cid(cid: &Cid) -> Self {
        let mut buf = [0u8; KEY_BYTES_MAX];
        let mut w: &mut [u8] = &mut buf;
        match cid.write_bytes(&mut w) {
            Ok(n) => Self::new(&buf[..n]),
            Err(_) => Self::Heap(cid.to_bytes().into()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            ByteKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            ByteKey::Heap(b) => b,
        }
    }

    fn of_multihash(mh: &Multihash<64>) -> Self {
        let mut buf = [0u8; KEY_BYTES_MAX];
        let mut w: &mut [u8] = &mut buf;
        match mh.write(&mut w) {
            Ok(n) => Self::new(&buf[..n]),
            Err(_) => Self::Heap(mh.to_bytes().into()),
        }
    }
}

/// The CIDs a walk has visited (exact, by CID bytes: the codec matters for decoding).
#[derive(Debug, Default)]
pub struct Visited(HashSet<ByteKey>);

impl Visited {
    pub fn new() -> Self {
        Self::default()
    }
    /// True if `cid` was not there yet.
    pub fn insert(&mut self, cid: &Cid) -> bool {
        self.0.insert(ByteKey::of_cid(cid))
    }
    pub fn contains(&self, cid: &Cid) -> bool {
        self.0.contains(&ByteKey::of_cid(cid))
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A set of multihashes (exact), for GC marks: stores key blocks by multihash.
#[derive(Debug, Default)]
pub struct MultihashSet(HashSet<ByteKey>);

impl MultihashSet {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn insert(&mut self, mh: &Multihash<64>) -> bool {
        self.0.insert(ByteKey::of_multihash(mh))
    }
    pub fn contains(&self, mh: &Multihash<64>) -> bool {
        self.0.contains(&ByteKey::of_multihash(mh))
    }
    /// Adds every member of `other`.
    pub fn union_with(&mut self, other: &MultihashSet) {
        self.0.extend(other.0.iter().cloned());
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Every member (the Arrow index marks the blocks of a pinned import with them).
    pub fn iter(&self) -> impl Iterator<Item = Multihash<64>> + '_ {
        self.0
            .iter()
            .filter_map(|k| Multihash::<64>::from_bytes(k.as_bytes()).ok())
    }
}

/// Walks the DAG under `root`; see [`walk_from`].
pub fn walk<E, F>(store: &dyn Blockstore, root: &Cid, visit: F) -> Result<(), E>
where
    E: From<DagError>,
    F: FnMut(&Cid, &Bytes) -> Result<(), E>,
{
    let mut visited = Visited::new();
    walk_from(store, std::slice::from_ref(root), &mut visited, visit)
}

/// Visits every block reachable from `roots` once: depth-first, pre-order, links in encoding
/// order, skipping CIDs already in `visited` (so several walks can share one set, as GC
/// marking does). A block that is not in `store` is [`DagError::Missing`], naming it.
pub fn walk_from<E, F>(
    store: &dyn Blockstore,
    roots: &[Cid],
    visited: &mut Visited,
    mut visit: F,
) -> Result<(), E>
where
    E: From<DagError>,
    F: FnMut(&Cid, &Bytes) -> Result<(), E>,
{
    let mut stack: Vec<Cid> = roots.iter().rev().copied().collect();
    while let Some(cid) = stack.pop() {
        if !visited.insert(&cid) {
            continue;
        }
        let data = store
            .get(&cid)
            .map_err(DagError::from)?
            .ok_or(DagError::Missing(cid))?;
        visit(&cid, &data)?;
        let children = links(&cid, &data)?;
        stack.extend(children.into_iter().rev().filter(|c| !visited.contains(c)));
    }
    Ok(())
}

/// Like [`walk_from`], for walks that need only the CIDs (GC marking, pin completeness,
/// listing indirect pins): a raw-codec block cannot link anywhere, so it is checked with
/// `has` instead of being read and re-hashed. Every other block is read (and verified) to
/// find its links. A block that is not in `store` is [`DagError::Missing`].
pub fn walk_cids_from<E, F>(
    store: &dyn Blockstore,
    roots: &[Cid],
    visited: &mut Visited,
    mut visit: F,
) -> Result<(), E>
where
    E: From<DagError>,
    F: FnMut(&Cid) -> Result<(), E>,
{
    let mut stack: Vec<Cid> = roots.iter().rev().copied().collect();
    while let Some(cid) = stack.pop() {
        if !visited.insert(&cid) {
            continue;
        }
        if cid.codec() == RAW_CODEC {
            if !store.has(&cid).map_err(DagError::from)? {
                return Err(DagError::Missing(cid).into());
            }
            visit(&cid)?;
            continue;
        }
        let data = store
            .get(&cid)
            .map_err(DagError::from)?
            .ok_or(DagError::Missing(cid))?;
        visit(&cid)?;
        let children = links(&cid, &data)?;
        stack.extend(children.into_iter().rev().filter(|c| !visited.contains(c)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::pb::PbLink;
    use ipfs_kit_blockstore::{hash::HashFn, Block, MemoryBlockstore};
    use std::collections::BTreeMap;

    fn put(store: &MemoryBlockstore, codec: u64, data: Vec<u8>) -> Cid {
        let mh = HashFn::Sha2_256.digest(&data).unwrap();
        let cid = Cid::new_v1(codec, mh);
        store.put(&Block::new(cid, data.into()).unwrap()).unwrap();
        cid
    }

    fn pb(store: &MemoryBlockstore, children: &[Cid]) -> Cid {
        let node = PbNode {
            links: children
                .iter()
                .map(|c| PbLink {
                    cid: *c,
                    name: Some(String::new()),
                    tsize: Some(1),
                })
                .collect(),
            data: Some(Bytes::from_static(b"\x08\x01")),
        };
        put(store, DAG_PB_CODEC, node.encode())
    }

    /// Counts `get` calls, delegating everything to a memory store.
    #[derive(Default)]
    struct CountingStore {
        inner: MemoryBlockstore,
        gets: std::sync::atomic::AtomicUsize,
    }

    impl Blockstore for CountingStore {
        fn get(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
            self.gets.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.inner.get(cid)
        }
        fn has(&self, cid: &Cid) -> Result<bool, BlockstoreError> {
            self.inner.has(cid)
        }
        fn size_of(&self, cid: &Cid) -> Result<Option<u64>, BlockstoreError> {
            self.inner.size_of(cid)
        }
        fn put_many(&self, blocks: &[Block]) -> Result<(), BlockstoreError> {
            self.inner.put_many(blocks)
        }
        fn delete_many(&self, cids: &[Cid]) -> Result<u64, BlockstoreError> {
            self.inner.delete_many(cids)
        }
        fn all_cids(&self) -> Result<Vec<Cid>, BlockstoreError> {
            self.inner.all_cids()
        }
        fn sync(&self) -> Result<(), BlockstoreError> {
            Ok(())
        }
        fn stat(&self) -> Result<ipfs_kit_blockstore::StoreStat, BlockstoreError> {
            self.inner.stat()
        }
    }

    #[test]
    fn cid_walk_does_not_read_raw_leaves_but_finds_them_missing() {
        let s = CountingStore::default();
        let a = put(&s.inner, RAW_CODEC, b"a".to_vec());
        let b = put(&s.inner, RAW_CODEC, b"b".to_vec());
        let p = pb(&s.inner, &[a, b]);
        let root = pb(&s.inner, &[p, a]);
        let mut seen = Vec::new();
        walk_cids_from::<DagError, _>(&s, &[root], &mut Visited::new(), |c| {
            seen.push(*c);
            Ok(())
        })
        .unwrap();
        // Same visit order as the data walk; only the two dag-pb nodes were read.
        let mut order = Vec::new();
        walk_from::<DagError, _>(&s.inner, &[root], &mut Visited::new(), |c, _| {
            order.push(*c);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, order);
        assert_eq!(s.gets.load(std::sync::atomic::Ordering::Relaxed), 2);
        // A missing raw leaf is still reported, by name.
        s.inner.delete_many(&[b]).unwrap();
        let err = walk_cids_from::<DagError, _>(&s, &[root], &mut Visited::new(), |_| Ok(()));
        assert!(matches!(err, Err(DagError::Missing(c)) if c == b));
    }

    #[test]
    fn links_of_each_codec() {
        let s = MemoryBlockstore::new();
        let a = put(&s, RAW_CODEC, b"a".to_vec());
        let b = put(&s, RAW_CODEC, b"b".to_vec());
        let p = pb(&s, &[a, b]);
        assert_eq!(links(&p, &s.get(&p).unwrap().unwrap()).unwrap(), vec![a, b]);
        assert!(links(&a, &Bytes::from_static(b"a")).unwrap().is_empty());

        let mut m = BTreeMap::new();
        m.insert(
            "x".to_string(),
            Ipld::List(vec![Ipld::Link(b), Ipld::Integer(3)]),
        );
        m.insert("a".to_string(), Ipld::Link(a));
        let cbor = serde_ipld_dagcbor::to_vec(&Ipld::Map(m.clone())).unwrap();
        let c = put(&s, DAG_CBOR_CODEC, cbor.clone());
        assert_eq!(links(&c, &cbor.into()).unwrap(), vec![a, b]);
        let json = serde_ipld_dagjson::to_vec(&Ipld::Map(m)).unwrap();
        let j = put(&s, DAG_JSON_CODEC, json.clone());
        assert_eq!(links(&j, &json.into()).unwrap(), vec![a, b]);

        // Identity CID: decoded by the codec the CID names.
        let inner = PbNode {
            links: vec![PbLink {
                cid: a,
                name: None,
                tsize: None,
            }],
            data: None,
        };
        let enc = inner.encode();
        let id = Cid::new_v1(DAG_PB_CODEC, HashFn::Identity.digest(&enc).unwrap());
        assert_eq!(links(&id, &s.get(&id).unwrap().unwrap()).unwrap(), vec![a]);

        let unknown = Cid::new_v1(0x300, HashFn::Sha2_256.digest(b"x").unwrap());
        assert!(matches!(
            links(&unknown, &Bytes::from_static(b"x")),
            Err(DagError::UnknownCodec(0x300))
        ));
    }

    #[test]
    fn compact_sets_are_exact() {
        let mh = HashFn::Sha2_256.digest(b"x").unwrap();
        let v0 = Cid::new_v0(mh).unwrap();
        let raw = Cid::new_v1(RAW_CODEC, mh);
        let pb = Cid::new_v1(DAG_PB_CODEC, mh);
        let long = Cid::new_v1(RAW_CODEC, HashFn::Sha2_512.digest(b"x").unwrap());
        let mut v = Visited::new();
        for c in [v0, raw, pb, long] {
            assert!(!v.contains(&c));
            assert!(v.insert(&c));
            assert!(!v.insert(&c));
        }
        assert_eq!(v.len(), 4);
        let mut m = MultihashSet::new();
        assert!(m.insert(v0.hash()));
        assert!(!m.insert(pb.hash()));
        assert!(m.insert(long.hash()));
        assert!(m.contains(raw.hash()) && m.contains(long.hash()));
        assert!(!m.contains(&HashFn::Sha2_256.digest(b"y").unwrap()));
        assert_eq!(std::mem::size_of::<ByteKey>(), 48);
    }

    #[test]
    fn walk_is_preorder_dfs_each_block_once() {
        let s = MemoryBlockstore::new();
        let a = put(&s, RAW_CODEC, b"a".to_vec());
        let b = put(&s, RAW_CODEC, b"b".to_vec());
        let c = put(&s, RAW_CODEC, b"c".to_vec());
        let x = pb(&s, &[a, b]);
        let y = pb(&s, &[b, c, a]);
        let root = pb(&s, &[x, y, a]);
        let mut order = Vec::new();
        walk::<DagError, _>(&s, &root, |cid, _| {
            order.push(*cid);
            Ok(())
        })
        .unwrap();
        assert_eq!(order, vec![root, x, a, b, y, c]);
    }

    #[test]
    fn walk_reports_the_missing_block() {
        let s = MemoryBlockstore::new();
        let a = put(&s, RAW_CODEC, b"a".to_vec());
        let absent = Cid::new_v1(RAW_CODEC, HashFn::Sha2_256.digest(b"gone").unwrap());
        let root = pb(&s, &[a, absent]);
        let err = walk::<DagError, _>(&s, &root, |_, _| Ok(())).unwrap_err();
        assert!(matches!(err, DagError::Missing(c) if c == absent));
    }

    #[test]
    fn walk_survives_a_very_deep_chain() {
        let s = MemoryBlockstore::new();
        let mut cur = put(&s, RAW_CODEC, b"leaf".to_vec());
        for _ in 0..20_000 {
            cur = pb(&s, &[cur]);
        }
        let mut n = 0;
        walk::<DagError, _>(&s, &cur, |_, _| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 20_001);
    }
}
