//! What cluster peers send each other besides deltas: the gossip topics, the metric message and
//! the status request/response of the `/ipfs-kit/cluster/status/1.0.0` protocol.
//!
//! - heads: the cluster-sync `Announcement` (dag-cbor, at most `BROADCAST_BYTES_MAX`), on
//!   [`HEADS_TOPIC`]; its author is the gossipsub message's signed `source`.
//! - metrics: [`MetricMsg`] (dag-cbor, at most [`METRIC_BYTES_MAX`]) on [`METRICS_TOPIC`]; the
//!   receiver turns `ttl_ms` into an expiry on its own clock, so clocks need not agree.
//! - status: a peer asks another for its tracker states ([`StatusRequest`]); the answer
//!   ([`StatusResponse`]) is bounded by [`STATUS_RESPONSE_BYTES_MAX`] (entries beyond
//!   [`STATUS_ENTRIES_MAX`] are cut and `truncated` is set).
//!
//! Every decoder checks the size first and returns a typed [`WireError`].

use std::collections::BTreeMap;

use cid::Cid;
use serde::{Deserialize, Serialize};

use ipfs_kit_cluster_sync::allocator::{METRIC_TAGS_MAX, METRIC_TAG_BYTES_MAX};
use ipfs_kit_cluster_sync::limits::CID_BYTES_MAX;
use ipfs_kit_cluster_sync::tracker::PinState;

/// The gossipsub topic of head announcements.
pub const HEADS_TOPIC: &str = "/ipfs-kit/cluster/1/heads";
/// The gossipsub topic of metrics.
pub const METRICS_TOPIC: &str = "/ipfs-kit/cluster/1/metrics";
/// The request-response protocol of status queries.
pub const STATUS_PROTOCOL: &str = "/ipfs-kit/cluster/status/1.0.0";

/// An encoded metric message (16 tags of 2 x 128 bytes fit in ~4.5 KiB).
pub const METRIC_BYTES_MAX: usize = 8 * 1024;
/// A metric's TTL is clamped to this (a peer cannot claim to be alive for a day).
pub const METRIC_TTL_MS_MAX: u64 = 10 * 60 * 1000;
/// CIDs asked for in one status request.
pub const STATUS_REQUEST_CIDS_MAX: usize = 1024;
/// An encoded status request (1,024 CIDs of at most 168 bytes, plus framing).
pub const STATUS_REQUEST_BYTES_MAX: usize = 256 * 1024;
/// Entries in one status response.
pub const STATUS_ENTRIES_MAX: usize = 20_000;
/// An encoded status response.
pub const STATUS_RESPONSE_BYTES_MAX: usize = 4 * 1024 * 1024;
/// A status entry's error text is cut to this.
pub const STATUS_ERROR_BYTES_MAX: usize = 512;

/// Why a message from a peer is refused.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{what} of {len} bytes, more than {max}")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{what}: {count} entries, more than {max}")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
    #[error("dag-cbor: {0}")]
    Cbor(String),
    #[error("bad CID: {0}")]
    Cid(String),
    #[error("unknown pin state {0}")]
    State(u8),
}

/// What a cluster peer broadcasts about itself every metric interval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricMsg {
    /// Bytes the peer can still store.
    #[serde(rename = "f")]
    pub free_bytes: u64,
    /// How long the metric is valid after it is received.
    #[serde(rename = "t")]
    pub ttl_ms: u64,
    #[serde(rename = "g", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl MetricMsg {
    pub fn encode(&self) -> Vec<u8> {
        // Serializing a plain struct into a Vec cannot fail.
        serde_ipld_dagcbor::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<MetricMsg, WireError> {
        if bytes.len() > METRIC_BYTES_MAX {
            return Err(WireError::TooLarge {
                what: "metric",
                len: bytes.len(),
                max: METRIC_BYTES_MAX,
            });
        }
        let mut m: MetricMsg =
            serde_ipld_dagcbor::from_slice(bytes).map_err(|e| WireError::Cbor(e.to_string()))?;
        if m.tags.len() > METRIC_TAGS_MAX {
            return Err(WireError::TooMany {
                what: "metric tags",
                count: m.tags.len(),
                max: METRIC_TAGS_MAX,
            });
        }
        if let Some(n) = m
            .tags
            .iter()
            .map(|(k, v)| k.len().max(v.len()))
            .find(|n| *n > METRIC_TAG_BYTES_MAX)
        {
            return Err(WireError::TooLarge {
                what: "metric tag",
                len: n,
                max: METRIC_TAG_BYTES_MAX,
            });
        }
        m.ttl_ms = m.ttl_ms.min(METRIC_TTL_MS_MAX);
        Ok(m)
    }
}

/// Asks a peer for its tracker states: of these CIDs, or of every CID it tracks (`None`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRequest {
    /// CIDs in binary form.
    pub cids: Option<Vec<Vec<u8>>>,
    /// Retry the failed pins/unpins among them first (`recover`).
    #[serde(default)]
    pub recover: bool,
}

/// One tracker state on the answering peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEntry {
    pub cid: Vec<u8>,
    /// [`state_code`]; 255: not tracked (unpinned).
    pub state: u8,
    pub attempts: u32,
    pub error: Option<String>,
}

/// The answer to a [`StatusRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// The answering peer's clock (unix ms) when it read the states.
    pub ts_ms: u64,
    pub entries: Vec<StatusEntry>,
    /// More entries than [`STATUS_ENTRIES_MAX`] existed.
    pub truncated: bool,
}

/// The code of "not tracked here".
pub const STATE_UNTRACKED: u8 = 255;

