//! The multihash functions ipfs-kit produces and verifies, and CID verification.

use crate::{limits, BlockstoreError, CorruptBlock};
use cid::Cid;
use multihash::Multihash;
use sha2::Digest as _;

pub const IDENTITY: u64 = 0x00;
pub const SHA2_256: u64 = 0x12;
pub const SHA2_512: u64 = 0x13;
pub const SHA3_256: u64 = 0x16;
pub const SHA3_512: u64 = 0x14;
pub const BLAKE3: u64 = 0x1e;
pub const BLAKE2B_256: u64 = 0xb220;
pub const BLAKE2B_512: u64 = 0xb240;

pub const RAW_CODEC: u64 = 0x55;
pub const DAG_PB_CODEC: u64 = 0x70;
pub const DAG_CBOR_CODEC: u64 = 0x71;
pub const DAG_JSON_CODEC: u64 = 0x0129;

/// A hash function by its kubo name (`--hash`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashFn {
    Identity,
    Sha2_256,
    Sha2_512,
    Sha3_256,
    Sha3_512,
    Blake3,
    Blake2b256,
    Blake2b512,
}

impl HashFn {
    pub fn code(self) -> u64 {
        match self {
            HashFn::Identity => IDENTITY,
            HashFn::Sha2_256 => SHA2_256,
            HashFn::Sha2_512 => SHA2_512,
            HashFn::Sha3_256 => SHA3_256,
            HashFn::Sha3_512 => SHA3_512,
            HashFn::Blake3 => BLAKE3,
            HashFn::Blake2b256 => BLAKE2B_256,
            HashFn::Blake2b512 => BLAKE2B_512,
        }
    }

    pub fn from_code(code: u64) -> Option<Self> {
        Some(match code {
            IDENTITY => HashFn::Identity,
            SHA2_256 => HashFn::Sha2_256,
            SHA2_512 => HashFn::Sha2_512,
            SHA3_256 => HashFn::Sha3_256,
            SHA3_512 => HashFn::Sha3_512,
            BLAKE3 => HashFn::Blake3,
            BLAKE2B_256 => HashFn::Blake2b256,
            BLAKE2B_512 => HashFn::Blake2b512,
            _ => return None,
        })
    }

    /// kubo's names, as accepted by `--hash`.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "identity" => HashFn::Identity,
            "sha2-256" => HashFn::Sha2_256,
            "sha2-512" => HashFn::Sha2_512,
            "sha3-256" => HashFn::Sha3_256,
            "sha3-512" => HashFn::Sha3_512,
            "blake3" => HashFn::Blake3,
            "blake2b-256" => HashFn::Blake2b256,
            "blake2b-512" => HashFn::Blake2b512,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            HashFn::Identity => "identity",
            HashFn::Sha2_256 => "sha2-256",
            HashFn::Sha2_512 => "sha2-512",
            HashFn::Sha3_256 => "sha3-256",
            HashFn::Sha3_512 => "sha3-512",
            HashFn::Blake3 => "blake3",
            HashFn::Blake2b256 => "blake2b-256",
            HashFn::Blake2b512 => "blake2b-512",
        }
    }

    /// Hashes `data` into a multihash.
    pub fn digest(self, data: &[u8]) -> Result<Multihash<64>, BlockstoreError> {
        let wrap = |code: u64, d: &[u8]| {
            Multihash::<64>::wrap(code, d).map_err(|_| BlockstoreError::UnsupportedHash { code })
        };
        match self {
            HashFn::Identity => {
                if data.len() > limits::IDENTITY_DIGEST_BYTES_MAX {
                    return Err(BlockstoreError::IdentityTooLarge {
                        size_bytes: data.len(),
                        max_bytes: limits::IDENTITY_DIGEST_BYTES_MAX,
                    });
                }
                wrap(IDENTITY, data)
            }
            HashFn::Sha2_256 => wrap(SHA2_256, &sha2::Sha256::digest(data)),
            HashFn::Sha2_512 => wrap(SHA2_512, &sha2::Sha512::digest(data)),
            HashFn::Sha3_256 => wrap(SHA3_256, &sha3::Sha3_256::digest(data)),
            HashFn::Sha3_512 => wrap(SHA3_512, &sha3::Sha3_512::digest(data)),
            HashFn::Blake3 => wrap(BLAKE3, blake3::hash(data).as_bytes()),
            HashFn::Blake2b256 => wrap(
                BLAKE2B_256,
                &blake2::Blake2b::<blake2::digest::consts::U32>::digest(data),
            ),
            HashFn::Blake2b512 => wrap(BLAKE2B_512, &blake2::Blake2b512::digest(data)),
        }
    }

    /// [`HashFn::digest`] of each input, in order. SHA-256 runs two inputs at a time where the
    /// CPU has the SHA extensions (nearly twice the throughput of one at a time: see
    /// `sha256x2`), so callers holding several blocks hash them here rather than in a loop.
    pub fn digest_many(self, inputs: &[&[u8]]) -> Result<Vec<Multihash<64>>, BlockstoreError> {
        if self != HashFn::Sha2_256 || inputs.len() < 2 {
            return inputs.iter().map(|d| self.digest(d)).collect();
        }
        crate::sha256x2::digest_many(inputs)
            .iter()
            .map(|d| {
                Multihash::<64>::wrap(SHA2_256, d)
                    .map_err(|_| BlockstoreError::UnsupportedHash { code: SHA2_256 })
            })
            .collect()
    }
}

/// [`verify`] of each `(cid, data)`, in order, SHA-256 blocks hashed two at a time
/// ([`HashFn::digest_many`]).
pub fn verify_many(items: &[(&Cid, &[u8])]) -> Vec<Result<(), BlockstoreError>> {
    let sha: Vec<&[u8]> = items
        .iter()
        .filter(|(cid, _)| cid.hash().code() == SHA2_256)
        .map(|(_, d)| *d)
        .collect();
    if sha.len() < 2 {
        return items.iter().map(|(cid, d)| verify(cid, d)).collect();
    }
    let mut digests = crate::sha256x2::digest_many(&sha).into_iter();
    items
        .iter()
        .map(|&(cid, data)| {
            if cid.hash().code() != SHA2_256 {
                return verify(cid, data);
            }
            let want = cid.hash().digest();
            match digests.next() {
                Some(got) if !want.is_empty() && got.get(..want.len()) == Some(want) => Ok(()),
                _ => Err(CorruptBlock { cid: *cid }.into()),
            }
        })
        .collect()
}

/// Checks that `data` hashes to `cid`'s multihash.
pub fn verify(cid: &Cid, data: &[u8]) -> Result<(), BlockstoreError> {
    let mh = cid.hash();
    let f =
        HashFn::from_code(mh.code()).ok_or(BlockstoreError::UnsupportedHash { code: mh.code() })?;
    let got = f.digest(data)?;
    // Truncated digests (a multihash shorter than the function's output) compare by prefix.
    if got.digest().get(..mh.digest().len()) == Some(mh.digest()) && !mh.digest().is_empty()
        || (f == HashFn::Identity && got.digest() == mh.digest())
    {
        Ok(())
    } else {
        Err(CorruptBlock { cid: *cid }.into())
    }
}

/// For identity CIDs, the data the CID carries.
pub fn identity_data(cid: &Cid) -> Option<&[u8]> {
    (cid.hash().code() == IDENTITY).then(|| cid.hash().digest())
}
