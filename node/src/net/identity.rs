//! The node's persistent identity: one Ed25519 keypair in the repository.
//!
//! Stored at `<repo>/identity.key` as libp2p's protobuf keypair encoding
//! (`Keypair::to_protobuf_encoding`), file mode 0600, created on first use. A file that does not
//! decode is a typed error, never silently replaced: replacing it would change the peer ID.

use libp2p::identity::{Keypair, PeerId};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::repo::Repo;

/// The file name of the keypair inside the repository directory.
pub const IDENTITY_FILE_NAME: &str = "identity.key";

/// Largest identity file accepted. An Ed25519 keypair encodes to 68 bytes; anything far larger
/// is not a key file and is not read into memory.
pub const IDENTITY_FILE_BYTES_MAX: u64 = 4096;

/// Errors loading or creating the identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("reading identity {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing identity {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("identity {path} is {size} bytes, more than {max}", max = IDENTITY_FILE_BYTES_MAX)]
    TooLarge { path: PathBuf, size: u64 },
    #[error("identity {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("identity {path} holds a {kind} key; only Ed25519 is supported")]
    UnsupportedKeyType { path: PathBuf, kind: String },
}

/// The keypair file of the repository `repo`.
pub fn identity_path(repo_dir: &Path) -> PathBuf {
    repo_dir.join(IDENTITY_FILE_NAME)
}

/// Loads the repository's keypair, creating and persisting a fresh Ed25519 one on first use.
pub fn load_or_create(repo: &Repo) -> Result<Keypair, IdentityError> {
    load_or_create_in(repo.path())
}

/// [`load_or_create`] for a repository directory that is not opened (the directory must exist).
pub fn load_or_create_in(repo_dir: &Path) -> Result<Keypair, IdentityError> {
    let path = identity_path(repo_dir);
    match load(&path)? {
        Some(k) => Ok(k),
        None => create(&path),
    }
}

/// Reads the keypair at `path`; `Ok(None)` when the file does not exist.
pub fn load(path: &Path) -> Result<Option<Keypair>, IdentityError> {
    let read_err = |source| IdentityError::Read {
        path: path.to_owned(),
        source,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    if meta.len() > IDENTITY_FILE_BYTES_MAX {
        return Err(IdentityError::TooLarge {
            path: path.to_owned(),
            size: meta.len(),
        });
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    let keypair = Keypair::from_protobuf_encoding(&bytes).map_err(|e| IdentityError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    if keypair.clone().try_into_ed25519().is_err() {
        return Err(IdentityError::UnsupportedKeyType {
            path: path.to_owned(),
            kind: format!("{:?}", keypair.key_type()),
        });
    }
    Ok(Some(keypair))
}

/// Generates an Ed25519 keypair and writes it to `path` (mode 0600) atomically: a temporary
/// file, fsync, then `rename`, so a crash never leaves a half-written key. Fails if another
/// process created the file first rather than overwriting its key.
fn create(path: &Path) -> Result<Keypair, IdentityError> {
    let write_err = |source| IdentityError::Write {
        path: path.to_owned(),
        source,
    };
    let keypair = Keypair::generate_ed25519();
    let bytes = keypair
        .to_protobuf_encoding()
        .map_err(|e| IdentityError::Corrupt {
            path: path.to_owned(),
            reason: format!("encoding a fresh key: {e}"),
        })?;
    let tmp = path.with_extension(format!("key.tmp.{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let write = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        // `link` fails if the target exists: two processes racing to create keep one key.
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    match write {
        Ok(()) => {
            tracing::info!(peer_id = %PeerId::from(keypair.public()), path = %path.display(), "created identity");
            Ok(keypair)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            load(path)?.ok_or_else(|| write_err(e))
        }
        Err(e) => Err(write_err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_stable_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_in(dir.path()).unwrap();
        let b = load_or_create_in(dir.path()).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        assert!(a.clone().try_into_ed25519().is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(identity_path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // No temporary file left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn corrupt_file_is_a_typed_error_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = identity_path(dir.path());
        std::fs::write(&path, b"not a key").unwrap();
        let err = load_or_create_in(dir.path()).unwrap_err();
        assert!(matches!(err, IdentityError::Corrupt { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"not a key");
    }

    #[test]
    fn oversize_file_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = identity_path(dir.path());
        std::fs::write(&path, vec![0u8; IDENTITY_FILE_BYTES_MAX as usize + 1]).unwrap();
        let err = load_or_create_in(dir.path()).unwrap_err();
        assert!(matches!(err, IdentityError::TooLarge { .. }), "{err}");
    }
}
