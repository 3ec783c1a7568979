//! The DHT record store: other peers' records in kad's `MemoryStore`, our own provided keys
//! in one shared set ([`OwnKeys`]) that the reprovider also sweeps.
//!
//! rust-libp2p's Kademlia answers GET_PROVIDERS (inbound, and the local part of our own
//! searches) only from its `RecordStore::providers`. With a plain `MemoryStore`, every key we
//! provide was held twice — once in the store (as a record in its providers map *and* a clone
//! in its `provided` set) and once in the reprovider's set — and counted against the store's
//! key cap, so a large repository crowded out other peers' records. [`ProviderStore`] keeps
//! our records out of the `MemoryStore`: `providers(key)` appends a record of ours (no
//! addresses: kad fills in our current listen and external addresses when answering) when the
//! key is in [`OwnKeys`], and `add_provider`/`remove_provider` for our own peer ID
//! (`provide_now` through the node's `provide_locally`, kad's `stop_providing`) update that
//! set. The reprovider uses the same set as its provided set, so each of our keys is held once.
//!
//! Bounds: other peers' records are capped by the `MemoryStore` (`max_provided_keys`, the
//! node's `PROVIDER_KEYS_MAX`); our own set is the repository's keys under the provide
//! strategy (re-derived each cycle), plus keys announced by hand, at most [`OWN_KEYS_MAX`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use libp2p::kad::store::{self, MemoryStore, MemoryStoreConfig, RecordStore};
use libp2p::kad::{ProviderRecord, Record, RecordKey};
use libp2p::PeerId;

use super::plan::{self, KeyPoint};

/// Our own provided keys at most (2^26: a repository of 64 Mi blocks under `all`).
pub const OWN_KEYS_MAX: usize = 1 << 26;

/// Our provided keys (multihash bytes by keyspace point), shared by the DHT store and the
/// reprovider. Cheap to clone.
#[derive(Clone, Debug)]
pub struct OwnKeys {
    keys: Arc<Mutex<BTreeMap<KeyPoint, Vec<u8>>>>,
    max: usize,
}

impl Default for OwnKeys {
    fn default() -> Self {
        Self::with_max(OWN_KEYS_MAX)
    }
}

impl OwnKeys {
    /// An empty set holding at most `max` keys (tests; nodes use [`OWN_KEYS_MAX`]).
    pub fn with_max(max: usize) -> Self {
        Self {
            keys: Arc::default(),
            max,
        }
    }

    /// The set, locked (never held across an await).
    pub fn lock(&self) -> MutexGuard<'_, BTreeMap<KeyPoint, Vec<u8>>> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `key`; `Ok(true)` if it was new, an error past [`OWN_KEYS_MAX`].
    pub fn insert(&self, key: Vec<u8>) -> Result<bool, store::Error> {
        let p = plan::key_point(&key);
        let mut set = self.lock();
        if set.contains_key(&p) {
            return Ok(false);
        }
        if set.len() >= self.max {
            return Err(store::Error::MaxProvidedKeys);
        }
        set.insert(p, key);
        Ok(true)
    }

