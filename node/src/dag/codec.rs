//! `dag put` / `dag get`: dag-cbor and dag-json through `serde_ipld_dagcbor` /
//! `serde_ipld_dagjson`, dag-pb in its IPLD data-model form, raw as bytes.
//!
//! Untrusted dag-cbor is first checked by [`cbor_precheck`], a structural scan that proves every
//! declared array/map/string length is backed by bytes actually present. The serde decoder then
//! pre-allocates from those lengths, so allocations stay proportional to the input size and a
//! five-byte header claiming 2^40 items is a typed error (the "DAG-CBOR preallocation bomb").
//!
//! dag-pb renders as kubo renders it (go-codec-dagpb's data model):
//! `{"Data": {"/": {"bytes": ...}}, "Links": [{"Hash": {"/": cid}, "Name": ..., "Tsize": ...}]}`.
//! Path segments under a dag-pb node name links first (UnixFS pathing, as kubo's resolver does
//! for `/ipfs/` paths) and fall back to the data-model fields `Data` / `Links`; `/ipld/` paths
//! use the data model only.

use super::links::{DagError, IPLD_NESTING_DEPTH_MAX};
use super::pb::{PbLink, PbNode};
use super::{DAG_CBOR_CODEC, DAG_JSON_CODEC, DAG_PB_CODEC, RAW_CODEC};
use crate::unixfs::BlockSink;
use bytes::Bytes;
use cid::Cid;
use ipfs_kit_blockstore::{hash::HashFn, limits, Block, Blockstore};
use ipld_core::ipld::Ipld;
use std::collections::BTreeMap;

/// Largest `dag put` input: dag-json is wordier than the 2 MiB block it encodes to.
pub const DAG_PUT_INPUT_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Largest block `dag put` produces unless `allow_big_block` (kubo's `SoftBlockLimit`, 1 MiB:
/// bigger blocks cannot be exchanged with other peers over bitswap by default).
pub const DAG_PUT_BLOCK_BYTES_SOFT_MAX: usize = 1024 * 1024;
/// Longest `dag get` path accepted.
pub const DAG_PATH_BYTES_MAX: usize = 4096;
/// Most blocks a `dag get` path may cross.
pub const DAG_PATH_BLOCKS_MAX: usize = 1024;

/// kubo's codec names (`--input-codec`, `--store-codec`, `--output-codec`).
pub fn codec_from_name(name: &str) -> Option<u64> {
    Some(match name {
        "dag-cbor" => DAG_CBOR_CODEC,
        "dag-json" => DAG_JSON_CODEC,
        "dag-pb" => DAG_PB_CODEC,
        "raw" => RAW_CODEC,
        _ => return None,
    })
}

pub fn codec_name(code: u64) -> &'static str {
    match code {
        DAG_CBOR_CODEC => "dag-cbor",
        DAG_JSON_CODEC => "dag-json",
        DAG_PB_CODEC => "dag-pb",
        RAW_CODEC => "raw",
        _ => "unknown",
    }
}

/// Options of `dag put`, with kubo's defaults (dag-json in, dag-cbor stored, sha2-256, CIDv1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DagPutOptions {
    pub input_codec: u64,
    pub store_codec: u64,
    pub hash: HashFn,
    /// `--allow-big-block`: permit blocks over [`DAG_PUT_BLOCK_BYTES_SOFT_MAX`] (up to the store's
    /// hard block limit).
    pub allow_big_block: bool,
}

impl Default for DagPutOptions {
    fn default() -> Self {
        Self {
            input_codec: DAG_JSON_CODEC,
            store_codec: DAG_CBOR_CODEC,
            hash: HashFn::Sha2_256,
            allow_big_block: false,
        }
    }
}

/// Checks that `data` is one complete, definite-length CBOR item whose declared lengths are all
/// backed by input bytes, nested at most [`IPLD_NESTING_DEPTH_MAX`] deep, with nothing after it.
/// Iterative; O(input) time and O(depth) memory.
pub fn cbor_precheck(data: &[u8]) -> Result<(), DagError> {
    cbor_scan(data, &mut |_| Ok(()))
}

/// The links of a dag-cbor block in the order they are encoded, found by scanning the CBOR
/// structure (as [`cbor_precheck`] does) for tag 42, without building a data-model value. Like
/// go-ipld-prime, it does not insist that text strings be valid UTF-8.
pub fn cbor_links(data: &[u8]) -> Result<Vec<Cid>, DagError> {
    let mut out = Vec::new();
    cbor_scan(data, &mut |payload| {
        // A CID in DAG-CBOR is tag 42 over bytes: 0x00 (identity multibase) then the CID.
        match payload.split_first() {
            Some((0, cid)) => {
                let c = Cid::try_from(cid).map_err(|e| DagError::Cbor(format!("bad CID: {e}")))?;
                out.push(c);
                Ok(())
            }
            _ => Err(DagError::Cbor("tag 42 without the 0x00 prefix".into())),
        }
    })?;
    Ok(out)
}

