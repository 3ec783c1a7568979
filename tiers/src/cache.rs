//! [`CachedBlockstore`]: an ARC cache of block bytes, sized in bytes, in front of any
//! [`Blockstore`], that also keeps the Arrow index informed.
//!
//! Reads hit the cache first; a `get` miss reads (and so verifies) the block from the inner
//! store and caches it. Writes go to the inner store and do not fill the cache (a bulk import
//! would only flush it; ARC would sort that out, but there is no need to pay for it). Nor do
//! `get_trusted` misses, the bitswap serving path: what a peer asks for is its walk of a DAG,
//! read once, and caching it churned the cache's whole budget of block buffers through the
//! allocator — a 1 GiB fetch served from a 128 MiB cache moved ~10% faster without it
//! (benches/README.md, "Session 9"); the OS page cache keeps the recently read segments anyway.
//! `get_trusted` hits are served from the cache. Every access updates the block's heat, readable
//! with [`CachedBlockstore::heat`] and recorded in the index.
//!
//! Ordering with the index keeps it a *lagging* view of the store, never a contradicting one: a
//! put is recorded after the store acknowledged it; a delete is recorded and flushed to disk
//! before the store deletes. Index errors are logged, never returned: the blockstore works
//! without its index, which the next open reconciles.

use crate::arc::{ArcCache, ArcSizes, CacheStats, Heat};
use crate::index::Index;
use bytes::Bytes;
use cid::Cid;
use ipfs_kit_blockstore::{Block, Blockstore, BlockstoreError, StoreStat};
use multihash::Multihash;
use parking_lot::Mutex;
use std::sync::Arc;

/// An ARC of `capacity_bytes` in front of `B`.
pub struct CachedBlockstore<B: Blockstore> {
    inner: B,
    cache: Mutex<ArcCache<Multihash<64>, Bytes>>,
    index: Option<Arc<Index>>,
}

impl<B: Blockstore> CachedBlockstore<B> {
    pub fn new(inner: B, capacity_bytes: u64) -> Self {
        Self {
            inner,
            cache: Mutex::new(ArcCache::new(capacity_bytes)),
            index: None,
        }
    }

    /// Also records puts, accesses (with heat) and deletes in `index`.
    pub fn with_index(mut self, index: Arc<Index>) -> Self {
        self.index = Some(index);
        self
    }

    pub fn inner(&self) -> &B {
        &self.inner
    }

    pub fn index(&self) -> Option<&Arc<Index>> {
        self.index.as_ref()
    }

    /// The block's heat as the cache knows it (resident or recently evicted).
    pub fn heat(&self, cid: &Cid) -> Option<Heat> {
        self.cache.lock().heat(cid.hash())
    }

    pub fn stats(&self) -> CacheStats {
        self.cache.lock().stats()
    }

    pub fn sizes(&self) -> ArcSizes {
        self.cache.lock().sizes()
    }

    /// Records stored blocks in the index (after the store acknowledged them).
    fn record_puts(&self, blocks: &[Block]) {
        if let Some(ix) = &self.index {
            for b in blocks {
                if let Err(err) = ix.record_put(b.cid(), b.data().len() as u64) {
                    tracing::warn!(cid = %b.cid(), %err, "index: could not record a put");
                }
            }
        }
    }

    fn note_access(&self, cid: &Cid, size: u64, heat: Option<f32>) {
        if let Some(ix) = &self.index {
            if let Err(err) = ix.record_access(cid, size, heat) {
                tracing::warn!(%cid, %err, "index: could not record an access");
            }
        }
    }
}

impl<B: Blockstore> CachedBlockstore<B> {
    /// `get`, or (when `trusted`) `get_trusted` of the inner store on a miss, which then is not
    /// cached (see the module docs).
    fn read(&self, cid: &Cid, trusted: bool) -> Result<Option<Bytes>, BlockstoreError> {
        if let Some(bytes) = self.hit(cid) {
            return Ok(Some(bytes));
        }
        let read = if trusted {
            self.inner.get_trusted(cid)?
        } else {
            self.inner.get(cid)?
        };
        Ok(read.map(|bytes| self.missed(cid, bytes, trusted)))
    }

    /// The cached bytes of `cid`, its access recorded.
    fn hit(&self, cid: &Cid) -> Option<Bytes> {
        let (bytes, heat) = {
            let mut c = self.cache.lock();
            let bytes = c.get(cid.hash()).cloned()?;
            (bytes, c.heat(cid.hash()).map(|h| h.score))
        };
        self.note_access(cid, bytes.len() as u64, heat);
        Some(bytes)
    }

    /// Bytes the inner store returned on a miss: cached unless `trusted`, access recorded.
    fn missed(&self, cid: &Cid, bytes: Bytes, trusted: bool) -> Bytes {
        let heat = {
            let mut c = self.cache.lock();
            if !trusted {
                c.insert(*cid.hash(), bytes.clone(), bytes.len() as u64);
            }
            c.heat(cid.hash()).map(|h| h.score)
        };
        self.note_access(cid, bytes.len() as u64, heat);
        bytes
    }
}

impl<B: Blockstore> Blockstore for CachedBlockstore<B> {
    fn get(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
        self.read(cid, false)
    }

