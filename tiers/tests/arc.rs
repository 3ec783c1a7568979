//! ARC against a simple model: random gets/inserts/removes of variable-size values; after every
//! step ARC's structural invariants hold (in bytes), it never returns a value other than the last
//! one inserted for the key, a just-inserted key that fits is resident, and a removed key is
//! gone. Plus deterministic checks of the paper's behaviour (scan resistance, adaptation).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ipfs_kit_tiers::arc::{ArcCache, ByteCache};
use ipfs_kit_tiers::lru::LruCache;
use proptest::prelude::*;
use std::collections::HashMap;

#[derive(Clone, Debug)]
enum Op {
    Get(u16),
    Insert(u16, u64),
    Remove(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u16..64).prop_map(Op::Get),
        4 => (0u16..64, 0u64..300).prop_map(|(k, s)| Op::Insert(k, s)),
        1 => (0u16..64).prop_map(Op::Remove),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn arc_matches_model(capacity in 1u64..2000, ops in prop::collection::vec(op(), 1..400)) {
        let mut arc: ArcCache<u16, (u16, u64)> = ArcCache::new(capacity);
        // The model: the last value inserted per key (what a correct cache may return).
        let mut model: HashMap<u16, (u16, u64)> = HashMap::new();
        let mut version = 0u64;
        for op in ops {
            match op {
                Op::Get(k) => {
                    let resident = arc.contains(&k);
                    let got = arc.get(&k).copied();
                    prop_assert_eq!(got.is_some(), resident);
                    if let Some(v) = got {
                        prop_assert_eq!(Some(&v), model.get(&k), "stale value for {}", k);
                    }
                }
                Op::Insert(k, size) => {
                    version += 1;
                    arc.insert(k, (k, version), size);
                    if size.max(1) <= capacity {
                        model.insert(k, (k, version));
                        prop_assert!(arc.contains(&k), "inserted key {} not resident", k);
                    } else {
                        model.remove(&k);
                        prop_assert!(!arc.contains(&k));
                    }
                }
                Op::Remove(k) => {
                    let v = arc.remove(&k);
                    if let Some(v) = v {
                        prop_assert_eq!(Some(&v), model.get(&k));
                    }
                    model.remove(&k);
                    prop_assert!(!arc.contains(&k));
                    prop_assert!(arc.heat(&k).is_none());
                }
            }
            if let Err(e) = arc.check_invariants() {
                return Err(TestCaseError::fail(e));
            }
            let s = arc.sizes();
            prop_assert!(s.t1_bytes + s.t2_bytes <= capacity);
            prop_assert!(s.b1_bytes + s.b2_bytes <= 2 * capacity);
            prop_assert_eq!(ByteCache::resident_bytes(&arc), s.t1_bytes + s.t2_bytes);
        }
    }
}

#[test]
fn second_access_promotes_to_t2_and_ghost_hit_adapts_p() {
    let mut arc: ArcCache<u32, ()> = ArcCache::new(1000);
    // Fill T1 with ten 100-byte blocks.
    for k in 0..10 {
        assert!(arc.get(&k).is_none());
        arc.insert(k, (), 100);
    }
    assert_eq!(arc.sizes().t1_bytes, 1000);
    // A second access moves a block to T2.
    assert!(arc.get(&3).is_some());
    let s = arc.sizes();
    assert_eq!((s.t1_bytes, s.t2_bytes), (900, 100));
    // A new block evicts T1's LRU (key 0) into the ghost list B1.
    arc.insert(10, (), 100);
    assert!(!arc.contains(&0));
    assert_eq!(arc.sizes().b1_bytes, 100);
    let h = arc.heat(&0).unwrap();
    assert!(!h.resident);
    // Asking for it again is a miss, but a ghost hit: p grows and it comes back into T2.
    let p_before = arc.sizes().target_t1_bytes;
    assert!(arc.get(&0).is_none());
    arc.insert(0, (), 100);
    let s = arc.sizes();
    assert!(s.target_t1_bytes > p_before, "p did not grow: {s:?}");
    assert!(arc.contains(&0));
    assert_eq!(
        arc.heat(&0).unwrap().accesses,
        2,
        "heat survives the ghost list"
    );
    arc.check_invariants().unwrap();
}

#[test]
fn heat_decays_with_age_and_grows_with_use() {
    let mut arc: ArcCache<u32, ()> = ArcCache::new(1 << 20);
    arc.insert(1, (), 10);
    arc.insert(2, (), 10);
    for _ in 0..5 {
        arc.get(&1);
    }
    let h1 = arc.heat(&1).unwrap();
    let h2 = arc.heat(&2).unwrap();
    assert_eq!(h1.accesses, 6);
    assert!(h1.score > h2.score);
    // Age key 1 by many operations on other keys: its score decays.
    for k in 100..10_000u32 {
        arc.get(&k);
    }
    let later = arc.heat(&1).unwrap();
    assert!(later.score < h1.score / 2.0, "{later:?} vs {h1:?}");
}

/// The reason ARC exists: a hot set survives one-off scans that flush an LRU of the same size.
#[test]
fn arc_beats_lru_on_hot_set_with_scans() {
    let capacity = 100 * 1000;
    let mut arc: ArcCache<u64, ()> = ArcCache::new(capacity);
    let mut lru: LruCache<u64, ()> = LruCache::new(capacity);
    let mut scan_key = 1_000_000u64;
    let mut state = 12345u64;
    for round in 0..200 {
        // 500 accesses to a hot set of 80 blocks (fits in the cache) ...
        for _ in 0..500 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let k = (state >> 33) % 80;
            for c in [&mut arc as &mut dyn ByteCache<u64, ()>, &mut lru] {
                if c.get(&k).is_none() {
                    c.insert(k, (), 1000);
                }
            }
        }
        // ... then, every other round, a scan of 150 blocks never seen again.
        if round % 2 == 1 {
            for _ in 0..150 {
                scan_key += 1;
                for c in [&mut arc as &mut dyn ByteCache<u64, ()>, &mut lru] {
                    if c.get(&scan_key).is_none() {
                        c.insert(scan_key, (), 1000);
                    }
                }
            }
        }
    }
    let (a, l) = (arc.stats().hit_ratio(), lru.stats().hit_ratio());
    assert!(a > l + 0.05, "ARC {a:.3} vs LRU {l:.3}");
    arc.check_invariants().unwrap();
}

#[test]
fn oversized_values_are_not_cached() {
    let mut arc: ArcCache<u32, ()> = ArcCache::new(100);
    arc.insert(1, (), 101);
    assert!(!arc.contains(&1));
    arc.insert(2, (), 100);
    assert!(arc.contains(&2));
    arc.insert(2, (), 101);
    assert!(
        !arc.contains(&2),
        "a value grown past the capacity is dropped"
    );
    arc.check_invariants().unwrap();
}
