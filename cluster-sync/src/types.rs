//! The values of the replicated pinset: peers (`PeerKey`, an Ed25519 public key), delta ids, and
//! pins with ipfs-cluster's options, each bounded and validated before it enters a delta.

use std::collections::BTreeMap;
use std::fmt;

use cid::Cid;
use serde::{Deserialize, Serialize};

use crate::limits::*;

macro_rules! byte_array {
    ($name:ident, $len:expr, $what:expr) => {
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "{} bytes ({})", $len, $what)
                    }
                    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<$name, E> {
                        <[u8; $len]>::try_from(v)
                            .map($name)
                            .map_err(|_| E::invalid_length(v.len(), &self))
                    }
                }
                d.deserialize_bytes(V)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({}…)", stringify!($name), hex::encode(&self.0[..6]))
            }
        }
    };
}

byte_array!(PeerKey, 32, "an Ed25519 public key");
byte_array!(DeltaId, 32, "the SHA-256 digest of a delta block");
byte_array!(Signature, 64, "an Ed25519 signature");

impl PeerKey {
    /// The libp2p peer id of this key (None when the bytes are not a valid Ed25519 point).
    pub fn to_peer_id(&self) -> Option<libp2p_identity::PeerId> {
        let pk = libp2p_identity::ed25519::PublicKey::try_from_bytes(&self.0).ok()?;
        Some(libp2p_identity::PublicKey::from(pk).to_peer_id())
    }

    /// The key of a libp2p Ed25519 peer id (its identity multihash holds the public key).
    pub fn from_peer_id(id: &libp2p_identity::PeerId) -> Option<PeerKey> {
        let pk = libp2p_identity::PublicKey::try_decode_protobuf(id.as_ref().digest()).ok()?;
        let ed = pk.try_into_ed25519().ok()?;
        Some(PeerKey(ed.to_bytes()))
    }
}

impl fmt::Display for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_peer_id() {
            Some(id) => write!(f, "{id}"),
            None => write!(f, "invalid-key-{}", hex::encode(self.0)),
        }
    }
}

/// How a pin protects its DAG (ipfs-cluster's `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum PinMode {
    #[default]
    Recursive,
    Direct,
}

impl PinMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            PinMode::Recursive => "recursive",
            PinMode::Direct => "direct",
        }
    }
    pub fn parse(s: &str) -> Option<PinMode> {
        match s {
            "recursive" => Some(PinMode::Recursive),
            "direct" => Some(PinMode::Direct),
            _ => None,
        }
    }
}

impl Serialize for PinMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(match self {
            PinMode::Recursive => 0,
            PinMode::Direct => 1,
        })
    }
}

impl<'de> Deserialize<'de> for PinMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u8::deserialize(d)? {
            0 => Ok(PinMode::Recursive),
            1 => Ok(PinMode::Direct),
            n => Err(serde::de::Error::custom(format!("unknown pin mode {n}"))),
        }
    }
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}
fn is_everywhere(v: &i32) -> bool {
    *v == -1
}
fn everywhere() -> i32 {
    -1
}

/// What a pin says besides its CID: ipfs-cluster's pin options plus the allocator's choice.
/// Encoded in deltas and snapshots with one-letter keys, defaults left out, so a plain pin costs
/// one byte.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinSpec {
    #[serde(rename = "n", default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(rename = "m", default, skip_serializing_if = "is_default")]
    pub mode: PinMode,
    /// -1: every peer (then `allocations` is empty).
    #[serde(
        rename = "r",
        default = "everywhere",
        skip_serializing_if = "is_everywhere"
    )]
    pub replication_factor_min: i32,
    #[serde(
        rename = "x",
        default = "everywhere",
        skip_serializing_if = "is_everywhere"
    )]
    pub replication_factor_max: i32,
    /// Peers the user asked for; the allocator places these first.
    #[serde(rename = "u", default, skip_serializing_if = "Vec::is_empty")]
    pub user_allocations: Vec<PeerKey>,
    /// Peers that must pin it (empty: everyone).
    #[serde(rename = "a", default, skip_serializing_if = "Vec::is_empty")]
    pub allocations: Vec<PeerKey>,
    /// Unix time in milliseconds after which the pin expires.
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub expire_at_ms: Option<u64>,
    #[serde(rename = "d", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl Default for PinSpec {
    fn default() -> Self {
        PinSpec {
            name: String::new(),
            mode: PinMode::Recursive,
            replication_factor_min: -1,
            replication_factor_max: -1,
            user_allocations: Vec::new(),
            allocations: Vec::new(),
            expire_at_ms: None,
            metadata: BTreeMap::new(),
        }
    }
}

