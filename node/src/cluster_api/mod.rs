//! The cluster REST API, compatible with ipfs-cluster's (`api/rest/restapi.go` of ipfs-cluster
//! v1) for the endpoints its users rely on:
//!
//! | method and path | answer |
//! |---|---|
//! | `GET /id`, `GET /version` | `ID`, `Version` |
//! | `GET /peers` | one `ID` per line |
//! | `POST /pins/{cid}` (query: `name`, `mode`, `replication[-min,-max]`, `user-allocations`, `expire-in`/`expire-at`, `meta-*`) | the `Pin` written |
//! | `DELETE /pins/{cid}` | the `Pin` removed |
//! | `GET /pins/{cid}` | `GlobalPinInfo` |
//! | `GET /pins` (query: `filter`, `cids`) | one `GlobalPinInfo` per line |
//! | `GET /allocations`, `GET /allocations/{cid}` | `Pin`s |
//! | `POST /pins/{cid}/recover`, `POST /pins/recover` | `GlobalPinInfo`(s) |
//! | `GET /state/export`, `POST /state/import` | ipfs-kit: the pinset as JSON lines |
//!
//! Streams are newline-delimited JSON with `204 No Content` when empty, errors ipfs-cluster's
//! `{"code","message"}` with its status codes (404 for a pin the pinset does not hold, 400 for
//! bad options); a pin sent to a worker is refused with 403 and a message saying only masters
//! accept pins. Every request body is bounded ([`CLUSTER_API_BODY_BYTES_MAX`],
//! [`STATE_IMPORT_BYTES_MAX`]); query strings by [`crate::api::QUERY_BYTES_MAX`].
//!
//! [`server`] binds it (loopback unless a token is set, as the RPC API), writes
//! `<repo>/cluster-api` and shuts it down; [`client`] is the CLI's blocking client.

pub mod client;
pub mod json;
pub mod server;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use cid::Cid;
use futures::StreamExt as _;

use crate::api::Args;
use crate::cluster::{ClusterError, ClusterHandle};
use crate::net::NodeHandle;
use json::ErrorJson;

/// Largest body of any request but `POST /state/import` (ipfs-cluster's pin requests carry
/// their options in the query string; a body is read and ignored).
pub const CLUSTER_API_BODY_BYTES_MAX: usize = 64 * 1024;
/// Largest `POST /state/import` body: JSON lines of ~200 bytes, so ~300,000 pins.
pub const STATE_IMPORT_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Most CIDs in one `GET /pins?cids=a,b,c`.
pub const STATUS_CIDS_MAX: usize = 1024;
/// Our version of ipfs-cluster's `rpc_protocol_version`.
pub const CLUSTER_RPC_PROTOCOL: &str = "/ipfs-kit/cluster/1.0.0";

/// What the handlers share.
#[derive(Clone)]
pub struct ClusterApiState {
    pub cluster: ClusterHandle,
    /// The network node, for addresses (absent in offline tests).
    pub node: Option<NodeHandle>,
}

/// An error answer in ipfs-cluster's shape.
#[derive(Debug)]
pub struct RestError {
    pub status: StatusCode,
    pub message: String,
}

