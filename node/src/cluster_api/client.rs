//! A blocking client of a running daemon's cluster REST API, for `ipfs-kit cluster ...`.
//!
//! It finds the API the way the RPC client does: `<repo>/cluster-api` holds its address as a
//! multiaddr while the daemon runs. The token is `IPFS_KIT_API_TOKEN`, else the config's
//! `api.token`. Errors from the daemon carry ipfs-cluster's `message`.

use std::path::Path;

use super::server::CLUSTER_API_FILE;
use crate::api::client::{
    api_token, failure, http_client, json_body, json_lines, read_api_file, with_token, ApiFileError,
};

/// How long a connection attempt to the daemon may take.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Errors talking to the cluster API.
#[derive(Debug, thiserror::Error)]
pub enum ClusterClientError {
    #[error("no cluster API running for {0} (start `ipfs-kit daemon` with role master or worker)")]
    NoDaemon(String),
    #[error(transparent)]
    ApiFile(#[from] ApiFileError),
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
        let http = http_client(CONNECT_TIMEOUT)?;
        Ok(Self {
            base: format!("http://{addr}"),
            token,
            http,
        })
    }

    /// The cluster API of the daemon running on the repository at `repo`.
    pub fn from_repo(repo: &Path) -> Result<Self, ClusterClientError> {
        let addr = read_api_file(repo, CLUSTER_API_FILE)?
            .ok_or_else(|| ClusterClientError::NoDaemon(repo.display().to_string()))?;
        Self::new(addr, api_token(repo))
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        with_token(
            self.http.request(method, format!("{}{path}", self.base)),
            &self.token,
        )
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
        one(self.send(self.request(reqwest::Method::GET, path))?)
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
        one(self.send(r)?)
    }

    /// `POST path` → a stream of JSON values.
    pub fn post_lines(&self, path: &str) -> Result<Vec<serde_json::Value>, ClusterClientError> {
        lines(self.send(self.request(reqwest::Method::POST, path))?)
    }

    /// `DELETE path` → one JSON value.
    pub fn delete(&self, path: &str) -> Result<serde_json::Value, ClusterClientError> {
        one(self.send(self.request(reqwest::Method::DELETE, path))?)
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
        let v = one(self.send(r)?)?;
        v["imported"]
            .as_u64()
            .ok_or_else(|| ClusterClientError::Answer(v.to_string()))
    }
}

/// An answer holding one JSON value.
fn one(r: reqwest::blocking::Response) -> Result<serde_json::Value, ClusterClientError> {
    json_body(r).map_err(ClusterClientError::Answer)
}

fn lines(r: reqwest::blocking::Response) -> Result<Vec<serde_json::Value>, ClusterClientError> {
    if r.status() == reqwest::StatusCode::NO_CONTENT {
        return Ok(Vec::new());
    }
    json_lines(r)
        .collect::<Result<_, _>>()
        .map_err(ClusterClientError::Answer)
}

fn api_error(r: reqwest::blocking::Response) -> ClusterClientError {
    let (status, message) = failure(r, "message");
    ClusterClientError::Api { status, message }
}
