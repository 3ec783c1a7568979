//! kubo's flatfs layout, as a candidate and for reading kubo repos' block directories:
//! `<dir>/<shard>/<BASE32(multihash)>.data` with the `next-to-last/2` shard function (the two
//! characters before the last of the key), written to a temporary file and renamed into place.
//! The `SHARDING` file records the shard function as kubo does.

use crate::{hash, limits, raw_cid_of, Block, Blockstore, BlockstoreError, StoreStat};
use bytes::Bytes;
use cid::Cid;
use multihash::Multihash;
use parking_lot::Mutex;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const SHARDING: &str = "/repo/flatfs/shard/v1/next-to-last/2\n";
const EXT: &str = ".data";
const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32, upper case, no padding (kubo's `dshelp` key encoding).
pub fn base32_upper(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let v = buf.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..chars {
            out.push(char::from(B32[((v >> (35 - i * 5)) & 31) as usize]));
        }
    }
    out
}

/// Inverse of [`base32_upper`]; `None` on a character outside the alphabet.
pub fn base32_upper_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = B32.iter().position(|&b| b == c)? as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The `next-to-last/2` shard of a key: its two characters before the last, `_`-padded.
pub fn shard_of(key: &str) -> String {
    let padded = format!("{key:_>3}");
    let n = padded.len();
    padded[n - 3..n - 1].to_string()
}

pub struct FlatfsBlockstore {
    dir: PathBuf,
    sync_on_put: bool,
    tmp_counter: AtomicU64,
    /// Files and shard directories written since the last `sync`.
    unsynced: Mutex<Vec<PathBuf>>,
}

impl FlatfsBlockstore {
    pub fn open(dir: &Path, sync_on_put: bool) -> Result<Self, BlockstoreError> {
        fs::create_dir_all(dir).map_err(|e| BlockstoreError::io(dir, e))?;
        let sharding = dir.join("SHARDING");
        match fs::read_to_string(&sharding) {
            Ok(s) if s.trim() == SHARDING.trim() => {}
            Ok(s) => {
                return Err(BlockstoreError::CorruptRepo(format!(
                    "unsupported flatfs shard function {}",
                    s.trim()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::write(&sharding, SHARDING).map_err(|e| BlockstoreError::io(&sharding, e))?
            }
            Err(e) => return Err(BlockstoreError::io(&sharding, e)),
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            sync_on_put,
            tmp_counter: AtomicU64::new(0),
            unsynced: Mutex::new(Vec::new()),
        })
    }

    fn path_of(&self, mh: &Multihash<64>) -> PathBuf {
        let key = base32_upper(&mh.to_bytes());
        self.dir.join(shard_of(&key)).join(format!("{key}{EXT}"))
    }

    fn files(&self) -> Result<Vec<(Multihash<64>, u64)>, BlockstoreError> {
        let mut out = Vec::new();
        let io = |p: &Path, e| BlockstoreError::io(p, e);
        for shard in fs::read_dir(&self.dir).map_err(|e| io(&self.dir, e))? {
            let shard = shard.map_err(|e| io(&self.dir, e))?;
            if !shard
                .file_type()
                .map_err(|e| io(&shard.path(), e))?
                .is_dir()
            {
                continue;
            }
            for f in fs::read_dir(shard.path()).map_err(|e| io(&shard.path(), e))? {
                let f = f.map_err(|e| io(&shard.path(), e))?;
                let name = f.file_name();
                let Some(key) = name.to_str().and_then(|n| n.strip_suffix(EXT)) else {
                    continue;
                };
                let Some(mh) =
                    base32_upper_decode(key).and_then(|b| Multihash::<64>::from_bytes(&b).ok())
                else {
                    continue;
                };
                let meta = f.metadata().map_err(|e| io(&f.path(), e))?;
                out.push((mh, meta.len()));
            }
        }
        Ok(out)
    }

    fn write_one(&self, mh: &Multihash<64>, data: &[u8]) -> Result<Vec<PathBuf>, BlockstoreError> {
        let path = self.path_of(mh);
        if path.exists() {
            return Ok(Vec::new());
        }
        let shard = path.parent().unwrap_or(&self.dir).to_path_buf();
        fs::create_dir_all(&shard).map_err(|e| BlockstoreError::io(&shard, e))?;
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = shard.join(format!(".tmp-{}-{n}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(data)?;
            if self.sync_on_put {
                f.sync_data()?;
            }
            fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(BlockstoreError::io(&path, e));
        }
        Ok(vec![path, shard])
    }
}

impl Blockstore for FlatfsBlockstore {
    fn get(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
        if let Some(d) = hash::identity_data(cid) {
            return Ok(Some(Bytes::copy_from_slice(d)));
        }
        let path = self.path_of(cid.hash());
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(BlockstoreError::io(&path, e)),
        };
        let len = f
            .metadata()
            .map_err(|e| BlockstoreError::io(&path, e))?
            .len();
        if len > limits::BLOCK_SIZE_BYTES_MAX as u64 {
            return Err(crate::CorruptBlock { cid: *cid }.into());
        }
        let mut buf = Vec::with_capacity(len as usize);
        f.take(limits::BLOCK_SIZE_BYTES_MAX as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(|e| BlockstoreError::io(&path, e))?;
        let data = Bytes::from(buf);
        hash::verify(cid, &data)?;
        Ok(Some(data))
    }

    fn has(&self, cid: &Cid) -> Result<bool, BlockstoreError> {
        Ok(hash::identity_data(cid).is_some() || self.path_of(cid.hash()).exists())
    }

    fn size_of(&self, cid: &Cid) -> Result<Option<u64>, BlockstoreError> {
        if let Some(d) = hash::identity_data(cid) {
            return Ok(Some(d.len() as u64));
        }
        match fs::metadata(self.path_of(cid.hash())) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BlockstoreError::io(self.path_of(cid.hash()), e)),
        }
    }

    fn put_many(&self, blocks: &[Block]) -> Result<(), BlockstoreError> {
        for b in blocks {
            limits::check_block_size(b.data().len())?;
        }
        let mut written = Vec::new();
        for b in blocks {
            if hash::identity_data(b.cid()).is_none() {
                written.extend(self.write_one(b.cid().hash(), b.data())?);
            }
        }
        if self.sync_on_put {
            sync_paths(&written)?;
        } else {
            self.unsynced.lock().extend(written);
        }
        Ok(())
    }

    fn delete_many(&self, cids: &[Cid]) -> Result<u64, BlockstoreError> {
        let mut n = 0;
        for c in cids {
            let p = self.path_of(c.hash());
            match fs::remove_file(&p) {
                Ok(()) => n += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(BlockstoreError::io(&p, e)),
            }
        }
        Ok(n)
    }

    fn all_cids(&self) -> Result<Vec<Cid>, BlockstoreError> {
        Ok(self
            .files()?
            .into_iter()
            .map(|(mh, _)| raw_cid_of(mh))
            .collect())
    }

    fn sync(&self) -> Result<(), BlockstoreError> {
        let mut paths = std::mem::take(&mut *self.unsynced.lock());
        paths.sort();
        paths.dedup();
        sync_paths(&paths)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| BlockstoreError::io(&self.dir, e))
    }

