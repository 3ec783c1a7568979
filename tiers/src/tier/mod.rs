//! Storage tiers: one async trait, one file per backend.
//!
//! A [`Tier`] stores blocks by CID somewhere other than (or in addition to) the local blockstore:
//! the local store itself ([`local::LocalTier`]), an S3 bucket ([`s3::S3Tier`]), and the slots of
//! Storacha and Filecoin, which answer [`TierError::Unsupported`] until their own issue lands.
//! [`faulty::FaultyTier`] wraps any tier and injects failures for tests.
//!
//! Shape borrowed from neon's `remote_storage`: every call takes a [`CancellationToken`], and
//! every error says whether a retry can help ([`TierError::is_retryable`]); [`retry`] applies a
//! bounded exponential backoff to the retryable ones.
//!
//! Contract, for every implementation:
//! - `get` returns only bytes that hash to the CID (a mismatch is [`TierError::Corrupt`]);
//! - `put` of a block over [`BLOCK_SIZE_BYTES_MAX`] is refused;
//! - a `put` that returned `Ok` is durable in that tier (a later `has` answers true);
//! - identity CIDs are never stored.
//!
//! [`TierObserver`] is how the rest of the system (the Arrow index) learns where each block lives.

pub mod faulty;
pub mod filecoin;
pub mod local;
pub mod s3;
pub mod storacha;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use cid::Cid;
pub use tokio_util::sync::CancellationToken;

use ipfs_kit_blockstore::limits::BLOCK_SIZE_BYTES_MAX;
use ipfs_kit_blockstore::BlockstoreError;

/// The kinds of tier, in the design's eviction order: data moves from a kind to the next one as
/// it cools (memory cache → local store → cluster peers → S3 → Storacha → Filecoin).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TierKind {
    Memory,
    Local,
    Cluster,
    S3,
    Storacha,
    Filecoin,
}

impl TierKind {
    /// Every kind, in eviction order (hottest first).
    pub const EVICTION_ORDER: [TierKind; 6] = [
        TierKind::Memory,
        TierKind::Local,
        TierKind::Cluster,
        TierKind::S3,
        TierKind::Storacha,
        TierKind::Filecoin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TierKind::Memory => "memory",
            TierKind::Local => "local",
            TierKind::Cluster => "cluster",
            TierKind::S3 => "s3",
            TierKind::Storacha => "storacha",
            TierKind::Filecoin => "filecoin",
        }
    }

    /// The next colder kind, if any.
    pub fn colder(self) -> Option<TierKind> {
        let i = Self::EVICTION_ORDER.iter().position(|k| *k == self)?;
        Self::EVICTION_ORDER.get(i + 1).copied()
    }
}

impl fmt::Display for TierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TierKind {
    type Err = TierError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::EVICTION_ORDER
            .iter()
            .copied()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| TierError::UnknownTier(s.to_string()))
    }
}

/// Errors of every tier operation.
#[derive(Debug, thiserror::Error)]
pub enum TierError {
    /// The call was cancelled through its token.
    #[error("cancelled")]
    Cancelled,
    /// The backend could not be reached or answered with a transient failure (timeout,
    /// connection refused, 5xx, throttling). A retry may help.
    #[error("{tier} tier unavailable: {reason}")]
    Unavailable { tier: TierKind, reason: String },
    /// The backend refused the request for a reason a retry will not change (access denied,
    /// no such bucket, bad request).
    #[error("{tier} tier refused the request: {reason}")]
    Permanent { tier: TierKind, reason: String },
    /// The bytes read back do not hash to the CID.
    #[error("{tier} tier returned corrupt data for {cid}")]
    Corrupt { tier: TierKind, cid: Cid },
    /// A block over the size limit was given or announced.
    #[error("block of {size_bytes} bytes exceeds the {max_bytes}-byte block limit")]
    BlockTooLarge { size_bytes: u64, max_bytes: usize },
    /// The tier is a slot whose backend is not implemented yet.
    #[error("the {tier} tier is not supported yet: {what}")]
    Unsupported { tier: TierKind, what: &'static str },
    /// A tier name that is not one of [`TierKind`]'s.
    #[error("unknown tier {0:?}")]
    UnknownTier(String),
    /// The target tier took a write but does not show the block afterwards; the source copy
    /// is kept.
    #[error("the {tier} tier did not confirm {cid} after storing it")]
    NotAcknowledged { tier: TierKind, cid: Cid },
    /// The tier is not configured in this repository.
    #[error("the {0} tier is not configured")]
    NotConfigured(TierKind),
    /// The local blockstore failed.
    #[error(transparent)]
    Local(#[from] BlockstoreError),
}

impl TierError {
    /// Whether retrying the same call may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, TierError::Unavailable { .. })
    }
}

/// A place blocks can be stored. All methods are cancel-safe: dropping the future or cancelling
/// the token leaves the tier consistent (a `put` either happened or did not).
#[async_trait::async_trait]
pub trait Tier: Send + Sync {
    /// Which kind of tier this is.
    fn kind(&self) -> TierKind;

    /// Stores a block. `data` must hash to `cid` (callers hold verified blocks); storing a block
    /// already present is cheap or idempotent.
    async fn put(
        &self,
        cid: &Cid,
        data: Bytes,
        cancel: &CancellationToken,
    ) -> Result<(), TierError>;

    /// The block's bytes, verified against `cid`; `None` if absent.
    async fn get(&self, cid: &Cid, cancel: &CancellationToken) -> Result<Option<Bytes>, TierError>;

