//! The CIDs this peer pinned in its repository for the cluster (`<repo>/cluster/local.redb`).
//!
//! The tracker lives in memory; after a restart it only knows what the pinset says now. A pin
//! the cluster dropped, or moved to other peers, while this peer was down would stay pinned in
//! the repository forever. So every pin the tracker makes is recorded here (after the repo pin
//! commits) and removed after its unpin; on start, recorded CIDs the pinset no longer allocates
//! to us are unpinned (ipfs-cluster's state sync at start). Like ipfs-cluster, a repo pin of
//! the same CID made by hand is not told apart from the cluster's.

use std::path::Path;

use cid::Cid;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::ClusterError;

const PINNED: TableDefinition<'_, &[u8], ()> = TableDefinition::new("pinned");

/// The file under the cluster directory.
pub const LOCAL_PINS_FILE: &str = "local.redb";

fn err(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Store(format!("local pins: {e}"))
}

/// The record of cluster pins made in this repository.
pub struct LocalPins {
    db: redb::Database,
}

impl LocalPins {
    pub fn open(path: &Path) -> Result<LocalPins, ClusterError> {
        let db = redb::Database::create(path).map_err(err)?;
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(PINNED).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(LocalPins { db })
    }

    fn write(&self, cid: &Cid, present: bool) -> Result<(), ClusterError> {
        let tx = self.db.begin_write().map_err(err)?;
        {
            let mut t = tx.open_table(PINNED).map_err(err)?;
            let key = cid.to_bytes();
            if present {
                t.insert(key.as_slice(), ()).map_err(err)?;
            } else {
                t.remove(key.as_slice()).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    pub fn insert(&self, cid: &Cid) -> Result<(), ClusterError> {
        self.write(cid, true)
    }

    pub fn remove(&self, cid: &Cid) -> Result<(), ClusterError> {
        self.write(cid, false)
    }

    /// Every recorded CID (rows that do not parse are skipped).
    pub fn all(&self) -> Result<Vec<Cid>, ClusterError> {
        let tx = self.db.begin_read().map_err(err)?;
        let t = tx.open_table(PINNED).map_err(err)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(err)? {
            let (k, _) = row.map_err(err)?;
            if let Ok(c) = Cid::try_from(k.value()) {
                out.push(c);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCAL_PINS_FILE);
        let a = ipfs_kit_cluster_sync::codec::block_cid(b"a");
        let b = ipfs_kit_cluster_sync::codec::block_cid(b"b");
        {
            let l = LocalPins::open(&path).unwrap();
            l.insert(&a).unwrap();
            l.insert(&b).unwrap();
            l.remove(&a).unwrap();
        }
        let l = LocalPins::open(&path).unwrap();
        assert_eq!(l.all().unwrap(), vec![b]);
    }
}