/// The structural scan behind [`cbor_precheck`] and [`cbor_links`]; `on_link` gets the byte
/// string under each tag 42.
fn cbor_scan(
    data: &[u8],
    on_link: &mut dyn FnMut(&[u8]) -> Result<(), DagError>,
) -> Result<(), DagError> {
    let bad = |m: &str| DagError::Cbor(m.to_string());
    let mut pos = 0usize;
    let mut link_next = false;
    // Items still to read at each open nesting level.
    let mut pending: Vec<u64> = vec![1];
    while let Some(top) = pending.last_mut() {
        if *top == 0 {
            pending.pop();
            continue;
        }
        *top -= 1;
        let head = *data.get(pos).ok_or_else(|| bad("truncated input"))?;
        pos += 1;
        let major = head >> 5;
        let ai = head & 0x1f;
        let arg: u64 = match ai {
            0..=23 => u64::from(ai),
            24..=27 => {
                let n = 1usize << (ai - 24);
                let b = data
                    .get(pos..pos + n)
                    .ok_or_else(|| bad("truncated input"))?;
                pos += n;
                b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
            }
            _ => {
                return Err(bad(
                    "indefinite or reserved length (not allowed in DAG-CBOR)",
                ))
            }
        };
        let remaining = (data.len() - pos) as u64;
        let is_link = std::mem::take(&mut link_next);
        if is_link && major != 2 {
            return Err(bad("tag 42 is not on a byte string"));
        }
        match major {
            0 | 1 => {}
            2 | 3 => {
                if arg > remaining {
                    return Err(bad("string length exceeds the input"));
                }
                let start = pos;
                pos += arg as usize;
                if is_link {
                    on_link(&data[start..pos])?;
                }
            }
            4 | 5 => {
                let items = if major == 5 {
                    arg.checked_mul(2)
                } else {
                    Some(arg)
                };
                match items {
                    Some(n) if n <= remaining => {
                        if pending.len() >= IPLD_NESTING_DEPTH_MAX {
                            return Err(DagError::TooDeep {
                                depth_max: IPLD_NESTING_DEPTH_MAX,
                            });
                        }
                        pending.push(n);
                    }
                    _ => return Err(bad("declared length exceeds the input")),
                }
            }
            6 => {
                link_next = arg == 42;
                if pending.len() >= IPLD_NESTING_DEPTH_MAX {
                    return Err(DagError::TooDeep {
                        depth_max: IPLD_NESTING_DEPTH_MAX,
                    });
                }
                pending.push(1);
            }
            _ => {
                // major 7: false/true/null (20..=22), half/single/double floats (25..=27).
                if !matches!(ai, 20..=22 | 25..=27) {
                    return Err(bad("unsupported simple value"));
                }
            }
        }
    }
    if pos != data.len() {
        return Err(bad("trailing bytes after the value"));
    }
    Ok(())
}

/// Decodes a block into the IPLD data model by codec.
pub fn decode_ipld(codec: u64, data: &[u8]) -> Result<Ipld, DagError> {
    match codec {
        DAG_CBOR_CODEC => {
            cbor_precheck(data)?;
            serde_ipld_dagcbor::from_slice(data).map_err(|e| DagError::Cbor(e.to_string()))
        }
        DAG_JSON_CODEC => {
            serde_ipld_dagjson::from_slice(data).map_err(|e| DagError::Json(e.to_string()))
        }
        DAG_PB_CODEC => Ok(pb_to_ipld(&PbNode::decode(&Bytes::copy_from_slice(data))?)),
        RAW_CODEC => Ok(Ipld::Bytes(data.to_vec())),
        other => Err(DagError::UnknownCodec(other)),
    }
}

/// Encodes an IPLD value with a codec.
pub fn encode_ipld(codec: u64, value: &Ipld) -> Result<Vec<u8>, DagError> {
    match codec {
        DAG_CBOR_CODEC => serde_ipld_dagcbor::to_vec(value).map_err(|e| DagError::Encode {
            codec: "dag-cbor",
            reason: e.to_string(),
        }),
        DAG_JSON_CODEC => serde_ipld_dagjson::to_vec(value).map_err(|e| DagError::Encode {
            codec: "dag-json",
            reason: e.to_string(),
        }),
        DAG_PB_CODEC => Ok(ipld_to_pb(value)?.encode()),
        RAW_CODEC => match value {
            Ipld::Bytes(b) => Ok(b.clone()),
            _ => Err(DagError::Encode {
                codec: "raw",
                reason: "value is not bytes".into(),
            }),
        },
        other => Err(DagError::UnknownCodec(other)),
    }
}

/// dag-pb in the IPLD data model (go-codec-dagpb): absent fields are absent keys.
pub fn pb_to_ipld(node: &PbNode) -> Ipld {
    let mut m = BTreeMap::new();
    if let Some(d) = &node.data {
        m.insert("Data".to_string(), Ipld::Bytes(d.to_vec()));
    }
    let links = node
        .links
        .iter()
        .map(|l| {
            let mut lm = BTreeMap::new();
            lm.insert("Hash".to_string(), Ipld::Link(l.cid));
            if let Some(n) = &l.name {
                lm.insert("Name".to_string(), Ipld::String(n.clone()));
            }
            if let Some(t) = l.tsize {
                lm.insert("Tsize".to_string(), Ipld::Integer(i128::from(t)));
            }
            Ipld::Map(lm)
        })
        .collect();
    m.insert("Links".to_string(), Ipld::List(links));
    Ipld::Map(m)
}

