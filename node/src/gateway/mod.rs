//! The HTTP gateway: `GET|HEAD /ipfs/<cid>[/path]`.
//!
//! - Trustless responses (ipfs/specs `src/http-gateways/trustless-gateway.md`), chosen by
//!   `?format=raw|car` or `Accept: application/vnd.ipld.raw|application/vnd.ipld.car`: the
//!   single block (at most [`GATEWAY_BLOCK_BYTES_MAX`]), or a CAR v1 (`order=dfs; dups=n`)
//!   whose root is the requested CID, holding the blocks of the path and then the whole DAG
//!   at its end.
//! - Path gateway (`path-gateway.md`) for UnixFS: a file's bytes with single `Range`
//!   requests (206 / 416), a directory's `index.html`, or its listing as HTML or, with
//!   `Accept: application/json`, as JSON.
//!
//! Every request is bounded: at most [`GatewayLimits::concurrent_requests_max`] are served at
//! once (the next gets 429 with `Retry-After`), and making content local (bitswap) plus
//! resolving its path must finish within [`GatewayLimits::retrieval_timeout`] (504).

use crate::api::ApiState;
use crate::dag::unixfs_pb::DataType;
use crate::unixfs::export::{self, EntryKind, ExportError};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use cid::Cid;
use futures::StreamExt as _;
use ipfs_kit_blockstore::BlockstoreError;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

mod car;
mod sniff;

use car::CarRequest;

/// Largest block served as `application/vnd.ipld.raw` (the spec's 2 MiB block limit).
pub const GATEWAY_BLOCK_BYTES_MAX: usize = ipfs_kit_blockstore::limits::BLOCK_SIZE_BYTES_MAX;
/// How long fetching and resolving content may take before the answer is 504 (boxo's
/// default retrieval timeout).
pub const GATEWAY_RETRIEVAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests served at once; past it, 429.
pub const GATEWAY_CONCURRENT_REQUESTS_MAX: usize = 64;
/// `Retry-After` of a 429, in seconds.
pub const GATEWAY_RETRY_AFTER_SECS: u64 = 5;
/// Longest request path accepted.
pub const GATEWAY_PATH_BYTES_MAX: usize = 8192;
/// Most entries shown in a directory listing.
pub const GATEWAY_LISTING_ENTRIES_MAX: usize = 10_000;
/// Cache-Control of immutable `/ipfs/` content.
const IMMUTABLE: &str = "public, max-age=29030400, immutable";

/// The gateway's bounds.
#[derive(Clone, Debug)]
pub struct GatewayLimits {
    pub concurrent_requests_max: usize,
    pub retrieval_timeout: Duration,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        Self {
            concurrent_requests_max: GATEWAY_CONCURRENT_REQUESTS_MAX,
            retrieval_timeout: GATEWAY_RETRIEVAL_TIMEOUT,
        }
    }
}

#[derive(Clone)]
struct Gateway {
    api: ApiState,
    limits: GatewayLimits,
    slots: Arc<Semaphore>,
}

/// The gateway router.
pub fn router(state: ApiState, limits: GatewayLimits) -> Router {
    let gw = Gateway {
        slots: Arc::new(Semaphore::new(limits.concurrent_requests_max.max(1))),
        api: state,
        limits,
    };
    Router::new()
        .route("/ipfs/{*path}", get(handle))
        .layer(axum::middleware::from_fn_with_state(gw.clone(), admit))
        .with_state(gw)
}

