//! Running the API and gateway servers: binding, bearer-token authentication, request
//! metrics, the `<repo>/api` file and graceful shutdown.
//!
//! Both servers bind loopback by default. Binding any other address requires a token (the
//! daemon refuses to start without one, [`ServerError::TokenRequired`]); with a token set,
//! every request must carry `Authorization: Bearer <token>` or gets 401. While the API
//! serves, `<repo>/api` holds its address as a multiaddr (as kubo's `$IPFS_PATH/api`), which
//! the CLI reads to reach the daemon; [`Servers::shutdown`] stops accepting, lets in-flight
//! requests finish (up to [`SHUTDOWN_GRACE`]) and removes the file.

use super::{ApiError, ApiState};
use crate::gateway::{self, GatewayLimits};
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The file in the repository holding the running API's address.
pub const API_FILE: &str = "api";
/// How long shutdown waits for in-flight requests before it drops them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// The environment variable that supplies the API token (over `api.token` in the config).
pub const ENV_API_TOKEN: &str = "IPFS_KIT_API_TOKEN";

/// Errors from starting the servers.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{what} address {addr} is not loopback: set an API token (api.token or {ENV_API_TOKEN}) to bind it")]
    TokenRequired {
        what: &'static str,
        addr: SocketAddr,
    },
    #[error("binding the {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    ApiFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How to run the servers.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub api_addr: SocketAddr,
    /// `None`: no gateway.
    pub gateway_addr: Option<SocketAddr>,
    pub token: Option<String>,
    pub gateway_limits: GatewayLimits,
}

/// The running servers.
pub struct Servers {
    pub api_addr: SocketAddr,
    pub gateway_addr: Option<SocketAddr>,
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    api_file: PathBuf,
}

/// The multiaddr form of a socket address (`/ip4/127.0.0.1/tcp/5001`), as kubo writes it.
pub fn socket_multiaddr(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("/ip4/{}/tcp/{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("/ip6/{}/tcp/{}", a.ip(), a.port()),
    }
}

/// The servers' settings for a daemon: `config.toml`, the environment (`IPFS_KIT_API`,
/// `IPFS_KIT_GATEWAY`, [`ENV_API_TOKEN`]), then the daemon's `--api`/`--gateway` flags;
/// validated, so a non-loopback address without a token is refused here. Also returns the
/// role, which the API reports.
pub fn serve_options(
    repo: &Path,
    api_flag: Option<String>,
    gateway_flag: Option<String>,
    gateway_limits: GatewayLimits,
) -> Result<(ServeOptions, crate::config::Role), crate::config::ConfigError> {
    let mut config = crate::config::Config::load_with_env(repo)?;
    if let Ok(token) = std::env::var(ENV_API_TOKEN) {
        if !token.is_empty() {
            config.api.token = Some(token);
        }
    }
    config.apply_overrides(&crate::config::Overrides {
        api: api_flag,
        gateway: gateway_flag,
        ..Default::default()
    });
    let settings = config.resolve()?;
    let opts = ServeOptions {
        api_addr: settings.api_addr,
        gateway_addr: Some(settings.gateway_addr),
        token: settings.api_token,
        gateway_limits,
    };
    check_token(&opts).map_err(|e| crate::config::ConfigError::BadValue {
        key: "api.token".into(),
        message: e.to_string(),
    })?;
    Ok((opts, settings.role))
}

/// Checks that every non-loopback address has a token to protect it.
pub fn check_token(opts: &ServeOptions) -> Result<(), ServerError> {
    if opts.token.is_some() {
        return Ok(());
    }
    let mut addrs = vec![("API", opts.api_addr)];
    if let Some(g) = opts.gateway_addr {
        addrs.push(("gateway", g));
    }
    for (what, addr) in addrs {
        if !addr.ip().is_loopback() {
            return Err(ServerError::TokenRequired { what, addr });
        }
    }
    Ok(())
}

async fn bind(
    what: &'static str,
    addr: SocketAddr,
) -> Result<tokio::net::TcpListener, ServerError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { what, addr, source })
}

