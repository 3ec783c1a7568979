//! The on-disk record format of the pack store.
//!
//! Every segment file is a sequence of records, all integers little-endian:
//!
//! ```text
//! [magic u32][record len u32][crc32 u32][kind u8][multihash len u8][multihash][data]
//! ```
//!
//! `record len` counts the whole record, header included. The crc32 covers every byte of the
//! record except the crc field itself. `kind` is [`KIND_BLOCK`] or [`KIND_TOMBSTONE`]
//! (a tombstone has no data). A record is valid only if its magic, length bounds, multihash and
//! crc all check; a torn tail after a crash fails one of those and is cut off on open.

use crate::limits::BLOCK_SIZE_BYTES_MAX;
use multihash::Multihash;

/// "IPKB" — marks the start of every record.
pub const MAGIC: u32 = 0x424B_5049;
/// Bytes of the fixed part of the header (magic, len, crc, kind, mh len).
pub const FIXED_HEADER_BYTES: usize = 14;
/// Longest multihash a record may carry: a 64-byte digest plus two 10-byte varints.
pub const MULTIHASH_BYTES_MAX: usize = 84;
/// Longest header: fixed part plus the longest multihash.
pub const HEADER_BYTES_MAX: usize = FIXED_HEADER_BYTES + MULTIHASH_BYTES_MAX;
/// Longest record: the longest header plus the largest block.
pub const RECORD_BYTES_MAX: usize = HEADER_BYTES_MAX + BLOCK_SIZE_BYTES_MAX;

pub const KIND_BLOCK: u8 = 0;
pub const KIND_TOMBSTONE: u8 = 1;

/// A parsed record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub record_len: u32,
    pub crc: u32,
    pub kind: u8,
    pub mh: Multihash<64>,
    /// Bytes from the start of the record to its data.
    pub header_len: u8,
}

impl Header {
    #[cfg(test)]
    pub fn data_len(&self) -> u32 {
        self.record_len - u32::from(self.header_len)
    }
}

/// Why bytes at some offset are not a record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer bytes than a header needs (a torn tail, or end of file).
    Short,
    /// Magic, kind, length or multihash out of bounds.
    Invalid,
}

/// Encodes the header of a record holding `data` (empty for a tombstone) under `mh`, into `out`.
/// Returns the number of header bytes written.
pub fn encode_header(out: &mut Vec<u8>, kind: u8, mh: &Multihash<64>, data: &[u8]) -> usize {
    let start = out.len();
    let mh_len = mh.encoded_len();
    debug_assert!(mh_len <= MULTIHASH_BYTES_MAX && data.len() <= BLOCK_SIZE_BYTES_MAX);
    let header_len = FIXED_HEADER_BYTES + mh_len;
    // Both bounded by the asserts above: a record is at most RECORD_BYTES_MAX (< 4 GiB).
    let record_len = (header_len + data.len()) as u32;
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&record_len.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.push(kind);
    out.push(mh_len as u8);
    // Writing into a Vec cannot fail.
    let _ = mh.write(&mut *out);
    let mut h = crc32fast::Hasher::new();
    h.update(&out[start..start + 8]);
    h.update(&out[start + 12..]);
    h.update(data);
    let crc = h.finalize();
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
    header_len
}

/// Parses a header from the first bytes of `buf` (which may hold more than the header).
pub fn decode_header(buf: &[u8]) -> Result<Header, HeaderError> {
    let fixed = buf.get(..FIXED_HEADER_BYTES).ok_or(HeaderError::Short)?;
    let u32_at =
        |i: usize| u32::from_le_bytes([fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]]);
    if u32_at(0) != MAGIC {
        return Err(HeaderError::Invalid);
    }
    let record_len = u32_at(4);
    let crc = u32_at(8);
    let kind = fixed[12];
    let mh_len = usize::from(fixed[13]);
    if kind > KIND_TOMBSTONE || !(2..=MULTIHASH_BYTES_MAX).contains(&mh_len) {
        return Err(HeaderError::Invalid);
    }
    let header_len = FIXED_HEADER_BYTES + mh_len;
    let rec = record_len as usize;
    if rec < header_len || rec > RECORD_BYTES_MAX || (kind == KIND_TOMBSTONE && rec != header_len) {
        return Err(HeaderError::Invalid);
    }
    let mh_bytes = buf
        .get(FIXED_HEADER_BYTES..header_len)
        .ok_or(HeaderError::Short)?;
    let mh = Multihash::<64>::from_bytes(mh_bytes).map_err(|_| HeaderError::Invalid)?;
    if mh.encoded_len() != mh_len {
        return Err(HeaderError::Invalid);
    }
    Ok(Header {
        record_len,
        crc,
        kind,
        mh,
        header_len: header_len as u8,
    })
}

/// Checks the crc of a whole record (header and data in `record`).
pub fn crc_ok(header: &Header, record: &[u8]) -> bool {
    if record.len() != header.record_len as usize || record.len() < 12 {
        return false;
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&record[..8]);
    h.update(&record[12..]);
    h.finalize() == header.crc
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::hash::HashFn;

    #[test]
    fn header_round_trip_and_crc() {
        let data = b"hello pack store";
        let mh = HashFn::Sha2_256.digest(data).unwrap();
        let mut buf = Vec::new();
        let hl = encode_header(&mut buf, KIND_BLOCK, &mh, data);
        buf.extend_from_slice(data);
        let h = decode_header(&buf).unwrap();
        assert_eq!(usize::from(h.header_len), hl);
        assert_eq!(h.mh, mh);
        assert_eq!(h.data_len() as usize, data.len());
        assert!(crc_ok(&h, &buf));
        let last = buf.len() - 1;
        buf[last] ^= 1;
        assert!(!crc_ok(&h, &buf));
    }

    #[test]
    fn short_and_invalid_headers() {
        assert_eq!(decode_header(&[0u8; 5]), Err(HeaderError::Short));
        assert_eq!(decode_header(&[0u8; 40]), Err(HeaderError::Invalid));
        let mh = HashFn::Sha2_256.digest(b"x").unwrap();
        let mut buf = Vec::new();
        encode_header(&mut buf, KIND_TOMBSTONE, &mh, &[]);
        assert!(decode_header(&buf).is_ok());
        assert_eq!(decode_header(&buf[..20]), Err(HeaderError::Short));
        buf[4] = 0xff; // length no longer matches a tombstone
        assert_eq!(decode_header(&buf), Err(HeaderError::Invalid));
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            if let Ok(h) = decode_header(&bytes) {
                proptest::prop_assert!(h.record_len as usize <= RECORD_BYTES_MAX);
                proptest::prop_assert!(usize::from(h.header_len) <= HEADER_BYTES_MAX);
            }
        }
    }
}
