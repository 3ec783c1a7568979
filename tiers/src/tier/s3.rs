//! An S3 bucket as a tier (any S3-compatible server: AWS, moto, Garage, MinIO).
//!
//! One object per block, key = `prefix` + the block's CIDv1 (raw codec, base32). Stores are
//! keyed by multihash, as the blockstore is, so CIDv0 and CIDv1 of the same bytes share one
//! object and `list` answers raw CIDs like `Blockstore::all_cids`. Blocks are at most 2 MiB, so
//! there is no multipart upload; throughput comes from concurrent requests (the caller runs many
//! `get`s at once; the HTTP client keeps a connection pool).
//!
//! Every call is a single attempt: the SDK's own retries are switched off so that one policy,
//! [`super::retry`], decides (and the fault-injection tests see every attempt). Errors are
//! classified: timeouts, dispatch failures, 5xx and throttling are retryable; the rest is not.
//! Bytes read back are bounded by [`BLOCK_SIZE_BYTES_MAX`](ipfs_kit_blockstore::limits::BLOCK_SIZE_BYTES_MAX) while streaming and hash-verified
//! before they are returned. Uploads of SHA2-256 blocks carry `x-amz-checksum-sha256` (the CID's
//! digest), so a server that checks it refuses bytes damaged in transit.

use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use cid::Cid;
use ipfs_kit_blockstore::hash::{identity_data, SHA2_256};
use ipfs_kit_blockstore::raw_cid_of;

use super::{
    cancellable, check_block_size, verify_block, CancellationToken, Tier, TierError, TierKind,
};

/// Connect timeout of the HTTP client.
pub const CONNECT_TIMEOUT_MS: u64 = 3_000;
/// Deadline of one S3 call (a 2 MiB block over a slow link fits well inside).
pub const OPERATION_TIMEOUT_MS: u64 = 30_000;
/// Keys asked for per `ListObjectsV2` page (S3's own maximum).
pub const LIST_PAGE_KEYS_MAX: i32 = 1_000;

/// Where the bucket is and how to sign for it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    /// Prepended to every key (for example `blocks/`).
    pub prefix: String,
    /// A custom endpoint (`http://127.0.0.1:9000`); `None` for AWS itself.
    pub endpoint: Option<String>,
    /// `None`: from the AWS default chain, else `us-east-1`.
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which most S3-compatible servers need.
    pub path_style: bool,
    /// Static credentials; when absent, the AWS default chain (environment, profile, web
    /// identity, container and instance metadata) provides them.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

/// A tier over one S3 bucket and prefix.
#[derive(Clone, Debug)]
pub struct S3Tier {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl S3Tier {
    /// Builds the client. Loads the AWS default chain only for what `config` leaves open.
    pub async fn connect(config: &S3Config) -> Result<Self, TierError> {
        if config.bucket.is_empty() {
            return Err(TierError::Permanent {
                tier: TierKind::S3,
                reason: "no bucket configured".into(),
            });
        }
        let static_creds = match (&config.access_key_id, &config.secret_access_key) {
            (Some(id), Some(secret)) => Some(Credentials::new(
                id.clone(),
                secret.clone(),
                None,
                None,
                "ipfs-kit-config",
            )),
            (None, None) => None,
            _ => {
                return Err(TierError::Permanent {
                    tier: TierKind::S3,
                    reason: "access_key_id and secret_access_key must be set together".into(),
                })
            }
        };
        let (mut builder, default_region) = match (&static_creds, &config.region) {
            (Some(_), Some(_)) => (aws_sdk_s3::config::Builder::new(), None),
            _ => {
                let mut loader = aws_config::defaults(BehaviorVersion::latest());
                if let Some(r) = &config.region {
                    loader = loader.region(Region::new(r.clone()));
                }
                let sdk = loader.load().await;
                let region = sdk.region().cloned();
                (aws_sdk_s3::config::Builder::from(&sdk), region)
            }
        };
        builder = builder.behavior_version(BehaviorVersion::latest());
        if let Some(creds) = static_creds {
            builder = builder.credentials_provider(creds);
        }
        let region = match (&config.region, default_region) {
            (Some(r), _) => Region::new(r.clone()),
            (None, Some(r)) => r,
            (None, None) => Region::new("us-east-1"),
        };
        builder = builder.region(region);
        if let Some(ep) = &config.endpoint {
            builder = builder.endpoint_url(ep.clone());
        }
        let s3 = builder
            .force_path_style(config.path_style)
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
                    .operation_timeout(Duration::from_millis(OPERATION_TIMEOUT_MS))
                    .build(),
            )
            // The CID is the checksum: verified on every read, sent as SHA-256 on upload.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        Ok(Self {
            client: aws_sdk_s3::Client::from_conf(s3),
            bucket: config.bucket.clone(),
            prefix: config.prefix.clone(),
        })
    }

    /// The underlying client (tests use it to create buckets and to tamper with objects).
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The object key of a block.
    pub fn key_of(&self, cid: &Cid) -> String {
        format!("{}{}", self.prefix, raw_cid_of(*cid.hash()))
    }

    /// Creates the bucket if it does not exist (for tests and `tier` setup on dev servers).
    pub async fn ensure_bucket(&self, cancel: &CancellationToken) -> Result<(), TierError> {
        let head = self.client.head_bucket().bucket(&self.bucket).send();
        if cancellable(cancel, async { Ok(head.await) }).await?.is_ok() {
            return Ok(());
        }
        let create = self.client.create_bucket().bucket(&self.bucket).send();
        match cancellable(cancel, async { Ok(create.await) }).await? {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.code(),
                    Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(classify("create_bucket", e)),
        }
    }
}

