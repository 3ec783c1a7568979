//! The sweep planner: pure functions, no I/O, no clock.
//!
//! Provider records live at the k peers closest (by XOR) to `sha256(multihash)`, the key's
//! point in the Kademlia keyspace. Providing key by key costs one DHT lookup per key; the
//! sweep (go-libp2p-kad-dht's `provider` package, kubo's "reprovide sweep") instead sorts the
//! provided keys in keyspace and cuts the keyspace into regions by a bit prefix, long enough
//! that a region holds about k peers. One lookup per region finds those peers; each key then
//! goes to its k closest among them, grouped per peer, so one stream per peer carries many
//! ADD_PROVIDER messages.
//!
//! The schedule ties time to keyspace: region `p` (of `2^len`) is reprovided at
//! `interval * p / 2^len` into each cycle, which spreads the work evenly over the interval
//! whatever the number of keys.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

/// A point in the Kademlia keyspace: the SHA-256 of a key's bytes (a multihash, a peer ID).
pub type KeyPoint = [u8; 32];

/// Longest region prefix the planner uses (2^24 regions: far beyond any network size the
/// estimate can reach with k = 20).
pub const REGION_PREFIX_BITS_MAX: u32 = 24;

/// The keyspace point of `bytes` (kad hashes record keys and peer IDs this way).
pub fn key_point(bytes: &[u8]) -> KeyPoint {
    Sha256::digest(bytes).into()
}

/// XOR distance between two points, compared as a big-endian integer.
pub fn distance(a: &KeyPoint, b: &KeyPoint) -> KeyPoint {
    let mut d = [0u8; 32];
    for (i, x) in d.iter_mut().enumerate() {
        *x = a[i] ^ b[i];
    }
    d
}

/// The first `bits` bits of `point` as an integer (`bits <= 32`).
pub fn prefix_of(point: &KeyPoint, bits: u32) -> u32 {
    if bits == 0 {
        return 0;
    }
    let top = u32::from_be_bytes([point[0], point[1], point[2], point[3]]);
    top >> (32 - bits.min(32))
}

/// Estimates the number of DHT peers from the peers a lookup found closest to `target`:
/// for n uniformly placed peers the i-th closest lies at about i/n of the keyspace, so
/// n ≈ found / (distance of the farthest found as a fraction of the keyspace). Returns at
/// least the number found; `None` when nothing was found.
pub fn estimate_network_size(target: &KeyPoint, found: &[KeyPoint]) -> Option<usize> {
    let farthest = found.iter().map(|p| distance(target, p)).max()?;
    // Top 64 bits are plenty of precision for a size estimate.
    let mut top = [0u8; 8];
    top.copy_from_slice(&farthest[..8]);
    let fraction = (u64::from_be_bytes(top) as f64 + 1.0) / 18_446_744_073_709_551_616.0;
    let estimate = (found.len() as f64 / fraction).round();
    let estimate = if estimate.is_finite() && estimate < usize::MAX as f64 {
        estimate as usize
    } else {
        usize::MAX
    };
    Some(estimate.max(found.len()))
}

/// The region prefix length for a network of `network_size` peers: the longest prefix whose
/// regions still hold at least `k` peers on average (0, one region, below `2k` peers).
pub fn region_prefix_bits(network_size: usize, k: usize) -> u32 {
    let k = k.max(1);
    let mut bits = 0;
    while bits < REGION_PREFIX_BITS_MAX && (network_size >> (bits + 1)) >= k {
        bits += 1;
    }
    bits
}

/// A region of the keyspace: the points whose first `bits` bits equal `prefix`, and the
/// range of the sorted key list that falls in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    pub prefix: u32,
    pub bits: u32,
    pub keys: Range<usize>,
}