    /// Whether we provide `key`.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.lock().contains_key(&plan::key_point(key))
    }

    /// Stops providing `key`.
    pub fn remove(&self, key: &[u8]) {
        self.lock().remove(&plan::key_point(key));
    }

    /// Replaces the whole set (cut at its limit, lowest points kept).
    pub fn replace(&self, mut keys: BTreeMap<KeyPoint, Vec<u8>>) {
        if keys.len() > self.max {
            tracing::warn!(
                keys = keys.len(),
                max = self.max,
                "provided set cut at its limit"
            );
            while keys.len() > self.max {
                keys.pop_last();
            }
        }
        *self.lock() = keys;
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// Kad's record store: see the module documentation.
pub struct ProviderStore {
    local: PeerId,
    others: MemoryStore,
    own: OwnKeys,
}

impl ProviderStore {
    /// A store for `local` whose other peers' records obey `config`.
    pub fn new(local: PeerId, config: MemoryStoreConfig) -> Self {
        Self {
            local,
            others: MemoryStore::with_config(local, config),
            own: OwnKeys::default(),
        }
    }

    /// A store for `local` sharing `own` with another store: the LAN DHT's shares the WAN
    /// DHT's set, so both answer GET_PROVIDERS with us for every key we provide.
    pub fn with_own_keys(local: PeerId, config: MemoryStoreConfig, own: OwnKeys) -> Self {
        Self {
            local,
            others: MemoryStore::with_config(local, config),
            own,
        }
    }

    /// The set of our own keys (shared).
    pub fn own_keys(&self) -> OwnKeys {
        self.own.clone()
    }

    fn own_record(&self, key: &RecordKey) -> ProviderRecord {
        ProviderRecord::new(key.clone(), self.local, Vec::new())
    }
}

impl RecordStore for ProviderStore {
    type RecordsIter<'a> = <MemoryStore as RecordStore>::RecordsIter<'a>;
    type ProvidedIter<'a> = std::vec::IntoIter<Cow<'a, ProviderRecord>>;

    fn get(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
        self.others.get(k)
    }

    fn put(&mut self, r: Record) -> store::Result<()> {
        self.others.put(r)
    }

    fn remove(&mut self, k: &RecordKey) {
        self.others.remove(k)
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        self.others.records()
    }

    fn add_provider(&mut self, record: ProviderRecord) -> store::Result<()> {
        if record.provider == self.local {
            return self.own.insert(record.key.to_vec()).map(|_| ());
        }
        self.others.add_provider(record)
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        let mut v = self.others.providers(key);
        if self.own.contains(key.as_ref()) {
            v.push(self.own_record(key));
        }
        v
    }

    /// Our records (kad republishes them only with a provider publication interval, which the
    /// node leaves off: the reprovider sweeps them instead).
    fn provided(&self) -> Self::ProvidedIter<'_> {
        let records: Vec<Cow<'_, ProviderRecord>> = self
            .own
            .lock()
            .values()
            .map(|k| Cow::Owned(self.own_record(&RecordKey::from(k.clone()))))
            .collect();
        records.into_iter()
    }

    fn remove_provider(&mut self, k: &RecordKey, p: &PeerId) {
        if *p == self.local {
            self.own.remove(k.as_ref());
        } else {
            self.others.remove_provider(k, p);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(i: u32) -> RecordKey {
        RecordKey::new(&format!("key {i}"))
    }

    #[test]
    fn own_records_live_in_the_shared_set_not_in_the_memory_store() {
        let me = PeerId::random();
        let other = PeerId::random();
        let cap = MemoryStoreConfig {
            max_provided_keys: 2,
            ..Default::default()
        };
        let mut s = ProviderStore::new(me, cap);
        let own = s.own_keys();
        // Ten keys of ours do not count against the cap of two for others' keys.
        for i in 0..10 {
            s.add_provider(ProviderRecord::new(key(i), me, Vec::new()))
                .unwrap();
        }
        assert_eq!(own.len(), 10);
        s.add_provider(ProviderRecord::new(key(0), other, Vec::new()))
            .unwrap();
        s.add_provider(ProviderRecord::new(key(100), other, Vec::new()))
            .unwrap();
        // Limit + 1 for others' keys is refused.
        assert!(matches!(
            s.add_provider(ProviderRecord::new(key(101), other, Vec::new())),
            Err(store::Error::MaxProvidedKeys)
        ));
        let p0: Vec<PeerId> = s.providers(&key(0)).iter().map(|r| r.provider).collect();
        assert_eq!(p0, vec![other, me]);
        assert_eq!(s.providers(&key(5))[0].provider, me);
        assert!(s.providers(&key(5))[0].addresses.is_empty());
        assert!(s.providers(&key(50)).is_empty());
        assert_eq!(s.provided().count(), 10);
        // The reprovider sees and replaces the same set.
        own.replace(BTreeMap::new());
        assert!(s.providers(&key(5)).is_empty());
        assert_eq!(
            s.providers(&key(0))
                .iter()
                .map(|r| r.provider)
                .collect::<Vec<_>>(),
            vec![other]
        );
        s.add_provider(ProviderRecord::new(key(7), me, Vec::new()))
            .unwrap();
        s.remove_provider(&key(7), &me);
        assert!(own.is_empty());
    }

    #[test]
    fn own_keys_refuse_limit_plus_one() {
        let own = OwnKeys::with_max(3);
        for k in [b"a", b"b", b"c"] {
            assert!(own.insert(k.to_vec()).unwrap());
        }
        assert!(!own.insert(b"a".to_vec()).unwrap(), "already there");
        assert!(matches!(
            own.insert(b"d".to_vec()),
            Err(store::Error::MaxProvidedKeys)
        ));
        let four: BTreeMap<KeyPoint, Vec<u8>> = [b"w", b"x", b"y", b"z"]
            .iter()
            .map(|k| (plan::key_point(&k[..]), k.to_vec()))
            .collect();
        own.replace(four);
        assert_eq!(own.len(), 3, "replace cuts at the limit");
    }
}
