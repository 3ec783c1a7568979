//! The kubo-compatible HTTP RPC API (`/api/v0`), served by `ipfs-kit daemon`.
//!
//! Every command is `POST /api/v0/<command>` with kubo's argument names in the query string
//! (`arg` repeated for positional arguments) and, for uploads, a `multipart/form-data` body.
//! Answers use kubo's JSON shapes; errors are kubo's `{"Message","Code","Type":"error"}` with
//! kubo's status codes (500 for a failed command, 400 for a bad request). One file per command
//! group: [`files`] (add, cat, get, ls), [`blocks`] (block, dag), [`refs`] (refs, refs/local,
//! dag/stat), [`pins`] (pin, repo),
//! [`net`] (id, version, swarm, routing, bitswap, stats).
//!
//! The repository is synchronous: handlers run it on tokio's blocking pool and stream large
//! answers through a bounded channel ([`stream::ChannelWriter`]), so neither uploads nor
//! downloads are held whole in memory. Every request body is bounded by a named constant.
//!
//! [`server`] binds, authenticates (bearer token), shuts down gracefully and writes the
//! `<repo>/api` file that the CLI ([`client`]) uses to reach a running daemon.

pub mod blocks;
pub mod client;
pub mod error;
pub mod files;
pub mod net;
pub mod pins;
pub mod provide_stats;
pub mod refs;
pub mod server;
pub mod stream;
pub mod tiers;

pub use error::ApiError;

use crate::config::Role;
use crate::metrics::Metrics;
use crate::net::NodeHandle;
use crate::repo::Repo;
use crate::unixfs::export;
use axum::routing::post;
use axum::Router;
use cid::Cid;
use ipfs_kit_blockstore::Blockstore;
use std::sync::Arc;

pub use crate::net::on_demand::DagReader;

/// Largest body of a command that takes no upload (its arguments are in the query string).
pub const REQUEST_BODY_BYTES_MAX: usize = 64 * 1024;
/// Room for multipart boundaries and part headers around an uploaded block or DAG node.
pub const MULTIPART_OVERHEAD_BYTES_MAX: usize = 64 * 1024;
/// Largest `add` request body: the sum of every file uploaded in one request (64 GiB).
pub const ADD_REQUEST_BYTES_MAX: u64 = 64 * 1024 * 1024 * 1024;
/// Largest `dag/import` request body (64 GiB of CAR files).
pub const DAG_IMPORT_REQUEST_BYTES_MAX: u64 = 64 * 1024 * 1024 * 1024;
/// Most parts (files, directories, symlinks) in one `add` request.
pub const ADD_PARTS_MAX: usize = 1 << 20;
/// Longest path of one part in an `add` request.
pub const ADD_PART_PATH_BYTES_MAX: usize = 4096;
/// Most `arg` values (and other parameters) in one query string.
pub const QUERY_PARAMS_MAX: usize = 1024;
/// Longest query string accepted (below the 64 KiB URI cap of common HTTP clients).
pub const QUERY_BYTES_MAX: usize = 32 * 1024;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub repo: Repo,
    /// The network node (absent in offline tests of the API).
    pub node: Option<NodeHandle>,
    /// This node's public key, for `id`.
    pub public_key: Option<libp2p::identity::PublicKey>,
    pub role: Role,
    pub metrics: Arc<Metrics>,
    /// The previous `stats/bw` sample.
    pub bw: Arc<parking_lot::Mutex<net::BwSample>>,
    /// The sweeping reprovider: provide on add and pin goes through it, by the configured
    /// strategy, batched by keyspace region (absent: one DHT provide per root).
    pub reprovider: Option<crate::net::provide::Reprovider>,
    /// Cancelled by `shutdown`: the daemon stops as on SIGTERM (absent: `shutdown` is refused).
    pub shutdown: Option<tokio_util::sync::CancellationToken>,
}

impl ApiState {
    /// The network node, or kubo's error for a command that needs one.
    pub(crate) fn node(&self) -> Result<&NodeHandle, ApiError> {
        self.node
            .as_ref()
            .ok_or_else(|| ApiError::internal("this command must be run in online mode"))
    }
}