/// Why a pin (local or received) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinSpecError {
    #[error("pin name is {0} bytes, more than {PIN_NAME_BYTES_MAX}")]
    NameTooLong(usize),
    #[error("{0} metadata entries, more than {PIN_METADATA_ENTRIES_MAX}")]
    TooManyMetadata(usize),
    #[error("metadata key of {0} bytes, more than {PIN_METADATA_KEY_BYTES_MAX}")]
    MetadataKeyTooLong(usize),
    #[error("metadata value of {0} bytes, more than {PIN_METADATA_VALUE_BYTES_MAX}")]
    MetadataValueTooLong(usize),
    #[error("{0} allocations, more than {PIN_ALLOCATIONS_MAX}")]
    TooManyAllocations(usize),
    #[error("replication factors min {min} max {max}: need -1/-1 or 1 <= min <= max <= {PIN_ALLOCATIONS_MAX}")]
    ReplicationFactor { min: i32, max: i32 },
    #[error("CID of {0} bytes, more than {CID_BYTES_MAX}")]
    CidTooLong(usize),
}

impl PinSpec {
    pub fn validate(&self) -> Result<(), PinSpecError> {
        if self.name.len() > PIN_NAME_BYTES_MAX {
            return Err(PinSpecError::NameTooLong(self.name.len()));
        }
        if self.metadata.len() > PIN_METADATA_ENTRIES_MAX {
            return Err(PinSpecError::TooManyMetadata(self.metadata.len()));
        }
        for (k, v) in &self.metadata {
            if k.len() > PIN_METADATA_KEY_BYTES_MAX {
                return Err(PinSpecError::MetadataKeyTooLong(k.len()));
            }
            if v.len() > PIN_METADATA_VALUE_BYTES_MAX {
                return Err(PinSpecError::MetadataValueTooLong(v.len()));
            }
        }
        for list in [&self.allocations, &self.user_allocations] {
            if list.len() > PIN_ALLOCATIONS_MAX {
                return Err(PinSpecError::TooManyAllocations(list.len()));
            }
        }
        let (min, max) = (self.replication_factor_min, self.replication_factor_max);
        let everywhere = min == -1 && max == -1;
        let bounded = 1 <= min && min <= max && max as usize <= PIN_ALLOCATIONS_MAX;
        let min_only = 1 <= min && max == -1 && min as usize <= PIN_ALLOCATIONS_MAX;
        if !(everywhere || bounded || min_only) {
            return Err(PinSpecError::ReplicationFactor { min, max });
        }
        Ok(())
    }

    /// True when the pin's expiry has passed at `now_ms` (expired pins are not tracked).
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expire_at_ms.is_some_and(|t| t <= now_ms)
    }

    /// Whether `peer` must pin this: everyone when the allocations are empty.
    pub fn allocated_to(&self, peer: &PeerKey) -> bool {
        self.allocations.is_empty() || self.allocations.contains(peer)
    }
}

/// A pin as the pinset holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    pub cid: Cid,
    pub spec: PinSpec,
}

pub(crate) fn check_cid(cid: &Cid) -> Result<(), PinSpecError> {
    let n = cid.encoded_len();
    if n > CID_BYTES_MAX {
        return Err(PinSpecError::CidTooLong(n));
    }
    Ok(())
}

/// An Ed25519 keypair from its 32 secret bytes (any 32 bytes are a valid secret).
pub fn keypair_from_secret(
    mut secret: [u8; 32],
) -> Result<libp2p_identity::ed25519::Keypair, libp2p_identity::DecodingError> {
    libp2p_identity::ed25519::SecretKey::try_from_bytes(&mut secret)
        .map(libp2p_identity::ed25519::Keypair::from)
}
