//! An in-memory store, for tests and for `add --only-hash`.

use crate::{hash, Block, Blockstore, BlockstoreError, StoreStat};
use bytes::Bytes;
use cid::Cid;
use multihash::Multihash;
use parking_lot::RwLock;
use std::collections::HashMap;

#[derive(Default)]
pub struct MemoryBlockstore {
    blocks: RwLock<HashMap<Multihash<64>, Bytes>>,
}

impl MemoryBlockstore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Blockstore for MemoryBlockstore {
    fn get(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
        if let Some(d) = hash::identity_data(cid) {
            return Ok(Some(Bytes::copy_from_slice(d)));
        }
        let Some(data) = self.blocks.read().get(cid.hash()).cloned() else {
            return Ok(None);
        };
        hash::verify(cid, &data)?;
        Ok(Some(data))
    }

    fn has(&self, cid: &Cid) -> Result<bool, BlockstoreError> {
        Ok(hash::identity_data(cid).is_some() || self.blocks.read().contains_key(cid.hash()))
    }

    fn size_of(&self, cid: &Cid) -> Result<Option<u64>, BlockstoreError> {
        if let Some(d) = hash::identity_data(cid) {
            return Ok(Some(d.len() as u64));
        }
        Ok(self.blocks.read().get(cid.hash()).map(|b| b.len() as u64))
    }

    fn put_many(&self, blocks: &[Block]) -> Result<(), BlockstoreError> {
        for b in blocks {
            crate::limits::check_block_size(b.data().len())?;
        }
        let mut map = self.blocks.write();
        for b in blocks {
            if hash::identity_data(b.cid()).is_none() {
                map.entry(*b.cid().hash())
                    .or_insert_with(|| b.data().clone());
            }
        }
        Ok(())
    }

    fn delete_many(&self, cids: &[Cid]) -> Result<u64, BlockstoreError> {
        let mut map = self.blocks.write();
        Ok(cids
            .iter()
            .filter(|c| map.remove(c.hash()).is_some())
            .count() as u64)
    }

    fn all_cids(&self) -> Result<Vec<Cid>, BlockstoreError> {
        Ok(self
            .blocks
            .read()
            .keys()
            .map(|mh| crate::raw_cid_of(*mh))
            .collect())
    }

    fn sync(&self) -> Result<(), BlockstoreError> {
        Ok(())
    }

    fn stat(&self) -> Result<StoreStat, BlockstoreError> {
        let map = self.blocks.read();
        Ok(StoreStat {
            blocks: map.len() as u64,
            data_bytes: map.values().map(|b| b.len() as u64).sum(),
            disk_bytes: 0,
        })
    }
}