/// Cuts `sorted` (keyspace points in ascending order) into the non-empty regions of prefix
/// length `bits`, in keyspace order.
pub fn regions(sorted: &[KeyPoint], bits: u32) -> Vec<Region> {
    let bits = bits.min(REGION_PREFIX_BITS_MAX);
    let mut out: Vec<Region> = Vec::new();
    for (i, p) in sorted.iter().enumerate() {
        let prefix = prefix_of(p, bits);
        match out.last_mut() {
            Some(r) if r.prefix == prefix => r.keys.end = i + 1,
            _ => out.push(Region {
                prefix,
                bits,
                keys: i..i + 1,
            }),
        }
    }
    out
}

/// For each key, its `k` closest peers by XOR among `peers`; returned grouped per peer (the
/// index into `peers` → the indices into `keys` it should store), both in ascending order.
pub fn assign(keys: &[KeyPoint], peers: &[KeyPoint], k: usize) -> BTreeMap<usize, Vec<usize>> {
    let mut per_peer: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    if peers.is_empty() || k == 0 {
        return per_peer;
    }
    let mut order: Vec<(KeyPoint, usize)> = Vec::with_capacity(peers.len());
    for (ki, key) in keys.iter().enumerate() {
        order.clear();
        order.extend(
            peers
                .iter()
                .enumerate()
                .map(|(pi, p)| (distance(key, p), pi)),
        );
        let take = k.min(order.len());
        if take < order.len() {
            order.select_nth_unstable(take - 1);
        }
        for (_, pi) in &order[..take] {
            per_peer.entry(*pi).or_default().push(ki);
        }
    }
    per_peer
}

