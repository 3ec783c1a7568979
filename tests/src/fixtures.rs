//! Deterministic test inputs: pseudo-random bytes from a seeded SplitMix64 (stable across
//! platforms and crate versions), the boundary-size files of the balanced layout, directory trees
//! with the awkward cases (empty dirs, unicode, spaces, symlinks, dot-files) and a directory big
//! enough to be HAMT-sharded by kubo v0.22.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Bytes per leaf in kubo's default chunker.
pub const CHUNK: u64 = 262_144;
/// Links per node in kubo's balanced layout.
pub const LINKS: u64 = 174;
/// Entries in the directory that must come out HAMT-sharded: with names of 27 bytes and
/// 34-byte CIDv0s, kubo v0.22's estimate (sum of name + CID bytes) is 5000 * 61 = 305,000 bytes,
/// over its 262,144-byte threshold.
pub const HAMT_ENTRIES: usize = 5_000;

/// SplitMix64: a tiny generator whose output never changes, so fixtures are the same everywhere.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// `len` pseudo-random bytes from `seed`.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    SplitMix64::new(seed).fill(&mut v);
    v
}

/// Writes `len` pseudo-random bytes from `seed` to `path`, 1 MiB at a time.
pub fn write_random_file(path: &Path, seed: u64, len: u64) -> io::Result<()> {
    let mut rng = SplitMix64::new(seed);
    let mut out = io::BufWriter::new(fs::File::create(path)?);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    out.flush()
}

/// One input to compare.
#[derive(Clone, Debug)]
pub struct Fixture {
    pub name: String,
    pub path: PathBuf,
    /// Contains dot-files (so `hidden` decides what gets added).
    pub has_hidden: bool,
}

/// The single files whose sizes sit on the chunker and balanced-layout boundaries.
pub fn boundary_files(dir: &Path) -> io::Result<Vec<Fixture>> {
    let sizes: [(&str, u64); 7] = [
        ("file-0", 0),
        ("file-1", 1),
        ("file-chunk-1", CHUNK - 1),
        ("file-chunk", CHUNK),
        ("file-chunk+1", CHUNK + 1),
        ("file-174chunks", LINKS * CHUNK),
        ("file-174chunks+1", LINKS * CHUNK + 1),
    ];
    let mut out = Vec::new();
    for (i, (name, len)) in sizes.iter().enumerate() {
        let path = dir.join(name);
        write_random_file(&path, 1000 + i as u64, *len)?;
        out.push(Fixture {
            name: (*name).to_string(),
            path,
            has_hidden: false,
        });
    }
    Ok(out)
}

/// A file of `len` pseudo-random bytes (for layout/chunker variants).
pub fn sized_file(dir: &Path, name: &str, seed: u64, len: u64) -> io::Result<Fixture> {
    let path = dir.join(name);
    write_random_file(&path, seed, len)?;
    Ok(Fixture {
        name: name.to_string(),
        path,
        has_hidden: false,
    })
}

/// A nested tree with empty directories, unicode names, names with spaces, byte-order sorting
/// traps, a multi-chunk file and (when `symlinks`) symlinks. No dot-files.
pub fn tree(dir: &Path, name: &str, symlinks: bool) -> io::Result<Fixture> {
    let root = dir.join(name);
    fs::create_dir_all(root.join("a/b/c"))?;
    fs::create_dir_all(root.join("empty"))?;
    fs::create_dir_all(root.join("a/empty inside"))?;
    fs::create_dir_all(root.join("ünïcødé 名前"))?;
    fs::write(root.join("hello.txt"), b"hello\n")?;
    fs::write(root.join("name with spaces.txt"), b"spaces\n")?;
    fs::write(root.join("B-upper"), b"B")?;
    fs::write(root.join("a-lower"), b"a")?;
    fs::write(root.join("ä-umlaut"), b"\xc3\xa4")?;
    fs::write(root.join("zero"), b"")?;
    fs::write(root.join("ünïcødé 名前/файл.bin"), random_bytes(7, 4096))?;
    fs::write(root.join("a/b/c/deep"), random_bytes(8, 100))?;
    write_random_file(&root.join("a/multi-chunk"), 9, 3 * CHUNK + 17)?;
    if symlinks {
        symlink("hello.txt", &root.join("link-to-hello"))?;
        symlink("../../hello.txt", &root.join("a/b/link-up"))?;
        symlink("does/not/exist", &root.join("dangling"))?;
    }
    Ok(Fixture {
        name: name.to_string(),
        path: root,
        has_hidden: false,
    })
}

/// A small tree with dot-files and a dot-directory.
pub fn tree_with_hidden(dir: &Path, name: &str) -> io::Result<Fixture> {
    let root = dir.join(name);
    fs::create_dir_all(root.join(".config/sub"))?;
    fs::create_dir_all(root.join("visible"))?;
    fs::write(root.join(".dotfile"), b"secret\n")?;
    fs::write(root.join(".config/sub/x"), b"x")?;
    fs::write(root.join("visible/y"), b"y")?;
    fs::write(root.join("visible/.hidden-in-sub"), b"h")?;
    Ok(Fixture {
        name: name.to_string(),
        path: root,
        has_hidden: true,
    })
}

/// A flat directory of [`HAMT_ENTRIES`] small files (kubo v0.22 shards it).
pub fn big_dir(dir: &Path, name: &str) -> io::Result<Fixture> {
    let root = dir.join(name);
    fs::create_dir_all(&root)?;
    let mut rng = SplitMix64::new(42);
    for i in 0..HAMT_ENTRIES {
        let len = (rng.next_u64() % 64) as usize;
        let mut data = vec![0u8; len];
        rng.fill(&mut data);
        fs::write(root.join(format!("small-file-number-{i:05}.dat")), data)?;
    }
    Ok(Fixture {
        name: name.to_string(),
        path: root,
        has_hidden: false,
    })
}

/// An empty directory.
pub fn empty_dir(dir: &Path, name: &str) -> io::Result<Fixture> {
    let root = dir.join(name);
    fs::create_dir_all(&root)?;
    Ok(Fixture {
        name: name.to_string(),
        path: root,
        has_hidden: false,
    })
}

#[cfg(unix)]
fn symlink(target: &str, at: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, at)
}

#[cfg(not(unix))]
fn symlink(_target: &str, _at: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_stable() {
        // First outputs of SplitMix64 seeded with 0 (the reference sequence).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(random_bytes(1, 9).len(), 9);
    }
}
