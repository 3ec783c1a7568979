//! kubo's error answer: `{"Message": "...", "Code": 0, "Type": "error"}`.
//!
//! go-ipfs-cmds answers a failed command with 500 and `Code` 0 (`ErrNormal`), a malformed
//! request (a missing argument, an option of the wrong type) with 400 and `Code` 1
//! (`ErrClient`). ipfs-kit adds 401 (missing or wrong token), 413 (a body over its limit),
//! 429 and 504 (the gateway), all with the same body shape.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// kubo's `cmds.ErrNormal`.
pub const CODE_NORMAL: u8 = 0;
/// kubo's `cmds.ErrClient`.
pub const CODE_CLIENT: u8 = 1;

/// An error answer of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: u8,
    message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "Message")]
    message: &'a str,
    #[serde(rename = "Code")]
    code: u8,
    #[serde(rename = "Type")]
    kind: &'static str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: u8, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    /// A failed command: 500, Code 0.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            CODE_NORMAL,
            message.to_string(),
        )
    }
    /// A malformed request: 400, Code 1.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, CODE_CLIENT, message)
    }
    /// A body over its limit: 413, Code 1.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, CODE_CLIENT, message)
    }
    /// No or a wrong bearer token: 401, Code 1.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            CODE_CLIENT,
            "missing or invalid API token (Authorization: Bearer <token>)",
        )
    }
    pub fn status(&self) -> StatusCode {
        self.status
    }
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&Body {
            message: &self.message,
            code: self.code,
            kind: "error",
        })
        .unwrap_or_default();
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

impl From<axum::extract::multipart::MultipartError> for ApiError {
    fn from(e: axum::extract::multipart::MultipartError) -> Self {
        let status = e.status();
        let code = if status.is_client_error() {
            CODE_CLIENT
        } else {
            CODE_NORMAL
        };
        Self::new(status, code, e.body_text())
    }
}

impl From<crate::repo::RepoError> for ApiError {
    fn from(e: crate::repo::RepoError) -> Self {
        Self::internal(e)
    }
}

impl From<crate::unixfs::export::ExportError> for ApiError {
    fn from(e: crate::unixfs::export::ExportError) -> Self {
        Self::internal(e)
    }
}

impl From<crate::unixfs::ImportError> for ApiError {
    fn from(e: crate::unixfs::ImportError) -> Self {
        Self::internal(e)
    }
}

impl From<crate::dag::links::DagError> for ApiError {
    fn from(e: crate::dag::links::DagError) -> Self {
        Self::internal(e)
    }
}

impl From<ipfs_kit_blockstore::BlockstoreError> for ApiError {
    fn from(e: ipfs_kit_blockstore::BlockstoreError) -> Self {
        Self::internal(e)
    }
}

impl From<crate::car::CarError> for ApiError {
    fn from(e: crate::car::CarError) -> Self {
        Self::internal(e)
    }
}

impl From<crate::net::NetError> for ApiError {
    fn from(e: crate::net::NetError) -> Self {
        Self::internal(e)
    }
}
