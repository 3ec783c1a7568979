//! The UnixFS `Data` message carried in a dag-pb node's Data field (ipfs/specs `src/unixfs.md`).
//!
//! ```text
//! message Data { required DataType Type = 1; optional bytes Data = 2; optional uint64 filesize = 3;
//!   repeated uint64 blocksizes = 4; optional uint64 hashType = 5; optional uint64 fanout = 6;
//!   optional uint32 mode = 7; optional UnixTime mtime = 8; }
//! message UnixTime { required int64 Seconds = 1; optional fixed32 FractionalNanoseconds = 2; }
//! ```
//! Encoding writes fields in number order with `blocksizes` unpacked, byte for byte as kubo
//! (go-unixfs, proto2) does, since the bytes decide the CID. Decoding accepts packed
//! `blocksizes` too and skips unknown fields.

use super::pb::{put_varint, PbError, Reader};
use bytes::Bytes;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataType {
    Raw = 0,
    Directory = 1,
    File = 2,
    Metadata = 3,
    Symlink = 4,
    HamtShard = 5,
}

impl DataType {
    fn from_u64(v: u64) -> Option<Self> {
        Some(match v {
            0 => DataType::Raw,
            1 => DataType::Directory,
            2 => DataType::File,
            3 => DataType::Metadata,
            4 => DataType::Symlink,
            5 => DataType::HamtShard,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnixTime {
    pub seconds: i64,
    pub nanos: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnixFsData {
    pub kind: DataType,
    pub data: Option<Bytes>,
    pub filesize: Option<u64>,
    pub blocksizes: Vec<u64>,
    pub hash_type: Option<u64>,
    pub fanout: Option<u64>,
    pub mode: Option<u32>,
    pub mtime: Option<UnixTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnixFsPbError {
    #[error(transparent)]
    Pb(#[from] PbError),
    #[error("unixfs: missing Type")]
    MissingType,
    #[error("unixfs: unknown Type {0}")]
    UnknownType(u64),
    #[error("unixfs: bad field {0}")]
    BadField(u64),
}

impl UnixFsData {
    pub fn new(kind: DataType) -> Self {
        Self {
            kind,
            data: None,
            filesize: None,
            blocksizes: Vec::new(),
            hash_type: None,
            fanout: None,
            mode: None,
            mtime: None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.data.as_ref().map_or(0, |d| d.len()));
        out.push(0x08);
        put_varint(&mut out, self.kind as u64);
        if let Some(d) = &self.data {
            out.push(0x12);
            put_varint(&mut out, d.len() as u64);
            out.extend_from_slice(d);
        }
        if let Some(s) = self.filesize {
            out.push(0x18);
            put_varint(&mut out, s);
        }
        for &b in &self.blocksizes {
            out.push(0x20);
            put_varint(&mut out, b);
        }
        if let Some(h) = self.hash_type {
            out.push(0x28);
            put_varint(&mut out, h);
        }
        if let Some(f) = self.fanout {
            out.push(0x30);
            put_varint(&mut out, f);
        }
        if let Some(m) = self.mode {
            out.push(0x38);
            put_varint(&mut out, u64::from(m));
        }
        if let Some(t) = self.mtime {
            let mut inner = Vec::with_capacity(16);
            inner.push(0x08);
            put_varint(&mut inner, t.seconds as u64);
            if let Some(n) = t.nanos {
                inner.push(0x15);
                inner.extend_from_slice(&n.to_le_bytes());
            }
            out.push(0x42);
            put_varint(&mut out, inner.len() as u64);
            out.extend_from_slice(&inner);
        }
        out
    }

    /// Decodes; `data` is sliced from `bytes` without copying.
    pub fn decode(bytes: &Bytes) -> Result<Self, UnixFsPbError> {
        let mut r = Reader::new(bytes);
        let mut kind = None;
        let mut out = UnixFsData::new(DataType::Raw);
        while !r.is_empty() {
            let (field, wt) = r.key()?;
            match (field, wt) {
                (1, 0) => {
                    let v = r.varint()?;
                    kind = Some(DataType::from_u64(v).ok_or(UnixFsPbError::UnknownType(v))?);
                }
                (2, 2) => out.data = Some(bytes.slice_ref(r.bytes()?)),
                (3, 0) => out.filesize = Some(r.varint()?),
                (4, 0) => out.blocksizes.push(r.varint()?),
                (4, 2) => {
                    let mut packed = Reader::new(r.bytes()?);
                    while !packed.is_empty() {
                        out.blocksizes.push(packed.varint()?);
                    }
                }
                (5, 0) => out.hash_type = Some(r.varint()?),
                (6, 0) => out.fanout = Some(r.varint()?),
                (7, 0) => {
                    out.mode =
                        Some(u32::try_from(r.varint()?).map_err(|_| UnixFsPbError::BadField(7))?)
                }
                (8, 2) => out.mtime = Some(decode_time(r.bytes()?)?),
                (_, 0) => {
                    r.varint()?;
                }
                (_, 2) => {
                    r.bytes()?;
                }
                (_, 5) => skip(&mut r, 4)?,
                (_, 1) => skip(&mut r, 8)?,
                _ => return Err(UnixFsPbError::BadField(field)),
            }
        }
        out.kind = kind.ok_or(UnixFsPbError::MissingType)?;
        Ok(out)
    }
}

fn skip(r: &mut Reader<'_>, n: usize) -> Result<(), UnixFsPbError> {
    if r.buf.len() < n {
        return Err(PbError::Truncated.into());
    }
    r.buf = &r.buf[n..];
    Ok(())
}

fn decode_time(buf: &[u8]) -> Result<UnixTime, UnixFsPbError> {
    let mut r = Reader::new(buf);
    let mut t = UnixTime {
        seconds: 0,
        nanos: None,
    };
    while !r.is_empty() {
        match r.key()? {
            (1, 0) => t.seconds = r.varint()? as i64,
            (2, 5) => {
                let b = r.buf.get(..4).ok_or(PbError::Truncated)?;
                t.nanos = Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                r.buf = &r.buf[4..];
            }
            (f, _) => return Err(UnixFsPbError::BadField(f)),
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_is_08_01() {
        assert_eq!(
            UnixFsData::new(DataType::Directory).encode(),
            vec![0x08, 0x01]
        );
    }

    #[test]
    fn roundtrip() {
        let mut d = UnixFsData::new(DataType::File);
        d.data = Some(Bytes::from_static(b"hello"));
        d.filesize = Some(5);
        d.blocksizes = vec![262144, 3];
        d.mtime = Some(UnixTime {
            seconds: 1,
            nanos: Some(2),
        });
        let enc = Bytes::from(d.encode());
        assert_eq!(UnixFsData::decode(&enc), Ok(d));
    }
}
