//! A fault-injecting wrapper around any tier, for tests of retries, outages and safety.
//!
//! Faults are switched at run time through the shared [`Faults`] handle:
//! - `fail_next(n)`: the next `n` calls fail with a retryable [`TierError::Unavailable`];
//! - `set_outage(true)`: every call fails (retryable) until switched off;
//! - `set_delay(d)`: every call sleeps `d` first (cancellable);
//! - `set_corrupt_reads(true)`: `get` flips a bit of the bytes it returns, as a broken disk or
//!   network would; callers that verify (assert in pairs) must catch it;
//! - `set_drop_puts(true)`: `put` answers `Ok` without storing, as a lying backend would; a
//!   mover that checks `has` after `put` must notice before deleting anything.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cid::Cid;

use super::{CancellationToken, Tier, TierError, TierKind};

/// The switchboard of a [`FaultyTier`]; clone it to flip faults while the tier is in use.
#[derive(Debug, Default)]
pub struct Faults {
    fail_next: AtomicU32,
    outage: AtomicBool,
    delay_ms: AtomicU64,
    corrupt_reads: AtomicBool,
    drop_puts: AtomicBool,
    calls: AtomicU64,
    injected: AtomicU64,
}

impl Faults {
    pub fn fail_next(&self, n: u32) {
        self.fail_next.store(n, Ordering::SeqCst);
    }
    pub fn set_outage(&self, on: bool) {
        self.outage.store(on, Ordering::SeqCst);
    }
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.delay_ms.store(ms, Ordering::SeqCst);
    }
    pub fn set_corrupt_reads(&self, on: bool) {
        self.corrupt_reads.store(on, Ordering::SeqCst);
    }
    pub fn set_drop_puts(&self, on: bool) {
        self.drop_puts.store(on, Ordering::SeqCst);
    }
    /// Calls seen so far (all operations).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
    /// Calls failed on purpose so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    /// The fault for this call, if any, after the configured delay.
    async fn before_call(
        &self,
        tier: TierKind,
        op: &str,
        cancel: &CancellationToken,
    ) -> Result<(), TierError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let delay_ms = self.delay_ms.load(Ordering::SeqCst);
        if delay_ms > 0 {
            tokio::select! {
                _ = cancel.cancelled() => return Err(TierError::Cancelled),
                _ = tokio::time::sleep(Duration::from_millis(delay_ms)) => {}
            }
        }
        if self.outage.load(Ordering::SeqCst) {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Err(TierError::Unavailable {
                tier,
                reason: format!("injected outage ({op})"),
            });
        }
        let took = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if took.is_ok() {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Err(TierError::Unavailable {
                tier,
                reason: format!("injected failure ({op})"),
            });
        }
        Ok(())
    }
}

/// Wraps a tier and injects the faults its [`Faults`] handle asks for.
pub struct FaultyTier {
    inner: Arc<dyn Tier>,
    faults: Arc<Faults>,
    kind: TierKind,
}

impl FaultyTier {
    pub fn new(inner: Arc<dyn Tier>) -> Self {
        let kind = inner.kind();
        Self::posing_as(inner, kind)
    }

    /// Wraps `inner` but reports `kind`: lets a test run the mover against, say, an in-memory
    /// store standing in the place of S3 (the real S3 path is tested against moto).
    pub fn posing_as(inner: Arc<dyn Tier>, kind: TierKind) -> Self {
        Self {
            inner,
            faults: Arc::new(Faults::default()),
            kind,
        }
    }

    /// The switchboard, shared with this tier.
    pub fn faults(&self) -> Arc<Faults> {
        self.faults.clone()
    }
}

#[async_trait::async_trait]
impl Tier for FaultyTier {
    fn kind(&self) -> TierKind {
        self.kind
    }

    async fn put(
        &self,
        cid: &Cid,
        data: Bytes,
        cancel: &CancellationToken,
    ) -> Result<(), TierError> {
        self.faults.before_call(self.kind(), "put", cancel).await?;
        if self.faults.drop_puts.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.inner.put(cid, data, cancel).await
    }

    async fn get(&self, cid: &Cid, cancel: &CancellationToken) -> Result<Option<Bytes>, TierError> {
        self.faults.before_call(self.kind(), "get", cancel).await?;
        let got = self.inner.get(cid, cancel).await?;
        if !self.faults.corrupt_reads.load(Ordering::SeqCst) {
            return Ok(got);
        }
        Ok(got.map(|data| {
            let mut m = BytesMut::from(&data[..]);
            match m.first_mut() {
                Some(b) => *b ^= 0x01,
                None => m.extend_from_slice(&[0]),
            }
            m.freeze()
        }))
    }

    async fn has(&self, cid: &Cid, cancel: &CancellationToken) -> Result<bool, TierError> {
        self.faults.before_call(self.kind(), "has", cancel).await?;
        self.inner.has(cid, cancel).await
    }

    async fn delete(&self, cid: &Cid, cancel: &CancellationToken) -> Result<bool, TierError> {
        self.faults
            .before_call(self.kind(), "delete", cancel)
            .await?;
        self.inner.delete(cid, cancel).await
    }

    async fn list(&self, cancel: &CancellationToken) -> Result<Vec<Cid>, TierError> {
        self.faults.before_call(self.kind(), "list", cancel).await?;
        self.inner.list(cancel).await
    }
}
