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
/// Longest line read from an answer streamed as JSON values, one per line (RPC lines hold one
/// object each; a cluster `GlobalPinInfo` of 256 peers is ~100 KiB).
pub const ANSWER_LINE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Longest answer read as one JSON value (`pin ls` of a million pins is ~90 MB).
pub const ANSWER_BODY_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// `<repo>/api` (or the cluster API's file) could not be read or holds no API address.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ApiFileError {
    pub path: String,
    pub reason: String,
}

/// Errors talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    ApiFile(#[from] ApiFileError),
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
        let http = http_client(PROBE_TIMEOUT)?;
        Ok(Self {
            base: format!("http://{addr}"),
            token,
            http,
        })
    }

    /// The daemon of the repository at `repo`, if one is running and answers.
    pub fn from_repo(repo: &Path) -> Result<Option<Self>, ClientError> {
        let Some(addr) = read_api_file(repo, API_FILE)? else {
            return Ok(None);
        };
        let client = Self::new(addr, api_token(repo))?;
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
        with_token(
            self.http.post(format!("{}/api/v0/{command}", self.base)),
            &self.token,
        )
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
        json_body(self.call(command, args)?).map_err(answer_error)
    }

    /// Calls `command` with a multipart upload and parses its JSON answer.
    pub fn upload_json(
        &self,
        command: &str,
        args: &[(&str, String)],
        form: reqwest::blocking::multipart::Form,
    ) -> Result<serde_json::Value, ClientError> {
        json_body(self.upload(command, args, form)?).map_err(answer_error)
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
    let (status, message) = failure(r, "Message");
    ClientError::Api { status, message }
}

/// An answer the daemon sent with success but that cannot be read.
fn answer_error(message: String) -> ClientError {
    ClientError::Api { status: 0, message }
}

/// Reads NDJSON lines from an answer, one JSON value each.
pub fn ndjson_lines(
    r: reqwest::blocking::Response,
) -> impl Iterator<Item = Result<serde_json::Value, ClientError>> {
    json_lines(r).map(|l| l.map_err(answer_error))
}

// The plumbing the RPC client shares with the cluster API's (`cluster_api::client`).

/// The API address in `<repo>/<file>`, a multiaddr that a running daemon wrote; `None` when
/// there is no such file.
pub fn read_api_file(
    repo: &Path,
    file: &str,
) -> Result<Option<std::net::SocketAddr>, ApiFileError> {
    use std::io::Read as _;
    let path = repo.join(file);
    let failed = |reason: String| ApiFileError {
        path: path.display().to_string(),
        reason,
    };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(failed(e.to_string())),
    };
    let mut text = String::new();
    file.take(API_FILE_BYTES_MAX)
        .read_to_string(&mut text)
        .map_err(|e| failed(e.to_string()))?;
    match parse_api_multiaddr(&text) {
        Some(addr) => Ok(Some(addr)),
        None => Err(failed(format!("not an API address: {:?}", text.trim()))),
    }
}

/// The bearer token for the daemon of `repo`: `IPFS_KIT_API_TOKEN`, else the config's
/// `api.token`.
pub fn api_token(repo: &Path) -> Option<String> {
    std::env::var(ENV_API_TOKEN)
        .ok()
        .filter(|t| !t.is_empty())
        .or_else(|| {
            crate::config::Config::load_with_env(repo)
                .ok()
                .and_then(|c| c.api.token)
        })
}

/// A blocking HTTP client with no overall timeout (answers stream for as long as the command
/// runs) and `connect` to reach the daemon.
pub fn http_client(connect: Duration) -> reqwest::Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .timeout(None)
        .connect_timeout(connect)
        .build()
}

/// `r` with the bearer `token`, when there is one.
pub fn with_token(
    r: reqwest::blocking::RequestBuilder,
    token: &Option<String>,
) -> reqwest::blocking::RequestBuilder {
    match token {
        Some(t) => r.bearer_auth(t),
        None => r,
    }
}