/// Starts the API (and the gateway) and writes `<repo>/api`.
pub async fn start(state: ApiState, opts: ServeOptions) -> Result<Servers, ServerError> {
    check_token(&opts)?;
    let token: Option<Arc<str>> = opts.token.as_deref().map(Arc::from);
    let cancel = CancellationToken::new();
    let mut tasks = Vec::new();

    let api_listener = bind("API", opts.api_addr).await?;
    let api_addr = api_listener
        .local_addr()
        .map_err(|source| ServerError::Bind {
            what: "API",
            addr: opts.api_addr,
            source,
        })?;
    let api = protect(
        super::router(state.clone()).layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_api,
        )),
        token.clone(),
    );
    tasks.push(spawn_server(api_listener, api, cancel.clone()));

    let mut gateway_addr = None;
    if let Some(addr) = opts.gateway_addr {
        let listener = bind("gateway", addr).await?;
        gateway_addr = Some(listener.local_addr().map_err(|source| ServerError::Bind {
            what: "gateway",
            addr,
            source,
        })?);
        let gw = protect(
            gateway::router(state.clone(), opts.gateway_limits.clone()),
            token.clone(),
        );
        tasks.push(spawn_server(listener, gw, cancel.clone()));
    }

    let api_file = state.repo.path().join(API_FILE);
    write_api_file(&api_file, api_addr)?;
    Ok(Servers {
        api_addr,
        gateway_addr,
        cancel,
        tasks,
        api_file,
    })
}

fn write_api_file(path: &Path, addr: SocketAddr) -> Result<(), ServerError> {
    let tmp = path.with_extension("tmp");
    let err = |source| ServerError::ApiFile {
        path: path.to_owned(),
        source,
    };
    std::fs::write(&tmp, socket_multiaddr(addr)).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

fn spawn_server(
    listener: tokio::net::TcpListener,
    router: Router,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(cancel.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "HTTP server stopped with an error");
        }
    })
}

impl Servers {
    /// Stops accepting, waits for in-flight requests (up to [`SHUTDOWN_GRACE`]), removes the
    /// api file.
    pub async fn shutdown(self) {
        // The file goes first: a CLI started from now on opens the repository itself once
        // the daemon's lock is released, rather than calling a server that is going away.
        if let Err(e) = std::fs::remove_file(&self.api_file) {
            tracing::warn!(path = %self.api_file.display(), error = %e, "removing the api file");
        }
        self.cancel.cancel();
        let all = futures::future::join_all(self.tasks);
        if tokio::time::timeout(SHUTDOWN_GRACE, all).await.is_err() {
            tracing::warn!("in-flight HTTP requests did not finish within {SHUTDOWN_GRACE:?}");
        }
    }
}

/// Adds the bearer-token check when a token is set.
fn protect(router: Router, token: Option<Arc<str>>) -> Router {
    match token {
        Some(t) => router.layer(axum::middleware::from_fn_with_state(t, require_token)),
        None => router,
    }
}

/// Constant-time comparison (the length is not secret).
fn same_token(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Whether the request carries `Authorization: Bearer <token>` (compared in constant time).
/// Shared by the RPC API and the cluster REST API, which differ only in their error bodies.
pub(crate) fn bearer_matches(headers: &header::HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| same_token(t.trim().as_bytes(), token.as_bytes()))
}

async fn require_token(State(token): State<Arc<str>>, req: Request, next: Next) -> Response {
    if !bearer_matches(req.headers(), &token) {
        let mut resp = ApiError::unauthorized().into_response();
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return resp;
    }
    next.run(req).await
}

async fn count_api(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let command = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_owned(), |m| m.as_str().to_owned());
    let resp = next.run(req).await;
    state
        .metrics
        .http_request("api", &command, resp.status().as_u16());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison_and_loopback_rule() {
        assert!(same_token(b"abcdefghijklmnop", b"abcdefghijklmnop"));
        assert!(!same_token(b"abcdefghijklmnoq", b"abcdefghijklmnop"));
        assert!(!same_token(b"abc", b"abcdefghijklmnop"));
        let mut opts = ServeOptions {
            api_addr: "127.0.0.1:0"
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))),
            gateway_addr: Some(SocketAddr::from(([0, 0, 0, 0], 0))),
            token: None,
            gateway_limits: GatewayLimits::default(),
        };
        assert!(matches!(
            check_token(&opts),
            Err(ServerError::TokenRequired {
                what: "gateway",
                ..
            })
        ));
        opts.token = Some("0123456789abcdef".into());
        assert!(check_token(&opts).is_ok());
        opts.token = None;
        opts.gateway_addr = Some(SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert!(check_token(&opts).is_ok());
        assert_eq!(
            socket_multiaddr(SocketAddr::from(([127, 0, 0, 1], 5001))),
            "/ip4/127.0.0.1/tcp/5001"
        );
    }
}
