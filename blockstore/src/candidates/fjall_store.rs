//! fjall 3 with key-value separation: keys (multihashes) in the LSM tree, block bytes in blob
//! files, no compression (block data is usually already compressed or random).

use super::{engine, mh_of_key};
use crate::{hash, limits, raw_cid_of, Block, Blockstore, BlockstoreError, StoreStat};
use bytes::Bytes;
use cid::Cid;
use fjall::{
    CompressionType, Database, Keyspace, KeyspaceCreateOptions, KvSeparationOptions, PersistMode,
};
use std::path::Path;

pub struct FjallBlockstore {
    db: Database,
    blocks: Keyspace,
    sync_on_put: bool,
}

impl FjallBlockstore {
    pub fn open(dir: &Path, sync_on_put: bool) -> Result<Self, BlockstoreError> {
        let db = Database::builder(dir).open().map_err(engine)?;
        let blocks = db
            .keyspace("blocks", || {
                KeyspaceCreateOptions::default().with_kv_separation(Some(
                    KvSeparationOptions::default().compression(CompressionType::None),
                ))
            })
            .map_err(engine)?;
        Ok(Self {
            db,
            blocks,
            sync_on_put,
        })
    }
}

impl Blockstore for FjallBlockstore {
    fn get(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
        if let Some(d) = hash::identity_data(cid) {
            return Ok(Some(Bytes::copy_from_slice(d)));
        }
        let Some(v) = self.blocks.get(cid.hash().to_bytes()).map_err(engine)? else {
            return Ok(None);
        };
        let data = Bytes::copy_from_slice(&v);
        hash::verify(cid, &data)?;
        Ok(Some(data))
    }

    fn has(&self, cid: &Cid) -> Result<bool, BlockstoreError> {
        if hash::identity_data(cid).is_some() {
            return Ok(true);
        }
        self.blocks
            .contains_key(cid.hash().to_bytes())
            .map_err(engine)
    }

    fn size_of(&self, cid: &Cid) -> Result<Option<u64>, BlockstoreError> {
        if let Some(d) = hash::identity_data(cid) {
            return Ok(Some(d.len() as u64));
        }
        let size = self.blocks.size_of(cid.hash().to_bytes()).map_err(engine)?;
        Ok(size.map(u64::from))
    }

    fn put_many(&self, blocks: &[Block]) -> Result<(), BlockstoreError> {
        for b in blocks {
            limits::check_block_size(b.data().len())?;
        }
        let mode = if self.sync_on_put {
            PersistMode::SyncData
        } else {
            PersistMode::Buffer
        };
        let mut batch = self.db.batch().durability(Some(mode));
        for b in blocks {
            if hash::identity_data(b.cid()).is_some() {
                continue;
            }
            let key = b.cid().hash().to_bytes();
            if !self.blocks.contains_key(&key).map_err(engine)? {
                batch.insert(&self.blocks, key, &b.data()[..]);
            }
        }
        batch.commit().map_err(engine)
    }

    fn delete_many(&self, cids: &[Cid]) -> Result<u64, BlockstoreError> {
        let mut batch = self.db.batch().durability(Some(PersistMode::Buffer));
        let mut n = 0;
        for c in cids {
            let key = c.hash().to_bytes();
            if self.blocks.contains_key(&key).map_err(engine)? {
                batch.remove(&self.blocks, key);
                n += 1;
            }
        }
        batch.commit().map_err(engine)?;
        Ok(n)
    }

    fn all_cids(&self) -> Result<Vec<Cid>, BlockstoreError> {
        let mut out = Vec::new();
        for kv in self.blocks.iter() {
            out.push(raw_cid_of(mh_of_key(&kv.key().map_err(engine)?)?));
        }
        Ok(out)
    }

    fn sync(&self) -> Result<(), BlockstoreError> {
        self.db.persist(PersistMode::SyncAll).map_err(engine)
    }

    fn stat(&self) -> Result<StoreStat, BlockstoreError> {
        let (mut blocks, mut data_bytes) = (0, 0);
        for kv in self.blocks.iter() {
            blocks += 1;
            data_bytes += u64::from(kv.size().map_err(engine)?);
        }
        Ok(StoreStat {
            blocks,
            data_bytes,
            disk_bytes: self.db.disk_space().map_err(engine)?,
        })
    }
}
