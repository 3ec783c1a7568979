//! SHA-256 of two inputs at once, with the x86 SHA extensions.
//!
//! One SHA-256 stream on the SHA extensions is bound by latency, not by the unit: every
//! `sha256rnds2` (two rounds) needs the state the one before it produced, so a block of 64
//! rounds is a chain of 32 of them. On the AMD Zen 4 these benches run on an instruction
//! takes 4 cycles to finish while the unit could start one every 2, so one stream leaves half
//! of the unit idle (`openssl speed -evp sha256`: 1.79 GB/s). Two independent streams
//! interleaved instruction by instruction fill those gaps: 3.4 GB/s for pairs of 256 KiB
//! inputs against 1.8 for one at a time (`benches/README.md`, "Session 22"). Three streams
//! gain nothing more and four spill registers.
//!
//! So wherever blocks are hashed in numbers — the blocks of a bitswap message, an import's
//! leaves, a batch read back from the store — [`digest_many`] hashes them two by two. Inputs of
//! different lengths share the blocks they both have; the rest of each runs alone. Without the
//! extensions (another architecture, an old CPU) everything goes to the `sha2` crate, one input
//! at a time. Either way the digest is SHA-256's, which the tests check against `sha2` on
//! random inputs of every shape.
//!
//! The unsafe code here is the intrinsics: each is called only after the CPU was seen to have
//! the features the function is compiled for, and every load reads 16 bytes inside a 64-byte
//! block the slice bounds checked first.
#![allow(unsafe_code)]

use sha2::Digest as _;

/// A SHA-256 digest.
pub type Sha256Digest = [u8; 32];

/// SHA-256 of every input, in order; two at a time where the CPU allows.
pub fn digest_many(inputs: &[&[u8]]) -> Vec<Sha256Digest> {
    let mut out = Vec::with_capacity(inputs.len());
    if !has_sha_ni() {
        out.extend(inputs.iter().map(|d| digest_one_portable(d)));
        return out;
    }
    let mut pairs = inputs.chunks_exact(2);
    for pair in &mut pairs {
        let (a, b) = ni::digest_pair(pair[0], pair[1]);
        out.push(a);
        out.push(b);
    }
    if let [last] = pairs.remainder() {
        out.push(ni::digest_one(last));
    }
    out
}

fn digest_one_portable(data: &[u8]) -> Sha256Digest {
    sha2::Sha256::digest(data).into()
}

/// Whether the two-lane path runs here (the `std` macro caches what it detects).
pub fn has_sha_ni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("sha")
            && std::is_x86_feature_detected!("sse4.1")
            && std::is_x86_feature_detected!("ssse3")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod ni {
    use super::Sha256Digest;

    pub fn digest_pair(a: &[u8], b: &[u8]) -> (Sha256Digest, Sha256Digest) {
        (super::digest_one_portable(a), super::digest_one_portable(b))
    }

    pub fn digest_one(data: &[u8]) -> Sha256Digest {
        super::digest_one_portable(data)
    }
}

#[cfg(target_arch = "x86_64")]
mod ni {
    use super::Sha256Digest;
    use std::arch::x86_64::{
        __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_blend_epi16, _mm_loadu_si128, _mm_set_epi64x,
        _mm_setzero_si128, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32,
        _mm_shuffle_epi32, _mm_shuffle_epi8, _mm_storeu_si128,
    };