    /// Whether the tier holds the block.
    async fn has(&self, cid: &Cid, cancel: &CancellationToken) -> Result<bool, TierError>;

    /// Removes the block; returns whether it was present (tiers that cannot tell answer true).
    async fn delete(&self, cid: &Cid, cancel: &CancellationToken) -> Result<bool, TierError>;

    /// Every block the tier holds, as CIDs the tier can answer `get` for.
    async fn list(&self, cancel: &CancellationToken) -> Result<Vec<Cid>, TierError>;
}

/// Learns where blocks live. The Arrow index implements it ("tiers holding it" column); the
/// tiered blockstore and the mover call it after a tier acknowledged a store or a removal.
/// Called on the caller's thread: implementations must be quick and must not block on I/O.
pub trait TierObserver: Send + Sync {
    /// `cid` is now held by `tier` (the tier acknowledged the write, or the block was found there).
    fn on_stored(&self, cid: &Cid, tier: TierKind);
    /// `cid` is no longer held by `tier`.
    fn on_removed(&self, cid: &Cid, tier: TierKind);
}

/// An observer that records nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopObserver;

impl TierObserver for NoopObserver {
    fn on_stored(&self, _cid: &Cid, _tier: TierKind) {}
    fn on_removed(&self, _cid: &Cid, _tier: TierKind) {}
}

/// Refuses a block over [`BLOCK_SIZE_BYTES_MAX`].
pub fn check_block_size(size_bytes: u64) -> Result<(), TierError> {
    if size_bytes > BLOCK_SIZE_BYTES_MAX as u64 {
        return Err(TierError::BlockTooLarge {
            size_bytes,
            max_bytes: BLOCK_SIZE_BYTES_MAX,
        });
    }
    Ok(())
}

/// Checks bytes read back from `tier` against `cid`.
pub fn verify_block(tier: TierKind, cid: &Cid, data: &[u8]) -> Result<(), TierError> {
    check_block_size(data.len() as u64)?;
    match ipfs_kit_blockstore::hash::verify(cid, data) {
        Ok(()) => Ok(()),
        Err(BlockstoreError::Corrupt(_)) => Err(TierError::Corrupt { tier, cid: *cid }),
        Err(e) => Err(TierError::Local(e)),
    }
}

/// How [`retry`] backs off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (>= 1).
    pub attempts_max: u32,
    /// Wait before the second attempt; doubled each time, capped at `backoff_ms_max`.
    pub backoff_ms_initial: u64,
    pub backoff_ms_max: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts_max: 5,
            backoff_ms_initial: 50,
            backoff_ms_max: 2_000,
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(20);
        let ms = self
            .backoff_ms_initial
            .saturating_mul(1u64 << shift)
            .min(self.backoff_ms_max);
        Duration::from_millis(ms)
    }
}

/// Runs `op` until it succeeds, fails with an error that is not retryable, runs out of
/// attempts, or `cancel` fires (then [`TierError::Cancelled`]).
pub async fn retry<T, F, Fut>(
    policy: RetryPolicy,
    cancel: &CancellationToken,
    mut op: F,
) -> Result<T, TierError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, TierError>>,
{
    let attempts_max = policy.attempts_max.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        if cancel.is_cancelled() {
            return Err(TierError::Cancelled);
        }
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_retryable() && attempt < attempts_max => {
                let wait = policy.backoff(attempt);
                tracing::debug!(attempt, ?wait, error = %e, "tier call failed; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return Err(TierError::Cancelled),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Runs `fut` unless `cancel` fires first.
pub async fn cancellable<T>(
    cancel: &CancellationToken,
    fut: impl Future<Output = Result<T, TierError>>,
) -> Result<T, TierError> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(TierError::Cancelled),
        r = fut => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_order_and_names_round_trip() {
        assert_eq!(TierKind::Memory.colder(), Some(TierKind::Local));
        assert_eq!(TierKind::Cluster.colder(), Some(TierKind::S3));
        assert_eq!(TierKind::Storacha.colder(), Some(TierKind::Filecoin));
        assert_eq!(TierKind::Filecoin.colder(), None);
        for k in TierKind::EVICTION_ORDER {
            assert_eq!(k.as_str().parse::<TierKind>().ok(), Some(k));
        }
        assert!(matches!(
            "tape".parse::<TierKind>(),
            Err(TierError::UnknownTier(_))
        ));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            attempts_max: 10,
            backoff_ms_initial: 10,
            backoff_ms_max: 50,
        };
        assert_eq!(p.backoff(1), Duration::from_millis(10));
        assert_eq!(p.backoff(2), Duration::from_millis(20));
        assert_eq!(p.backoff(3), Duration::from_millis(40));
        assert_eq!(p.backoff(4), Duration::from_millis(50));
        assert_eq!(p.backoff(99), Duration::from_millis(50));
    }

    #[test]
    fn only_unavailable_is_retryable() {
        let tier = TierKind::S3;
        assert!(TierError::Unavailable {
            tier,
            reason: "x".into()
        }
        .is_retryable());
        assert!(!TierError::Permanent {
            tier,
            reason: "x".into()
        }
        .is_retryable());
        assert!(!TierError::Cancelled.is_retryable());
        assert!(!TierError::Unsupported { tier, what: "x" }.is_retryable());
    }

    #[test]
    fn block_size_limit_plus_one_is_refused() {
        assert!(check_block_size(BLOCK_SIZE_BYTES_MAX as u64).is_ok());
        assert!(matches!(
            check_block_size(BLOCK_SIZE_BYTES_MAX as u64 + 1),
            Err(TierError::BlockTooLarge { .. })
        ));
    }
}
