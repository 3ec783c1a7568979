//! The swarm's pre-shared key: a libp2p private network (PSK v1, XSalsa20 under a 32-byte key),
//! as kubo runs one with `$IPFS_PATH/swarm.key` and ipfs-cluster with its `secret`.
//!
//! A node with a key only completes connections with peers holding the same key: the pnet
//! handshake runs on the raw TCP socket before TLS or noise, so a peer with another key (or none)
//! fails at the first byte of multistream-select. QUIC has no pnet layer, so under a key the
//! node runs TCP only (kubo refuses QUIC in private networks for the same reason).
//!
//! The key comes from `<repo>/swarm.key` in kubo's format, else from `cluster.secret` (the
//! cluster's secret doubles as its swarm key, so one `config set cluster.secret` closes the
//! cluster's swarm). When both are present they must agree: two different keys would leave the
//! operator guessing which network the node is on.

use std::path::{Path, PathBuf};

use base64::Engine as _;

/// kubo's swarm key file inside the repository.
pub const SWARM_KEY_FILE: &str = "swarm.key";
/// Longest `swarm.key` read: the header, the encoding line and 64 hex digits take ~90 bytes.
pub const SWARM_KEY_FILE_BYTES_MAX: u64 = 1024;
/// The first line of a swarm key file (libp2p's PSK v1 spec).
pub const SWARM_KEY_HEADER: &str = "/key/swarm/psk/1.0.0/";
/// Bytes in a pre-shared key.
pub const PSK_BYTES: usize = 32;

/// Errors reading the swarm key.
#[derive(Debug, thiserror::Error)]
pub enum PskError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is over {SWARM_KEY_FILE_BYTES_MAX} bytes")]
    TooLarge { path: PathBuf },
    #[error("{path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("{path} and cluster.secret hold different keys: remove one or make them equal")]
    Mismatch { path: PathBuf },
}

/// Parses a swarm key in kubo's format: `/key/swarm/psk/1.0.0/`, then `/base16/` (or
/// `/base64/`), then the 32-byte key so encoded.
pub fn parse_swarm_key(text: &str) -> Result<[u8; PSK_BYTES], String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some(SWARM_KEY_HEADER) {
        return Err(format!("the first line must be {SWARM_KEY_HEADER}"));
    }
    let encoding = lines.next().ok_or("no encoding line (/base16/)")?;
    let body = lines.next().ok_or("no key line")?;
    if lines.next().is_some() {
        return Err("unexpected lines after the key".into());
    }
    let bytes = match encoding {
        "/base16/" => hex::decode(body).map_err(|e| format!("bad hex: {e}"))?,
        "/base64/" => base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| format!("bad base64: {e}"))?,
        other => return Err(format!("unsupported encoding {other:?} (use /base16/)")),
    };
    let n = bytes.len();
    bytes
        .try_into()
        .map_err(|_| format!("the key is {n} bytes, not {PSK_BYTES}"))
}

/// A key in kubo's `swarm.key` format (`/base16/`).
pub fn format_swarm_key(key: &[u8; PSK_BYTES]) -> String {
    format!("{SWARM_KEY_HEADER}\n/base16/\n{}\n", hex::encode(key))
}

/// libp2p's fingerprint of a key (safe to log: it does not reveal the key).
pub fn fingerprint(key: &[u8; PSK_BYTES]) -> String {
    libp2p::pnet::PreSharedKey::new(*key)
        .fingerprint()
        .to_string()
}

/// Reads `<repo>/swarm.key` if present (at most [`SWARM_KEY_FILE_BYTES_MAX`] bytes).
pub fn read_swarm_key(repo: &Path) -> Result<Option<[u8; PSK_BYTES]>, PskError> {
    use std::io::Read as _;
    let path = repo.join(SWARM_KEY_FILE);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(PskError::Io { path, source }),
    };
    let mut bytes = Vec::new();
    file.take(SWARM_KEY_FILE_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| PskError::Io {
            path: path.clone(),
            source,
        })?;
    if bytes.len() as u64 > SWARM_KEY_FILE_BYTES_MAX {
        return Err(PskError::TooLarge { path });
    }
    let text = String::from_utf8(bytes).map_err(|_| PskError::Parse {
        path: path.clone(),
        reason: "not UTF-8".into(),
    })?;
    parse_swarm_key(&text)
        .map(Some)
        .map_err(|reason| PskError::Parse { path, reason })
}

/// The node's swarm key: `<repo>/swarm.key`, else `cluster_secret`; both set must agree.
pub fn swarm_key(
    repo: &Path,
    cluster_secret: Option<[u8; PSK_BYTES]>,
) -> Result<Option<[u8; PSK_BYTES]>, PskError> {
    match (read_swarm_key(repo)?, cluster_secret) {
        (Some(file), Some(secret)) if file != secret => Err(PskError::Mismatch {
            path: repo.join(SWARM_KEY_FILE),
        }),
        (Some(key), _) | (None, Some(key)) => Ok(Some(key)),
        (None, None) => Ok(None),
    }
}

/// Whether a listen or dial address uses a transport that has no pnet layer (QUIC, UDP).
pub fn unprotectable(addr: &libp2p::Multiaddr) -> bool {
    use libp2p::multiaddr::Protocol;
    addr.iter()
        .any(|p| matches!(p, Protocol::Udp(_) | Protocol::Quic | Protocol::QuicV1))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn kubo_format_round_trip_and_errors() {
        let key = [7u8; PSK_BYTES];
        let text = format_swarm_key(&key);
        assert!(text.starts_with("/key/swarm/psk/1.0.0/\n/base16/\n0707"));
        assert_eq!(parse_swarm_key(&text).unwrap(), key);
        let b64 = format!(
            "{SWARM_KEY_HEADER}\n/base64/\n{}\n",
            base64::engine::general_purpose::STANDARD.encode(key)
        );
        assert_eq!(parse_swarm_key(&b64).unwrap(), key);
        assert!(parse_swarm_key("/key/swarm/psk/2.0.0/\n/base16/\n00").is_err());
        assert!(parse_swarm_key(&format!("{SWARM_KEY_HEADER}\n/base16/\nabcd")).is_err());
        assert!(parse_swarm_key(&format!("{SWARM_KEY_HEADER}\n/bin/\nxx")).is_err());
        assert!(parse_swarm_key(&format!("{text}extra\n")).is_err());
    }

    #[test]
    fn file_then_secret_and_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(swarm_key(dir.path(), None).unwrap(), None);
        assert_eq!(swarm_key(dir.path(), Some([1; 32])).unwrap(), Some([1; 32]));
        std::fs::write(dir.path().join(SWARM_KEY_FILE), format_swarm_key(&[2; 32])).unwrap();
        assert_eq!(swarm_key(dir.path(), None).unwrap(), Some([2; 32]));
        assert_eq!(swarm_key(dir.path(), Some([2; 32])).unwrap(), Some([2; 32]));
        assert!(matches!(
            swarm_key(dir.path(), Some([1; 32])),
            Err(PskError::Mismatch { .. })
        ));
        // limit + 1 bytes is refused before parsing.
        let big = "a".repeat(SWARM_KEY_FILE_BYTES_MAX as usize + 1);
        std::fs::write(dir.path().join(SWARM_KEY_FILE), big).unwrap();
        assert!(matches!(
            read_swarm_key(dir.path()),
            Err(PskError::TooLarge { .. })
        ));
        assert!(unprotectable(
            &"/ip4/127.0.0.1/udp/1/quic-v1".parse().unwrap()
        ));
        assert!(!unprotectable(&"/ip4/127.0.0.1/tcp/1".parse().unwrap()));
    }
}