    /// FIPS 180-4's initial hash value.
    const H0: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];

    /// FIPS 180-4's round constants.
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    /// Bytes per SHA-256 block.
    const BLOCK: usize = 64;

    /// Callers checked [`super::has_sha_ni`].
    pub fn digest_pair(a: &[u8], b: &[u8]) -> (Sha256Digest, Sha256Digest) {
        let shared = a.len().min(b.len()) / BLOCK * BLOCK;
        let mut states = [H0; 2];
        // SAFETY: the caller saw the CPU's sha, sse4.1 and ssse3; both inputs hold `shared`
        // bytes, a whole number of blocks.
        unsafe { compress::<2>(&mut states, [&a[..shared], &b[..shared]]) };
        let [mut sa, mut sb] = states;
        (
            finish(&mut sa, &a[shared..], a.len()),
            finish(&mut sb, &b[shared..], b.len()),
        )
    }

    /// Callers checked [`super::has_sha_ni`].
    pub fn digest_one(data: &[u8]) -> Sha256Digest {
        let mut state = H0;
        finish(&mut state, data, data.len())
    }

    /// Runs `rest` (what is left of an input of `total` bytes) and the padding through
    /// `state`, and returns the digest.
    fn finish(state: &mut [u32; 8], rest: &[u8], total: usize) -> Sha256Digest {
        let whole = rest.len() / BLOCK * BLOCK;
        let mut one = [*state];
        // SAFETY: as in `digest_pair`; `rest[..whole]` is whole blocks.
        unsafe { compress::<1>(&mut one, [&rest[..whole]]) };
        // The last bytes, 0x80, zeros, and the length in bits (big-endian) in the last 8 bytes
        // of one block, or of a second when the tail leaves no room for them.
        let tail = &rest[whole..];
        let mut pad = [0u8; 2 * BLOCK];
        pad[..tail.len()].copy_from_slice(tail);
        pad[tail.len()] = 0x80;
        let end = if tail.len() < BLOCK - 8 {
            BLOCK
        } else {
            2 * BLOCK
        };
        pad[end - 8..end].copy_from_slice(&((total as u64).wrapping_mul(8)).to_be_bytes());
        // SAFETY: as above; `pad[..end]` is one or two whole blocks.
        unsafe { compress::<1>(&mut one, [&pad[..end]]) };
        *state = one[0];
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(state.iter()) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    /// SHA-256's compression of `N` independent streams of equal length (whole blocks), their
    /// instructions interleaved so that each stream's waits are the other's work.
    ///
    /// The SHA extensions keep the eight state words in two registers, `ABEF` and `CDGH`;
    /// each `sha256rnds2` does two rounds; the message schedule runs four words ahead of the
    /// rounds with `sha256msg1` (the σ0 part) and `sha256msg2` (the σ1 part).
    ///
    /// # Safety
    /// The CPU has `sha`, `sse4.1` and `ssse3`. Panics (not undefined behaviour) if the inputs
    /// differ in length or are not whole blocks.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn compress<const N: usize>(states: &mut [[u32; 8]; N], data: [&[u8]; N]) {
        let len = data[0].len();
        assert!(len.is_multiple_of(BLOCK) && data.iter().all(|d| d.len() == len));
        // Byte order within each 32-bit word: the message is big-endian.
        let be = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
        let mut abef = [_mm_setzero_si128(); N];
        let mut cdgh = [_mm_setzero_si128(); N];
        for l in 0..N {
            // SAFETY: 16-byte unaligned loads of the 8-word state.
            let (dcba, hgfe) = unsafe {
                (
                    _mm_loadu_si128(states[l].as_ptr().cast::<__m128i>()),
                    _mm_loadu_si128(states[l][4..].as_ptr().cast::<__m128i>()),
                )
            };
            let cdab = _mm_shuffle_epi32(dcba, 0xB1);
            let efgh = _mm_shuffle_epi32(hgfe, 0x1B);
            abef[l] = _mm_alignr_epi8(cdab, efgh, 8);
            cdgh[l] = _mm_blend_epi16(efgh, cdab, 0xF0);
        }
        for at in (0..len).step_by(BLOCK) {
            let (abef_in, cdgh_in) = (abef, cdgh);
            // Four registers of four message words each, per stream; register `g % 4` holds
            // the words of rounds 4g..4g+3 when group g runs.
            let mut w = [[_mm_setzero_si128(); 4]; N];
            for l in 0..N {
                let block = &data[l][at..at + BLOCK];
                for (j, reg) in w[l].iter_mut().enumerate() {
                    // SAFETY: 16 bytes at 16j of a 64-byte slice.
                    let raw =
                        unsafe { _mm_loadu_si128(block[16 * j..].as_ptr().cast::<__m128i>()) };
                    *reg = _mm_shuffle_epi8(raw, be);
                }
            }
            // Group g: rounds 4g..4g+3. Spelled out sixteen times with a constant `g` so that
            // the register indices are constants and the message words stay in registers (a
            // loop over g kept them on the stack, and the reloads sat on the rounds' chain).
            macro_rules! group {
                ($g:literal) => {{
                    const G: usize = $g;
                    // SAFETY: four of the 64 round constants.
                    let k = unsafe { _mm_loadu_si128(K[4 * G..].as_ptr().cast::<__m128i>()) };
                    let (cur, prev, next) = (G % 4, (G + 3) % 4, (G + 1) % 4);
                    let mut wk = [_mm_setzero_si128(); N];
                    for l in 0..N {
                        wk[l] = _mm_add_epi32(w[l][cur], k);
                        cdgh[l] = _mm_sha256rnds2_epu32(cdgh[l], abef[l], wk[l]);
                    }
                    if G >= 3 && G < 15 {
                        // Words of group g+1: W[t-16] + σ0(W[t-15]) (msg1, earlier) + W[t-7]
                        // (the last three of group g-1 and the first of g) + σ1(W[t-2]) (msg2).
                        for l in 0..N {
                            let t7 = _mm_alignr_epi8(w[l][cur], w[l][prev], 4);
                            w[l][next] =
                                _mm_sha256msg2_epu32(_mm_add_epi32(w[l][next], t7), w[l][cur]);
                        }
                    }
                    for l in 0..N {
                        abef[l] =
                            _mm_sha256rnds2_epu32(abef[l], cdgh[l], _mm_shuffle_epi32(wk[l], 0x0E));
                    }
                    if G >= 1 && G < 13 {
                        for l in 0..N {
                            w[l][prev] = _mm_sha256msg1_epu32(w[l][prev], w[l][cur]);
                        }
                    }
                }};
            }
            group!(0);
            group!(1);
            group!(2);
            group!(3);
            group!(4);
            group!(5);
            group!(6);
            group!(7);
            group!(8);
            group!(9);
            group!(10);
            group!(11);
            group!(12);
            group!(13);
            group!(14);
            group!(15);
            for l in 0..N {
                abef[l] = _mm_add_epi32(abef[l], abef_in[l]);
                cdgh[l] = _mm_add_epi32(cdgh[l], cdgh_in[l]);
            }
        }
        for l in 0..N {
            let feba = _mm_shuffle_epi32(abef[l], 0x1B);
            let dchg = _mm_shuffle_epi32(cdgh[l], 0xB1);
            let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
            let hgfe = _mm_alignr_epi8(dchg, feba, 8);
            // SAFETY: 16-byte unaligned stores into the 8-word state.
            unsafe {
                _mm_storeu_si128(states[l].as_mut_ptr().cast::<__m128i>(), dcba);
                _mm_storeu_si128(states[l][4..].as_mut_ptr().cast::<__m128i>(), hgfe);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn digest_pair(a: &[u8], b: &[u8]) -> (Sha256Digest, Sha256Digest) {
        let d = digest_many(&[a, b]);
        (d[0], d[1])
    }

    fn reference(d: &[u8]) -> Sha256Digest {
        sha2::Sha256::digest(d).into()
    }

    fn bytes(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
            .collect()
    }

    #[test]
    fn fips_180_examples() {
        let hex = |d: Sha256Digest| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let abc = b"abc";
        let two = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        let (x, y) = digest_pair(abc, two);
        assert_eq!(
            hex(x),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(y),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        assert_eq!(
            hex(digest_many(&[b""])[0]),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn lengths_around_block_and_padding_bounds() {
        let data = bytes(4 * 64 + 140, 7);
        let lens = [
            0,
            1,
            55,
            56,
            57,
            63,
            64,
            65,
            119,
            120,
            128,
            129,
            200,
            256 + 130,
        ];
        for &la in &lens {
            for &lb in &lens {
                let (a, b) = (&data[..la], &data[3..3 + lb]);
                let (x, y) = digest_pair(a, b);
                assert_eq!((x, y), (reference(a), reference(b)), "{la} {lb}");
            }
        }
    }

    #[test]
    fn a_block_sized_input_pair() {
        let (a, b) = (bytes(262_158, 1), bytes(262_158, 2));
        assert_eq!(digest_pair(&a, &b), (reference(&a), reference(&b)));
        let c = bytes(262_144, 3);
        let all = digest_many(&[&a, &b, &c]);
        assert_eq!(all, vec![reference(&a), reference(&b), reference(&c)]);
    }

    #[test]
    fn the_portable_path_agrees() {
        let a = bytes(1000, 9);
        assert_eq!(digest_one_portable(&a), reference(&a));
        assert_eq!(ni::digest_one(&a), reference(&a));
    }

    proptest! {
        #[test]
        fn many_inputs_of_any_shape(
            inputs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..700), 0..7)
        ) {
            let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
            let want: Vec<Sha256Digest> = refs.iter().map(|d| reference(d)).collect();
            prop_assert_eq!(digest_many(&refs), want);
        }
    }
}
