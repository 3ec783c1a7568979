//! The local blockstore as a tier.
//!
//! The [`Blockstore`] trait is synchronous (disk I/O, SHA-256 on every read), so every call runs
//! on tokio's blocking pool (`spawn_blocking`) and never stalls an async worker thread. The
//! store's own `get` verifies the hash, so this tier's `get` is verified too.

use std::sync::Arc;

use bytes::Bytes;
use cid::Cid;
use ipfs_kit_blockstore::{Block, Blockstore, BlockstoreError};

use super::{cancellable, CancellationToken, Tier, TierError, TierKind};

/// A tier over a local [`Blockstore`].
#[derive(Clone)]
pub struct LocalTier {
    store: Arc<dyn Blockstore>,
}

impl LocalTier {
    pub fn new(store: Arc<dyn Blockstore>) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &Arc<dyn Blockstore> {
        &self.store
    }

    async fn blocking<T, F>(&self, cancel: &CancellationToken, f: F) -> Result<T, TierError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Blockstore) -> Result<T, BlockstoreError> + Send + 'static,
    {
        let store = self.store.clone();
        let task = tokio::task::spawn_blocking(move || f(store.as_ref()));
        cancellable(cancel, async move {
            match task.await {
                Ok(r) => r.map_err(TierError::from),
                Err(join) => Err(TierError::Local(BlockstoreError::Engine(format!(
                    "blocking task failed: {join}"
                )))),
            }
        })
        .await
    }
}

#[async_trait::async_trait]
impl Tier for LocalTier {
    fn kind(&self) -> TierKind {
        TierKind::Local
    }

    async fn put(
        &self,
        cid: &Cid,
        data: Bytes,
        cancel: &CancellationToken,
    ) -> Result<(), TierError> {
        super::check_block_size(data.len() as u64)?;
        let block = Block::new(*cid, data)?;
        self.blocking(cancel, move |s| s.put(&block)).await
    }

    async fn get(&self, cid: &Cid, cancel: &CancellationToken) -> Result<Option<Bytes>, TierError> {
        let cid = *cid;
        self.blocking(cancel, move |s| s.get(&cid))
            .await
            .map_err(|e| match e {
                TierError::Local(BlockstoreError::Corrupt(c)) => TierError::Corrupt {
                    tier: TierKind::Local,
                    cid: c.cid,
                },
                e => e,
            })
    }

    async fn has(&self, cid: &Cid, cancel: &CancellationToken) -> Result<bool, TierError> {
        let cid = *cid;
        self.blocking(cancel, move |s| s.has(&cid)).await
    }

    async fn delete(&self, cid: &Cid, cancel: &CancellationToken) -> Result<bool, TierError> {
        let cid = *cid;
        self.blocking(cancel, move |s| s.delete_many(&[cid]).map(|n| n > 0))
            .await
    }

    async fn list(&self, cancel: &CancellationToken) -> Result<Vec<Cid>, TierError> {
        self.blocking(cancel, |s| s.all_cids()).await
    }
}
