//! sled 0.34: one tree keyed by multihash bytes; every batch is applied then flushed.

use super::{engine, mh_of_key};
use crate::{hash, limits, raw_cid_of, Block, Blockstore, BlockstoreError, StoreStat};
use bytes::Bytes;
use cid::Cid;
use std::path::Path;

pub struct SledBlockstore {
    db: sled::Db,
}

impl SledBlockstore {
    pub fn open(dir: &Path) -> Result<Self, BlockstoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(256 << 20)
            .open()
            .map_err(engine)?;
        Ok(Self { db })
    }
}

impl Blockstore for SledBlockstore {
    fn get(&self, cid: &Cid) -> Result<Option<Bytes>, BlockstoreError> {
        if let Some(d) = hash::identity_data(cid) {
            return Ok(Some(Bytes::copy_from_slice(d)));
        }
        let Some(v) = self.db.get(cid.hash().to_bytes()).map_err(engine)? else {
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
        self.db.contains_key(cid.hash().to_bytes()).map_err(engine)
    }

    fn size_of(&self, cid: &Cid) -> Result<Option<u64>, BlockstoreError> {
        if let Some(d) = hash::identity_data(cid) {
            return Ok(Some(d.len() as u64));
        }
        let v = self.db.get(cid.hash().to_bytes()).map_err(engine)?;
        Ok(v.map(|v| v.len() as u64))
    }

    fn put_many(&self, blocks: &[Block]) -> Result<(), BlockstoreError> {
        for b in blocks {
            limits::check_block_size(b.data().len())?;
        }
        let mut batch = sled::Batch::default();
        for b in blocks {
            if hash::identity_data(b.cid()).is_some() {
                continue;
            }
            let key = b.cid().hash().to_bytes();
            if !self.db.contains_key(&key).map_err(engine)? {
                batch.insert(key, &b.data()[..]);
            }
        }
        self.db.apply_batch(batch).map_err(engine)?;
        self.db.flush().map_err(engine)?;
        Ok(())
    }

    fn delete_many(&self, cids: &[Cid]) -> Result<u64, BlockstoreError> {
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for c in cids {
            let key = c.hash().to_bytes();
            if self.db.contains_key(&key).map_err(engine)? {
                batch.remove(key);
                n += 1;
            }
        }
        self.db.apply_batch(batch).map_err(engine)?;
        self.db.flush().map_err(engine)?;
        Ok(n)
    }

    fn all_cids(&self) -> Result<Vec<Cid>, BlockstoreError> {
        let mut out = Vec::new();
        for k in self.db.iter().keys() {
            out.push(raw_cid_of(mh_of_key(&k.map_err(engine)?)?));
        }
        Ok(out)
    }

    fn sync(&self) -> Result<(), BlockstoreError> {
        self.db.flush().map(|_| ()).map_err(engine)
    }

    fn stat(&self) -> Result<StoreStat, BlockstoreError> {
        let (mut blocks, mut data_bytes) = (0, 0);
        for kv in self.db.iter() {
            let (_, v) = kv.map_err(engine)?;
            blocks += 1;
            data_bytes += v.len() as u64;
        }
        Ok(StoreStat {
            blocks,
            data_bytes,
            disk_bytes: self.db.size_on_disk().map_err(engine)?,
        })
    }
}