/// Admits a request if a slot is free (429 otherwise); the slot is held until the answer's
/// body is fully sent.
async fn admit(State(gw): State<Gateway>, req: Request, next: Next) -> Response {
    let Ok(permit) = gw.slots.clone().try_acquire_owned() else {
        gw.api.metrics.http_request("gateway", "gateway", 429);
        let mut r = text_error(StatusCode::TOO_MANY_REQUESTS, "too many requests");
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(GATEWAY_RETRY_AFTER_SECS),
        );
        return r;
    };
    let resp = next.run(req).await;
    gw.api
        .metrics
        .http_request("gateway", "gateway", resp.status().as_u16());
    let (parts, body) = resp.into_parts();
    let body = Body::from_stream(body.into_data_stream().map(move |chunk| {
        let _held = &permit;
        chunk
    }));
    Response::from_parts(parts, body)
}

fn text_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{message}\n"),
    )
        .into_response()
}

/// A gateway failure and its status.
#[derive(Debug)]
struct GwError(StatusCode, String);

impl From<ExportError> for GwError {
    fn from(e: ExportError) -> Self {
        let status = match &e {
            ExportError::NoSuchLink { .. } | ExportError::NotFound(_) => StatusCode::NOT_FOUND,
            ExportError::BadPath { .. } | ExportError::PathTraversal(_) => StatusCode::BAD_REQUEST,
            // The network did not give a block (a 504 instead once the deadline has passed,
            // see `serve`): not known to be absent.
            ExportError::Store(BlockstoreError::Unavailable { .. }) => StatusCode::BAD_GATEWAY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        GwError(status, e.to_string())
    }
}

/// [`crate::api::blocking`] for the gateway's own errors (which keep their status).
async fn blocking<T, F>(f: F) -> Result<T, GwError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, GwError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        GwError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("task failed: {e}"),
        )
    })?
}

impl From<crate::api::ApiError> for GwError {
    fn from(e: crate::api::ApiError) -> Self {
        GwError(e.status(), e.message().to_owned())
    }
}

impl IntoResponse for GwError {
    fn into_response(self) -> Response {
        if self.0 == StatusCode::PRECONDITION_FAILED {
            // only-if-cached and not here: no payload (path gateway spec).
            return self.0.into_response();
        }
        text_error(self.0, &self.1)
    }
}

/// What the client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Raw,
    Car,
    /// Deserialized UnixFS (the path gateway).
    Unixfs,
}

