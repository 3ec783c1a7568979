//! Persistence of a replica: what `Action::Persist` asks for, and `Stored` back on restart.
//!
//! `RedbStore` keeps three tables in one redb file: `deltas` (CID bytes → delta block),
//! `snapshot` (CID bytes → snapshot root and chunk blocks) and `meta` (`snapshot_root` → CID
//! bytes). Installing a snapshot replaces the previous one's blocks, deletes the deltas it lets
//! go, commits, then compacts the file so the space is returned. `MemStore` is the same in memory
//! (the simulation's "disk", which survives a simulated crash). Both serve blocks to peers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cid::Cid;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::replica::{Persist, Stored};

const DELTAS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("deltas");
const SNAPSHOT: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("snapshot");
const REFUSED: TableDefinition<'_, &[u8], ()> = TableDefinition::new("refused");
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const SNAPSHOT_ROOT_KEY: &str = "snapshot_root";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redb: {0}")]
    Redb(String),
    #[error("stored CID does not parse: {0}")]
    BadCid(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

macro_rules! redb_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Redb(e.to_string()) }
        }
    )*};
}
redb_err!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::CompactionError
);

/// Where a replica's persisted state lives.
pub trait Store {
    /// Write what the replica asked for, in order, atomically.
    fn apply(&mut self, items: &[Persist]) -> Result<(), StoreError>;
    /// Everything needed by `Replica::restore`.
    fn load(&self) -> Result<Stored, StoreError>;
    /// A block to serve to a peer (delta or snapshot block).
    fn get_block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError>;
}

/// The in-memory store (the simulation's disk).
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    pub deltas: HashMap<Cid, Vec<u8>>,
    pub snapshot_root: Option<Cid>,
    pub snapshot_blocks: HashMap<Cid, Vec<u8>>,
    pub refused: std::collections::BTreeSet<Cid>,
}

impl Store for MemStore {
    fn apply(&mut self, items: &[Persist]) -> Result<(), StoreError> {
        for p in items {
            match p {
                Persist::Delta { cid, bytes, .. } => {
                    self.deltas.insert(*cid, bytes.clone());
                }
                Persist::Refused { cid } => {
                    self.refused.insert(*cid);
                }
                Persist::Snapshot {
                    root,
                    blocks,
                    drop_deltas,
                } => {
                    self.snapshot_blocks = blocks.iter().cloned().collect();
                    self.snapshot_root = Some(*root);
                    for d in drop_deltas {
                        self.deltas.remove(d);
                    }
                }
            }
        }
        Ok(())
    }

    fn load(&self) -> Result<Stored, StoreError> {
        Ok(Stored {
            snapshot_root: self.snapshot_root,
            snapshot_blocks: self.snapshot_blocks.clone(),
            deltas: self.deltas.iter().map(|(c, b)| (*c, b.clone())).collect(),
            refused: self.refused.iter().copied().collect(),
        })
    }

    fn get_block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .deltas
            .get(cid)
            .or_else(|| self.snapshot_blocks.get(cid))
            .cloned())
    }
}

/// The redb store.
pub struct RedbStore {
    db: redb::Database,
    path: PathBuf,
}

impl RedbStore {
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        let db = redb::Database::create(path)?;
        let tx = db.begin_write()?;
        tx.open_table(DELTAS)?;
        tx.open_table(SNAPSHOT)?;
        tx.open_table(META)?;
        tx.open_table(REFUSED)?;
        tx.commit()?;
        Ok(RedbStore {
            db,
            path: path.to_path_buf(),
        })
    }

    /// Size of the file on disk.
    pub fn file_bytes(&self) -> Result<u64, StoreError> {
        Ok(std::fs::metadata(&self.path)?.len())
    }

    /// Give free pages back to the file system.
    pub fn compact(&mut self) -> Result<(), StoreError> {
        // redb frees a transaction's pages only after later commits: let two pass first.
        for _ in 0..2 {
            self.db.begin_write()?.commit()?;
        }
        while self.db.compact()? {}
        Ok(())
    }
}

fn parse_cid(b: &[u8]) -> Result<Cid, StoreError> {
    Cid::try_from(b).map_err(|e| StoreError::BadCid(e.to_string()))
}

impl Store for RedbStore {
    fn apply(&mut self, items: &[Persist]) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut snapshot_written = false;
        let tx = self.db.begin_write()?;
        {
            let mut deltas = tx.open_table(DELTAS)?;
            let mut snap = tx.open_table(SNAPSHOT)?;
            let mut meta = tx.open_table(META)?;
            let mut refused = tx.open_table(REFUSED)?;
            for p in items {
                match p {
                    Persist::Delta { cid, bytes, .. } => {
                        deltas.insert(cid.to_bytes().as_slice(), bytes.as_slice())?;
                    }
                    Persist::Refused { cid } => {
                        refused.insert(cid.to_bytes().as_slice(), ())?;
                    }
                    Persist::Snapshot {
                        root,
                        blocks,
                        drop_deltas,
                    } => {
                        snap.retain(|_, _| false)?;
                        for (c, b) in blocks {
                            snap.insert(c.to_bytes().as_slice(), b.as_slice())?;
                        }
                        for d in drop_deltas {
                            deltas.remove(d.to_bytes().as_slice())?;
                        }
                        meta.insert(SNAPSHOT_ROOT_KEY, root.to_bytes().as_slice())?;
                        snapshot_written = true;
                    }
                }
            }
        }
        tx.commit()?;
        if snapshot_written {
            self.compact()?;
        }
        Ok(())
    }

    fn load(&self) -> Result<Stored, StoreError> {
        let tx = self.db.begin_read()?;
        let mut out = Stored::default();
        let meta = tx.open_table(META)?;
        if let Some(v) = meta.get(SNAPSHOT_ROOT_KEY)? {
            out.snapshot_root = Some(parse_cid(v.value())?);
        }
        for e in tx.open_table(SNAPSHOT)?.iter()? {
            let (k, v) = e?;
            out.snapshot_blocks
                .insert(parse_cid(k.value())?, v.value().to_vec());
        }
        for e in tx.open_table(REFUSED)?.iter()? {
            let (k, _) = e?;
            out.refused.push(parse_cid(k.value())?);
        }
        for e in tx.open_table(DELTAS)?.iter()? {
            let (k, v) = e?;
            out.deltas.push((parse_cid(k.value())?, v.value().to_vec()));
        }
        Ok(out)
    }

    fn get_block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read()?;
        let key = cid.to_bytes();
        if let Some(v) = tx.open_table(DELTAS)?.get(key.as_slice())? {
            return Ok(Some(v.value().to_vec()));
        }
        Ok(tx
            .open_table(SNAPSHOT)?
            .get(key.as_slice())?
            .map(|v| v.value().to_vec()))
    }
}