/// The `/api/v0` router (without authentication, metrics or limits: see [`server`]).
pub fn router(state: ApiState) -> Router {
    use axum::extract::DefaultBodyLimit;
    let upload = |bytes: u64| DefaultBodyLimit::max(usize::try_from(bytes).unwrap_or(usize::MAX));
    let block_put_bytes =
        (ipfs_kit_blockstore::limits::BLOCK_SIZE_BYTES_MAX + MULTIPART_OVERHEAD_BYTES_MAX) as u64;
    let dag_put_bytes =
        (crate::dag::codec::DAG_PUT_INPUT_BYTES_MAX + MULTIPART_OVERHEAD_BYTES_MAX) as u64;
    Router::new()
        .route(
            "/api/v0/add",
            post(files::add).layer(upload(ADD_REQUEST_BYTES_MAX)),
        )
        .route("/api/v0/cat", post(files::cat))
        .route("/api/v0/get", post(files::get))
        .route("/api/v0/ls", post(files::ls))
        .route("/api/v0/block/get", post(blocks::block_get))
        .route(
            "/api/v0/block/put",
            post(blocks::block_put).layer(upload(block_put_bytes)),
        )
        .route("/api/v0/block/stat", post(blocks::block_stat))
        .route("/api/v0/block/rm", post(blocks::block_rm))
        .route("/api/v0/dag/get", post(blocks::dag_get))
        .route(
            "/api/v0/dag/put",
            post(blocks::dag_put).layer(upload(dag_put_bytes)),
        )
        .route("/api/v0/dag/export", post(blocks::dag_export))
        .route("/api/v0/dag/stat", post(refs::dag_stat))
        .route("/api/v0/refs", post(refs::refs))
        .route("/api/v0/refs/local", post(refs::refs_local))
        .route(
            "/api/v0/dag/import",
            post(blocks::dag_import).layer(upload(DAG_IMPORT_REQUEST_BYTES_MAX)),
        )
        .route("/api/v0/pin/add", post(pins::pin_add))
        .route("/api/v0/pin/ls", post(pins::pin_ls))
        .route("/api/v0/pin/rm", post(pins::pin_rm))
        .route("/api/v0/pin/update", post(pins::pin_update))
        .route("/api/v0/repo/stat", post(pins::repo_stat))
        .route("/api/v0/repo/gc", post(pins::repo_gc))
        .route("/api/v0/repo/verify", post(pins::repo_verify))
        .route("/api/v0/repo/version", post(pins::repo_version))
        .route("/api/v0/stats/repo", post(pins::repo_stat))
        .route("/api/v0/stats/bitswap", post(net::bitswap_stat))
        .route("/api/v0/swarm/addrs", post(net::swarm_addrs))
        .route("/api/v0/swarm/addrs/local", post(net::swarm_addrs_local))
        .route("/api/v0/dag/resolve", post(blocks::dag_resolve))
        .route("/api/v0/shutdown", post(net::shutdown))
        .route("/api/v0/id", post(net::id))
        .route("/api/v0/version", post(net::version))
        .route("/api/v0/swarm/peers", post(net::swarm_peers))
        .route("/api/v0/swarm/connect", post(net::swarm_connect))
        .route("/api/v0/ping", post(net::ping))
        .route("/api/v0/swarm/peering/add", post(net::swarm_peering_add))
        .route("/api/v0/swarm/peering/ls", post(net::swarm_peering_ls))
        .route("/api/v0/swarm/peering/rm", post(net::swarm_peering_rm))
        .route("/api/v0/bootstrap", post(net::bootstrap_list))
        .route("/api/v0/bootstrap/list", post(net::bootstrap_list))
        .route("/api/v0/bootstrap/add", post(net::bootstrap_add))
        .route(
            "/api/v0/bootstrap/add/default",
            post(net::bootstrap_add_default),
        )
        .route("/api/v0/bootstrap/rm", post(net::bootstrap_rm))
        .route("/api/v0/bootstrap/rm/all", post(net::bootstrap_rm_all))
        .route("/api/v0/bitswap/ledger", post(net::bitswap_ledger))
        .route("/api/v0/swarm/disconnect", post(net::swarm_disconnect))
        .route("/api/v0/routing/findprovs", post(net::routing_findprovs))
        .route("/api/v0/routing/findpeer", post(net::routing_findpeer))
        .route("/api/v0/routing/provide", post(net::routing_provide))
        .route("/api/v0/bitswap/stat", post(net::bitswap_stat))
        .route("/api/v0/bitswap/wantlist", post(net::bitswap_wantlist))
        .route("/api/v0/stats/bw", post(net::stats_bw))
        .route("/api/v0/stats/provide", post(provide_stats::stats_provide))
        .route("/api/v0/tier/ls", post(tiers::tier_ls))
        .route("/api/v0/tier/stat", post(tiers::tier_stat))
        .route("/api/v0/tier/move", post(tiers::tier_move))
        .route("/api/v0/index/query", post(tiers::index_query))
        .route("/api/v0/index/export", post(tiers::index_export))
        .route(
            crate::metrics::METRICS_PATH,
            axum::routing::get(crate::metrics::serve).post(crate::metrics::serve),
        )
        .layer(DefaultBodyLimit::max(REQUEST_BODY_BYTES_MAX))
        .with_state(state)
}