/// The status and message of a failed answer: the JSON body's `key` (kubo's `Message`,
/// ipfs-cluster's `message`), else the body as text; at most [`ERROR_BODY_BYTES_MAX`] read.
pub fn failure(r: reqwest::blocking::Response, key: &str) -> (u16, String) {
    use std::io::Read as _;
    let status = r.status().as_u16();
    let mut body = Vec::new();
    let _ = r.take(ERROR_BODY_BYTES_MAX).read_to_end(&mut body);
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get(key).and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
    (status, message)
}

/// An answer holding one JSON value, read up to [`ANSWER_BODY_BYTES_MAX`].
pub fn json_body(r: impl std::io::Read) -> Result<serde_json::Value, String> {
    json_body_within(r, ANSWER_BODY_BYTES_MAX)
}

fn json_body_within(r: impl std::io::Read, max: u64) -> Result<serde_json::Value, String> {
    use std::io::Read as _;
    let mut body = Vec::new();
    r.take(max + 1)
        .read_to_end(&mut body)
        .map_err(|e| format!("reading the answer: {e}"))?;
    if body.len() as u64 > max {
        return Err(format!("an answer over {max} bytes"));
    }
    serde_json::from_slice(&body).map_err(|e| format!("bad answer: {e}"))
}

/// The JSON values of an answer streamed one per line; blank lines are skipped, and a line
/// over [`ANSWER_LINE_BYTES_MAX`] ends the stream with an error.
pub fn json_lines(
    r: impl std::io::Read,
) -> impl Iterator<Item = Result<serde_json::Value, String>> {
    use std::io::BufRead as _;
    let mut reader = std::io::BufReader::new(r);
    let mut line = Vec::new();
    let mut failed = false;
    std::iter::from_fn(move || loop {
        if failed {
            return None;
        }
        line.clear();
        let read = std::io::Read::take(&mut reader, ANSWER_LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut line);
        let item = match read {
            Ok(0) => return None,
            Err(e) => Err(format!("reading the answer: {e}")),
            Ok(_) if line.len() > ANSWER_LINE_BYTES_MAX => {
                Err(format!("an answer line over {ANSWER_LINE_BYTES_MAX} bytes"))
            }
            Ok(_) if line.iter().all(u8::is_ascii_whitespace) => continue,
            Ok(_) => serde_json::from_slice(&line)
                .map_err(|e| format!("bad answer line {:?}: {e}", String::from_utf8_lossy(&line))),
        };
        failed = item.is_err();
        return Some(item);
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

    #[test]
    fn json_body_at_and_past_its_limit() {
        let v = br#"{"a":"xy"}"#;
        assert_eq!(json_body_within(&v[..], v.len() as u64).unwrap()["a"], "xy");
        let e = json_body_within(&v[..], v.len() as u64 - 1).unwrap_err();
        assert!(e.contains("over"), "{e}");
        assert!(json_body(&b"not json"[..]).is_err());
    }

    #[test]
    fn json_lines_skip_blanks_and_stop_past_the_line_limit() {
        let ok = b"{\"a\":1}\n\n  \n{\"a\":2}";
        let got: Vec<_> = json_lines(&ok[..]).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].as_ref().unwrap()["a"], 2);

        let mut long = vec![b' '; ANSWER_LINE_BYTES_MAX + 1];
        long.extend_from_slice(b"\n{\"a\":3}\n");
        let got: Vec<_> = json_lines(&long[..]).collect();
        assert_eq!(got.len(), 1, "the stream ends at the long line");
        assert!(got[0].as_ref().unwrap_err().contains("over"), "{got:?}");

        let at_limit = format!("{{\"a\":\"{}\"}}\n", "x".repeat(ANSWER_LINE_BYTES_MAX - 9));
        assert_eq!(at_limit.len(), ANSWER_LINE_BYTES_MAX);
        let got: Vec<_> = json_lines(at_limit.as_bytes()).collect();
        assert!(got[0].is_ok(), "a line of exactly the limit is read");

        let bad: Vec<_> = json_lines(&b"{not json}\n{\"a\":1}\n"[..]).collect();
        assert_eq!(bad.len(), 1);
        assert!(bad[0].is_err());
    }
}
