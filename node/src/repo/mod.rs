//! The on-disk repository: blockstore, pins, config, lock; garbage collection.
//!
//! Layout of a repository directory:
//! - `version` — the repository format version ([`REPO_VERSION`]), written last by `init`, so a
//!   directory without it is not a repository;
//! - `blocks/` — the [`DiskBlockstore`] (it takes its own lock file there);
//! - `pins.redb` — the pin set in a redb database (one table keyed by CID bytes), committed with
//!   immediate durability, so a pin survives `kill -9` once `pin_add` returned.
//!
//! Architecture invariant: GC never removes a block reachable from a pin or recorded by a live
//! [`WriteSession`]; see [`gc`] for the locking that makes this hold against concurrent adds.

pub mod gc;
#[cfg(test)]
mod index_pin_tests;
pub mod pin;
mod tiers;

pub use gc::{GcReport, RepoStat, WriteSession};
pub use pin::{PinEntry, PinFilter, PinKind, PinVerifyEntry};
pub use tiers::{PlacementRunner, TierLine, TierMoveReport, INDEX_DIR};

use crate::dag::links::{DagError, MultihashSet};
use cid::Cid;
use ipfs_kit_blockstore::{Blockstore, BlockstoreError, DiskBlockstore, DiskOptions};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Version of the repository layout this build reads and writes.
pub const REPO_VERSION: u32 = 1;
/// Largest `version` file accepted.
pub const VERSION_FILE_BYTES_MAX: u64 = 64;
/// kubo's default `Datastore.StorageMax` (10 GB), reported by `repo stat`.
pub const STORAGE_MAX_BYTES_DEFAULT: u64 = 10_000_000_000;

const VERSION_FILE: &str = "version";
const BLOCKS_DIR: &str = "blocks";
const PINS_FILE: &str = "pins.redb";

