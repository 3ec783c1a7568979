//! The Adaptive Replacement Cache (ARC) of Megiddo and Modha (FAST '03), sized in bytes.
//!
//! ARC keeps two resident lists, `T1` (seen once recently) and `T2` (seen at least twice), and
//! two ghost lists of keys only, `B1` and `B2`, remembering what was recently evicted from each.
//! A hit in a ghost list says "that list was too small": a `B1` hit grows the target size `p`
//! of `T1`, a `B2` hit shrinks it. One-off scans flow through `T1` and out to `B1` without
//! disturbing the frequently used blocks of `T2`; that is why ARC beats LRU on mixed workloads.
//!
//! The paper counts pages of one size; blocks vary in size (a few bytes to 2 MiB), so here every
//! "length" is a number of bytes and each step of the paper's algorithm that removes one entry
//! becomes a loop that removes entries until the new block fits. The invariants kept (and
//! checked by [`ArcCache::check_invariants`] in the property test) are the paper's, in bytes:
//! `|T1|+|T2| <= c`, `|T1|+|B1| <= c`, `|T1|+|T2|+|B1|+|B2| <= 2c`, `0 <= p <= c`.
//! An entry is charged `max(size, 1)` bytes so that empty blocks cannot make the ghost lists
//! unbounded in entries.
//!
//! Every operation is O(1) (amortised over the entries it evicts): the four lists are doubly
//! linked lists threaded through one slab, with a hash map from key to slot.
//!
//! Each entry also carries its *heat*: an access count and an exponentially decayed access
//! score (half-life [`HEAT_HALF_LIFE_TICKS`] cache operations), kept through ghost lists so a
//! block that comes back keeps its history. The index and the tier placement read it.

use std::collections::HashMap;
use std::hash::Hash;

/// Cache operations after which an untouched entry's heat score halves.
pub const HEAT_HALF_LIFE_TICKS: u64 = 4096;

const NIL: usize = usize::MAX;

/// Heat of one cached (or recently evicted) block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Heat {
    /// Accesses (hits and inserts) since the cache first saw the key.
    pub accesses: u64,
    /// The cache tick (operation counter) of the last access.
    pub last_access_tick: u64,
    /// Accesses decayed by age: each access counts 1, halving every
    /// [`HEAT_HALF_LIFE_TICKS`] ticks. Recency and frequency in one number.
    pub score: f32,
    /// Whether the block is resident (in `T1` or `T2`) rather than a ghost.
    pub resident: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct HeatState {
    accesses: u64,
    last_tick: u64,
    score: f32,
}

impl HeatState {
    fn decayed(&self, now: u64) -> f32 {
        let age = now.saturating_sub(self.last_tick) as f64;
        (self.score as f64 * (0.5f64).powf(age / HEAT_HALF_LIFE_TICKS as f64)) as f32
    }
    fn touch(&mut self, now: u64) {
        self.score = self.decayed(now) + 1.0;
        self.accesses = self.accesses.saturating_add(1);
        self.last_tick = now;
    }
}

/// Which list a slab entry is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListId {
    T1 = 0,
    T2 = 1,
    B1 = 2,
    B2 = 3,
}

struct Node<K, V> {
    key: K,
    value: Option<V>,
    charge: u64,
    list: ListId,
    prev: usize,
    next: usize,
    heat: HeatState,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ListStat {
    head: usize,
    tail: usize,
    len: usize,
    bytes: u64,
}

/// Doubly linked lists threaded through one slab, with a key → slot map. Head is MRU, tail LRU.
pub(crate) struct Slab<K, V> {
    nodes: Vec<Option<Node<K, V>>>,
    free: Vec<usize>,
    map: HashMap<K, usize>,
    lists: [ListStat; 4],
}

impl<K: Hash + Eq + Clone, V> Slab<K, V> {
    pub(crate) fn new() -> Self {
        let empty = ListStat {
            head: NIL,
            tail: NIL,
            len: 0,
            bytes: 0,
        };
        Self {
            nodes: Vec::new(),
            free: Vec::new(),
            map: HashMap::new(),
            lists: [empty; 4],
        }
    }