    fn stat(&self) -> Result<StoreStat, BlockstoreError> {
        let files = self.files()?;
        let mut disk_bytes = 0;
        for (mh, _) in &files {
            if let Ok(m) = fs::metadata(self.path_of(mh)) {
                disk_bytes += m.blocks() * 512;
            }
        }
        Ok(StoreStat {
            blocks: files.len() as u64,
            data_bytes: files.iter().map(|(_, l)| l).sum(),
            disk_bytes,
        })
    }
}

/// fsyncs files and directories (a directory fsync makes its renames durable).
fn sync_paths(paths: &[PathBuf]) -> Result<(), BlockstoreError> {
    for p in paths {
        match File::open(p) {
            Ok(f) => f.sync_all().map_err(|e| BlockstoreError::io(p, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(BlockstoreError::io(p, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc4648() {
        // RFC 4648 section 10 test vectors, without padding.
        for (raw, enc) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_upper(raw.as_bytes()), enc);
            assert_eq!(base32_upper_decode(enc).unwrap(), raw.as_bytes());
        }
    }

    #[test]
    fn kubo_shard_and_key() {
        // kubo keys a block by the base32 of its multihash; sha2-256 multihashes (0x12 0x20)
        // all start with "CIQ", and the shard is the two characters before the last.
        let cid: Cid = "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
            .parse()
            .unwrap();
        let key = base32_upper(&cid.hash().to_bytes());
        assert!(key.starts_with("CIQ"));
        assert_eq!(key.len(), 55);
        assert_eq!(shard_of(&key), key[52..54]);
        assert_eq!(shard_of("ABCDEF"), "DE");
        assert_eq!(shard_of("A"), "__");
    }
}