// ------------------------------------------------------------------ arguments ----

/// The query string of a command: kubo's parameters, `arg` repeated for positional arguments.
#[derive(Clone, Debug, Default)]
pub struct Args {
    pairs: Vec<(String, String)>,
}

impl Args {
    /// Parses `a=1&arg=x&arg=y` (form encoding: `+` is a space, `%XX` a byte).
    pub fn parse(query: Option<&str>) -> Result<Args, ApiError> {
        let q = query.unwrap_or("");
        if q.len() > QUERY_BYTES_MAX {
            return Err(ApiError::bad_request(format!(
                "query string of {} bytes exceeds the {QUERY_BYTES_MAX}-byte limit",
                q.len()
            )));
        }
        let mut pairs = Vec::new();
        for part in q.split('&').filter(|p| !p.is_empty()) {
            if pairs.len() >= QUERY_PARAMS_MAX {
                return Err(ApiError::bad_request(format!(
                    "more than {QUERY_PARAMS_MAX} parameters"
                )));
            }
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((decode_component(k)?, decode_component(v)?));
        }
        Ok(Args { pairs })
    }

    /// Every value of `key`, in order.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Every parameter, in order (the cluster API's `meta-*` options).
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first `arg`, or kubo's 400 for a missing required argument named `name`.
    pub fn required_arg(&self, name: &str) -> Result<String, ApiError> {
        self.get("arg")
            .map(str::to_owned)
            .ok_or_else(|| ApiError::bad_request(format!("argument {name:?} is required")))
    }

    /// Every `arg`, at least one.
    pub fn required_args(&self, name: &str) -> Result<Vec<String>, ApiError> {
        let all = self.all("arg");
        if all.is_empty() {
            return Err(ApiError::bad_request(format!(
                "argument {name:?} is required"
            )));
        }
        Ok(all)
    }

    /// A boolean option: absent = `default`; `true`/`1`/empty = true; `false`/`0` = false.
    pub fn bool(&self, key: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(key) {
            None => Ok(default),
            Some("" | "true" | "1" | "True") => Ok(true),
            Some("false" | "0" | "False") => Ok(false),
            Some(other) => Err(ApiError::bad_request(format!(
                "could not convert value {other:?} to type bool (for option \"{key}\")"
            ))),
        }
    }

    /// An unsigned option.
    pub fn u64(&self, key: &str) -> Result<Option<u64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!(
                    "could not convert value {v:?} to type uint64 (for option \"{key}\")"
                ))
            }),
        }
    }

    /// A string option with a default.
    pub fn string(&self, key: &str, default: &str) -> String {
        self.get(key).unwrap_or(default).to_owned()
    }
}

fn decode_component(s: &str) -> Result<String, ApiError> {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| ApiError::bad_request("query string is not UTF-8"))
}

/// Parses a CID argument (`<cid>` or `/ipfs/<cid>`), as kubo words the error.
pub fn parse_cid(s: &str) -> Result<Cid, ApiError> {
    let t = s.strip_prefix("/ipfs/").unwrap_or(s);
    t.parse::<Cid>()
        .map_err(|e| ApiError::internal(format!("invalid path {s:?}: invalid cid: {e}")))
}