/// Errors from opening the repository, pinning, GC and verification.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{0} is not an ipfs-kit repository (no version file); run init")]
    NotARepo(PathBuf),
    #[error("{0} is already a repository")]
    AlreadyExists(PathBuf),
    #[error("repository version {found:?} is not supported (this build uses {expected})")]
    UnsupportedVersion { found: String, expected: u32 },
    #[error("repository at {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] BlockstoreError),
    #[error(transparent)]
    Dag(#[from] DagError),
    #[error("pin database: {0}")]
    Db(#[from] redb::Error),
    #[error("{0} is not pinned")]
    NotPinned(Cid),
    #[error("{cid} is pinned indirectly under {root}")]
    PinnedIndirectly { cid: Cid, root: Box<Cid> },
    #[error("'from' cid {0} was not recursively pinned already")]
    NotPinnedRecursively(Cid),
    #[error("{0} already pinned recursively")]
    AlreadyPinnedRecursively(Cid),
    #[error("pin name of {size_bytes} bytes exceeds the {max_bytes}-byte limit")]
    PinNameTooLong { size_bytes: usize, max_bytes: usize },
    #[error("pin record for {0} is corrupt")]
    CorruptPin(String),
    #[error(transparent)]
    Car(Box<crate::car::CarError>),
    #[error("import: {0}")]
    Import(Box<crate::unixfs::ImportError>),
    #[error("storage tiers: {0}")]
    Tiers(String),
}

impl From<crate::car::CarError> for RepoError {
    fn from(e: crate::car::CarError) -> Self {
        Self::Car(Box::new(e))
    }
}

impl RepoError {
    fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Converts any redb error into [`RepoError::Db`].
pub(crate) fn db<E: Into<redb::Error>>(e: E) -> RepoError {
    RepoError::Db(e.into())
}

/// How a repository is opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RepoOptions {
    /// Sync the block store before every pin commit (and every block write), so that added
    /// data and pins survive power loss, as kubo's flatfs `sync` does. Off by default: blocks
    /// and pins then survive the process being killed (`kill -9`), not the machine losing
    /// power. `ipfs-kit --sync` turns it on.
    pub sync_blocks: bool,
}

/// State shared by a [`Repo`] and its [`WriteSession`]s.
pub(crate) struct RepoInner {
    pub(crate) path: PathBuf,
    pub(crate) sync_blocks: bool,
    pub(crate) store: Arc<dyn Blockstore>,
    pub(crate) pins: redb::Database,
    /// GC holds it for writing across mark and sweep; writers of in-flight blocks and `pin_add`
    /// hold it for reading. See [`gc`].
    pub(crate) gc_lock: RwLock<()>,
    /// Multihashes recorded by each live write session, by session id.
    pub(crate) sessions: Mutex<HashMap<u64, Arc<Mutex<MultihashSet>>>>,
    pub(crate) next_session: AtomicU64,
    /// The tiered store when config.toml configures a tier (under `store`'s cache).
    pub(crate) tiers: Option<Arc<ipfs_kit_tiers::tiered::TieredBlockstore>>,
    /// The store under the cache (`store` itself when there is no cache).
    pub(crate) under_cache: Arc<dyn Blockstore>,
    /// The Arrow index, kept up to date by the cache, the tiers and the pin commands.
    pub(crate) index: Option<Arc<ipfs_kit_tiers::index::Index>>,
    /// Test hook run by GC between mark and sweep, with the GC lock held.
    #[cfg(test)]
    pub(crate) after_mark: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
}

/// An open repository. Cheap to clone; clones share the stores and locks.
#[derive(Clone)]
pub struct Repo {
    pub(crate) inner: Arc<RepoInner>,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Repo {
    /// Creates a repository at `path` (the directory may exist but must not be a repository)
    /// and opens it.
    pub fn init(path: &Path) -> Result<Repo, RepoError> {
        Self::init_with(path, RepoOptions::default())
    }

    /// [`Repo::init`] with options.
    pub fn init_with(path: &Path, options: RepoOptions) -> Result<Repo, RepoError> {
        let version_path = path.join(VERSION_FILE);
        if version_path.exists() {
            return Err(RepoError::AlreadyExists(path.to_path_buf()));
        }
        std::fs::create_dir_all(path.join(BLOCKS_DIR))
            .map_err(|e| RepoError::io(path.join(BLOCKS_DIR), e))?;
        let pins = redb::Database::create(path.join(PINS_FILE)).map_err(db)?;
        pin::create_tables(&pins)?;
        drop(pins);
        crate::config::write_default_if_absent(path).map_err(|e| {
            RepoError::io(crate::config::Config::path(path), std::io::Error::other(e))
        })?;
        // Written last and atomically: its presence marks a complete repository.
        let tmp = path.join("version.tmp");
        write_synced(&tmp, format!("{REPO_VERSION}\n").as_bytes())?;
        std::fs::rename(&tmp, &version_path).map_err(|e| RepoError::io(&version_path, e))?;
        if let Ok(dir) = std::fs::File::open(path) {
            let _ = dir.sync_all();
        }
        tracing::info!(path = %path.display(), "initialized repository");
        Self::open_with(path, options)
    }

    /// Opens an existing repository. A directory that is not one, or one with a missing or
    /// unreadable part, is a typed error.
    pub fn open(path: &Path) -> Result<Repo, RepoError> {
        Self::open_with(path, RepoOptions::default())
    }

    /// [`Repo::open`] with options.
    pub fn open_with(path: &Path, options: RepoOptions) -> Result<Repo, RepoError> {
        check_version(path)?;
        let blocks = path.join(BLOCKS_DIR);
        if !blocks.is_dir() {
            return Err(RepoError::Corrupt {
                path: path.to_path_buf(),
                reason: "blocks/ is missing".into(),
            });
        }
        let pins_path = path.join(PINS_FILE);
        if !pins_path.is_file() {
            return Err(RepoError::Corrupt {
                path: path.to_path_buf(),
                reason: "pins.redb is missing".into(),
            });
        }
        let disk_options = DiskOptions {
            sync_on_put: options.sync_blocks,
            ..DiskOptions::default()
        };
        let store: Arc<dyn Blockstore> =
            Arc::new(DiskBlockstore::open_with(&blocks, disk_options)?);
        let stores = tiers::open_stores(path, store)?;
        let pins = redb::Database::open(&pins_path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                RepoError::Store(BlockstoreError::Locked(pins_path.display().to_string()))
            }
            other => RepoError::Corrupt {
                path: pins_path.clone(),
                reason: other.to_string(),
            },
        })?;
        pin::create_tables(&pins)?;
        let mut repo = Self::from_parts(path, stores.store, pins, options);
        if let Some(inner) = Arc::get_mut(&mut repo.inner) {
            inner.tiers = stores.tiered;
            inner.under_cache = stores.under_cache;
            inner.index = stores.index;
        }
        if stores.index_rebuilt {
            // A fresh index knows no pins yet.
            if let Err(err) = repo.index_all_pins() {
                tracing::warn!(%err, "index: could not record the pins after a rebuild");
            }
        }
        Ok(repo)
    }

    /// A repository whose pins live in `path` and whose blocks live in `store` (an in-memory
    /// store for tests, or a store shared with another component). Creates `path` if needed.
    pub fn with_store(path: &Path, store: Arc<dyn Blockstore>) -> Result<Repo, RepoError> {
        std::fs::create_dir_all(path).map_err(|e| RepoError::io(path, e))?;
        let pins = redb::Database::create(path.join(PINS_FILE)).map_err(db)?;
        pin::create_tables(&pins)?;
        Ok(Self::from_parts(path, store, pins, RepoOptions::default()))
    }

    fn from_parts(
        path: &Path,
        store: Arc<dyn Blockstore>,
        pins: redb::Database,
        options: RepoOptions,
    ) -> Repo {
        Repo {
            inner: Arc::new(RepoInner {
                path: path.to_path_buf(),
                sync_blocks: options.sync_blocks,
                under_cache: store.clone(),
                index: None,
                store,
                pins,
                gc_lock: RwLock::new(()),
                sessions: Mutex::new(HashMap::new()),
                next_session: AtomicU64::new(1),
                tiers: None,
                #[cfg(test)]
                after_mark: Mutex::new(None),
            }),
        }
    }

    /// The block store. Writes that must be protected from a concurrent GC go through a
    /// [`WriteSession`] instead ([`Repo::begin_write`]).
    pub fn blocks(&self) -> &Arc<dyn Blockstore> {
        &self.inner.store
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The tiered store, when config.toml configures a storage tier.
    pub fn tiered(&self) -> Option<&Arc<ipfs_kit_tiers::tiered::TieredBlockstore>> {
        self.inner.tiers.as_ref()
    }

    /// `dag import`: imports a CAR through a write session and, if `pin_roots`, pins every root
    /// recursively (all or none) before the session ends. A failed import pins nothing.
    pub fn import_car(
        &self,
        input: &mut dyn std::io::Read,
        pin_roots: bool,
    ) -> Result<crate::car::CarImport, RepoError> {
        let session = self.begin_write();
        let imported = crate::car::import_car(&session, input)?;
        if pin_roots {
            self.pin_add_many(&imported.roots, true, None)?;
        }
        drop(session);
        Ok(imported)
    }
}

fn write_synced(path: &Path, data: &[u8]) -> Result<(), RepoError> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(|e| RepoError::io(path, e))?;
    f.write_all(data).map_err(|e| RepoError::io(path, e))?;
    f.sync_all().map_err(|e| RepoError::io(path, e))
}

