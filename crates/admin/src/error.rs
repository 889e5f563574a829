//! The one error model of the public API. Every failure a client can see is
//! an [`ApiError`]: a kind, a message and optional extra fields. The kind
//! alone decides both renderings:
//!
//! | kind | HTTP | gRPC |
//! |---|---|---|
//! | `BadRequest` (malformed JSON, bad parameters) | 400 | `INVALID_ARGUMENT` |
//! | `Unauthenticated` (no or unknown token) | 401 | `UNAUTHENTICATED` |
//! | `PermissionDenied` (wrong token or role) | 403 | `PERMISSION_DENIED` |
//! | `NotFound` | 404 | `NOT_FOUND` |
//! | `Conflict` (key reused, default deleted) | 409 | `ALREADY_EXISTS` |
//! | `PayloadTooLarge` | 413 | `RESOURCE_EXHAUSTED` |
//! | `UnsupportedMediaType` | 415 | `INVALID_ARGUMENT` |
//! | `InvalidInput` (wrong shape, type, model input) | 422 | `INVALID_ARGUMENT` |
//! | `Overloaded` | 429 + `Retry-After` | `RESOURCE_EXHAUSTED` + `retry-after` |
//! | `NotLeader` | 307 + `Location` at the leader | `UNAVAILABLE` + `x-boat-leader` |
//! | `Unavailable` (no leader, not committed in time) | 503 + `Retry-After` | `UNAVAILABLE` + `retry-after` |
//! | `Internal` | 500 | `INTERNAL` |
//!
//! Over HTTP the body is JSON with an `error` field plus the extra fields.
//! A redirect's `Location` keeps the request's path and query: the error
//! carries only the leader's address, and [`leader_location`] (a middleware)
//! completes the header from the request.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use tonic::metadata::MetadataValue;
use tonic::Code;

/// What went wrong, as far as a client needs to know to act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    InvalidInput,
    Overloaded,
    /// This node is not the leader; the leader is known.
    NotLeader {
        leader_id: u64,
        leader_http: String,
    },
    Unavailable,
    Internal,
}