/// When region `prefix` (of prefix length `bits`) is due within each reprovide cycle of
/// length `interval`: its share of the keyspace in time.
pub fn region_offset(prefix: u32, bits: u32, interval: Duration) -> Duration {
    let bits = bits.min(REGION_PREFIX_BITS_MAX);
    let slots = 1u128 << bits;
    let nanos = interval.as_nanos() * u128::from(prefix) / slots;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// The key in the middle of `region` (a lookup target inside the region: kad only looks up
/// the hash of real keys, so the region's own keys are the natural targets).
pub fn region_target(region: &Region) -> usize {
    region.keys.start + (region.keys.end - region.keys.start) / 2
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn points(n: usize, seed: u8) -> Vec<KeyPoint> {
        (0..n)
            .map(|i| key_point(&[seed, (i >> 16) as u8, (i >> 8) as u8, i as u8]))
            .collect()
    }

    #[test]
    fn prefix_and_distance() {
        let mut p = [0u8; 32];
        p[0] = 0b1010_0000;
        assert_eq!(prefix_of(&p, 0), 0);
        assert_eq!(prefix_of(&p, 1), 1);
        assert_eq!(prefix_of(&p, 3), 0b101);
        assert_eq!(distance(&p, &p), [0u8; 32]);
        let q = [0xffu8; 32];
        assert_eq!(distance(&p, &q)[0], 0b0101_1111);
    }

    #[test]
    fn prefix_bits_give_about_k_peers_per_region() {
        assert_eq!(region_prefix_bits(0, 20), 0);
        assert_eq!(region_prefix_bits(15, 20), 0);
        assert_eq!(region_prefix_bits(39, 20), 0);
        assert_eq!(region_prefix_bits(40, 20), 1);
        assert_eq!(region_prefix_bits(10_000, 20), 8); // 10000/256 = 39 >= 20; /512 = 19
        for n in [40usize, 100, 1000, 10_000, 1 << 20] {
            let b = region_prefix_bits(n, 20);
            let per_region = n >> b;
            assert!(
                (20..40).contains(&per_region),
                "n {n}: {per_region} per region"
            );
        }
        assert_eq!(region_prefix_bits(usize::MAX, 1), REGION_PREFIX_BITS_MAX);
    }

    #[test]
    fn regions_partition_the_sorted_keys_by_prefix() {
        let mut keys = points(2000, 1);
        keys.sort();
        for bits in [0, 1, 3, 8] {
            let rs = regions(&keys, bits);
            assert!(rs.len() <= 1 << bits);
            let mut next = 0;
            for w in rs.windows(2) {
                assert!(w[0].prefix < w[1].prefix);
            }
            for r in &rs {
                assert_eq!(r.keys.start, next);
                assert!(!r.keys.is_empty());
                next = r.keys.end;
                for k in &keys[r.keys.clone()] {
                    assert_eq!(prefix_of(k, bits), r.prefix);
                }
            }
            assert_eq!(next, keys.len());
        }
        assert_eq!(regions(&keys, 0).len(), 1);
        assert_eq!(
            regions(&keys, 3).len(),
            8,
            "2000 random keys fill 8 regions"
        );
        assert!(regions(&[], 4).is_empty());
    }

    #[test]
    fn assign_matches_brute_force_k_closest() {
        let keys = points(300, 2);
        let peers = points(57, 3);
        let k = 20;
        let got = assign(&keys, &peers, k);
        for (ki, key) in keys.iter().enumerate() {
            let mut brute: Vec<usize> = (0..peers.len()).collect();
            brute.sort_by_key(|&pi| distance(key, &peers[pi]));
            brute.truncate(k);
            brute.sort();
            let mut holders: Vec<usize> = got
                .iter()
                .filter(|(_, ks)| ks.binary_search(&ki).is_ok())
                .map(|(pi, _)| *pi)
                .collect();
            holders.sort();
            assert_eq!(holders, brute, "key {ki}");
        }
        let total: usize = got.values().map(Vec::len).sum();
        assert_eq!(total, keys.len() * k);
        // Fewer peers than k: every peer gets every key.
        let few = assign(&keys, &peers[..5], k);
        assert_eq!(few.len(), 5);
        assert!(few.values().all(|ks| ks.len() == keys.len()));
        assert!(assign(&keys, &[], k).is_empty());
    }

    #[test]
    fn schedule_spreads_regions_evenly_over_the_interval() {
        let interval = Duration::from_secs(22 * 3600);
        let bits = 6;
        let offsets: Vec<Duration> = (0..1u32 << bits)
            .map(|p| region_offset(p, bits, interval))
            .collect();
        assert_eq!(offsets[0], Duration::ZERO);
        let step = interval / (1 << bits);
        for w in offsets.windows(2) {
            let gap = w[1] - w[0];
            assert!(
                gap.abs_diff(step) <= Duration::from_nanos(1),
                "{gap:?} vs {step:?}"
            );
        }
        assert!(*offsets.last().unwrap() < interval);
        assert_eq!(region_offset(0, 0, interval), Duration::ZERO);
    }

    #[test]
    fn network_size_estimate_is_near_the_truth() {
        for n in [100usize, 1000, 20_000] {
            let peers = points(n, 4);
            let mut errs = Vec::new();
            for t in 0..20u8 {
                let target = key_point(&[9, t]);
                let mut by_d = peers.clone();
                by_d.sort_by_key(|p| distance(&target, p));
                let est = estimate_network_size(&target, &by_d[..20]).unwrap();
                errs.push(est as f64 / n as f64);
            }
            errs.sort_by(|a, b| a.total_cmp(b));
            let median = errs[errs.len() / 2];
            assert!((0.5..2.0).contains(&median), "n {n}: median ratio {median}");
        }
        assert_eq!(estimate_network_size(&[0; 32], &[]), None);
        // Everything found at distance ~max: at least the number found.
        assert_eq!(estimate_network_size(&[0; 32], &[[0xff; 32]; 3]), Some(3));
    }

    #[test]
    fn region_target_is_inside_the_region() {
        let r = Region {
            prefix: 0,
            bits: 0,
            keys: 10..15,
        };
        assert_eq!(region_target(&r), 12);
        let one = Region {
            prefix: 0,
            bits: 0,
            keys: 3..4,
        };
        assert_eq!(region_target(&one), 3);
    }
}