/// The inverse of [`pb_to_ipld`], for `dag put --store-codec dag-pb`.
pub fn ipld_to_pb(value: &Ipld) -> Result<PbNode, DagError> {
    let bad = |r: &str| DagError::Encode {
        codec: "dag-pb",
        reason: r.to_string(),
    };
    let Ipld::Map(m) = value else {
        return Err(bad("top level is not a map"));
    };
    if m.keys().any(|k| k != "Data" && k != "Links") {
        return Err(bad("only Data and Links are allowed"));
    }
    let data = match m.get("Data") {
        None => None,
        Some(Ipld::Bytes(b)) => Some(Bytes::from(b.clone())),
        Some(_) => return Err(bad("Data is not bytes")),
    };
    let mut links = Vec::new();
    match m.get("Links") {
        Some(Ipld::List(items)) => {
            for item in items {
                let Ipld::Map(l) = item else {
                    return Err(bad("a link is not a map"));
                };
                if l.keys()
                    .any(|k| !matches!(k.as_str(), "Hash" | "Name" | "Tsize"))
                {
                    return Err(bad("a link has an unknown field"));
                }
                let cid = match l.get("Hash") {
                    Some(Ipld::Link(c)) => *c,
                    _ => return Err(bad("a link has no Hash")),
                };
                let name = match l.get("Name") {
                    None => None,
                    Some(Ipld::String(s)) => Some(s.clone()),
                    Some(_) => return Err(bad("Name is not a string")),
                };
                let tsize = match l.get("Tsize") {
                    None => None,
                    Some(Ipld::Integer(i)) => {
                        Some(u64::try_from(*i).map_err(|_| bad("Tsize out of range"))?)
                    }
                    Some(_) => return Err(bad("Tsize is not an integer")),
                };
                links.push(PbLink { cid, name, tsize });
            }
        }
        None => {}
        Some(_) => return Err(bad("Links is not a list")),
    }
    // Encoded in the order given, as go-codec-dagpb does; sorting is the producer's job.
    Ok(PbNode { links, data })
}

/// Encodes `input` as `dag put` does: parse with the input codec, re-encode with the store codec,
/// hash into a CIDv1. Pure: the caller stores the block.
pub fn dag_put_block(input: &[u8], opts: &DagPutOptions) -> Result<Block, DagError> {
    if input.len() > DAG_PUT_INPUT_BYTES_MAX {
        return Err(DagError::InputTooLarge {
            size_bytes: input.len(),
            max_bytes: DAG_PUT_INPUT_BYTES_MAX,
        });
    }
    let value = decode_ipld(opts.input_codec, input)?;
    let bytes = encode_ipld(opts.store_codec, &value)?;
    if !opts.allow_big_block && bytes.len() > DAG_PUT_BLOCK_BYTES_SOFT_MAX {
        return Err(DagError::OverSoftBlockLimit {
            size_bytes: bytes.len(),
            max_bytes: DAG_PUT_BLOCK_BYTES_SOFT_MAX,
        });
    }
    limits::check_block_size(bytes.len())?;
    let mh = opts.hash.digest(&bytes)?;
    let cid = Cid::new_v1(opts.store_codec, mh);
    Ok(Block::new_unchecked(cid, Bytes::from(bytes)))
}

/// `dag put`: encodes and writes the block through `sink`; returns its CID.
pub fn dag_put(sink: &dyn BlockSink, input: &[u8], opts: &DagPutOptions) -> Result<Cid, DagError> {
    let block = dag_put_block(input, opts)?;
    sink.put_blocks(std::slice::from_ref(&block))?;
    Ok(*block.cid())
}

/// A parsed `dag get` path: `<cid>[/seg...]`, optionally prefixed by `/ipfs/`.
pub fn parse_path(path: &str) -> Result<(Cid, Vec<String>), DagError> {
    let bad = |r: &str| DagError::BadPath {
        path: path.to_string(),
        reason: r.to_string(),
    };
    if path.len() > DAG_PATH_BYTES_MAX {
        return Err(DagError::InputTooLarge {
            size_bytes: path.len(),
            max_bytes: DAG_PATH_BYTES_MAX,
        });
    }
    let rest = path
        .strip_prefix("/ipfs/")
        .or_else(|| path.strip_prefix("/ipld/"))
        .unwrap_or(path);
    let mut parts = rest.split('/');
    let first = parts.next().unwrap_or("");
    let cid = Cid::try_from(first).map_err(|e| bad(&format!("not a CID: {e}")))?;
    let segs: Vec<String> = parts
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if segs.iter().any(|s| s == "..") {
        return Err(bad("'..' is not allowed"));
    }
    Ok((cid, segs))
}

fn load(store: &dyn Blockstore, cid: &Cid) -> Result<Ipld, DagError> {
    let data = store.get(cid)?.ok_or(DagError::Missing(*cid))?;
    decode_ipld(cid.codec(), &data)
}