/// Metadata key naming the leader's address (HTTP and gRPC share it) on a
/// gRPC `UNAVAILABLE` from a follower.
pub const LEADER_KEY: &str = "x-boat-leader";
/// Metadata key with the leader's node id, next to [`LEADER_KEY`].
pub const LEADER_ID_KEY: &str = "x-boat-leader-id";

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    /// Extra fields of the JSON body (and, for `id`, gRPC metadata).
    pub fields: Map<String, Value>,
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let retry_after_s = matches!(kind, ErrorKind::Overloaded | ErrorKind::Unavailable).then_some(1);
        Self { kind, message: message.into(), fields: Map::new(), retry_after_s }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PermissionDenied, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    pub fn overloaded(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Overloaded, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    pub fn unavailable(message: impl Into<String>, retry_after_s: u64) -> Self {
        let mut e = Self::new(ErrorKind::Unavailable, message);
        e.retry_after_s = Some(retry_after_s);
        e
    }

    /// Redirect to the leader when it is known; 503 otherwise.
    pub fn not_leader(leader_id: Option<u64>, leader_http: Option<String>) -> Self {
        match (leader_id, leader_http) {
            (Some(id), Some(http)) => Self::new(
                ErrorKind::NotLeader { leader_id: id, leader_http: http.clone() },
                format!("node {id} is the leader; send writes there"),
            )
            .with("leader_id", id)
            .with("leader_http", http),
            _ => Self::unavailable("no leader is known right now; an election is probably under way", 1),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.to_string(), value.into());
        self
    }

    pub fn http_status(&self) -> StatusCode {
        match self.kind {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::InvalidInput => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::NotLeader { .. } => StatusCode::TEMPORARY_REDIRECT,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn grpc_code(&self) -> Code {
        match self.kind {
            ErrorKind::BadRequest | ErrorKind::UnsupportedMediaType | ErrorKind::InvalidInput => Code::InvalidArgument,
            ErrorKind::Unauthenticated => Code::Unauthenticated,
            ErrorKind::PermissionDenied => Code::PermissionDenied,
            ErrorKind::NotFound => Code::NotFound,
            ErrorKind::Conflict => Code::AlreadyExists,
            ErrorKind::PayloadTooLarge | ErrorKind::Overloaded => Code::ResourceExhausted,
            ErrorKind::NotLeader { .. } | ErrorKind::Unavailable => Code::Unavailable,
            ErrorKind::Internal => Code::Internal,
        }
    }

    /// The gRPC rendering. A redirect cannot be followed by a gRPC client,
    /// so a follower's answer names the leader in the message for people
    /// and in [`LEADER_KEY`] / [`LEADER_ID_KEY`] for programs.
    pub fn into_status(self) -> tonic::Status {
        let message = match &self.kind {
            ErrorKind::NotLeader { leader_http, .. } => {
                format!("{}; this node is a follower, the leader serves gRPC at {leader_http}", self.message)
            }
            _ => self.message.clone(),
        };
        let mut s = tonic::Status::new(self.grpc_code(), message);
        let md = s.metadata_mut();
        // Values that are not valid metadata (never expected: addresses and
        // ids are ASCII) are left out rather than failing the error path.
        if let ErrorKind::NotLeader { leader_id, leader_http } = &self.kind {
            if let Ok(v) = MetadataValue::try_from(leader_http.as_str()) {
                md.insert(LEADER_KEY, v);
            }
            md.insert(LEADER_ID_KEY, MetadataValue::from(*leader_id));
        }
        if let Some(v) = self.fields.get("id").and_then(Value::as_str).and_then(|id| MetadataValue::try_from(id).ok()) {
            md.insert("x-boat-request-id", v);
        }
        if let Some(secs) = self.retry_after_s {
            md.insert("retry-after", MetadataValue::from(secs));
        }
        s
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        e.into_status()
    }
}

/// Marks a redirect response; [`leader_location`] turns it into `Location`.
#[derive(Debug, Clone)]
struct LeaderRedirect(String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.http_status();
        let mut body = self.fields;
        body.insert("error".into(), json!(self.message));
        let mut resp = (status, Json(Value::Object(body))).into_response();
        if let Some(s) = self.retry_after_s {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if let ErrorKind::NotLeader { leader_http, .. } = self.kind {
            resp.extensions_mut().insert(LeaderRedirect(leader_http));
        }
        resp
    }
}

/// Middleware: a redirect to the leader keeps the request's path and query.
pub async fn leader_location(req: Request, next: Next) -> Response {
    let target = req.uri().path_and_query().map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
    let mut resp = next.run(req).await;
    if let Some(LeaderRedirect(http)) = resp.extensions_mut().remove::<LeaderRedirect>() {
        if let Ok(v) = HeaderValue::from_str(&format!("http://{http}{target}")) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
    }
    resp
}

/// Middleware: the framework's own refusals (a path or query parameter
/// that does not parse, a method a route lacks) are plain text; they are
/// answered as JSON with an `error` field like every other error.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let plain = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("text/plain"));
    if !status.is_client_error() || !plain {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let mut text = String::from_utf8_lossy(&text).trim().to_string();
    if text.is_empty() {
        text = status.canonical_reason().unwrap_or("refused").to_lowercase();
    }
    let mut fixed = (status, Json(json!({ "error": text }))).into_response();
    for (k, v) in parts.headers.iter().filter(|(k, _)| *k != header::CONTENT_TYPE && *k != header::CONTENT_LENGTH) {
        fixed.headers_mut().insert(k.clone(), v.clone());
    }
    fixed
}

/// Unknown paths.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see GET / for the API")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_kind_decides_both_renderings() {
        let e = ApiError::not_leader(Some(2), Some("127.0.0.1:9".into()));
        assert_eq!(e.http_status(), StatusCode::TEMPORARY_REDIRECT);
        let s = e.into_status();
        assert_eq!(s.code(), Code::Unavailable);
        assert_eq!(s.metadata().get(LEADER_KEY).unwrap(), "127.0.0.1:9");
        assert_eq!(s.metadata().get(LEADER_ID_KEY).unwrap(), "2");
        assert!(s.message().contains("127.0.0.1:9"));

        let none = ApiError::not_leader(None, None);
        assert_eq!(none.http_status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(none.into_status().metadata().get("retry-after").unwrap(), "1");
        assert_eq!(ApiError::unprocessable("x").into_status().code(), Code::InvalidArgument);
        assert_eq!(ApiError::overloaded("x").http_status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(ApiError::overloaded("x").into_status().code(), Code::ResourceExhausted);
        assert_eq!(ApiError::conflict("x").into_status().code(), Code::AlreadyExists);
    }
}
