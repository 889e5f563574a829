//! A JSON body extractor that answers every malformed request with a JSON
//! error: wrong content type (415), body over the limit (413), invalid JSON
//! (400) and JSON of the wrong shape (422).

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorKind};
use crate::server::AppState;

/// A request body parsed as JSON into `T`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + Send + 'static> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request<Body>, state: &AppState) -> Result<Self, ApiError> {
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if mime != "application/json" {
            return Err(ApiError::new(
                ErrorKind::UnsupportedMediaType,
                format!("expected Content-Type: application/json, got {content_type:?}"),
            ));
        }
        let bytes = read_body(req.into_body(), state.config.max_body_bytes, "request body").await?;
        parse_json_off_runtime(bytes).await.map(JsonBody)
    }
}

/// A request body parsed as JSON whatever its declared content type. Only
/// for `/control`, whose documented one-liner is `curl -d '{"cmd": "exit"}'`
/// (which curl sends as a form).
pub struct AnyJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for AnyJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request<Body>, state: &AppState) -> Result<Self, ApiError> {
        let bytes = read_body(req.into_body(), state.config.max_body_bytes, "request body").await?;
        parse_json(&bytes).map(AnyJson)
    }
}

/// Reads a whole body, refusing more than `limit` bytes with 413.
pub async fn read_body(body: Body, limit: usize, what: &str) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(ErrorKind::PayloadTooLarge, format!("{what} is larger than {limit} bytes"))
            .with("limit_bytes", limit)
    })
}

/// Bodies above this size are parsed on a blocking thread: parsing is a few
/// microseconds per kilobyte, too long to hold an async worker for.
const INLINE_PARSE_BYTES: usize = 16 * 1024;

/// Parses JSON like [`parse_json`], off the async runtime when the body is large.
pub async fn parse_json_off_runtime<T: DeserializeOwned + Send + 'static>(
    bytes: axum::body::Bytes,
) -> Result<T, ApiError> {
    if bytes.len() <= INLINE_PARSE_BYTES {
        return parse_json(&bytes);
    }
    tokio::task::spawn_blocking(move || parse_json(&bytes)).await.map_err(|e| ApiError::internal(e.to_string()))?
}

/// Parses JSON, telling syntax errors (400) from shape errors (422).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::unprocessable(format!("invalid request: {e}")),
        _ => ApiError::bad_request(format!("malformed JSON: {e}")),
    })
}
