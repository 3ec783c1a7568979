//! The index as a [`TierObserver`]: the tiers report where each block lives and the index keeps
//! it in the `tiers` bitmask (and `replication`, the number of tiers holding the block).
//!
//! A report about a block the index does not list is ignored: rows are created by puts (the
//! index lists stored blocks only). Errors are logged, never returned: placement works without
//! its index, which the next open reconciles.

use super::Index;
use crate::tier::{TierKind, TierObserver};
use cid::Cid;

impl TierObserver for Index {
    fn on_stored(&self, cid: &Cid, tier: TierKind) {
        if let Err(err) = self.record_tier(cid, tier.as_str(), true) {
            tracing::warn!(%cid, tier = tier.as_str(), %err, "index: could not record a stored copy");
        }
    }

    fn on_removed(&self, cid: &Cid, tier: TierKind) {
        if let Err(err) = self.record_tier(cid, tier.as_str(), false) {
            tracing::warn!(%cid, tier = tier.as_str(), %err, "index: could not record a removed copy");
        }
    }
}