    fn node(&self, i: usize) -> &Node<K, V> {
        match self.nodes.get(i) {
            Some(Some(n)) => n,
            _ => unreachable!("slab slot {i} is linked but empty"),
        }
    }
    fn node_mut(&mut self, i: usize) -> &mut Node<K, V> {
        match self.nodes.get_mut(i) {
            Some(Some(n)) => n,
            _ => unreachable!("slab slot {i} is linked but empty"),
        }
    }

    pub(crate) fn slot(&self, k: &K) -> Option<usize> {
        self.map.get(k).copied()
    }
    pub(crate) fn list_of(&self, i: usize) -> ListId {
        self.node(i).list
    }
    pub(crate) fn bytes(&self, l: ListId) -> u64 {
        self.lists[l as usize].bytes
    }
    pub(crate) fn len(&self, l: ListId) -> usize {
        self.lists[l as usize].len
    }
    pub(crate) fn entries(&self) -> usize {
        self.map.len()
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next, list, charge) = {
            let n = self.node(i);
            (n.prev, n.next, n.list, n.charge)
        };
        if prev == NIL {
            self.lists[list as usize].head = next;
        } else {
            self.node_mut(prev).next = next;
        }
        if next == NIL {
            self.lists[list as usize].tail = prev;
        } else {
            self.node_mut(next).prev = prev;
        }
        let l = &mut self.lists[list as usize];
        l.len -= 1;
        l.bytes -= charge;
    }

    fn link_front(&mut self, i: usize, list: ListId) {
        let head = self.lists[list as usize].head;
        {
            let n = self.node_mut(i);
            n.list = list;
            n.prev = NIL;
            n.next = head;
        }
        if head == NIL {
            self.lists[list as usize].tail = i;
        } else {
            self.node_mut(head).prev = i;
        }
        let charge = self.node(i).charge;
        let l = &mut self.lists[list as usize];
        l.head = i;
        l.len += 1;
        l.bytes += charge;
    }

    /// Moves slot `i` to the MRU end of `list`.
    pub(crate) fn move_front(&mut self, i: usize, list: ListId) {
        self.unlink(i);
        self.link_front(i, list);
    }

    /// Inserts a new key at the MRU end of `list`; the key must be absent.
    pub(crate) fn push_front(
        &mut self,
        key: K,
        value: Option<V>,
        charge: u64,
        list: ListId,
    ) -> usize {
        let node = Node {
            key: key.clone(),
            value,
            charge,
            list,
            prev: NIL,
            next: NIL,
            heat: HeatState::default(),
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i] = Some(node);
                i
            }
            None => {
                self.nodes.push(Some(node));
                self.nodes.len() - 1
            }
        };
        self.map.insert(key, i);
        self.link_front(i, list);
        i
    }

    pub(crate) fn lru(&self, list: ListId) -> Option<usize> {
        let t = self.lists[list as usize].tail;
        (t != NIL).then_some(t)
    }

    /// Removes slot `i` entirely and returns its key and value.
    pub(crate) fn remove(&mut self, i: usize) -> (K, Option<V>) {
        self.unlink(i);
        let node = match self.nodes.get_mut(i).and_then(Option::take) {
            Some(n) => n,
            None => unreachable!("slab slot {i} removed twice"),
        };
        self.free.push(i);
        self.map.remove(&node.key);
        (node.key, node.value)
    }

    /// Drops the value of slot `i` (it becomes a ghost) and returns it.
    pub(crate) fn take_value(&mut self, i: usize) -> Option<V> {
        self.node_mut(i).value.take()
    }
    pub(crate) fn set_value(&mut self, i: usize, v: V, charge: u64) {
        let list = self.node(i).list;
        let old = self.node(i).charge;
        let l = &mut self.lists[list as usize];
        l.bytes = l.bytes - old + charge;
        let n = self.node_mut(i);
        n.value = Some(v);
        n.charge = charge;
    }
    pub(crate) fn value(&self, i: usize) -> Option<&V> {
        self.node(i).value.as_ref()
    }
    fn heat_mut(&mut self, i: usize) -> &mut HeatState {
        &mut self.node_mut(i).heat
    }
    fn heat(&self, i: usize) -> HeatState {
        self.node(i).heat
    }

    /// Walks `list` from MRU to LRU, checking links and byte totals. For tests.
    fn check_list(&self, list: ListId) -> Result<(), String> {
        let stat = self.lists[list as usize];
        let (mut i, mut prev, mut len, mut bytes) = (stat.head, NIL, 0usize, 0u64);
        while i != NIL {
            let n = self.node(i);
            if n.list != list || n.prev != prev {
                return Err(format!("{list:?}: bad link at slot {i}"));
            }
            let ghost = matches!(list, ListId::B1 | ListId::B2);
            if ghost == n.value.is_some() {
                return Err(format!("{list:?}: slot {i} has the wrong residency"));
            }
            if self.map.get(&n.key) != Some(&i) {
                return Err(format!("{list:?}: slot {i} not in the map"));
            }
            len += 1;
            bytes += n.charge;
            prev = i;
            i = n.next;
        }
        if prev != stat.tail || len != stat.len || bytes != stat.bytes {
            return Err(format!(
                "{list:?}: walked {len} entries / {bytes} B, recorded {} / {} B",
                stat.len, stat.bytes
            ));
        }
        Ok(())
    }
}

