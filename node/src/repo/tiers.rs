//! Opening the storage tiers that `config.toml` configures (`[tiers.s3]`).
//!
//! With a tier configured, the repository's block store is a
//! [`TieredBlockstore`]: the local pack store first, the tier on a miss (blocks read back are
//! hash-verified and promoted), and `ipfs-kit tier move` to demote or promote whole DAGs. The
//! S3 client lives on the tiered store's own runtime ([`TierRuntime`]), so opening works from
//! synchronous code and from inside the daemon's runtime alike.

use std::path::Path;
use std::sync::Arc;

use ipfs_kit_blockstore::Blockstore;
use ipfs_kit_tiers::tier::s3::S3Tier;
use ipfs_kit_tiers::tier::Tier;
use ipfs_kit_tiers::tiered::{TierRuntime, TieredBlockstore};

use super::RepoError;

/// The tiered store over `local` when config.toml configures a tier, else `None`.
pub(crate) fn open_tiered(
    path: &Path,
    local: Arc<dyn Blockstore>,
) -> Result<Option<Arc<TieredBlockstore>>, RepoError> {
    let config = crate::config::Config::load_with_env(path)
        .map_err(|e| RepoError::Tiers(format!("reading config.toml: {e}")))?;
    let Some(s3) = config.tiers.s3 else {
        return Ok(None);
    };
    let runtime = Arc::new(TierRuntime::new().map_err(|e| RepoError::Tiers(e.to_string()))?);
    let s3_config = s3.to_s3_config();
    let tier = runtime
        .run(async move { S3Tier::connect(&s3_config).await })
        .map_err(|e| RepoError::Tiers(format!("connecting to S3 bucket {}: {e}", s3.bucket)))?;
    tracing::debug!(bucket = %s3.bucket, prefix = %s3.prefix, "opened the S3 tier");
    let remotes: Vec<Arc<dyn Tier>> = vec![Arc::new(tier)];
    Ok(Some(Arc::new(TieredBlockstore::new(
        local, remotes, runtime,
    ))))
}
