//! [`AlignedBuf`]: memory aligned for direct I/O (`O_DIRECT`), which wants offsets, lengths and
//! memory aligned to the disk's block size. Used by the pack store's cold appends and by the
//! node's file writer for `get`.

/// Alignment of direct I/O (offsets, lengths, memory): 4 KiB covers disks with 512-byte and
/// 4 KiB logical blocks.
pub const DIRECT_ALIGN: usize = 4096;

/// A zeroed buffer of a fixed length whose first byte is [`DIRECT_ALIGN`]-aligned.
pub struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    pub fn new(len: usize) -> Self {
        let raw = vec![0u8; len + DIRECT_ALIGN];
        let start = raw.as_ptr().align_offset(DIRECT_ALIGN);
        Self { raw, start, len }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_of_its_length() {
        for len in [0, 1, 4096, 1 << 20] {
            let mut b = AlignedBuf::new(len);
            assert_eq!(b.bytes().len(), len);
            assert_eq!(b.bytes_mut().as_ptr() as usize % DIRECT_ALIGN, 0);
        }
    }
}