/// A replacement cache sized in bytes: the common face of [`ArcCache`] and the
/// [`crate::lru::LruCache`] baseline, so a benchmark can drive both alike.
pub trait ByteCache<K, V> {
    /// The value if resident; counts as an access (a hit or a miss).
    fn get(&mut self, key: &K) -> Option<&V>;
    /// Caches `value` of `size` bytes (after a miss, or to refresh it).
    fn insert(&mut self, key: K, value: V, size: u64);
    /// Forgets the key entirely; returns the value if it was resident.
    fn remove(&mut self, key: &K) -> Option<V>;
    /// Bytes of resident values.
    fn resident_bytes(&self) -> u64;
}

/// Hit and miss counters of a cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}

impl CacheStats {
    /// Hits over lookups, 0 when nothing was looked up.
    pub fn hit_ratio(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

/// Sizes of ARC's four lists and its adaptive target, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArcSizes {
    pub capacity_bytes: u64,
    /// The adaptive target size of `T1`.
    pub target_t1_bytes: u64,
    pub t1_bytes: u64,
    pub t2_bytes: u64,
    pub b1_bytes: u64,
    pub b2_bytes: u64,
    pub resident_entries: usize,
    pub ghost_entries: usize,
}

/// The adaptive replacement cache, sized in bytes. Not thread-safe: wrap it in a lock (see
/// [`crate::cache::CachedBlockstore`]).
pub struct ArcCache<K, V> {
    slab: Slab<K, V>,
    capacity_bytes: u64,
    p: u64,
    tick: u64,
    stats: CacheStats,
}

fn charge_of(size: u64) -> u64 {
    size.max(1)
}

impl<K: Hash + Eq + Clone, V> ArcCache<K, V> {
    /// A cache holding at most `capacity_bytes` of values (and as much again of ghost keys,
    /// counted by the size of the blocks they stand for).
    pub fn new(capacity_bytes: u64) -> Self {
        Self {
            slab: Slab::new(),
            capacity_bytes,
            p: 0,
            tick: 0,
            stats: CacheStats::default(),
        }
    }

    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }
    pub fn stats(&self) -> CacheStats {
        self.stats
    }
    /// The current tick (one per `get`/`insert`), the clock of [`Heat::last_access_tick`].
    pub fn tick(&self) -> u64 {
        self.tick
    }

    pub fn sizes(&self) -> ArcSizes {
        let s = &self.slab;
        ArcSizes {
            capacity_bytes: self.capacity_bytes,
            target_t1_bytes: self.p,
            t1_bytes: s.bytes(ListId::T1),
            t2_bytes: s.bytes(ListId::T2),
            b1_bytes: s.bytes(ListId::B1),
            b2_bytes: s.bytes(ListId::B2),
            resident_entries: s.len(ListId::T1) + s.len(ListId::T2),
            ghost_entries: s.len(ListId::B1) + s.len(ListId::B2),
        }
    }

    /// Whether the key is resident (no access recorded).
    pub fn contains(&self, key: &K) -> bool {
        self.slab
            .slot(key)
            .is_some_and(|i| matches!(self.slab.list_of(i), ListId::T1 | ListId::T2))
    }

    /// The key's heat, if the cache remembers it (resident or ghost).
    pub fn heat(&self, key: &K) -> Option<Heat> {
        let i = self.slab.slot(key)?;
        let h = self.slab.heat(i);
        Some(Heat {
            accesses: h.accesses,
            last_access_tick: h.last_tick,
            score: h.decayed(self.tick),
            resident: matches!(self.slab.list_of(i), ListId::T1 | ListId::T2),
        })
    }