/// Where a path ends: the block holding the value, the path inside that block, and the value.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub cid: Cid,
    /// Segments after the last link crossed (`dag resolve` prints `cid/remainder`).
    pub remainder: Vec<String>,
    pub value: Ipld,
}

/// Resolves an IPLD path to the value it names, crossing links between blocks; a path that ends
/// on a link yields the linked block's value (as kubo's `dag get` prints the target node).
pub fn resolve(store: &dyn Blockstore, path: &str) -> Result<Ipld, DagError> {
    Ok(resolve_full(store, path)?.value)
}

/// [`resolve`], also telling which block the value lives in (`dag resolve`).
pub fn resolve_full(store: &dyn Blockstore, path: &str) -> Result<Resolved, DagError> {
    let (root, segs) = parse_path(path)?;
    // `/ipld/` paths walk the data model only; `/ipfs/` and bare CIDs also name dag-pb links.
    let unixfs_names = !path.starts_with("/ipld/");
    let mut cur_cid = root;
    let mut cur = load(store, &root)?;
    let mut remainder: Vec<String> = Vec::new();
    let mut blocks = 1usize;
    let follow = |c: Cid, blocks: &mut usize| -> Result<Ipld, DagError> {
        *blocks += 1;
        if *blocks > DAG_PATH_BLOCKS_MAX {
            return Err(DagError::BadPath {
                path: path.to_string(),
                reason: format!("crosses more than {DAG_PATH_BLOCKS_MAX} blocks"),
            });
        }
        load(store, &c)
    };
    for seg in &segs {
        if let Ipld::Link(c) = cur {
            cur_cid = c;
            cur = follow(c, &mut blocks)?;
            remainder.clear();
        }
        let not_found = || DagError::NoSuchLink {
            cid: cur_cid,
            segment: seg.clone(),
        };
        let next = match &cur {
            Ipld::Map(m) => {
                // dag-pb: a link name first (UnixFS pathing), then the data-model fields.
                let named = (unixfs_names && cur_cid.codec() == DAG_PB_CODEC)
                    .then(|| pb_named_link(m, seg))
                    .flatten();
                match named {
                    Some(c) => Ipld::Link(c),
                    None => m.get(seg).cloned().ok_or_else(not_found)?,
                }
            }
            Ipld::List(items) => {
                let i: usize = seg.parse().map_err(|_| not_found())?;
                items.get(i).cloned().ok_or_else(not_found)?
            }
            _ => return Err(not_found()),
        };
        remainder.push(seg.clone());
        cur = next;
    }
    if let Ipld::Link(c) = cur {
        cur_cid = c;
        cur = follow(c, &mut blocks)?;
        remainder.clear();
    }
    Ok(Resolved {
        cid: cur_cid,
        remainder,
        value: cur,
    })
}

/// `dag resolve`: `cid[/remainder]` of the block the path ends in.
pub fn dag_resolve(store: &dyn Blockstore, path: &str) -> Result<String, DagError> {
    let r = resolve_full(store, path)?;
    let mut out = r.cid.to_string();
    for seg in &r.remainder {
        out.push('/');
        out.push_str(seg);
    }
    Ok(out)
}

/// `dag stat`: total block bytes and number of distinct blocks under `root`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DagStat {
    pub size: u64,
    pub num_blocks: u64,
}

pub fn dag_stat(store: &dyn Blockstore, root: &Cid) -> Result<DagStat, DagError> {
    let mut st = DagStat::default();
    super::links::walk::<DagError, _>(store, root, |_, data| {
        st.size += data.len() as u64;
        st.num_blocks += 1;
        Ok(())
    })?;
    Ok(st)
}

fn pb_named_link(node: &BTreeMap<String, Ipld>, name: &str) -> Option<Cid> {
    let Some(Ipld::List(links)) = node.get("Links") else {
        return None;
    };
    links.iter().find_map(|l| match l {
        Ipld::Map(lm) => match (lm.get("Name"), lm.get("Hash")) {
            (Some(Ipld::String(n)), Some(Ipld::Link(c))) if n == name => Some(*c),
            _ => None,
        },
        _ => None,
    })
}