fn choose_format(args: &crate::api::Args, headers: &HeaderMap) -> Result<Format, GwError> {
    match args.get("format") {
        Some("raw") => return Ok(Format::Raw),
        Some("car") => return Ok(Format::Car),
        Some("") | None => {}
        Some(other) => {
            return Err(GwError(
                StatusCode::BAD_REQUEST,
                format!("unsupported format {other:?}"),
            ))
        }
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    for t in accept.split(',') {
        let mime = t.split(';').next().unwrap_or_default().trim();
        match mime {
            "application/vnd.ipld.raw" => return Ok(Format::Raw),
            "application/vnd.ipld.car" => return Ok(Format::Car),
            _ => {}
        }
    }
    Ok(Format::Unixfs)
}

/// `/ipfs/<cid>/<a>/<b>` → (root, decoded segments); `..` and encoded `/` are refused.
fn parse_path(raw: &str) -> Result<(Cid, Vec<String>), GwError> {
    let bad = |m: String| GwError(StatusCode::BAD_REQUEST, m);
    if raw.len() > GATEWAY_PATH_BYTES_MAX {
        return Err(bad(format!("path exceeds {GATEWAY_PATH_BYTES_MAX} bytes")));
    }
    let rest = raw.strip_prefix("/ipfs/").unwrap_or(raw);
    let mut segs = rest.split('/');
    let root_text = segs.next().unwrap_or_default();
    let root: Cid = root_text
        .parse()
        .map_err(|e| bad(format!("invalid CID {root_text:?}: {e}")))?;
    let mut names = Vec::new();
    for s in segs {
        if s.is_empty() || s == "." {
            continue;
        }
        let d = percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map_err(|_| bad("path is not UTF-8".into()))?;
        if d == ".." || d.contains('/') || d.contains('\0') {
            return Err(bad(format!("invalid path segment {d:?}")));
        }
        names.push(d.into_owned());
    }
    Ok((root, names))
}

async fn handle(
    State(gw): State<Gateway>,
    method: Method,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    match serve(&gw, &method, &headers, &uri).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// The CIDs along the path (root first) and the terminal CID.
fn walk_path(
    store: &dyn ipfs_kit_blockstore::Blockstore,
    root: Cid,
    names: &[String],
) -> Result<Vec<Cid>, ExportError> {
    let mut cids = vec![root];
    let mut cur = root;
    for n in names {
        cur = export::lookup(store, &cur, n)?;
        cids.push(cur);
    }
    Ok(cids)
}

/// What was resolved before the answer starts.
enum Resolved {
    Raw(bytes::Bytes),
    Car {
        path: Vec<Cid>,
        /// The CAR holds the whole DAG under the terminal (read behind a bulk fetch), not a
        /// part of it (read block by block).
        whole_dag: bool,
    },
    File {
        size: u64,
        /// From the name (the `filename` parameter or the path's last segment), else sniffed
        /// from the first bytes.
        content_type: String,
    },
    Dir {
        entries: Vec<export::LsEntry>,
        index: Option<(Cid, u64)>,
    },
}

/// What the request asked for besides its path and format.
struct Ask {
    /// `?filename=`: the name in `Content-Disposition`, and the one the type comes from.
    filename: Option<String>,
    /// `?download=true`: `Content-Disposition: attachment`.
    download: bool,
    /// `Cache-Control: only-if-cached`: answer from this node's store or 412, never fetch.
    only_if_cached: bool,
    /// A listing as JSON (`Accept: application/json`) rather than HTML.
    wants_json: bool,
}

impl Ask {
    fn of(args: &crate::api::Args, headers: &HeaderMap) -> Self {
        let only_if_cached = headers
            .get_all(header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|d| d.trim().eq_ignore_ascii_case("only-if-cached"));
        let wants_json = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"));
        Ask {
            filename: args
                .get("filename")
                .filter(|f| !f.is_empty())
                .map(str::to_owned),
            download: args.get("download") == Some("true"),
            only_if_cached,
            wants_json,
        }
    }
}

/// A failure to read under `only-if-cached`: a block this node does not hold is 412 (the
/// spec's answer, with no payload), not 404.
fn read_error(e: ExportError, only_if_cached: bool) -> GwError {
    if only_if_cached && matches!(e, ExportError::NotFound(_)) {
        return GwError(StatusCode::PRECONDITION_FAILED, String::new());
    }
    e.into()
}

/// The answer's `ETag` (path gateway spec): the CID, with the format for raw blocks and CARs
/// (weak for a CAR, and covering the path, whose blocks it holds), and for a generated listing
/// this build's version, so a new listing page replaces cached ones. A CAR's also covers its
/// `dag-scope` and `entity-bytes`.
fn etag_of(
    resolved: &Resolved,
    root: &Cid,
    terminal: &Cid,
    names: &[String],
    json: bool,
    car: &CarRequest,
) -> String {
    match resolved {
        Resolved::Raw(_) => format!("\"{terminal}.raw\""),
        Resolved::Car { .. } if names.is_empty() && car.tag().is_empty() => {
            format!("W/\"{root}.car\"")
        }
        Resolved::Car { .. } => {
            use sha2::Digest as _;
            let digest = sha2::Sha256::digest(format!("{}\0{}", names.join("/"), car.tag()));
            let tag: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            format!("W/\"{root}.car.{tag}\"")
        }
        Resolved::File { .. } => format!("\"{terminal}\""),
        Resolved::Dir {
            index: Some((c, _)),
            ..
        } => format!("\"{c}\""),
        Resolved::Dir { .. } => format!(
            "W/\"DirIndex-{}_CID-{terminal}{}\"",
            env!("CARGO_PKG_VERSION"),
            if json { ".json" } else { "" }
        ),
    }
}

/// `If-None-Match` names `etag` (weak comparison, RFC 9110 13.1.2) or is `*`.
fn none_match(if_none_match: &str, etag: &str) -> bool {
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let ours = opaque(etag);
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || opaque(t) == ours)
}

/// `Content-Disposition` of `kind` (`inline` or `attachment`) naming `name`: an ASCII
/// `filename` (other characters, quotes and backslashes as `_`) and, when that lost anything,
/// the exact name as RFC 5987's `filename*`.
fn content_disposition(kind: &str, name: Option<&str>) -> String {
    let Some(name) = name else {
        return kind.to_owned();
    };
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if ascii == name {
        return format!("{kind}; filename=\"{ascii}\"");
    }
    // RFC 5987's attr-char: letters, digits and !#$&+-.^_`|~ stay as they are.
    const ATTR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'!')
        .remove(b'#')
        .remove(b'$')
        .remove(b'&')
        .remove(b'+')
        .remove(b'-')
        .remove(b'.')
        .remove(b'^')
        .remove(b'_')
        .remove(b'`')
        .remove(b'|')
        .remove(b'~');
    let exact = percent_encoding::utf8_percent_encode(name, ATTR);
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{exact}")
}