    /// Looks the key up: a hit moves it to the MRU end of `T2` (it has now been seen twice).
    pub fn get(&mut self, key: &K) -> Option<&V> {
        self.tick += 1;
        let now = self.tick;
        let Some(i) = self.slab.slot(key) else {
            self.stats.misses += 1;
            return None;
        };
        match self.slab.list_of(i) {
            ListId::T1 | ListId::T2 => {
                self.stats.hits += 1;
                self.slab.heat_mut(i).touch(now);
                self.slab.move_front(i, ListId::T2);
                self.slab.value(i)
            }
            ListId::B1 | ListId::B2 => {
                // The access is counted by the `insert` that follows the fetch.
                self.stats.misses += 1;
                None
            }
        }
    }

    /// Caches `value` (`size` bytes). A key in a ghost list adapts `p` and goes to `T2`; a new
    /// key goes to `T1`. A value larger than the whole cache is not cached.
    pub fn insert(&mut self, key: K, value: V, size: u64) {
        let charge = charge_of(size);
        let c = self.capacity_bytes;
        if charge > c {
            if let Some(i) = self.slab.slot(&key) {
                self.slab.remove(i);
            }
            return;
        }
        self.tick += 1;
        let now = self.tick;
        match self.slab.slot(&key) {
            Some(i) => {
                let list = self.slab.list_of(i);
                match list {
                    ListId::T1 | ListId::T2 => {
                        // A refresh of a resident value: count it as a hit on the paper's Case I.
                        self.slab.heat_mut(i).touch(now);
                        self.slab.set_value(i, value, charge);
                        self.slab.move_front(i, ListId::T2);
                        // The new size may not fit beside the rest: evict others (not `i`).
                        self.replace_until_fits(0, false, Some(i));
                    }
                    ListId::B1 | ListId::B2 => {
                        // Case II/III: a ghost hit. Adapt p by the size of the block, scaled by
                        // the ratio of the ghost lists as in the paper.
                        let b1 = self.slab.bytes(ListId::B1).max(1);
                        let b2 = self.slab.bytes(ListId::B2).max(1);
                        let in_b2 = list == ListId::B2;
                        if in_b2 {
                            let delta = charge.saturating_mul((b1 / b2).max(1));
                            self.p = self.p.saturating_sub(delta);
                        } else {
                            let delta = charge.saturating_mul((b2 / b1).max(1));
                            self.p = self.p.saturating_add(delta).min(c);
                        }
                        // Take the ghost off its list before making room, so REPLACE never
                        // picks it, then bring it back resident at the MRU end of T2.
                        let heat = self.slab.heat(i);
                        self.slab.remove(i);
                        self.replace_until_fits(charge, in_b2, None);
                        let j = self.slab.push_front(key, Some(value), charge, ListId::T2);
                        *self.slab.heat_mut(j) = heat;
                        self.slab.heat_mut(j).touch(now);
                    }
                }
            }
            None => {
                // Case IV: a key ARC has not seen (or forgot).
                let l1 = |s: &Slab<K, V>| s.bytes(ListId::T1) + s.bytes(ListId::B1);
                if l1(&self.slab) + charge > c {
                    // Case A: L1 is full. Drop B1's oldest ghosts; when B1 runs out, T1 alone
                    // is too big, so drop T1's oldest entries outright (no ghost).
                    while l1(&self.slab) + charge > c {
                        if let Some(j) = self.slab.lru(ListId::B1) {
                            self.slab.remove(j);
                        } else if let Some(j) = self.slab.lru(ListId::T1) {
                            self.slab.remove(j);
                        } else {
                            break;
                        }
                    }
                } else {
                    // Case B: L1 has room; keep the whole directory within 2c.
                    let total = |s: &Slab<K, V>| {
                        s.bytes(ListId::T1)
                            + s.bytes(ListId::T2)
                            + s.bytes(ListId::B1)
                            + s.bytes(ListId::B2)
                    };
                    while total(&self.slab) + charge > 2 * c {
                        match self.slab.lru(ListId::B2) {
                            Some(j) => {
                                self.slab.remove(j);
                            }
                            None => break,
                        }
                    }
                }
                self.replace_until_fits(charge, false, None);
                let j = self.slab.push_front(key, Some(value), charge, ListId::T1);
                self.slab.heat_mut(j).touch(now);
            }
        }
        self.trim_ghosts();
    }