    fn get_trusted(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
        self.read(cid, true)
    }

    fn get_many(&self, cids: &[Cid]) -> Vec<Result<Option<Bytes>, BlockstoreError>> {
        let mut out: Vec<Option<Result<Option<Bytes>, BlockstoreError>>> = cids
            .iter()
            .map(|c| self.hit(c).map(|b| Ok(Some(b))))
            .collect();
        let misses: Vec<Cid> = cids
            .iter()
            .zip(&out)
            .filter(|(_, o)| o.is_none())
            .map(|(c, _)| *c)
            .collect();
        let mut read = self.inner.get_many(&misses).into_iter();
        for (slot, cid) in out.iter_mut().zip(cids) {
            if slot.is_none() {
                let r = read.next().unwrap_or(Ok(None));
                *slot = Some(r.map(|got| got.map(|b| self.missed(cid, b, false))));
            }
        }
        out.into_iter().map(|o| o.unwrap_or(Ok(None))).collect()
    }

    fn has(&self, cid: &Cid) -> Result<bool, BlockstoreError> {
        if self.cache.lock().contains(cid.hash()) {
            return Ok(true);
        }
        self.inner.has(cid)
    }

    fn size_of(&self, cid: &Cid) -> Result<Option<u64>, BlockstoreError> {
        self.inner.size_of(cid)
    }

    fn put_many(&self, blocks: &[Block]) -> Result<(), BlockstoreError> {
        self.inner.put_many(blocks)?;
        self.record_puts(blocks);
        Ok(())
    }

    fn put_many_cold(&self, blocks: &[Block]) -> Result<(), BlockstoreError> {
        self.inner.put_many_cold(blocks)?;
        self.record_puts(blocks);
        Ok(())
    }

    fn delete_many(&self, cids: &[Cid]) -> Result<u64, BlockstoreError> {
        if let Some(ix) = &self.index {
            // The index must stop listing the blocks before they go: record and flush first.
            let recorded = cids
                .iter()
                .try_for_each(|c| ix.record_delete(c))
                .and_then(|()| ix.flush());
            if let Err(err) = recorded {
                tracing::warn!(%err, "index: could not record deletes; it will be reconciled");
            }
        }
        {
            let mut c = self.cache.lock();
            for cid in cids {
                c.remove(cid.hash());
            }
        }
        self.inner.delete_many(cids)
    }

    fn all_cids(&self) -> Result<Vec<Cid>, BlockstoreError> {
        self.inner.all_cids()
    }

    fn sync(&self) -> Result<(), BlockstoreError> {
        self.inner.sync()?;
        if let Some(ix) = &self.index {
            if let Err(err) = ix.flush() {
                tracing::warn!(%err, "index: flush failed");
            }
        }
        Ok(())
    }

    fn stat(&self) -> Result<StoreStat, BlockstoreError> {
        self.inner.stat()
    }

    fn reclaim_space(&self) -> Result<u64, BlockstoreError> {
        self.inner.reclaim_space()
    }
}

impl<B: Blockstore> Drop for CachedBlockstore<B> {
    /// Records not yet flushed would only make the index lag; flushing them here keeps a
    /// short-lived process (one CLI command) from losing them.
    fn drop(&mut self) {
        if let Some(ix) = &self.index {
            if let Err(err) = ix.flush() {
                tracing::warn!(%err, "index: flush at close failed");
            }
        }
    }
}

/// A shared, type-erased store as a [`Blockstore`], so a [`CachedBlockstore`] can sit in front
/// of whatever the repository opened (the pack store or the tiered store).
#[derive(Clone)]
pub struct SharedStore(pub Arc<dyn Blockstore>);

impl Blockstore for SharedStore {
    fn get(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
        self.0.get(cid)
    }
    fn get_trusted(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
        self.0.get_trusted(cid)
    }
    fn get_many(&self, cids: &[Cid]) -> Vec<Result<Option<Bytes>, BlockstoreError>> {
        self.0.get_many(cids)
    }
    fn has(&self, cid: &Cid) -> Result<bool, BlockstoreError> {
        self.0.has(cid)
    }
    fn size_of(&self, cid: &Cid) -> Result<Option<u64>, BlockstoreError> {
        self.0.size_of(cid)
    }
    fn put_many(&self, blocks: &[Block]) -> Result<(), BlockstoreError> {
        self.0.put_many(blocks)
    }
    fn put_many_cold(&self, blocks: &[Block]) -> Result<(), BlockstoreError> {
        self.0.put_many_cold(blocks)
    }
    fn delete_many(&self, cids: &[Cid]) -> Result<u64, BlockstoreError> {
        self.0.delete_many(cids)
    }
    fn all_cids(&self) -> Result<Vec<Cid>, BlockstoreError> {
        self.0.all_cids()
    }
    fn sync(&self) -> Result<(), BlockstoreError> {
        self.0.sync()
    }
    fn stat(&self) -> Result<StoreStat, BlockstoreError> {
        self.0.stat()
    }
    fn reclaim_space(&self) -> Result<u64, BlockstoreError> {
        self.0.reclaim_space()
    }
}
