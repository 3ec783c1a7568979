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
//! Path segments under a dag-pb node name links first (UnixFS pathing, as kubo's resolver does)
//! and fall back to the data-model fields `Data` / `Links`.

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
}

impl Default for DagPutOptions {
    fn default() -> Self {
        Self {
            input_codec: DAG_JSON_CODEC,
            store_codec: DAG_CBOR_CODEC,
            hash: HashFn::Sha2_256,
        }
    }
}

/// Checks that `data` is one complete, definite-length CBOR item whose declared lengths are all
/// backed by input bytes, nested at most [`IPLD_NESTING_DEPTH_MAX`] deep, with nothing after it.
/// Iterative; O(input) time and O(depth) memory.
pub fn cbor_precheck(data: &[u8]) -> Result<(), DagError> {
    let bad = |m: &str| DagError::Cbor(m.to_string());
    let mut pos = 0usize;
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
        match major {
            0 | 1 => {}
            2 | 3 => {
                if arg > remaining {
                    return Err(bad("string length exceeds the input"));
                }
                pos += arg as usize;
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
    // The dag-pb spec requires links sorted by name bytes (stable for equal names).
    links.sort_by(|a, b| {
        a.name
            .as_deref()
            .unwrap_or("")
            .as_bytes()
            .cmp(b.name.as_deref().unwrap_or("").as_bytes())
    });
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

/// Resolves an IPLD path to the value it names, crossing links between blocks; a path that ends
/// on a link yields the linked block's value (as kubo's `dag get` prints the target node).
pub fn resolve(store: &dyn Blockstore, path: &str) -> Result<Ipld, DagError> {
    let (root, segs) = parse_path(path)?;
    let mut cur_cid = root;
    let mut cur = load(store, &root)?;
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
        }
        let not_found = || DagError::NoSuchLink {
            cid: cur_cid,
            segment: seg.clone(),
        };
        let next = match &cur {
            Ipld::Map(m) => {
                // dag-pb: a link name first (UnixFS pathing), then the data-model fields.
                let named = (cur_cid.codec() == DAG_PB_CODEC)
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
        cur = next;
    }
    if let Ipld::Link(c) = cur {
        cur = follow(c, &mut blocks)?;
    }
    Ok(cur)
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
        // And a legitimate value still decodes.
        let ok = serde_ipld_dagcbor::to_vec(&Ipld::List(vec![Ipld::Integer(1); 1000])).unwrap();
        assert!(decode_ipld(DAG_CBOR_CODEC, &ok).is_ok());
    }
}