/// Sorts an SDK error into retryable or not.
fn classify<E>(op: &str, err: SdkError<E, HttpResponse>) -> TierError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let reason = format!("{op}: {}", DisplayErrorContext(&err));
    let retryable = match &err {
        SdkError::ConstructionFailure(_) => false,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            status >= 500
                || status == 429
                || matches!(
                    se.err().code(),
                    Some("SlowDown" | "RequestTimeout" | "InternalError" | "ServiceUnavailable")
                )
        }
        _ => true,
    };
    if retryable {
        TierError::Unavailable {
            tier: TierKind::S3,
            reason,
        }
    } else {
        TierError::Permanent {
            tier: TierKind::S3,
            reason,
        }
    }
}

/// Reads an object body, refusing to hold more than [`BLOCK_SIZE_BYTES_MAX`](ipfs_kit_blockstore::limits::BLOCK_SIZE_BYTES_MAX).
async fn read_bounded(mut body: ByteStream, size_hint: Option<i64>) -> Result<Bytes, TierError> {
    let hint = size_hint.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
    check_block_size(hint)?;
    // A body that arrives as one chunk is returned as is (no copy); otherwise the chunks are
    // copied once into a buffer of the announced size.
    let mut first: Option<Bytes> = None;
    let mut buf: Option<BytesMut> = None;
    let mut len = 0usize;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| TierError::Unavailable {
            tier: TierKind::S3,
            reason: format!("reading object body: {e}"),
        })?;
        len += chunk.len();
        check_block_size(len as u64)?;
        match (&mut buf, first.take()) {
            (Some(b), _) => b.extend_from_slice(&chunk),
            (None, None) => first = Some(chunk),
            (None, Some(f)) => {
                let mut b = BytesMut::with_capacity(usize::try_from(hint).unwrap_or(0).max(len));
                b.extend_from_slice(&f);
                b.extend_from_slice(&chunk);
                buf = Some(b);
            }
        }
    }
    Ok(match (buf, first) {
        (Some(b), _) => b.freeze(),
        (None, Some(f)) => f,
        (None, None) => Bytes::new(),
    })
}

#[async_trait::async_trait]
impl Tier for S3Tier {
    fn kind(&self) -> TierKind {
        TierKind::S3
    }

