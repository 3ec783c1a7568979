//! A blocking client of the daemon's RPC API, used by the CLI while a daemon holds the
//! repository (as kubo's CLI talks to `$IPFS_PATH/api`).
//!
//! [`ApiClient::from_repo`] reads `<repo>/api` (a multiaddr such as `/ip4/127.0.0.1/tcp/5001`)
//! and asks the daemon for its version: a missing file, or a stale one left by a daemon that
//! died, means "no daemon" and the CLI opens the repository itself. Errors from the daemon are
//! kubo's JSON and come back as [`ClientError::Api`] with the daemon's message.

use std::path::Path;
use std::time::Duration;

use super::server::{API_FILE, ENV_API_TOKEN};

/// Longest `<repo>/api` file read.
pub const API_FILE_BYTES_MAX: u64 = 1024;
/// How long the CLI waits for a daemon to answer its first request before deciding it is gone.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest error body read from the daemon.
pub const ERROR_BODY_BYTES_MAX: u64 = 64 * 1024;

/// Errors talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{path}: {reason}")]
    ApiFile { path: String, reason: String },
    #[error("calling the daemon: {0}")]
    Http(#[from] reqwest::Error),
    /// The daemon's own error message (kubo's `Message`).
    #[error("{message}")]
    Api { status: u16, message: String },
}

/// A client of one running daemon.
#[derive(Clone, Debug)]
pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

/// `/ip4/<ip>/tcp/<port>` (or ip6) → `ip:port`; an unspecified address means loopback.
pub fn parse_api_multiaddr(text: &str) -> Option<std::net::SocketAddr> {
    let parts: Vec<&str> = text.trim().split('/').collect();
    match parts.as_slice() {
        ["", proto @ ("ip4" | "ip6"), ip, "tcp", port, ..] => {
            let mut ip: std::net::IpAddr = ip.parse().ok()?;
            if ip.is_unspecified() {
                ip = if *proto == "ip4" {
                    std::net::Ipv4Addr::LOCALHOST.into()
                } else {
                    std::net::Ipv6Addr::LOCALHOST.into()
                };
            }
            Some(std::net::SocketAddr::new(ip, port.parse().ok()?))
        }
        _ => None,
    }
}

impl ApiClient {
    /// A client for the API at `addr`, sending `token` as a bearer token when set.
    pub fn new(addr: std::net::SocketAddr, token: Option<String>) -> Result<Self, ClientError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(None)
            .connect_timeout(PROBE_TIMEOUT)
            .build()?;
        Ok(Self {
            base: format!("http://{addr}"),
            token,
            http,
        })
    }

    /// The daemon of the repository at `repo`, if one is running and answers.
    pub fn from_repo(repo: &Path) -> Result<Option<Self>, ClientError> {
        use std::io::Read as _;
        let path = repo.join(API_FILE);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(ClientError::ApiFile {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })
            }
        };
        let mut text = String::new();
        file.take(API_FILE_BYTES_MAX)
            .read_to_string(&mut text)
            .map_err(|e| ClientError::ApiFile {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        let addr = parse_api_multiaddr(&text).ok_or_else(|| ClientError::ApiFile {
            path: path.display().to_string(),
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
        let client = Self::new(addr, token)?;
        // A stale file (the daemon was killed) must not stop the CLI: no answer, no daemon.
        let probe = client.request("version").timeout(PROBE_TIMEOUT).send();
        match probe {
            Ok(r) if r.status().is_success() => Ok(Some(client)),
            Ok(r) => Err(api_error(r)),
            Err(e) if e.is_connect() || e.is_timeout() => {
                tracing::debug!(addr = %addr, error = %e, "stale api file, no daemon");
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn request(&self, command: &str) -> reqwest::blocking::RequestBuilder {
        let r = self.http.post(format!("{}/api/v0/{command}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Calls `command` with query `args`; the answer if it succeeded, else the daemon's error.
    pub fn call(
        &self,
        command: &str,
        args: &[(&str, String)],
    ) -> Result<reqwest::blocking::Response, ClientError> {
        check(self.request(command).query(args).send()?)
    }

    /// Calls `command` with a multipart upload.
    pub fn upload(
        &self,
        command: &str,
        args: &[(&str, String)],
        form: reqwest::blocking::multipart::Form,
    ) -> Result<reqwest::blocking::Response, ClientError> {
        check(self.request(command).query(args).multipart(form).send()?)
    }

    /// Calls `command` and parses its JSON answer.
    pub fn json(
        &self,
        command: &str,
        args: &[(&str, String)],
    ) -> Result<serde_json::Value, ClientError> {
        Ok(self.call(command, args)?.json()?)
    }
}

fn check(r: reqwest::blocking::Response) -> Result<reqwest::blocking::Response, ClientError> {
    if r.status().is_success() {
        Ok(r)
    } else {
        Err(api_error(r))
    }
}

fn api_error(r: reqwest::blocking::Response) -> ClientError {
    use std::io::Read as _;
    let status = r.status().as_u16();
    let mut body = Vec::new();
    let _ = r.take(ERROR_BODY_BYTES_MAX).read_to_end(&mut body);
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("Message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
    ClientError::Api { status, message }
}

/// Reads NDJSON lines from an answer, one JSON value each.
pub fn ndjson_lines(
    r: reqwest::blocking::Response,
) -> impl Iterator<Item = Result<serde_json::Value, ClientError>> {
    use std::io::BufRead as _;
    std::io::BufReader::new(r)
        .lines()
        .filter(|l| !matches!(l, Ok(s) if s.trim().is_empty()))
        .map(|l| {
            let l = l.map_err(|e| ClientError::Api {
                status: 0,
                message: format!("reading the answer: {e}"),
            })?;
            serde_json::from_str(&l).map_err(|e| ClientError::Api {
                status: 0,
                message: format!("bad answer line {l:?}: {e}"),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_file_addresses() {
        assert_eq!(
            parse_api_multiaddr("/ip4/127.0.0.1/tcp/5001\n"),
            Some(std::net::SocketAddr::from(([127, 0, 0, 1], 5001)))
        );
        assert_eq!(
            parse_api_multiaddr("/ip4/0.0.0.0/tcp/80"),
            Some(std::net::SocketAddr::from(([127, 0, 0, 1], 80)))
        );
        assert!(parse_api_multiaddr("/dns4/x/tcp/1").is_none());
        assert!(parse_api_multiaddr("garbage").is_none());
    }
}