/// `dag get <path> --output-codec <codec>`: the value at `path`, encoded (dag-json by default).
pub fn dag_get(store: &dyn Blockstore, path: &str, output_codec: u64) -> Result<Vec<u8>, DagError> {
    let value = resolve(store, path)?;
    encode_ipld(output_codec, &value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unixfs::StoreSink;
    use ipfs_kit_blockstore::MemoryBlockstore;

    #[test]
    fn put_then_get_dag_json_round_trip() {
        let s = MemoryBlockstore::new();
        let input = br#"{"hello":"world","n":[1,2,{"/":{"bytes":"AAEC"}}]}"#;
        let cid = dag_put(&StoreSink(&s), input, &DagPutOptions::default()).unwrap();
        assert_eq!(cid.codec(), DAG_CBOR_CODEC);
        assert_eq!(cid.version(), cid::Version::V1);
        let out = dag_get(&s, &cid.to_string(), DAG_JSON_CODEC).unwrap();
        assert_eq!(
            out,
            br#"{"hello":"world","n":[1,2,{"/":{"bytes":"AAEC"}}]}"#
        );
        let sub = dag_get(&s, &format!("/ipfs/{cid}/n/1"), DAG_JSON_CODEC).unwrap();
        assert_eq!(sub, b"2");
        assert!(matches!(
            dag_get(&s, &format!("{cid}/nope"), DAG_JSON_CODEC),
            Err(DagError::NoSuchLink { .. })
        ));
    }

    #[test]
    fn cbor_links_in_block_order_and_tolerant_of_bad_utf8() {
        let a = Cid::new_v1(RAW_CODEC, HashFn::Sha2_256.digest(b"a").unwrap());
        let b = Cid::new_v1(RAW_CODEC, HashFn::Sha2_256.digest(b"b").unwrap());
        // {"zz": b, "a": a}: canonical order puts "a" first (shorter key).
        let mut m = BTreeMap::new();
        m.insert("zz".to_string(), Ipld::Link(b));
        m.insert("a".to_string(), Ipld::Link(a));
        let enc = serde_ipld_dagcbor::to_vec(&Ipld::Map(m)).unwrap();
        assert_eq!(cbor_links(&enc).unwrap(), vec![a, b]);
        // A text string with invalid UTF-8 next to a link: links still come out.
        let mut raw = vec![
            0x82,
            0x62,
            0xff,
            0xfe,
            0xd8,
            0x2a,
            0x58,
            a.encoded_len() as u8 + 1,
            0x00,
        ];
        raw.extend_from_slice(&a.to_bytes());
        assert_eq!(cbor_links(&raw).unwrap(), vec![a]);
    }

    #[test]
    fn known_vector_dag_cbor_of_empty_map() {
        // `echo '{}' | ipfs dag put` prints bafyreigbtj4x7ip5legnfznufuopl4sg4knzc2cof6duas4b3q2fy6swua
        // (the dag-cbor empty map 0xa0, sha2-256), a well-known CID.
        let b = dag_put_block(b"{}", &DagPutOptions::default()).unwrap();
        assert_eq!(
            b.cid().to_string(),
            "bafyreigbtj4x7ip5legnfznufuopl4sg4knzc2cof6duas4b3q2fy6swua"
        );
    }

    #[test]
    fn paths_cross_links_and_dag_pb_names() {
        let s = MemoryBlockstore::new();
        let leaf = dag_put(&StoreSink(&s), br#"{"v":42}"#, &DagPutOptions::default()).unwrap();
        let pb = PbNode {
            links: vec![PbLink {
                cid: leaf,
                name: Some("file".into()),
                tsize: Some(7),
            }],
            data: Some(Bytes::from_static(b"\x08\x01")),
        };
        let pb_bytes = pb.encode();
        let pb_cid = Cid::new_v1(DAG_PB_CODEC, HashFn::Sha2_256.digest(&pb_bytes).unwrap());
        s.put(&Block::new(pb_cid, pb_bytes.into()).unwrap())
            .unwrap();
        let json = dag_get(&s, &pb_cid.to_string(), DAG_JSON_CODEC).unwrap();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            format!(
                r#"{{"Data":{{"/":{{"bytes":"CAE"}}}},"Links":[{{"Hash":{{"/":"{leaf}"}},"Name":"file","Tsize":7}}]}}"#
            )
        );
        assert_eq!(
            dag_get(&s, &format!("{pb_cid}/file/v"), DAG_JSON_CODEC).unwrap(),
            b"42"
        );
        assert_eq!(
            dag_get(&s, &format!("{pb_cid}/Links/0/Hash/v"), DAG_JSON_CODEC).unwrap(),
            b"42"
        );
        // A link named "Data": a name under /ipfs/, the data-model field under /ipld/.
        let shadow = PbNode {
            links: vec![PbLink {
                cid: leaf,
                name: Some("Data".into()),
                tsize: Some(7),
            }],
            data: Some(Bytes::from_static(b"\x08\x01")),
        }
        .encode();
        let shadow_cid = Cid::new_v1(DAG_PB_CODEC, HashFn::Sha2_256.digest(&shadow).unwrap());
        s.put(&Block::new(shadow_cid, shadow.into()).unwrap())
            .unwrap();
        assert_eq!(
            dag_get(&s, &format!("/ipfs/{shadow_cid}/Data/v"), DAG_JSON_CODEC).unwrap(),
            b"42"
        );
        assert_eq!(
            dag_get(&s, &format!("/ipld/{shadow_cid}/Data"), DAG_JSON_CODEC).unwrap(),
            br#"{"/":{"bytes":"CAE"}}"#
        );
        // Through a dag-cbor link to the dag-pb node.
        let top = format!(r#"{{"dir":{{"/":"{pb_cid}"}}}}"#);
        let top_cid = dag_put(&StoreSink(&s), top.as_bytes(), &DagPutOptions::default()).unwrap();
        assert_eq!(
            dag_get(&s, &format!("{top_cid}/dir/file/v"), DAG_JSON_CODEC).unwrap(),
            b"42"
        );
        // dag-pb round trip through dag put.
        let again = dag_put_block(
            &json_of(&s, pb_cid),
            &DagPutOptions {
                store_codec: DAG_PB_CODEC,
                ..DagPutOptions::default()
            },
        )
        .unwrap();
        assert_eq!(*again.cid(), pb_cid);
    }

    fn json_of(s: &MemoryBlockstore, c: Cid) -> Vec<u8> {
        dag_get(s, &c.to_string(), DAG_JSON_CODEC).unwrap()
    }

    #[test]
    fn store_codecs_and_hashes() {
        let o = DagPutOptions {
            store_codec: DAG_JSON_CODEC,
            ..DagPutOptions::default()
        };
        let b = dag_put_block(br#"{"b":1, "a":2}"#, &o).unwrap();
        assert_eq!(&b.data()[..], br#"{"a":2,"b":1}"#);
        let o = DagPutOptions {
            input_codec: RAW_CODEC,
            store_codec: RAW_CODEC,
            hash: HashFn::Blake3,
            allow_big_block: false,
        };
        let b = dag_put_block(b"raw bytes", &o).unwrap();
        assert_eq!(&b.data()[..], b"raw bytes");
        assert_eq!(b.cid().hash().code(), HashFn::Blake3.code());
        let o = DagPutOptions {
            store_codec: RAW_CODEC,
            ..DagPutOptions::default()
        };
        assert!(matches!(
            dag_put_block(b"{}", &o),
            Err(DagError::Encode { .. })
        ));
        assert!(matches!(
            dag_put_block(b"{not json", &DagPutOptions::default()),
            Err(DagError::Json(_))
        ));
        let big = vec![b' '; DAG_PUT_INPUT_BYTES_MAX + 1];
        assert!(matches!(
            dag_put_block(&big, &DagPutOptions::default()),
            Err(DagError::InputTooLarge { .. })
        ));
    }

    #[test]
    fn cbor_preallocation_bomb_is_a_typed_error() {
        // Array header claiming 2^40 items, with nothing behind it.
        let bomb = [0x9b, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00];
        assert!(matches!(
            decode_ipld(DAG_CBOR_CODEC, &bomb),
            Err(DagError::Cbor(_))
        ));
        // A map claiming u64::MAX entries (the doubled count overflows).
        let bomb = [0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            decode_ipld(DAG_CBOR_CODEC, &bomb),
            Err(DagError::Cbor(_))
        ));
        // Nested arrays, each claiming 2^32-1 items, one real item each.
        let mut nested = Vec::new();
        for _ in 0..200 {
            nested.extend_from_slice(&[0x9a, 0xff, 0xff, 0xff, 0xff]);
        }
        nested.push(0x00);
        assert!(matches!(
            decode_ipld(DAG_CBOR_CODEC, &nested),
            Err(DagError::Cbor(_))
        ));
        // A byte string claiming 4 GiB.
        let bomb = [0x5a, 0xff, 0xff, 0xff, 0xff, 0x00];
        assert!(matches!(
            decode_ipld(DAG_CBOR_CODEC, &bomb),
            Err(DagError::Cbor(_))
        ));
        // Too deep.
        let mut deep = vec![0x81; IPLD_NESTING_DEPTH_MAX + 1];
        deep.push(0x00);
        assert!(matches!(
            decode_ipld(DAG_CBOR_CODEC, &deep),
            Err(DagError::TooDeep { .. })
        ));
        // Indefinite length and trailing bytes.
        assert!(decode_ipld(DAG_CBOR_CODEC, &[0x9f, 0xff]).is_err());
        assert!(decode_ipld(DAG_CBOR_CODEC, &[0x80, 0x00]).is_err());
        // Tag 42 must wrap bytes starting with 0x00.
        assert!(cbor_links(&[0xd8, 0x2a, 0x01]).is_err());
        assert!(cbor_links(&[0xd8, 0x2a, 0x41, 0x01]).is_err());
        // And a legitimate value still decodes.
        let ok = serde_ipld_dagcbor::to_vec(&Ipld::List(vec![Ipld::Integer(1); 1000])).unwrap();
        assert!(decode_ipld(DAG_CBOR_CODEC, &ok).is_ok());
    }

    // ---- Vectors from kubo's test/sharness/t0053-dag.sh (kubo v0.22) ----

    fn b64(s: &str) -> Vec<u8> {
        // Standard base64 with padding, as the sharness script feeds `base64 -d`.
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = Vec::new();
        let mut acc = 0u32;
        let mut bits = 0;
        for c in s.bytes().filter(|c| *c != b'=') {
            acc = (acc << 6) | A.iter().position(|a| *a == c).unwrap() as u32;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        out
    }

    fn opts(input: u64, store: u64) -> DagPutOptions {
        DagPutOptions {
            input_codec: input,
            store_codec: store,
            ..DagPutOptions::default()
        }
    }

    #[test]
    fn sharness_same_object_in_three_codecs() {
        // ipld/codec-fixtures dagpb_Data_some.
        let forms = [
            (DAG_CBOR_CODEC, b64("omREYXRhRQABAgMEZUxpbmtzgA==")),
            (DAG_PB_CODEC, b64("CgUAAQIDBA==")),
            (
                DAG_JSON_CODEC,
                br#"{"Data":{"/":{"bytes":"AAECAwQ"}},"Links":[]}"#.to_vec(),
            ),
        ];
        let expect = [
            (
                DAG_CBOR_CODEC,
                "bafyreieculsmrexh3ty5jentbvuku452o27mst4h2tq2rb2zntqhgcstji",
            ),
            (
                DAG_PB_CODEC,
                "bafybeibazl2z4vqp2tmwcfag6wirmtpnomxknqcgrauj7m2yisrz3qjbom",
            ),
            (
                DAG_JSON_CODEC,
                "baguqeerajwksxu3lxpomdwxvosl542zl3xknhjgxtq3277gafrhl6vdw5tcq",
            ),
        ];
        let s = MemoryBlockstore::new();
        for (input, bytes) in &forms {
            for (store, cid) in &expect {
                let c = dag_put(&StoreSink(&s), bytes, &opts(*input, *store)).unwrap();
                assert_eq!(c.to_string(), *cid, "input {input:x} store {store:x}");
            }
        }
        // All three read back as the same dag-json.
        let jsons: Vec<Vec<u8>> = expect
            .iter()
            .map(|(_, c)| dag_get(&s, c, DAG_JSON_CODEC).unwrap())
            .collect();
        assert!(jsons.iter().all(|j| j == &forms[2].1));
        // dag-pb transcoded to dag-cbor hashes to 1220 82a2e4c8...
        let cbor = dag_get(&s, expect[1].1, DAG_CBOR_CODEC).unwrap();
        let mh = HashFn::Sha2_256.digest(&cbor).unwrap();
        assert_eq!(
            hex::encode(mh.to_bytes()),
            "122082a2e4c892e7dcf1d491b30d68aa73ba76bec94f87d4e1a887596ce0730a534a"
        );
        assert_eq!(
            dag_get(&s, &format!("/ipld/{}/Data", expect[1].1), DAG_JSON_CODEC).unwrap(),
            br#"{"/":{"bytes":"AAECAwQ"}}"#
        );
    }

    /// `echo <text> | ipfs add` for a one-block file: dag-pb with UnixFS File data, CIDv0.
    fn small_file(s: &MemoryBlockstore, text: &[u8]) -> Cid {
        let mut data = vec![0x08, 0x02, 0x12, text.len() as u8];
        data.extend_from_slice(text);
        data.extend_from_slice(&[0x18, text.len() as u8]);
        let node = PbNode {
            links: vec![],
            data: Some(data.into()),
        }
        .encode();
        let cid = Cid::new_v0(HashFn::Sha2_256.digest(&node).unwrap()).unwrap();
        s.put(&Block::new(cid, node.into()).unwrap()).unwrap();
        cid
    }

    #[test]
    fn sharness_hello_world_object() {
        let s = MemoryBlockstore::new();
        let h1 = small_file(&s, b"foo\n");
        let h2 = small_file(&s, b"bar\n");
        let h3 = small_file(&s, b"baz\n");
        let obj = format!(
            r#"{{"hello":"world","cats":[{{"/":"{h1}"}},{{"water":{{"/":"{h2}"}}}}],"magic":{{"/":"{h3}"}},"sub":{{"dict":"ionary","beep":[0,"bop"]}}}}"#
        );
        let c = dag_put(&StoreSink(&s), obj.as_bytes(), &DagPutOptions::default()).unwrap();
        assert_eq!(
            c.to_string(),
            "bafyreiblwimnjbqcdoeafiobk6q27jcw64ew7n2fmmhdpldd63edmjecde"
        );
        let j = dag_put_block(obj.as_bytes(), &opts(DAG_JSON_CODEC, DAG_JSON_CODEC)).unwrap();
        assert_eq!(
            j.cid().to_string(),
            "baguqeera6gviseelmbzn2ugoddo5vulxlshqs3kw5ymgsb6w4cabnoh4ldpa"
        );
        let sha3 = DagPutOptions {
            hash: HashFn::Sha3_512,
            ..DagPutOptions::default()
        };
        assert_eq!(
            dag_put_block(obj.as_bytes(), &sha3).unwrap().cid().to_string(),
            "bafyriqforjma7y7akqz7nhuu73r6liggj5zhkbfiqgicywe3fgkna2ijlhod2af3ue7doj56tlzt5hh6iu5esafc4msr3sd53jol5m2o25ucy"
        );
        let get = |p: &str| {
            String::from_utf8(dag_get(&s, &format!("{c}{p}"), DAG_JSON_CODEC).unwrap()).unwrap()
        };
        assert_eq!(get("/hello"), r#""world""#);
        assert_eq!(get("/sub"), r#"{"beep":[0,"bop"],"dict":"ionary"}"#);
        assert_eq!(get("/sub/beep"), r#"[0,"bop"]"#);
        assert_eq!(get("/sub/beep/0"), "0");
        assert_eq!(get("/sub/beep/1"), r#""bop""#);
        assert_eq!(
            get("/cats/0"),
            r#"{"Data":{"/":{"bytes":"CAISBGZvbwoYBA"}},"Links":[]}"#
        );
        assert_eq!(
            get("/cats/1/water"),
            r#"{"Data":{"/":{"bytes":"CAISBGJhcgoYBA"}},"Links":[]}"#
        );
        // Round trip: dag get output put back gives the same CID.
        let again = dag_put(
            &StoreSink(&s),
            get("").as_bytes(),
            &DagPutOptions::default(),
        )
        .unwrap();
        assert_eq!(again, c);
        assert_eq!(
            String::from_utf8(
                dag_get(&s, &small_file(&s, b"foobar\n").to_string(), DAG_JSON_CODEC).unwrap()
            )
            .unwrap(),
            r#"{"Data":{"/":{"bytes":"CAISB2Zvb2JhcgoYBw"}},"Links":[]}"#
        );
    }

    #[test]
    fn sharness_put_resolve_and_stat() {
        let s = MemoryBlockstore::new();
        let put =
            |j: &str| dag_put(&StoreSink(&s), j.as_bytes(), &DagPutOptions::default()).unwrap();
        assert_eq!(
            put(r#"{"foo":"bar"}"#).to_string(),
            "bafyreiblaotetvwobe7cu2uqvnddr6ew2q3cu75qsoweulzku2egca4dxq"
        );
        assert_eq!(
            put(r#"{"foo":"baz"}"#).to_string(),
            "bafyreibqp7zvp6dvrqhtkbwuzzk7jhtmfmngtiqjajqpm6gtw55o7kqzfi"
        );
        let nested = put(r#"{"data":123}"#);
        let top = put(&format!(r#"{{"obj":{{"/":"{nested}"}}}}"#));
        assert_eq!(dag_resolve(&s, &top.to_string()).unwrap(), top.to_string());
        assert_eq!(
            dag_resolve(&s, &format!("{top}/obj")).unwrap(),
            nested.to_string()
        );
        assert_eq!(
            dag_resolve(&s, &format!("{top}/obj/data")).unwrap(),
            format!("{nested}/data")
        );
        assert_eq!(
            dag_stat(&s, &nested).unwrap(),
            DagStat {
                size: 8,
                num_blocks: 1
            }
        );
        assert_eq!(
            dag_stat(&s, &top).unwrap(),
            DagStat {
                size: 54,
                num_blocks: 2
            }
        );
        // "echo 1234 | ipfs add" is a 13-byte block.
        let f = small_file(&s, b"1234\n");
        assert_eq!(
            dag_stat(&s, &f).unwrap(),
            DagStat {
                size: 13,
                num_blocks: 1
            }
        );
    }

    #[test]
    fn path_and_json_limits() {
        let s = MemoryBlockstore::new();
        let leaf = dag_put(&StoreSink(&s), b"1", &DagPutOptions::default()).unwrap();
        let long = format!("{leaf}/{}", "a".repeat(DAG_PATH_BYTES_MAX));
        assert!(matches!(
            dag_get(&s, &long, DAG_JSON_CODEC),
            Err(DagError::InputTooLarge { .. })
        ));
        assert!(matches!(
            parse_path("notacid/x"),
            Err(DagError::BadPath { .. })
        ));
        assert!(matches!(
            parse_path(&format!("{leaf}/../x")),
            Err(DagError::BadPath { .. })
        ));
        // A chain of DAG_PATH_BLOCKS_MAX links: following all of them crosses one block too many.
        let mut cur = leaf;
        for _ in 0..DAG_PATH_BLOCKS_MAX {
            let j = format!(r#"{{"n":{{"/":"{cur}"}}}}"#);
            cur = dag_put(&StoreSink(&s), j.as_bytes(), &DagPutOptions::default()).unwrap();
        }
        let mut p = cur.to_string();
        for _ in 0..DAG_PATH_BLOCKS_MAX - 1 {
            p.push_str("/n");
        }
        assert!(dag_get(&s, &p, DAG_JSON_CODEC).is_ok());
        p.push_str("/n");
        assert!(matches!(
            dag_get(&s, &p, DAG_JSON_CODEC),
            Err(DagError::BadPath { .. })
        ));
        // Deeply nested JSON is an error, not a stack overflow.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            dag_put_block(deep.as_bytes(), &DagPutOptions::default()),
            Err(DagError::Json(_))
        ));
    }

    #[test]
    fn big_blocks_need_allow_big_block() {
        // sharness: a 2 MB raw block is refused ("over 1MB") unless --allow-big-block.
        let data = vec![0u8; 2_000_000];
        let mut o = opts(RAW_CODEC, RAW_CODEC);
        assert!(matches!(
            dag_put_block(&data, &o),
            Err(DagError::OverSoftBlockLimit { .. })
        ));
        o.allow_big_block = true;
        assert!(dag_put_block(&data, &o).is_ok());
        let too_big = vec![0u8; limits::BLOCK_SIZE_BYTES_MAX + 1];
        assert!(matches!(
            dag_put_block(&too_big, &o),
            Err(DagError::Store(_))
        ));
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic the decoders or the link scanner.
        #[test]
        fn decoders_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            for codec in [DAG_CBOR_CODEC, DAG_JSON_CODEC, DAG_PB_CODEC, RAW_CODEC] {
                let _ = decode_ipld(codec, &data);
            }
            let _ = cbor_links(&data);
            if cbor_precheck(&data).is_ok() {
                // Whatever passes the precheck has all its declared lengths backed by input.
                proptest::prop_assert!(!data.is_empty());
            }
        }
    }
}
