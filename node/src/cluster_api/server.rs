//! Serving the cluster REST API: binding (loopback unless a token is set, as the RPC API),
//! bearer-token authentication with ipfs-cluster's 401 answer, the `<repo>/cluster-api` file
//! the CLI reads, and graceful shutdown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;

use super::{ClusterApiState, RestError};

/// The file in the repository holding the running cluster API's address (a multiaddr, as
/// `<repo>/api` holds the RPC API's).
pub const CLUSTER_API_FILE: &str = "cluster-api";

/// Errors from starting the cluster API.
#[derive(Debug, thiserror::Error)]
pub enum ClusterServerError {
    #[error("cluster API address {0} is not loopback: set an API token (api.token or IPFS_KIT_API_TOKEN) to bind it")]
    TokenRequired(SocketAddr),
    #[error("binding the cluster API on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {path}")]
    ApiFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The running cluster API.
pub struct ClusterServer {
    pub addr: SocketAddr,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    api_file: PathBuf,
}

/// Binds `addr` and serves the cluster API; writes `<repo>/cluster-api`.
pub async fn start(
    state: ClusterApiState,
    addr: SocketAddr,
    token: Option<String>,
    repo: &Path,
) -> Result<ClusterServer, ClusterServerError> {
    if token.is_none() && !addr.ip().is_loopback() {
        return Err(ClusterServerError::TokenRequired(addr));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ClusterServerError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ClusterServerError::Bind { addr, source })?;
    let mut router = super::router(state);
    if let Some(t) = token {
        let t: Arc<str> = Arc::from(t);
        router = router.layer(axum::middleware::from_fn_with_state(t, require_token));
    }
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "cluster API stopped with an error");
        }
    });
    let api_file = repo.join(CLUSTER_API_FILE);
    let tmp = api_file.with_extension("tmp");
    let err = |source| ClusterServerError::ApiFile {
        path: api_file.clone(),
        source,
    };
    std::fs::write(&tmp, crate::api::server::socket_multiaddr(bound)).map_err(err)?;
    std::fs::rename(&tmp, &api_file).map_err(err)?;
    Ok(ClusterServer {
        addr: bound,
        cancel,
        task,
        api_file,
    })
}

impl ClusterServer {
    /// Removes the file, stops accepting, waits for in-flight requests (up to the RPC API's
    /// grace period).
    pub async fn shutdown(self) {
        if let Err(e) = std::fs::remove_file(&self.api_file) {
            tracing::warn!(path = %self.api_file.display(), error = %e, "removing the cluster-api file");
        }
        self.cancel.cancel();
        if tokio::time::timeout(crate::api::server::SHUTDOWN_GRACE, self.task)
            .await
            .is_err()
        {
            tracing::warn!("in-flight cluster API requests did not finish in time");
        }
    }
}

async fn require_token(State(token): State<Arc<str>>, req: Request, next: Next) -> Response {
    if !crate::api::server::bearer_matches(req.headers(), &token) {
        let mut resp = RestError::new(StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return resp;
    }
    next.run(req).await
}
