//! The cluster's blocks as bitswap sees them.
//!
//! **Why the bitswap server reads the cluster store, rather than deltas being copied into the
//! repository and pinned:** the replica already persists every delta and snapshot block it
//! accepted in its redb store (`<repo>/cluster/state.redb`), and drops them there when it
//! compacts. Serving from that store means one copy, nothing for repo GC to collect (the repo
//! never holds them, so `repo gc` cannot delete a delta the replica still references), and no
//! second bookkeeping of pins that would have to follow every compaction. Only accepted blocks
//! are in that store (refused, untrusted deltas never are), so we never serve them.
//!
//! - [`ClusterBlocks`]: a read-only [`Blockstore`] over the replica's store; every block is
//!   hash-checked against its CID before it is returned (the trait's contract);
//! - [`UnionBlockstore`]: the repository's store first, then the cluster's, for the bitswap
//!   server; writes go to the repository.

use std::sync::Arc;

use bytes::Bytes;
use cid::Cid;
use ipfs_kit_blockstore::{Block, Blockstore, BlockstoreError, StoreStat};
use ipfs_kit_cluster_sync::codec::{block_cid, DAG_CBOR_CODEC};
use ipfs_kit_cluster_sync::store::{RedbStore, Store};
use parking_lot::Mutex;

/// The replica's store, shared by the cluster service (writes) and bitswap (reads).
pub type SharedStore = Arc<Mutex<RedbStore>>;

/// A read-only [`Blockstore`] over the cluster's store.
pub struct ClusterBlocks {
    store: SharedStore,
}

impl ClusterBlocks {
    pub fn new(store: SharedStore) -> Self {
        Self { store }
    }

    fn read(&self, cid: &Cid) -> Result<Option<Vec<u8>>, BlockstoreError> {
        // Our blocks are all dag-cbor; anything else is not here.
        if cid.codec() != DAG_CBOR_CODEC {
            return Ok(None);
        }
        let bytes = self
            .store
            .lock()
            .get_block(cid)
            .map_err(|e| BlockstoreError::Engine(e.to_string()))?;
        let Some(bytes) = bytes else { return Ok(None) };
        if block_cid(&bytes).hash() != cid.hash() {
            return Err(BlockstoreError::Engine(format!(
                "cluster store: block {cid} does not match its hash"
            )));
        }
        Ok(Some(bytes))
    }
}

impl Blockstore for ClusterBlocks {
    fn get(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
        Ok(self.read(cid)?.map(Bytes::from))
    }

    fn has(&self, cid: &Cid) -> Result<bool, BlockstoreError> {
        Ok(self.read(cid)?.is_some())
    }

    fn size_of(&self, cid: &Cid) -> Result<Option<u64>, BlockstoreError> {
        Ok(self.read(cid)?.map(|b| b.len() as u64))
    }

    fn put_many(&self, _blocks: &[Block]) -> Result<(), BlockstoreError> {
        Err(BlockstoreError::Engine(
            "the cluster store is written by its replica only".into(),
        ))
    }

    fn delete_many(&self, _cids: &[Cid]) -> Result<u64, BlockstoreError> {
        Ok(0)
    }

    fn all_cids(&self) -> Result<Vec<Cid>, BlockstoreError> {
        Ok(Vec::new())
    }

    fn sync(&self) -> Result<(), BlockstoreError> {
        Ok(())
    }

    fn stat(&self) -> Result<StoreStat, BlockstoreError> {
        Ok(StoreStat::default())
    }
}

/// The repository's blocks, then the cluster's: what a cluster node's bitswap serves.
pub struct UnionBlockstore {
    repo: Arc<dyn Blockstore>,
    extra: Arc<dyn Blockstore>,
}

impl UnionBlockstore {
    pub fn new(repo: Arc<dyn Blockstore>, extra: Arc<dyn Blockstore>) -> Self {
        Self { repo, extra }
    }
}

impl Blockstore for UnionBlockstore {
    fn get(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
        match self.repo.get(cid)? {
            Some(b) => Ok(Some(b)),
            None => self.extra.get(cid),
        }
    }

    fn has(&self, cid: &Cid) -> Result<bool, BlockstoreError> {
        Ok(self.repo.has(cid)? || self.extra.has(cid)?)
    }

    fn size_of(&self, cid: &Cid) -> Result<Option<u64>, BlockstoreError> {
        match self.repo.size_of(cid)? {
            Some(n) => Ok(Some(n)),
            None => self.extra.size_of(cid),
        }
    }

    fn put_many(&self, blocks: &[Block]) -> Result<(), BlockstoreError> {
        self.repo.put_many(blocks)
    }

    fn delete_many(&self, cids: &[Cid]) -> Result<u64, BlockstoreError> {
        self.repo.delete_many(cids)
    }

    fn all_cids(&self) -> Result<Vec<Cid>, BlockstoreError> {
        self.repo.all_cids()
    }

    fn sync(&self) -> Result<(), BlockstoreError> {
        self.repo.sync()
    }

    fn stat(&self) -> Result<StoreStat, BlockstoreError> {
        self.repo.stat()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ipfs_kit_blockstore::MemoryBlockstore;
    use ipfs_kit_cluster_sync::Persist;

    fn store_with(items: &[Persist]) -> (tempfile::TempDir, SharedStore) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = RedbStore::open(&dir.path().join("state.redb")).unwrap();
        s.apply(items).unwrap();
        (dir, Arc::new(Mutex::new(s)))
    }

    #[test]
    fn serves_hash_checked_cluster_blocks_after_the_repo() {
        let good = serde_ipld_dagcbor::to_vec(&"a delta").unwrap();
        let good_cid = block_cid(&good);
        // A row whose bytes do not hash to its key (a corrupted store).
        let bad_cid = block_cid(b"what the key says");
        let (_dir, store) = store_with(&[
            Persist::Delta {
                cid: good_cid,
                priority: 1,
                bytes: good.clone(),
            },
            Persist::Delta {
                cid: bad_cid,
                priority: 2,
                bytes: b"something else".to_vec(),
            },
        ]);
        let blocks = ClusterBlocks::new(store);
        assert_eq!(
            blocks.get(&good_cid).unwrap().unwrap().as_ref(),
            good.as_slice()
        );
        assert_eq!(blocks.size_of(&good_cid).unwrap(), Some(good.len() as u64));
        assert!(
            blocks.get(&bad_cid).is_err(),
            "corrupt bytes are an error, never data"
        );
        // Only dag-cbor CIDs are looked up; the store is read-only.
        let raw = Cid::new_v1(0x55, *good_cid.hash());
        assert!(!blocks.has(&raw).unwrap());
        assert!(blocks
            .put(&Block::new(good_cid, good.clone().into()).unwrap())
            .is_err());

        // The union answers from the repository first, then the cluster store; writes go to
        // the repository.
        let repo: Arc<dyn Blockstore> = Arc::new(MemoryBlockstore::new());
        let union = UnionBlockstore::new(repo.clone(), Arc::new(blocks));
        assert!(union.has(&good_cid).unwrap());
        let other = serde_ipld_dagcbor::to_vec(&"in the repo").unwrap();
        let other_block = Block::new(block_cid(&other), other.into()).unwrap();
        union.put(&other_block).unwrap();
        assert!(repo.has(other_block.cid()).unwrap());
        assert!(union.get(other_block.cid()).unwrap().is_some());
        assert!(
            !repo.has(&good_cid).unwrap(),
            "cluster blocks never enter the repo"
        );
    }
}
