//! Slot for the Filecoin (storage deals through a deal-making service) tier.
//!
//! Not implemented yet (its own issue). Every call fails with [`TierError::Unsupported`], which
//! is not retryable, so a placement that targets this tier stops there instead of pretending the
//! data was stored.

use bytes::Bytes;
use cid::Cid;

use super::{CancellationToken, Tier, TierError, TierKind};

/// The Filecoin tier slot: configured or not, it stores nothing and says so.
#[derive(Clone, Copy, Debug, Default)]
pub struct FilecoinTier;

impl FilecoinTier {
    fn unsupported(what: &'static str) -> TierError {
        TierError::Unsupported {
            tier: TierKind::Filecoin,
            what,
        }
    }
}

#[async_trait::async_trait]
impl Tier for FilecoinTier {
    fn kind(&self) -> TierKind {
        TierKind::Filecoin
    }
    async fn put(
        &self,
        _cid: &Cid,
        _data: Bytes,
        _cancel: &CancellationToken,
    ) -> Result<(), TierError> {
        Err(Self::unsupported("put"))
    }
    async fn get(
        &self,
        _cid: &Cid,
        _cancel: &CancellationToken,
    ) -> Result<Option<Bytes>, TierError> {
        Err(Self::unsupported("get"))
    }
    async fn has(&self, _cid: &Cid, _cancel: &CancellationToken) -> Result<bool, TierError> {
        Err(Self::unsupported("has"))
    }
    async fn delete(&self, _cid: &Cid, _cancel: &CancellationToken) -> Result<bool, TierError> {
        Err(Self::unsupported("delete"))
    }
    async fn list(&self, _cancel: &CancellationToken) -> Result<Vec<Cid>, TierError> {
        Err(Self::unsupported("list"))
    }
}