    #[tracing::instrument(level = "debug", skip_all, fields(tier = "s3", %cid))]
    async fn put(
        &self,
        cid: &Cid,
        data: Bytes,
        cancel: &CancellationToken,
    ) -> Result<(), TierError> {
        if identity_data(cid).is_some() {
            return Ok(());
        }
        check_block_size(data.len() as u64)?;
        let len = data.len() as i64;
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key_of(cid))
            .content_length(len)
            .body(ByteStream::from(data));
        if cid.hash().code() == SHA2_256 && cid.hash().digest().len() == 32 {
            req = req.checksum_sha256(
                base64::engine::general_purpose::STANDARD.encode(cid.hash().digest()),
            );
        }
        cancellable(cancel, async {
            req.send()
                .await
                .map(|_| ())
                .map_err(|e| classify("put_object", e))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(tier = "s3", %cid))]
    async fn get(&self, cid: &Cid, cancel: &CancellationToken) -> Result<Option<Bytes>, TierError> {
        if let Some(data) = identity_data(cid) {
            return Ok(Some(Bytes::copy_from_slice(data)));
        }
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key_of(cid))
            .send();
        cancellable(cancel, async {
            let out = match req.await {
                Ok(out) => out,
                Err(e) if e.as_service_error().is_some_and(|se| se.is_no_such_key()) => {
                    return Ok(None)
                }
                Err(e) => return Err(classify("get_object", e)),
            };
            let size = out.content_length();
            let data = read_bounded(out.body, size).await?;
            verify_block(TierKind::S3, cid, &data)?;
            Ok(Some(data))
        })
        .await
    }

    async fn has(&self, cid: &Cid, cancel: &CancellationToken) -> Result<bool, TierError> {
        if identity_data(cid).is_some() {
            return Ok(true);
        }
        let req = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key_of(cid))
            .send();
        cancellable(cancel, async {
            match req.await {
                Ok(_) => Ok(true),
                Err(e) if e.as_service_error().is_some_and(|se| se.is_not_found()) => Ok(false),
                Err(e) => Err(classify("head_object", e)),
            }
        })
        .await
    }

    async fn delete(&self, cid: &Cid, cancel: &CancellationToken) -> Result<bool, TierError> {
        if identity_data(cid).is_some() {
            return Ok(false);
        }
        let req = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key_of(cid))
            .send();
        // S3 does not say whether the key existed.
        cancellable(cancel, async {
            req.await
                .map(|_| true)
                .map_err(|e| classify("delete_object", e))
        })
        .await
    }

    async fn list(&self, cancel: &CancellationToken) -> Result<Vec<Cid>, TierError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let req = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&self.prefix)
                .max_keys(LIST_PAGE_KEYS_MAX)
                .set_continuation_token(token.take())
                .send();
            let page = cancellable(cancel, async {
                req.await.map_err(|e| classify("list_objects_v2", e))
            })
            .await?;
            for obj in page.contents() {
                let Some(key) = obj.key() else { continue };
                let name = key.strip_prefix(&self.prefix).unwrap_or(key);
                match name.parse::<Cid>() {
                    Ok(cid) => out.push(cid),
                    Err(_) => tracing::debug!(key, "skipping a key that is not a CID"),
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn key_is_prefix_plus_raw_cidv1_of_the_multihash() {
        let cfg = S3Config {
            bucket: "b".into(),
            prefix: "blocks/".into(),
            endpoint: Some("http://127.0.0.1:1".into()),
            region: Some("us-east-1".into()),
            path_style: true,
            access_key_id: Some("k".into()),
            secret_access_key: Some("s".into()),
        };
        let tier = S3Tier::connect(&cfg).await;
        let Ok(tier) = tier else {
            panic!("connect builds a client without I/O")
        };
        let mh = ipfs_kit_blockstore::hash::HashFn::Sha2_256.digest(b"hello\n");
        let Ok(mh) = mh else {
            panic!("sha2-256 digest")
        };
        let v0 = Cid::new_v0(mh);
        let Ok(v0) = v0 else { panic!("v0 cid") };
        let v1 = Cid::new_v1(0x70, mh);
        assert_eq!(tier.key_of(&v0), tier.key_of(&v1));
        assert_eq!(
            tier.key_of(&v0),
            "blocks/bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"
        );
    }

    #[tokio::test]
    async fn half_configured_credentials_are_refused() {
        let cfg = S3Config {
            bucket: "b".into(),
            access_key_id: Some("k".into()),
            ..Default::default()
        };
        assert!(matches!(
            S3Tier::connect(&cfg).await,
            Err(TierError::Permanent { .. })
        ));
    }
}