/// The root CID of an IPFS path (`<cid>[/..]` or `/ipfs/<cid>[/..]`).
pub fn path_root(path: &str) -> Result<Cid, ApiError> {
    let t = path.strip_prefix("/ipfs/").unwrap_or(path);
    let first = t.split('/').next().unwrap_or_default();
    first
        .parse::<Cid>()
        .map_err(|e| ApiError::internal(format!("invalid path {path:?}: invalid cid: {e}")))
}

/// Runs blocking repository work on tokio's blocking pool.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
}

/// Whether every block of the DAG under `root` is in the repository.
async fn dag_is_local(state: &ApiState, root: Cid) -> Result<bool, ApiError> {
    use crate::dag::links::{walk_cids_from, DagError, Visited};
    let repo = state.repo.clone();
    blocking(move || {
        let walk = walk_cids_from::<DagError, _>(
            repo.blocks().as_ref(),
            &[root],
            &mut Visited::new(),
            |_| Ok(()),
        );
        match walk {
            Ok(()) => Ok(true),
            Err(DagError::Missing(_)) => Ok(false),
            Err(e) => Err(ApiError::internal(e)),
        }
    })
    .await
}

/// Makes the DAG under `root` local when it is not, through the network node (bitswap), so
/// that a read can follow. The returned fetch keeps a temporary pin on the DAG while it
/// lives: hold it until the read (or the pin) is done. `None` when nothing was fetched.
pub async fn ensure_local(
    state: &ApiState,
    root: Cid,
) -> Result<Option<crate::net::fetch::FetchStats>, ApiError> {
    let Some(node) = &state.node else {
        return Ok(None);
    };
    if dag_is_local(state, root).await? {
        return Ok(None);
    }
    let stats = node.fetch_dag(root).await?;
    tracing::debug!(%root, blocks = stats.blocks_fetched, "fetched DAG for the API");
    Ok(Some(stats))
}

/// The repository's blocks for a reader: while the node runs, blocks missing here are
/// fetched from the network as the reader asks for them ([`crate::net::OnDemandStore`]; use it
/// from blocking threads only); offline, the repository's store.
pub fn reading_store(state: &ApiState) -> Arc<dyn Blockstore> {
    reading_store_until(state, None)
}

/// [`reading_store`] whose network reads give up at `deadline`
/// ([`crate::net::OnDemandStore::until`]).
pub fn reading_store_until(
    state: &ApiState,
    deadline: Option<std::time::Instant>,
) -> Arc<dyn Blockstore> {
    match &state.node {
        Some(node) => {
            let store = crate::net::OnDemandStore::new(
                state.repo.blocks().clone(),
                node.clone(),
                tokio::runtime::Handle::current(),
            );
            Arc::new(match deadline {
                Some(d) => store.until(d),
                None => store,
            })
        }
        None => state.repo.blocks().clone(),
    }
}

/// Resolves an IPFS path (`<cid>[/a/b]`, `/ipfs/<cid>[/a/b]`) to the CID it names, fetching
/// only the blocks on the way (not the DAG under the root, as kubo does).
pub async fn resolve(state: &ApiState, path: &str) -> Result<Cid, ApiError> {
    let store = reading_store(state);
    let path = path.to_owned();
    blocking(move || Ok(export::resolve_path(store.as_ref(), &path)?)).await
}

/// A [`DagReader`] for a reader of some blocks of a DAG (a byte range, a listing): no bulk
/// fetch, misses fetched as read, several at once with a running node.
pub fn read_parts(state: &ApiState) -> DagReader {
    match state.node {
        Some(_) => DagReader::fetching(reading_store(state)),
        None => DagReader::over(reading_store(state)),
    }
}

/// Gets ready to read all of the DAG under `cid` (a file's bytes, a tar, a CAR) while it
/// arrives: [`crate::net::on_demand::read_dag`] with a running node, the repository's store
/// offline.
pub async fn read_dag(state: &ApiState, cid: Cid) -> Result<DagReader, ApiError> {
    match &state.node {
        Some(node) => {
            Ok(crate::net::on_demand::read_dag(node, state.repo.blocks().clone(), cid).await?)
        }
        None => Ok(DagReader::over(state.repo.blocks().clone())),
    }
}

/// Most blocks [`prefetch_dir_links`] fetches at once.
pub const DIR_PREFETCH_CONCURRENCY: usize = 32;

