use cid::Cid;

/// A block whose bytes do not hash to its CID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("block {cid} is corrupt: its bytes do not hash to its CID")]
pub struct CorruptBlock {
    pub cid: Cid,
}

#[derive(Debug, thiserror::Error)]
pub enum BlockstoreError {
    #[error(transparent)]
    Corrupt(#[from] CorruptBlock),
    #[error("block of {size_bytes} bytes exceeds the {max_bytes}-byte block limit")]
    BlockTooLarge { size_bytes: usize, max_bytes: usize },
    #[error("unsupported multihash code 0x{code:x}")]
    UnsupportedHash { code: u64 },
    #[error("identity CID digest of {size_bytes} bytes exceeds the {max_bytes}-byte limit")]
    IdentityTooLarge { size_bytes: usize, max_bytes: usize },
    #[error("repository is corrupt: {0}")]
    CorruptRepo(String),
    #[error("repository is locked by another process ({0})")]
    Locked(String),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("storage engine error: {0}")]
    Engine(String),
    /// A store that gets missing blocks from elsewhere (the network, a remote tier) could not
    /// get this one: it is not known to be absent, only not retrieved (a gateway answers 502
    /// or 504, not 404).
    #[error("block {cid} could not be retrieved: {reason}")]
    Unavailable { cid: Cid, reason: String },
}

impl BlockstoreError {
    pub fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