    /// The paper's REPLACE, repeated until `incoming` more bytes fit in `c`: evict from `T1`
    /// into `B1` when `T1` exceeds its target `p` (or equals it on a `B2` hit), else from `T2`
    /// into `B2`. `keep` is never evicted.
    fn replace_until_fits(&mut self, incoming: u64, in_b2: bool, keep: Option<usize>) {
        let c = self.capacity_bytes;
        loop {
            let t1 = self.slab.bytes(ListId::T1);
            let t2 = self.slab.bytes(ListId::T2);
            if t1 + t2 + incoming <= c {
                return;
            }
            let t1_lru = self.slab.lru(ListId::T1).filter(|&i| Some(i) != keep);
            let t2_lru = self.slab.lru(ListId::T2).filter(|&i| Some(i) != keep);
            let from_t1 = t1_lru.is_some() && (t1 > self.p || (in_b2 && t1 == self.p));
            let (victim, ghost) = match (from_t1, t1_lru, t2_lru) {
                (true, Some(i), _) => (i, ListId::B1),
                (_, _, Some(i)) => (i, ListId::B2),
                (_, Some(i), None) => (i, ListId::B1),
                (_, None, None) => return,
            };
            self.slab.take_value(victim);
            self.slab.move_front(victim, ghost);
        }
    }

    /// Keeps the ghost lists within the paper's bounds after a step that may have grown them.
    fn trim_ghosts(&mut self) {
        let c = self.capacity_bytes;
        while self.slab.bytes(ListId::T1) + self.slab.bytes(ListId::B1) > c {
            match self.slab.lru(ListId::B1) {
                Some(j) => {
                    self.slab.remove(j);
                }
                None => break,
            }
        }
        loop {
            let s = &self.slab;
            let total = s.bytes(ListId::T1)
                + s.bytes(ListId::T2)
                + s.bytes(ListId::B1)
                + s.bytes(ListId::B2);
            if total <= 2 * c {
                break;
            }
            match self
                .slab
                .lru(ListId::B2)
                .or_else(|| self.slab.lru(ListId::B1))
            {
                Some(j) => {
                    self.slab.remove(j);
                }
                None => break,
            }
        }
    }

    /// Forgets the key (resident or ghost); returns its value if it was resident.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.slab.slot(key)?;
        self.slab.remove(i).1
    }

    /// Checks the structure and ARC's invariants; `Err` names the first broken one.
    pub fn check_invariants(&self) -> Result<(), String> {
        for l in [ListId::T1, ListId::T2, ListId::B1, ListId::B2] {
            self.slab.check_list(l)?;
        }
        let s = self.sizes();
        let c = self.capacity_bytes;
        if s.t1_bytes + s.t2_bytes > c {
            return Err(format!("|T1|+|T2| = {} > c = {c}", s.t1_bytes + s.t2_bytes));
        }
        if s.t1_bytes + s.b1_bytes > c {
            return Err(format!("|T1|+|B1| = {} > c = {c}", s.t1_bytes + s.b1_bytes));
        }
        let total = s.t1_bytes + s.t2_bytes + s.b1_bytes + s.b2_bytes;
        if total > 2 * c {
            return Err(format!("directory = {total} > 2c = {}", 2 * c));
        }
        if self.p > c {
            return Err(format!("p = {} > c = {c}", self.p));
        }
        if self.slab.entries() != s.resident_entries + s.ghost_entries {
            return Err("map and lists disagree on the entry count".into());
        }
        Ok(())
    }
}

impl<K: Hash + Eq + Clone, V> ByteCache<K, V> for ArcCache<K, V> {
    fn get(&mut self, key: &K) -> Option<&V> {
        ArcCache::get(self, key)
    }
    fn insert(&mut self, key: K, value: V, size: u64) {
        ArcCache::insert(self, key, value, size)
    }
    fn remove(&mut self, key: &K) -> Option<V> {
        ArcCache::remove(self, key)
    }
    fn resident_bytes(&self) -> u64 {
        self.slab.bytes(ListId::T1) + self.slab.bytes(ListId::T2)
    }
}