/// When `cid` is a UnixFS directory (plain or a HAMT shard), fetches the blocks it links to
/// that are not here — its entries' top blocks, or the shard's children — up to
/// [`DIR_PREFETCH_CONCURRENCY`] at once, so that a listing reads them here rather than
/// fetching one after the other. A dag-pb `cid` is fetched when missing. Offline, or for
/// anything else than a directory, nothing more; a block that cannot be fetched is left for
/// the reader to report.
pub async fn prefetch_dir_links(state: &ApiState, cid: Cid) -> Result<(), ApiError> {
    use futures::StreamExt as _;
    let Some(node) = &state.node else {
        return Ok(());
    };
    // Only dag-pb can be a directory: a raw block (a whole small file) is neither fetched nor
    // read (and hashed) here for nothing.
    if cid.codec() != crate::dag::DAG_PB_CODEC {
        return Ok(());
    }
    ensure_block(state, cid).await?;
    let repo = state.repo.clone();
    let missing = blocking(move || {
        let store = repo.blocks();
        let Some(data) = store.get(&cid)? else {
            return Ok(Vec::new());
        };
        let Ok(export::Node::Pb { node, fs }) = export::decode_node(&cid, data) else {
            return Ok(Vec::new());
        };
        use crate::dag::unixfs_pb::DataType;
        if !matches!(fs.kind, DataType::Directory | DataType::HamtShard) {
            return Ok(Vec::new());
        }
        let mut missing = Vec::new();
        for l in node.links {
            if !store.has(&l.cid)? {
                missing.push(l.cid);
            }
        }
        Ok(missing)
    })
    .await?;
    futures::stream::iter(missing)
        .map(|c| node.fetch_block(c))
        .buffer_unordered(DIR_PREFETCH_CONCURRENCY)
        .for_each(|_| async {})
        .await;
    Ok(())
}

/// Makes one block local (fetching it through bitswap when it is not).
pub async fn ensure_block(state: &ApiState, cid: Cid) -> Result<(), ApiError> {
    let Some(node) = &state.node else {
        return Ok(());
    };
    let repo = state.repo.clone();
    if blocking(move || Ok(repo.blocks().has(&cid)?)).await? {
        return Ok(());
    }
    node.fetch_block(cid).await?;
    Ok(())
}

/// Announces `cid` to the DHT after an add or a pin (kubo's provide-on-add). A failure is
/// logged, not returned: the content is stored and pinned either way, and the reprovider
/// tries again later.
pub async fn provide(state: &ApiState, cid: Cid) {
    if let Some(reprovider) = &state.reprovider {
        let (reprovider, repo) = (reprovider.clone(), state.repo.clone());
        // Listing the DAG's keys reads its blocks: the answer does not wait for it.
        tokio::spawn(async move {
            if let Err(e) = reprovider.provide_root(&repo, cid).await {
                tracing::debug!(%cid, error = %e, "provide failed");
            }
        });
        return;
    }
    if let Some(node) = &state.node {
        let node = node.clone();
        // Providing walks the DHT and can take many seconds; the answer does not wait for it.
        tokio::spawn(async move {
            if let Err(e) = node.provide(cid).await {
                tracing::debug!(%cid, error = %e, "provide failed");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn args_parse_repeated_and_encoded() {
        let a = Args::parse(Some("arg=a%2Fb&arg=c+d&pin=false&x")).unwrap();
        assert_eq!(a.all("arg"), vec!["a/b", "c d"]);
        assert!(!a.bool("pin", true).unwrap());
        assert!(a.bool("x", false).unwrap());
        assert!(a.bool("y", true).unwrap());
        assert!(a.u64("pin").is_err());
        assert_eq!(a.required_arg("key").unwrap(), "a/b");
        let none = Args::parse(None).unwrap();
        assert_eq!(none.required_arg("key").unwrap_err().status().as_u16(), 400);
    }

    #[test]
    fn args_bounded() {
        let many = vec!["arg=x"; QUERY_PARAMS_MAX + 1].join("&");
        assert_eq!(Args::parse(Some(&many)).unwrap_err().status().as_u16(), 400);
        let long = "a".repeat(QUERY_BYTES_MAX + 1);
        assert!(Args::parse(Some(&long)).is_err());
    }
}
