//! State export and import as JSON lines (one pin per line, sorted by CID), so a cluster's
//! pinset can be backed up or moved. Field names follow ipfs-cluster's pin JSON; peers are
//! libp2p peer ids. Import reads at most `EXPORT_LINE_BYTES_MAX` bytes per line and validates
//! every pin before returning any.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};

use cid::Cid;
use serde::{Deserialize, Serialize};

use crate::limits::EXPORT_LINE_BYTES_MAX;
use crate::state::PinSet;
use crate::types::{check_cid, PeerKey, Pin, PinMode, PinSpec, PinSpecError};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: longer than {EXPORT_LINE_BYTES_MAX} bytes")]
    LineTooLong { line: usize },
    #[error("line {line}: {error}")]
    Json { line: usize, error: String },
    #[error("line {line}: {error}")]
    Pin { line: usize, error: PinSpecError },
}

#[derive(Serialize, Deserialize)]
struct Line {
    cid: String,
    #[serde(default)]
    name: String,
    #[serde(default = "recursive")]
    mode: String,
    #[serde(default = "everywhere")]
    replication_factor_min: i32,
    #[serde(default = "everywhere")]
    replication_factor_max: i32,
    #[serde(default)]
    user_allocations: Vec<String>,
    #[serde(default)]
    allocations: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expire_at_ms: Option<u64>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

fn recursive() -> String {
    "recursive".into()
}
fn everywhere() -> i32 {
    -1
}

fn peer_str(p: &PeerKey) -> String {
    p.to_string()
}

fn parse_peer(s: &str) -> Result<PeerKey, String> {
    let id: libp2p_identity::PeerId = s.parse().map_err(|e| format!("peer id {s}: {e}"))?;
    PeerKey::from_peer_id(&id).ok_or_else(|| format!("peer id {s} is not an Ed25519 key"))
}

/// Write the pinset, one JSON object per line, sorted by CID.
pub fn export(set: &PinSet, mut out: impl Write) -> Result<usize, ExportError> {
    let pins = set.sorted();
    for (cid, spec) in &pins {
        let line = Line {
            cid: cid.to_string(),
            name: spec.name.clone(),
            mode: spec.mode.as_str().to_string(),
            replication_factor_min: spec.replication_factor_min,
            replication_factor_max: spec.replication_factor_max,
            user_allocations: spec.user_allocations.iter().map(peer_str).collect(),
            allocations: spec.allocations.iter().map(peer_str).collect(),
            expire_at_ms: spec.expire_at_ms,
            metadata: spec.metadata.clone(),
        };
        let json = serde_json::to_string(&line).map_err(|e| ExportError::Json {
            line: 0,
            error: e.to_string(),
        })?;
        out.write_all(json.as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(pins.len())
}

/// Read pins written by `export` (or by hand); blank lines are skipped.
pub fn import(input: impl BufRead) -> Result<Vec<Pin>, ExportError> {
    let mut pins = Vec::new();
    let mut reader = input;
    let mut n = 0usize;
    loop {
        n += 1;
        let mut buf = Vec::new();
        let read = (&mut reader)
            .take(EXPORT_LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut buf)?;
        if read == 0 {
            break;
        }
        if buf.len() > EXPORT_LINE_BYTES_MAX && !buf.ends_with(b"\n") {
            return Err(ExportError::LineTooLong { line: n });
        }
        let text = String::from_utf8_lossy(&buf);
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let json = |error: String| ExportError::Json { line: n, error };
        let l: Line = serde_json::from_str(text).map_err(|e| json(e.to_string()))?;
        let cid = Cid::try_from(l.cid.as_str()).map_err(|e| json(format!("cid: {e}")))?;
        check_cid(&cid).map_err(|error| ExportError::Pin { line: n, error })?;
        let mode = PinMode::parse(&l.mode).ok_or_else(|| json(format!("mode {}", l.mode)))?;
        let peers = |v: &[String]| {
            v.iter()
                .map(|s| parse_peer(s))
                .collect::<Result<Vec<_>, _>>()
        };
        let spec = PinSpec {
            name: l.name,
            mode,
            replication_factor_min: l.replication_factor_min,
            replication_factor_max: l.replication_factor_max,
            user_allocations: peers(&l.user_allocations).map_err(json)?,
            allocations: peers(&l.allocations).map_err(json)?,
            expire_at_ms: l.expire_at_ms,
            metadata: l.metadata,
        };
        spec.validate()
            .map_err(|error| ExportError::Pin { line: n, error })?;
        pins.push(Pin { cid, spec });
    }
    Ok(pins)
}
