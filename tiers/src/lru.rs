//! A plain least-recently-used cache sized in bytes: the baseline ARC is measured against
//! (`arc_bench`). Same slab and lists as [`crate::arc`], one list only.

use crate::arc::{ByteCache, CacheStats, ListId, Slab};
use std::hash::Hash;

/// LRU sized in bytes: a hit moves the entry to the front; an insert evicts from the back until
/// the new value fits. A value larger than the whole cache is not cached.
pub struct LruCache<K, V> {
    slab: Slab<K, V>,
    capacity_bytes: u64,
    stats: CacheStats,
}

impl<K: Hash + Eq + Clone, V> LruCache<K, V> {
    pub fn new(capacity_bytes: u64) -> Self {
        Self {
            slab: Slab::new(),
            capacity_bytes,
            stats: CacheStats::default(),
        }
    }

    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    pub fn len(&self) -> usize {
        self.slab.len(ListId::T1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&mut self, key: &K) -> Option<&V> {
        match self.slab.slot(key) {
            Some(i) => {
                self.stats.hits += 1;
                self.slab.move_front(i, ListId::T1);
                self.slab.value(i)
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    pub fn insert(&mut self, key: K, value: V, size: u64) {
        let charge = size.max(1);
        if let Some(i) = self.slab.slot(&key) {
            self.slab.remove(i);
        }
        if charge > self.capacity_bytes {
            return;
        }
        while self.slab.bytes(ListId::T1) + charge > self.capacity_bytes {
            match self.slab.lru(ListId::T1) {
                Some(j) => {
                    self.slab.remove(j);
                }
                None => break,
            }
        }
        self.slab.push_front(key, Some(value), charge, ListId::T1);
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.slab.slot(key)?;
        self.slab.remove(i).1
    }

    pub fn resident_bytes(&self) -> u64 {
        self.slab.bytes(ListId::T1)
    }
}

impl<K: Hash + Eq + Clone, V> ByteCache<K, V> for LruCache<K, V> {
    fn get(&mut self, key: &K) -> Option<&V> {
        LruCache::get(self, key)
    }
    fn insert(&mut self, key: K, value: V, size: u64) {
        LruCache::insert(self, key, value, size)
    }
    fn remove(&mut self, key: &K) -> Option<V> {
        LruCache::remove(self, key)
    }
    fn resident_bytes(&self) -> u64 {
        LruCache::resident_bytes(self)
    }
}
