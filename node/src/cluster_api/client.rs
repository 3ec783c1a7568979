//! A blocking client of a running daemon's cluster REST API, for `ipfs-kit cluster ...`.
//!
//! It finds the API the way the RPC client does: `<repo>/cluster-api` holds its address as a
//! multiaddr while the daemon runs. The token is `IPFS_KIT_API_TOKEN`, else the config's
//! `api.token`. Errors from the daemon carry ipfs-cluster's `message`.

use std::path::Path;

use super::server::CLUSTER_API_FILE;
use crate::api::client::{parse_api_multiaddr, API_FILE_BYTES_MAX, ERROR_BODY_BYTES_MAX};
use crate::api::server::ENV_API_TOKEN;

/// How long a connection attempt to the daemon may take.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Longest answer line read from a stream (a `GlobalPinInfo` of 256 peers is ~100 KiB).
pub const ANSWER_LINE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Errors talking to the cluster API.
#[derive(Debug, thiserror::Error)]
pub enum ClusterClientError {
    #[error("no cluster API running for {0} (start `ipfs-kit daemon` with role master or worker)")]
    NoDaemon(String),
    #[error("{path}: {reason}")]
    ApiFile { path: String, reason: String },
    #[error("calling the cluster API: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{message}")]
    Api { status: u16, message: String },
    #[error("bad answer from the cluster API: {0}")]
    Answer(String),
}

/// A client of one daemon's cluster API.
#[derive(Clone, Debug)]
pub struct ClusterClient {
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

impl ClusterClient {
    /// A client for the API at `addr`.
    pub fn new(
        addr: std::net::SocketAddr,
        token: Option<String>,
    ) -> Result<Self, ClusterClientError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(None)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()?;
        Ok(Self {
            base: format!("http://{addr}"),
            token,
            http,
        })
    }

    /// The cluster API of the daemon running on the repository at `repo`.
    pub fn from_repo(repo: &Path) -> Result<Self, ClusterClientError> {
        use std::io::Read as _;
        let path = repo.join(CLUSTER_API_FILE);
        let shown = path.display().to_string();
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ClusterClientError::NoDaemon(repo.display().to_string()))
            }
            Err(e) => {
                return Err(ClusterClientError::ApiFile {
                    path: shown,
                    reason: e.to_string(),
                })
            }
        };
        let mut text = String::new();
        file.take(API_FILE_BYTES_MAX)
            .read_to_string(&mut text)
            .map_err(|e| ClusterClientError::ApiFile {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        let addr = parse_api_multiaddr(&text).ok_or_else(|| ClusterClientError::ApiFile {
            path: shown,
            reason: format!("not an API address: {:?}", text.trim()),
        })?;
        let token = std::env::var(ENV_API_TOKEN)
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| {
                crate::config::Config::load_with_env(repo)
                    .ok()
                    .and_then(|c| c.api.token)
            });
        Self::new(addr, token)
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    fn send(
        &self,
        r: reqwest::blocking::RequestBuilder,
    ) -> Result<reqwest::blocking::Response, ClusterClientError> {
        let resp = r.send().map_err(|e| {
            if e.is_connect() {
                ClusterClientError::NoDaemon(format!("{} ({e})", self.base))
            } else {
                e.into()
            }
        })?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(api_error(resp))
        }
    }

    /// `GET path` → one JSON value.
    pub fn get(&self, path: &str) -> Result<serde_json::Value, ClusterClientError> {
        Ok(self
            .send(self.request(reqwest::Method::GET, path))?
            .json()?)
    }

    /// `GET path` → a stream of JSON values (none on 204).
    pub fn get_lines(&self, path: &str) -> Result<Vec<serde_json::Value>, ClusterClientError> {
        lines(self.send(self.request(reqwest::Method::GET, path))?)
    }

    /// `POST path?query` → one JSON value.
    pub fn post(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<serde_json::Value, ClusterClientError> {
        let r = self.request(reqwest::Method::POST, path).query(query);
        Ok(self.send(r)?.json()?)
    }

    /// `POST path` → a stream of JSON values.
    pub fn post_lines(&self, path: &str) -> Result<Vec<serde_json::Value>, ClusterClientError> {
        lines(self.send(self.request(reqwest::Method::POST, path))?)
    }

    /// `DELETE path` → one JSON value.
    pub fn delete(&self, path: &str) -> Result<serde_json::Value, ClusterClientError> {
        Ok(self
            .send(self.request(reqwest::Method::DELETE, path))?
            .json()?)
    }

    /// `GET /state/export`, copied to `out`.
    pub fn export(&self, out: &mut dyn std::io::Write) -> Result<u64, ClusterClientError> {
        let mut r = self.send(self.request(reqwest::Method::GET, "/state/export"))?;
        r.copy_to(out).map_err(ClusterClientError::Http)
    }

    /// `POST /state/import` with `body` (JSON lines); the number of pins imported.
    pub fn import(&self, body: reqwest::blocking::Body) -> Result<u64, ClusterClientError> {
        let r = self
            .request(reqwest::Method::POST, "/state/import")
            .header("content-type", "application/x-ndjson")
            .body(body);
        let v: serde_json::Value = self.send(r)?.json()?;
        v["imported"]
            .as_u64()
            .ok_or_else(|| ClusterClientError::Answer(v.to_string()))
    }
}

fn lines(r: reqwest::blocking::Response) -> Result<Vec<serde_json::Value>, ClusterClientError> {
    use std::io::BufRead as _;
    if r.status() == reqwest::StatusCode::NO_CONTENT {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut reader = std::io::BufReader::new(r);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = std::io::Read::take(&mut reader, ANSWER_LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| ClusterClientError::Answer(e.to_string()))?;
        if n == 0 {
            break;
        }
        if line.len() > ANSWER_LINE_BYTES_MAX {
            return Err(ClusterClientError::Answer(format!(
                "a line over {ANSWER_LINE_BYTES_MAX} bytes"
            )));
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        out.push(
            serde_json::from_slice(&line).map_err(|e| ClusterClientError::Answer(e.to_string()))?,
        );
    }
    Ok(out)
}

fn api_error(r: reqwest::blocking::Response) -> ClusterClientError {
    use std::io::Read as _;
    let status = r.status().as_u16();
    let mut body = Vec::new();
    let _ = r.take(ERROR_BODY_BYTES_MAX).read_to_end(&mut body);
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
    ClusterClientError::Api { status, message }
}