fn check_version(path: &Path) -> Result<(), RepoError> {
    use std::io::Read;
    let vp = path.join(VERSION_FILE);
    let f = match std::fs::File::open(&vp) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(RepoError::NotARepo(path.to_path_buf()))
        }
        Err(e) => return Err(RepoError::io(&vp, e)),
    };
    let mut text = String::new();
    f.take(VERSION_FILE_BYTES_MAX)
        .read_to_string(&mut text)
        .map_err(|_| RepoError::Corrupt {
            path: vp.clone(),
            reason: "version is not text".into(),
        })?;
    match text.trim().parse::<u32>() {
        Ok(REPO_VERSION) => Ok(()),
        Ok(_) => Err(RepoError::UnsupportedVersion {
            found: text.trim().to_string(),
            expected: REPO_VERSION,
        }),
        Err(_) => Err(RepoError::Corrupt {
            path: vp,
            reason: format!("version file holds {:?}", text.trim()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_open_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("repo");
        assert!(matches!(Repo::open(&p), Err(RepoError::NotARepo(_))));
        let repo = Repo::init(&p).unwrap();
        assert_eq!(repo.path(), p);
        assert!(p.join("blocks").is_dir() && p.join("pins.redb").is_file());
        // A second open while the first is alive is refused (locks).
        assert!(Repo::open(&p).is_err());
        drop(repo);
        assert!(matches!(Repo::init(&p), Err(RepoError::AlreadyExists(_))));
        Repo::open(&p).unwrap();

        std::fs::write(p.join("version"), "99\n").unwrap();
        assert!(matches!(
            Repo::open(&p),
            Err(RepoError::UnsupportedVersion { .. })
        ));
        std::fs::write(p.join("version"), "garbage").unwrap();
        assert!(matches!(Repo::open(&p), Err(RepoError::Corrupt { .. })));
        std::fs::write(p.join("version"), "1\n").unwrap();
        std::fs::write(p.join("pins.redb"), b"definitely not a redb file").unwrap();
        assert!(matches!(Repo::open(&p), Err(RepoError::Corrupt { .. })));
        std::fs::remove_file(p.join("pins.redb")).unwrap();
        assert!(matches!(Repo::open(&p), Err(RepoError::Corrupt { .. })));
    }
}

/// A repository over a memory store, for unit tests; the pins live in the returned temp dir.
#[cfg(test)]
pub(crate) fn mem_repo() -> (tempfile::TempDir, Repo) {
    #![allow(clippy::unwrap_used)]
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ipfs_kit_blockstore::MemoryBlockstore::new());
    let repo = Repo::with_store(dir.path(), store).unwrap();
    (dir, repo)
}