/// A tracker state's wire code.
pub fn state_code(s: PinState) -> u8 {
    match s {
        PinState::Queued => 0,
        PinState::Pinning => 1,
        PinState::Pinned => 2,
        PinState::PinError => 3,
        PinState::UnpinQueued => 4,
        PinState::Unpinning => 5,
        PinState::UnpinError => 6,
        PinState::Remote => 7,
    }
}

/// The state of a wire code (`None`: untracked).
pub fn state_of(code: u8) -> Result<Option<PinState>, WireError> {
    Ok(Some(match code {
        0 => PinState::Queued,
        1 => PinState::Pinning,
        2 => PinState::Pinned,
        3 => PinState::PinError,
        4 => PinState::UnpinQueued,
        5 => PinState::Unpinning,
        6 => PinState::UnpinError,
        7 => PinState::Remote,
        STATE_UNTRACKED => return Ok(None),
        n => return Err(WireError::State(n)),
    }))
}

/// A CID from a peer's bytes, bounded by `CID_BYTES_MAX`.
pub fn cid_from_wire(b: &[u8]) -> Result<Cid, WireError> {
    if b.len() > CID_BYTES_MAX {
        return Err(WireError::TooLarge {
            what: "CID",
            len: b.len(),
            max: CID_BYTES_MAX,
        });
    }
    Cid::try_from(b).map_err(|e| WireError::Cid(e.to_string()))
}

impl StatusRequest {
    /// Bounds of a request from a peer (the codec bounds its bytes).
    pub fn check(&self) -> Result<(), WireError> {
        if let Some(c) = &self.cids {
            if c.len() > STATUS_REQUEST_CIDS_MAX {
                return Err(WireError::TooMany {
                    what: "status request CIDs",
                    count: c.len(),
                    max: STATUS_REQUEST_CIDS_MAX,
                });
            }
        }
        Ok(())
    }
}

impl StatusResponse {
    pub fn check(&self) -> Result<(), WireError> {
        if self.entries.len() > STATUS_ENTRIES_MAX {
            return Err(WireError::TooMany {
                what: "status entries",
                count: self.entries.len(),
                max: STATUS_ENTRIES_MAX,
            });
        }
        Ok(())
    }
}

/// The status protocol's behaviour: CBOR request-response with the sizes above.
pub type StatusBehaviour = libp2p::request_response::cbor::Behaviour<StatusRequest, StatusResponse>;

/// A status behaviour with this module's bounds and a request timeout.
pub fn status_behaviour(timeout: std::time::Duration) -> StatusBehaviour {
    let codec = libp2p::request_response::cbor::codec::Codec::default()
        .set_request_size_maximum(STATUS_REQUEST_BYTES_MAX as u64)
        .set_response_size_maximum(STATUS_RESPONSE_BYTES_MAX as u64);
    libp2p::request_response::Behaviour::with_codec(
        codec,
        [(
            libp2p::StreamProtocol::new(STATUS_PROTOCOL),
            libp2p::request_response::ProtocolSupport::Full,
        )],
        libp2p::request_response::Config::default().with_request_timeout(timeout),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn metric_round_trips_and_bounds_hold() {
        let m = MetricMsg {
            free_bytes: 42,
            ttl_ms: 1_000,
            tags: [("group".to_string(), "a".to_string())].into(),
        };
        assert_eq!(MetricMsg::decode(&m.encode()).unwrap(), m);
        // limit + 1 bytes refused before decoding.
        let big = vec![0u8; METRIC_BYTES_MAX + 1];
        assert!(matches!(
            MetricMsg::decode(&big),
            Err(WireError::TooLarge { .. })
        ));
        // METRIC_TAGS_MAX + 1 tags refused.
        let many = MetricMsg {
            tags: (0..=METRIC_TAGS_MAX)
                .map(|i| (format!("k{i}"), String::new()))
                .collect(),
            ..m.clone()
        };
        assert!(matches!(
            MetricMsg::decode(&many.encode()),
            Err(WireError::TooMany { .. })
        ));
        let long = MetricMsg {
            tags: [("k".to_string(), "v".repeat(METRIC_TAG_BYTES_MAX + 1))].into(),
            ..m.clone()
        };
        assert!(matches!(
            MetricMsg::decode(&long.encode()),
            Err(WireError::TooLarge { .. })
        ));
        // A TTL beyond the cap is clamped.
        let forever = MetricMsg {
            ttl_ms: u64::MAX,
            ..m
        };
        assert_eq!(
            MetricMsg::decode(&forever.encode()).unwrap().ttl_ms,
            METRIC_TTL_MS_MAX
        );
    }

    #[test]
    fn status_bounds_and_codes() {
        let req = StatusRequest {
            cids: Some(vec![Vec::new(); STATUS_REQUEST_CIDS_MAX + 1]),
            recover: false,
        };
        assert!(req.check().is_err());
        let resp = StatusResponse {
            ts_ms: 0,
            entries: vec![
                StatusEntry {
                    cid: Vec::new(),
                    state: 0,
                    attempts: 0,
                    error: None
                };
                STATUS_ENTRIES_MAX + 1
            ],
            truncated: false,
        };
        assert!(resp.check().is_err());
        for s in [
            PinState::Queued,
            PinState::Pinning,
            PinState::Pinned,
            PinState::PinError,
            PinState::UnpinQueued,
            PinState::Unpinning,
            PinState::UnpinError,
            PinState::Remote,
        ] {
            assert_eq!(state_of(state_code(s)).unwrap(), Some(s));
        }
        assert_eq!(state_of(STATE_UNTRACKED).unwrap(), None);
        assert!(state_of(99).is_err());
        assert!(cid_from_wire(&[1u8; CID_BYTES_MAX + 1]).is_err());
    }
}
