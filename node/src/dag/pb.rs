//! dag-pb, decoded strictly (ipld/specs `specs/codecs/dag-pb/spec.md`).
//!
//! Wire form: `PBNode { repeated PBLink Links = 2; optional bytes Data = 1; }` with all links
//! before the data, and `PBLink { optional bytes Hash = 1; optional string Name = 2; optional
//! uint64 Tsize = 3; }` with fields in that order. The decoder rejects unknown fields, duplicate
//! fields, fields out of order, a link without a parseable Hash, and trailing bytes.

use bytes::Bytes;
use cid::Cid;

/// Errors from decoding dag-pb bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PbError {
    #[error("dag-pb: truncated input")]
    Truncated,
    #[error("dag-pb: varint overflows 64 bits")]
    VarintOverflow,
    #[error("dag-pb: unexpected field {field} (wire type {wire_type}) in {message}")]
    UnexpectedField {
        message: &'static str,
        field: u64,
        wire_type: u64,
    },
    #[error("dag-pb: field {field} of {message} is duplicated or out of order")]
    FieldOrder { message: &'static str, field: u64 },
    #[error("dag-pb: link has no Hash")]
    MissingHash,
    #[error("dag-pb: link Hash is not a CID: {0}")]
    BadCid(String),
    #[error("dag-pb: link Name is not UTF-8")]
    BadName,
    #[error("dag-pb: length {0} overruns the message")]
    BadLength(u64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PbLink {
    pub cid: Cid,
    pub name: Option<String>,
    pub tsize: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PbNode {
    pub links: Vec<PbLink>,
    pub data: Option<Bytes>,
}

// ---- varint helpers (shared with the UnixFS message codec) ----

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// A cursor over protobuf bytes.
pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub(crate) fn varint(&mut self) -> Result<u64, PbError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first().ok_or(PbError::Truncated)?;
            self.buf = rest;
            if i == 9 && b > 1 {
                return Err(PbError::VarintOverflow);
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(PbError::VarintOverflow)
    }
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], PbError> {
        let len = self.varint()?;
        let n = usize::try_from(len).map_err(|_| PbError::BadLength(len))?;
        if n > self.buf.len() {
            return Err(PbError::BadLength(len));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    /// Reads a field key: (field number, wire type).
    pub(crate) fn key(&mut self) -> Result<(u64, u64), PbError> {
        let k = self.varint()?;
        Ok((k >> 3, k & 7))
    }
}

impl PbNode {
    /// Decodes strictly. `data` is sliced from `bytes` without copying.
    pub fn decode(bytes: &Bytes) -> Result<PbNode, PbError> {
        let mut r = Reader::new(bytes);
        let mut node = PbNode::default();
        while !r.is_empty() {
            let (field, wt) = r.key()?;
            match (field, wt) {
                (2, 2) => {
                    if node.data.is_some() {
                        return Err(PbError::FieldOrder {
                            message: "PBNode",
                            field,
                        });
                    }
                    node.links.push(decode_link(r.bytes()?)?);
                }
                (1, 2) => {
                    if node.data.is_some() {
                        return Err(PbError::FieldOrder {
                            message: "PBNode",
                            field,
                        });
                    }
                    let d = r.bytes()?;
                    node.data = Some(bytes.slice_ref(d));
                }
                _ => {
                    return Err(PbError::UnexpectedField {
                        message: "PBNode",
                        field,
                        wire_type: wt,
                    })
                }
            }
        }
        Ok(node)
    }

    /// Encodes in canonical form (links, then data). Links are written in the order given: the
    /// caller sorts them where the format requires (UnixFS directories sort by name bytes).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        for link in &self.links {
            out.push(0x12);
            put_varint(out, link_len(link) as u64);
            encode_link(link, out);
        }
        if let Some(d) = &self.data {
            out.push(0x0a);
            put_varint(out, d.len() as u64);
            out.extend_from_slice(d);
        }
    }

    pub fn encoded_len(&self) -> usize {
        let links: usize = self
            .links
            .iter()
            .map(|l| {
                let n = link_len(l);
                1 + varint_len(n as u64) + n
            })
            .sum();
        let data = self
            .data
            .as_ref()
            .map_or(0, |d| 1 + varint_len(d.len() as u64) + d.len());
        links + data
    }
}

fn link_len(l: &PbLink) -> usize {
    let h = l.cid.encoded_len();
    let mut n = 1 + varint_len(h as u64) + h;
    if let Some(name) = &l.name {
        n += 1 + varint_len(name.len() as u64) + name.len();
    }
    if let Some(t) = l.tsize {
        n += 1 + varint_len(t);
    }
    n
}

fn encode_link(l: &PbLink, out: &mut Vec<u8>) {
    let start = out.len();
    out.push(0x0a);
    put_varint(out, l.cid.encoded_len() as u64);
    // Writing into a Vec cannot fail.
    let _ = l.cid.write_bytes(&mut *out);
    if let Some(name) = &l.name {
        out.push(0x12);
        put_varint(out, name.len() as u64);
        out.extend_from_slice(name.as_bytes());
    }
    if let Some(t) = l.tsize {
        out.push(0x18);
        put_varint(out, t);
    }
    debug_assert_eq!(out.len() - start, link_len(l));
}

fn decode_link(buf: &[u8]) -> Result<PbLink, PbError> {
    let mut r = Reader::new(buf);
    let mut last_field = 0;
    let mut cid = None;
    let mut name = None;
    let mut tsize = None;
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        if field <= last_field {
            return Err(PbError::FieldOrder {
                message: "PBLink",
                field,
            });
        }
        last_field = field;
        match (field, wt) {
            (1, 2) => {
                let b = r.bytes()?;
                cid = Some(Cid::try_from(b).map_err(|e| PbError::BadCid(e.to_string()))?);
            }
            (2, 2) => {
                let b = r.bytes()?;
                name = Some(String::from_utf8(b.to_vec()).map_err(|_| PbError::BadName)?);
            }
            (3, 0) => tsize = Some(r.varint()?),
            _ => {
                return Err(PbError::UnexpectedField {
                    message: "PBLink",
                    field,
                    wire_type: wt,
                })
            }
        }
    }
    Ok(PbLink {
        cid: cid.ok_or(PbError::MissingHash)?,
        name,
        tsize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_node_is_empty_bytes() {
        assert!(PbNode::default().encode().is_empty());
        assert_eq!(PbNode::decode(&Bytes::new()).ok(), Some(PbNode::default()));
    }

    #[test]
    fn roundtrip_with_links() {
        let cid: Cid = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
            .parse()
            .unwrap_or_default();
        let node = PbNode {
            links: vec![
                PbLink {
                    cid,
                    name: Some("a".into()),
                    tsize: Some(6),
                },
                PbLink {
                    cid,
                    name: None,
                    tsize: None,
                },
            ],
            data: Some(Bytes::from_static(b"\x08\x01")),
        };
        let enc = Bytes::from(node.encode());
        assert_eq!(enc.len(), node.encoded_len());
        assert_eq!(PbNode::decode(&enc), Ok(node));
    }

    #[test]
    fn rejects_data_before_links_and_unknown_fields() {
        // Data then a link.
        let bad = Bytes::from_static(&[0x0a, 0x00, 0x12, 0x00]);
        assert!(matches!(
            PbNode::decode(&bad),
            Err(PbError::FieldOrder { .. })
        ));
        // Unknown field 3.
        let bad = Bytes::from_static(&[0x18, 0x01]);
        assert!(matches!(
            PbNode::decode(&bad),
            Err(PbError::UnexpectedField { .. })
        ));
        // Link with no hash.
        let bad = Bytes::from_static(&[0x12, 0x00]);
        assert_eq!(PbNode::decode(&bad), Err(PbError::MissingHash));
        // Length past the end.
        let bad = Bytes::from_static(&[0x0a, 0x05, 0x00]);
        assert!(matches!(PbNode::decode(&bad), Err(PbError::BadLength(5))));
    }
}