/// The `Content-Type` a file's name gives (text types in UTF-8, as kubo answers), if any.
fn type_from_name(name: &str) -> Option<String> {
    let t = mime_guess::from_path(name).first_raw()?;
    Some(if t.starts_with("text/") {
        format!("{t}; charset=utf-8")
    } else {
        t.to_owned()
    })
}

async fn serve(
    gw: &Gateway,
    method: &Method,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
) -> Result<Response, GwError> {
    let args = crate::api::Args::parse(uri.query())?;
    let format = choose_format(&args, headers)?;
    let car_req = CarRequest::parse(&args)?;
    let ask = Ask::of(&args, headers);
    let (root, names) = parse_path(uri.path())?;
    // A service worker registered at a content root's bare path would control every path
    // under the gateway; under `/ipfs/<cid>/` it controls only that root (the spec's rule).
    if names.is_empty()
        && !uri.path().ends_with('/')
        && headers
            .get("service-worker")
            .is_some_and(|v| v.as_bytes() == b"script")
    {
        return Err(GwError(
            StatusCode::BAD_REQUEST,
            "navigator.serviceWorker: registration is not allowed for this scope".into(),
        ));
    }
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let state = gw.api.clone();
    let names2 = names.clone();
    let only_if_cached = ask.only_if_cached;
    let type_name = ask
        .filename
        .clone()
        .or_else(|| names.last().cloned())
        .unwrap_or_default();
    // A whole file or CAR streams behind a bulk fetch when its DAG's top is not here; a HEAD
    // or a byte range is served from what it reads, fetched on demand.
    let whole = method == Method::GET && !headers.contains_key(header::RANGE);
    let deadline = std::time::Instant::now() + gw.limits.retrieval_timeout;
    // Resolve (fetching only the blocks on the path) within the retrieval timeout.
    let (names_ref, wants_json) = (&names, ask.wants_json);
    let work = async move {
        // Reads through this store fetch what is missing (a raw block, the path's blocks),
        // unless the client asked for what is here only.
        let store = if only_if_cached {
            state.repo.blocks().clone()
        } else {
            crate::api::reading_store_until(&state, Some(deadline))
        };
        let (path, terminal_data) = {
            let store = store.clone();
            blocking(move || {
                let err = |e| read_error(e, only_if_cached);
                let path = walk_path(store.as_ref(), root, &names2).map_err(err)?;
                let terminal = *path.last().unwrap_or(&root);
                // A dag-pb terminal is read here, before the listing's prefetch, whose errors
                // are the RPC's (a block that does not come is 502 or 504 here); it is
                // decoded below from these bytes, not read again.
                let data =
                    if format == Format::Unixfs && terminal.codec() == crate::dag::DAG_PB_CODEC {
                        Some(export::load_block(store.as_ref(), &terminal).map_err(err)?)
                    } else {
                        None
                    };
                Ok((path, data))
            })
            .await?
        };
        let terminal = *path.last().unwrap_or(&root);
        if format == Format::Unixfs && !only_if_cached {
            // A listing reads every entry's top block: fetched many at once, not in turn.
            crate::api::prefetch_dir_links(&state, terminal).await?;
        }
        let (terminal, resolved) = blocking(move || -> Result<_, GwError> {
            let err = |e| read_error(e, only_if_cached);
            let store = store.as_ref();
            Ok(match format {
                Format::Raw => {
                    let data = export::load_block(store, &terminal).map_err(err)?;
                    (terminal, Resolved::Raw(data))
                }
                Format::Car => {
                    // The root is here (or fetched) before the answer starts: a root that
                    // does not come is an error status, not a 200 with a cut body.
                    let data = export::load_block(store, &terminal).map_err(err)?;
                    // All of a DAG, or all of a file as its entity.
                    let whole_dag = car_req.bytes.is_none()
                        && match car_req.scope {
                            car::DagScope::All => true,
                            car::DagScope::Block => false,
                            car::DagScope::Entity => match export::decode_node(&terminal, data) {
                                Ok(export::Node::Raw(_)) => true,
                                Ok(export::Node::Pb { fs, .. }) => {
                                    matches!(fs.kind, DataType::File | DataType::Raw)
                                }
                                Err(_) => false,
                            },
                        };
                    (terminal, Resolved::Car { path, whole_dag })
                }
                Format::Unixfs => match terminal_data
                    .map_or_else(
                        || export::load(store, &terminal),
                        |data| export::decode_node(&terminal, data),
                    )
                    .map_err(err)?
                {
                    export::Node::Pb { fs, .. }
                        if matches!(fs.kind, DataType::Directory | DataType::HamtShard) =>
                    {
                        let index = match export::lookup(store, &terminal, "index.html") {
                            Ok(c) => {
                                let node = export::load(store, &c).map_err(err)?;
                                Some((c, crate::api::files::node_size(&c, &node)?))
                            }
                            Err(ExportError::NoSuchLink { .. }) => None,
                            Err(e) => return Err(err(e)),
                        };
                        let entries = if index.is_none() {
                            export::ls(store, &terminal).map_err(err)?
                        } else {
                            Vec::new()
                        };
                        (terminal, Resolved::Dir { entries, index })
                    }
                    node => {
                        let size = crate::api::files::node_size(&terminal, &node)?;
                        let content_type = match type_from_name(&type_name) {
                            Some(t) => t,
                            None => {
                                // No type in the name: the first bytes tell (one block's
                                // read, as kubo's gateway does).
                                let mut head = Vec::with_capacity(sniff::SNIFF_BYTES);
                                export::cat(
                                    store,
                                    &terminal,
                                    0,
                                    Some(sniff::SNIFF_BYTES as u64),
                                    &mut head,
                                )
                                .map_err(err)?;
                                sniff::sniff(&head).to_owned()
                            }
                        };
                        (terminal, Resolved::File { size, content_type })
                    }
                },
            })
        })
        .await?;
        let etag = etag_of(&resolved, &root, &terminal, names_ref, wants_json, &car_req);
        // A directory's path without its slash is redirected whatever the client holds.
        let redirect = matches!(resolved, Resolved::Dir { .. }) && !uri.path().ends_with('/');
        let not_modified = !redirect && if_none_match.is_some_and(|v| none_match(v, &etag));
        let read_whole = match &resolved {
            _ if not_modified => None,
            Resolved::File { .. }
            | Resolved::Car {
                whole_dag: true, ..
            } if whole => Some(terminal),
            Resolved::Dir {
                index: Some((c, _)),
                ..
            } if whole => Some(*c),
            _ => None,
        };
        let reader = match read_whole {
            Some(c) => Some(crate::api::read_dag(&state, c).await?),
            None => None,
        };
        Ok::<_, GwError>((terminal, resolved, etag, not_modified, reader))
    };
    let timed_out = || {
        GwError(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "retrieval of {} timed out after {:?}",
                uri.path(),
                gw.limits.retrieval_timeout
            ),
        )
    };
    let (terminal, resolved, etag, not_modified, reader) =
        match tokio::time::timeout(gw.limits.retrieval_timeout, work).await {
            Ok(Ok(r)) => r,
            // A read that gave up at the deadline may beat the timer to it.
            Ok(Err(_)) if std::time::Instant::now() >= deadline => return Err(timed_out()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(timed_out()),
        };
    let head = method == Method::HEAD;
    let mut h = HeaderMap::new();
    let put = |h: &mut HeaderMap, k: header::HeaderName, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    put(
        &mut h,
        header::HeaderName::from_static("x-ipfs-path"),
        uri.path().to_owned(),
    );
    put(
        &mut h,
        header::HeaderName::from_static("x-ipfs-roots"),
        root.to_string(),
    );
    put(&mut h, header::CACHE_CONTROL, IMMUTABLE.to_owned());
    put(&mut h, header::VARY, "Accept".to_owned());
    put(&mut h, header::ETAG, etag);
    if not_modified {
        return Ok((StatusCode::NOT_MODIFIED, h, Body::empty()).into_response());
    }
    // What the answer reads: behind the bulk fetch (which lives until the body is written), or
    // fetched as read (here only, for a HEAD under only-if-cached: no transfer at all).
    let store = match reader {
        Some(r) => r,
        None if ask.only_if_cached && head => {
            crate::api::DagReader::over(gw.api.repo.blocks().clone())
        }
        None => crate::api::read_parts(&gw.api),
    };
    // A file's own name for `Content-Disposition` (only asked for by `filename` or
    // `download`); raw blocks and CARs are always attachments.
    let file_disposition = |h: &mut HeaderMap| {
        if ask.filename.is_some() || ask.download {
            let kind = if ask.download { "attachment" } else { "inline" };
            let name = ask.filename.as_deref().or(names.last().map(String::as_str));
            put(
                h,
                header::CONTENT_DISPOSITION,
                content_disposition(kind, name),
            );
        }
    };
    match resolved {
        Resolved::Raw(data) => {
            if data.len() > GATEWAY_BLOCK_BYTES_MAX {
                return Err(GwError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("block exceeds {GATEWAY_BLOCK_BYTES_MAX} bytes"),
                ));
            }
            put(
                &mut h,
                header::CONTENT_TYPE,
                "application/vnd.ipld.raw".into(),
            );
            let name = ask.filename.clone().unwrap_or(format!("{terminal}.bin"));
            put(
                &mut h,
                header::CONTENT_DISPOSITION,
                content_disposition("attachment", Some(&name)),
            );
            put(
                &mut h,
                header::HeaderName::from_static("x-content-type-options"),
                "nosniff".into(),
            );
            put(&mut h, header::CONTENT_LENGTH, data.len().to_string());
            let body = if head {
                Body::empty()
            } else {
                Body::from(data)
            };
            Ok((StatusCode::OK, h, body).into_response())
        }
        Resolved::Car { path, .. } => {
            put(
                &mut h,
                header::CONTENT_TYPE,
                "application/vnd.ipld.car; version=1; order=dfs; dups=n".into(),
            );
            let name = ask.filename.clone().unwrap_or(format!("{root}.car"));
            put(
                &mut h,
                header::CONTENT_DISPOSITION,
                content_disposition("attachment", Some(&name)),
            );
            put(
                &mut h,
                header::HeaderName::from_static("x-content-type-options"),
                "nosniff".into(),
            );
            if head {
                return Ok((StatusCode::OK, h, Body::empty()).into_response());
            }
            let body = crate::api::stream::blocking_body(move |w| {
                car::write_car(&store, root, &path, car_req, w).map_err(|e| e.to_string())
            });
            Ok((StatusCode::OK, h, body).into_response())
        }
        Resolved::File { size, content_type } => {
            put(&mut h, header::CONTENT_TYPE, content_type);
            put(&mut h, header::ACCEPT_RANGES, "bytes".into());
            file_disposition(&mut h);
            serve_file(h, headers, store, terminal, size, head)
        }
        Resolved::Dir { entries, index } => {
            if !uri.path().ends_with('/') {
                let mut to = format!("{}/", uri.path());
                if let Some(q) = uri.query() {
                    to = format!("{to}?{q}");
                }
                put(&mut h, header::LOCATION, to);
                return Ok((StatusCode::MOVED_PERMANENTLY, h, Body::empty()).into_response());
            }
            if let Some((cid, size)) = index {
                put(
                    &mut h,
                    header::CONTENT_TYPE,
                    "text/html; charset=utf-8".into(),
                );
                put(&mut h, header::ACCEPT_RANGES, "bytes".into());
                file_disposition(&mut h);
                return serve_file(h, headers, store, cid, size, head);
            }
            let body = if ask.wants_json {
                put(&mut h, header::CONTENT_TYPE, "application/json".into());
                listing_json(&terminal, &entries)
            } else {
                put(
                    &mut h,
                    header::CONTENT_TYPE,
                    "text/html; charset=utf-8".into(),
                );
                listing_html(uri.path(), &terminal, &entries)
            };
            let body = if head {
                Body::empty()
            } else {
                Body::from(body)
            };
            Ok((StatusCode::OK, h, body).into_response())
        }
    }
}