impl RestError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let body = ErrorJson {
            code: self.status.as_u16(),
            message: self.message,
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<ClusterError> for RestError {
    fn from(e: ClusterError) -> Self {
        let status = match &e {
            ClusterError::NotAMaster(_) => StatusCode::FORBIDDEN,
            ClusterError::InvalidPin(_)
            | ClusterError::Export(_)
            | ClusterError::TooManyPins(_) => StatusCode::BAD_REQUEST,
            ClusterError::NotPinned(_) => StatusCode::NOT_FOUND,
            ClusterError::NotInCluster | ClusterError::Closed => StatusCode::SERVICE_UNAVAILABLE,
            ClusterError::Allocation(_) | ClusterError::Store(_) | ClusterError::Io(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        RestError::new(status, e.to_string())
    }
}

impl From<crate::api::ApiError> for RestError {
    fn from(e: crate::api::ApiError) -> Self {
        RestError::new(StatusCode::BAD_REQUEST, e.to_string())
    }
}

type Result<T, E = RestError> = std::result::Result<T, E>;

/// The cluster REST router (authentication is added by [`server`]).
pub fn router(state: ClusterApiState) -> Router {
    Router::new()
        .route("/id", get(id))
        .route("/version", get(version))
        .route("/peers", get(peers))
        .route("/pins", get(status_all))
        .route("/pins/recover", post(recover_all))
        .route("/pins/{cid}", get(status_one).post(pin).delete(unpin))
        .route("/pins/{cid}/recover", post(recover_one))
        .route("/allocations", get(allocations))
        .route("/allocations/{cid}", get(allocation))
        .route("/state/export", get(state_export))
        .route(
            "/state/import",
            post(state_import).layer(DefaultBodyLimit::disable()),
        )
        .layer(DefaultBodyLimit::max(CLUSTER_API_BODY_BYTES_MAX))
        .fallback(|| async { RestError::new(StatusCode::NOT_FOUND, "not found") })
        .with_state(state)
}

fn json_response<T: serde::Serialize>(value: &T) -> Response {
    axum::Json(value).into_response()
}

/// Newline-delimited JSON, or `204 No Content` when there is nothing (as ipfs-cluster streams).
fn ndjson<T: serde::Serialize>(items: &[T]) -> Result<Response> {
    if items.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let mut body = Vec::new();
    for item in items {
        serde_json::to_writer(&mut body, item)
            .map_err(|e| RestError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        body.push(b'\n');
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

fn parse_cid(s: &str) -> Result<Cid> {
    let t = s.strip_prefix("/ipfs/").unwrap_or(s);
    t.parse::<Cid>()
        .map_err(|e| RestError::bad_request(format!("error decoding Cid: {e}")))
}

/// Reads a body up to [`CLUSTER_API_BODY_BYTES_MAX`] (413 beyond) and ignores it.
fn ignore_body(body: Result<Bytes, BytesRejection>) -> Result<()> {
    body.map(drop)
        .map_err(|r| RestError::new(r.status(), r.body_text()))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn id(State(s): State<ClusterApiState>) -> Result<Response> {
    let info = s.cluster.info().await?;
    let peers = s.cluster.peers().await?;
    let addresses = match &s.node {
        Some(node) => node
            .listen_addrs()
            .await
            .map_err(|e| RestError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .into_iter()
            .map(|a| format!("{a}/p2p/{}", info.peer))
            .collect(),
        None => Vec::new(),
    };
    let out = json::IdJson {
        id: info.peer.to_string(),
        addresses: addresses.clone(),
        cluster_peers: peers.iter().map(|p| p.peer.to_string()).collect(),
        cluster_peers_addresses: Vec::new(),
        version: env!("CARGO_PKG_VERSION").into(),
        commit: String::new(),
        rpc_protocol_version: CLUSTER_RPC_PROTOCOL.into(),
        error: String::new(),
        // The IPFS daemon of an ipfs-kit cluster peer is the same process and identity.
        ipfs: json::IpfsIdJson {
            id: info.peer.to_string(),
            addresses,
            error: String::new(),
        },
        peername: info.role.to_string(),
    };
    Ok(json_response(&out))
}

async fn version() -> Response {
    json_response(&json::VersionJson {
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

async fn peers(State(s): State<ClusterApiState>) -> Result<Response> {
    let me = s.cluster.id();
    let peers = s.cluster.peers().await?;
    let mut out = Vec::with_capacity(peers.len());
    for p in &peers {
        let addresses = match (&s.node, p.is_self) {
            (Some(node), true) => node
                .listen_addrs()
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|a| format!("{a}/p2p/{me}"))
                .collect(),
            (Some(node), false) => node
                .peer_info(p.peer)
                .await
                .ok()
                .flatten()
                .map(|i| {
                    i.listen_addrs
                        .iter()
                        .map(|a| format!("{a}/p2p/{}", p.peer))
                        .collect()
                })
                .unwrap_or_default(),
            (None, _) => Vec::new(),
        };
        let error = if p.live || p.is_self {
            String::new()
        } else {
            "no live metric from this peer (down or unreachable)".to_owned()
        };
        out.push(json::IdJson {
            id: p.peer.to_string(),
            addresses: addresses.clone(),
            cluster_peers: peers.iter().map(|q| q.peer.to_string()).collect(),
            cluster_peers_addresses: Vec::new(),
            version: if p.is_self {
                env!("CARGO_PKG_VERSION").into()
            } else {
                String::new()
            },
            commit: String::new(),
            rpc_protocol_version: CLUSTER_RPC_PROTOCOL.into(),
            error,
            ipfs: json::IpfsIdJson {
                id: p.peer.to_string(),
                addresses,
                error: String::new(),
            },
            peername: if p.is_self {
                s.cluster.role().to_string()
            } else {
                String::new()
            },
        });
    }
    ndjson(&out)
}

async fn pin(
    State(s): State<ClusterApiState>,
    Path(cid): Path<String>,
    RawQuery(q): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response> {
    ignore_body(body)?;
    let cid = parse_cid(&cid)?;
    let args = Args::parse(q.as_deref())?;
    let spec = json::pin_options(&args, now_ms()).map_err(RestError::bad_request)?;
    let written = s.cluster.pin(cid, spec).await?;
    tracing::info!(%cid, allocations = written.spec.allocations.len(), "cluster pin");
    Ok(json_response(&json::from_pin(&written)))
}

async fn unpin(
    State(s): State<ClusterApiState>,
    Path(cid): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response> {
    ignore_body(body)?;
    let cid = parse_cid(&cid)?;
    let before = s.cluster.get(cid).await?;
    s.cluster.unpin(cid).await?;
    tracing::info!(%cid, "cluster unpin");
    let spec = before.unwrap_or_default();
    Ok(json_response(&json::pin_json(&cid, &spec)))
}

async fn status_one(State(s): State<ClusterApiState>, Path(cid): Path<String>) -> Result<Response> {
    let cid = parse_cid(&cid)?;
    let status = s.cluster.status(cid).await?;
    Ok(json_response(&json::global_pin_info(&status)))
}

fn status_filter(args: &Args) -> Result<Vec<String>> {
    let filter: Vec<String> = args
        .get("filter")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(bad) = filter
        .iter()
        .find(|f| !json::STATUS_FILTERS.contains(&f.as_str()))
    {
        return Err(RestError::bad_request(format!(
            "invalid filter value {bad:?}"
        )));
    }
    Ok(filter)
}

async fn status_all(State(s): State<ClusterApiState>, RawQuery(q): RawQuery) -> Result<Response> {
    let args = Args::parse(q.as_deref())?;
    let filter = status_filter(&args)?;
    let statuses = match args.get("cids").filter(|c| !c.is_empty()) {
        Some(list) => {
            let cids: Vec<&str> = list.split(',').collect();
            if cids.len() > STATUS_CIDS_MAX {
                return Err(RestError::bad_request(format!(
                    "more than {STATUS_CIDS_MAX} cids"
                )));
            }
            let mut out = Vec::with_capacity(cids.len());
            for c in cids {
                out.push(s.cluster.status(parse_cid(c)?).await?);
            }
            out
        }
        None => s.cluster.status_all().await?,
    };
    let out: Vec<_> = statuses
        .iter()
        .map(json::global_pin_info)
        .filter(|g| json::status_matches(g, &filter))
        .collect();
    ndjson(&out)
}

async fn recover_one(
    State(s): State<ClusterApiState>,
    Path(cid): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response> {
    ignore_body(body)?;
    let cid = parse_cid(&cid)?;
    let mut statuses = s.cluster.recover(Some(cid)).await?;
    let status = match statuses.pop() {
        Some(st) => st,
        None => s.cluster.status(cid).await?,
    };
    Ok(json_response(&json::global_pin_info(&status)))
}

async fn recover_all(
    State(s): State<ClusterApiState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response> {
    ignore_body(body)?;
    let statuses = s.cluster.recover(None).await?;
    let out: Vec<_> = statuses.iter().map(json::global_pin_info).collect();
    ndjson(&out)
}

async fn allocations(State(s): State<ClusterApiState>) -> Result<Response> {
    let pins = s.cluster.allocations(None).await?;
    let out: Vec<_> = pins.iter().map(json::from_pin).collect();
    ndjson(&out)
}

async fn allocation(State(s): State<ClusterApiState>, Path(cid): Path<String>) -> Result<Response> {
    let cid = parse_cid(&cid)?;
    let pins = s.cluster.allocations(Some(cid)).await?;
    match pins.iter().find(|p| p.cid == cid) {
        Some(p) => Ok(json_response(&json::from_pin(p))),
        None => Err(RestError::new(
            StatusCode::NOT_FOUND,
            format!("{cid} is not in the cluster pinset"),
        )),
    }
}

async fn state_export(State(s): State<ClusterApiState>) -> Result<Response> {
    let mut out = Vec::new();
    // The handle writes on the blocking pool into a shared buffer, handed back here.
    let buf = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let writer = SharedWriter(buf.clone());
    s.cluster.export_state(writer).await?;
    std::mem::swap(&mut out, &mut buf.lock());
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        )],
        out,
    )
        .into_response())
}

/// A `Write` into a shared buffer (the handle's writer must be `'static`).
struct SharedWriter(Arc<parking_lot::Mutex<Vec<u8>>>);

impl std::io::Write for SharedWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn state_import(
    State(s): State<ClusterApiState>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<Response> {
    let too_large = || {
        RestError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("state import body exceeds the {STATE_IMPORT_BYTES_MAX}-byte limit"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > STATE_IMPORT_BYTES_MAX as u64) {
        // Read (and drop) what the client sends, up to twice the limit, so that it gets the
        // 413 rather than a reset connection in the middle of its upload.
        let mut stream = body.into_data_stream();
        let mut drained = 0usize;
        while let Some(Ok(chunk)) = stream.next().await {
            drained += chunk.len();
            if drained > 2 * STATE_IMPORT_BYTES_MAX {
                break;
            }
        }
        return Err(too_large());
    }
    // The body streams into the importer (a blocking reader); past the limit the stream
    // fails and the flag tells that failure from a malformed line.
    let over = Arc::new(AtomicBool::new(false));
    let flag = over.clone();
    let mut seen = 0usize;
    let stream = body.into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        seen += chunk.len();
        if seen > STATE_IMPORT_BYTES_MAX {
            flag.store(true, Ordering::SeqCst);
            return Err(std::io::Error::other("state import body too large"));
        }
        Ok(chunk)
    });
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let imported = s
        .cluster
        .import_state(std::io::BufReader::new(reader))
        .await;
    if over.load(Ordering::SeqCst) {
        return Err(too_large());
    }
    let n = imported?;
    tracing::info!(pins = n, "cluster state imported");
    Ok(json_response(&serde_json::json!({ "imported": n })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_errors_map_to_ipfs_cluster_statuses() {
        let cid: Cid = "bafkqaaa".parse().unwrap_or_default();
        let cases = [
            (
                ClusterError::NotAMaster(crate::config::Role::Worker),
                StatusCode::FORBIDDEN,
            ),
            (ClusterError::NotPinned(cid), StatusCode::NOT_FOUND),
            (ClusterError::Closed, StatusCode::SERVICE_UNAVAILABLE),
            (
                ClusterError::Store("x".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (e, status) in cases {
            let r = RestError::from(e);
            assert_eq!(r.status, status);
            assert!(!r.message.is_empty());
        }
        assert!(parse_cid("not-a-cid").is_err());
    }
}