/// A single byte range of a `size`-byte file: `Ok(None)` for no (or an ignored multi-)range,
/// `Err(())` for an unsatisfiable one.
fn parse_range(value: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // several ranges: answer the whole file (allowed by RFC 9110)
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size.saturating_sub(1))
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse::<u64>()
                .map_err(|_| ())?
                .min(size.saturating_sub(1))
        };
        (start, end)
    };
    if size == 0 || start >= size || start > end {
        return Err(());
    }
    Ok(Some((start, end)))
}

fn serve_file(
    mut h: HeaderMap,
    req: &HeaderMap,
    store: crate::api::DagReader,
    cid: Cid,
    size: u64,
    head: bool,
) -> Result<Response, GwError> {
    let range = match req.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(v) => match parse_range(v, size) {
            Ok(r) => r,
            Err(()) => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    h.insert(header::CONTENT_RANGE, v);
                }
                return Ok((StatusCode::RANGE_NOT_SATISFIABLE, h, Body::empty()).into_response());
            }
        },
        None => None,
    };
    let (status, offset, len) = match range {
        Some((start, end)) => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")) {
                h.insert(header::CONTENT_RANGE, v);
            }
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        None => (StatusCode::OK, 0, size),
    };
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if head {
        return Ok((status, h, Body::empty()).into_response());
    }
    let body = crate::api::stream::blocking_body(move |w| {
        store
            .cat(&cid, offset, Some(len), w)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    Ok((status, h, body).into_response())
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn listing_html(path: &str, cid: &Cid, entries: &[export::LsEntry]) -> String {
    let mut out = Vec::new();
    let p = html_escape(path);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{p}</title></head><body>\n<h1>Index of {p}</h1>\n<p><code>{cid}</code></p>\n<table>\n<tr><th>Name</th><th>CID</th><th>Size</th></tr>\n"
    );
    for e in entries.iter().take(GATEWAY_LISTING_ENTRIES_MAX) {
        let href: String =
            percent_encoding::utf8_percent_encode(&e.name, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let name = html_escape(&e.name);
        let (slash, size) = if e.kind == EntryKind::Directory {
            ("/", "-".to_owned())
        } else {
            ("", e.size.to_string())
        };
        let _ = writeln!(
            out,
            "<tr><td><a href=\"{href}{slash}\">{name}{slash}</a></td><td><code>{}</code></td><td>{size}</td></tr>",
            e.cid
        );
    }
    let _ = write!(out, "</table>\n</body></html>\n");
    String::from_utf8_lossy(&out).into_owned()
}

fn listing_json(cid: &Cid, entries: &[export::LsEntry]) -> String {
    let links: Vec<serde_json::Value> = entries
        .iter()
        .take(GATEWAY_LISTING_ENTRIES_MAX)
        .map(|e| {
            serde_json::json!({
                "Name": e.name,
                "Hash": e.cid.to_string(),
                "Size": e.size,
                "Type": match e.kind {
                    EntryKind::Directory => "directory",
                    EntryKind::Symlink => "symlink",
                    EntryKind::File | EntryKind::Raw => "file",
                },
            })
        })
        .collect();
    serde_json::json!({"Hash": cid.to_string(), "Links": links}).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=50-1000", 100), Ok(Some((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=5-1", 100), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
        assert_eq!(parse_range("bytes=x-1", 100), Err(()));
    }

    #[test]
    fn paths() {
        let c = "bafkqaaa";
        let (root, names) = parse_path(&format!("/ipfs/{c}/a%20b/./c")).unwrap();
        assert_eq!(root.to_string(), c);
        assert_eq!(names, vec!["a b", "c"]);
        assert!(parse_path(&format!("/ipfs/{c}/../x")).is_err());
        assert!(parse_path(&format!("/ipfs/{c}/a%2Fb")).is_err());
        assert!(parse_path("/ipfs/notacid").is_err());
        let long = format!("/ipfs/{c}/{}", "a".repeat(GATEWAY_PATH_BYTES_MAX));
        assert!(parse_path(&long).is_err());
    }

    #[test]
    fn if_none_match_compares_weakly() {
        let tag = "\"bafkqaaa\"";
        assert!(none_match("\"bafkqaaa\"", tag));
        assert!(none_match("W/\"bafkqaaa\"", tag));
        assert!(none_match("\"other\", \"bafkqaaa\"", tag));
        assert!(none_match("*", tag));
        assert!(none_match("\"bafkqaaa\"", "W/\"bafkqaaa\""));
        assert!(!none_match("\"other\"", tag));
        assert!(!none_match("", tag));
        assert!(!none_match("\"bafkqaaa.raw\"", tag));
    }

    #[test]
    fn dispositions_keep_names_safe_and_exact() {
        assert_eq!(content_disposition("attachment", None), "attachment");
        assert_eq!(
            content_disposition("inline", Some("a b.txt")),
            "inline; filename=\"a b.txt\""
        );
        // The spec's example: each non-ASCII character an `_`, the exact name percent-encoded.
        assert_eq!(
            content_disposition("inline", Some("testтест.pdf")),
            "inline; filename=\"test____.pdf\"; filename*=UTF-8''test%D1%82%D0%B5%D1%81%D1%82.pdf"
        );
        // Quotes, backslashes and control characters cannot end or break the header.
        assert_eq!(
            content_disposition("attachment", Some("x\"\\\n.bin")),
            "attachment; filename=\"x___.bin\"; filename*=UTF-8''x%22%5C%0A.bin"
        );
    }

    #[test]
    fn listing_escapes_names() {
        let e = export::LsEntry {
            name: "<script>".into(),
            cid: "bafkqaaa".parse().unwrap(),
            size: 3,
            tsize: 3,
            kind: EntryKind::File,
        };
        let cid = e.cid;
        let html = listing_html("/ipfs/x/", &cid, &[e]);
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
    }
}
