//! The one mapping from failures to HTTP answers. Every error a client sees
//! is JSON with an `error` field; redirects and overload answers carry the
//! headers a client needs to act (`Location`, `Retry-After`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

/// An error answer: status, message and optional extra fields and headers.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub fields: Map<String, Value>,
    pub location: Option<String>,
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), fields: Map::new(), location: None, retry_after_s: None }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    pub fn unavailable(message: impl Into<String>, retry_after_s: u64) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, message);
        e.retry_after_s = Some(retry_after_s);
        e
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.to_string(), value.into());
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.fields;
        body.insert("error".into(), json!(self.message));
        let mut resp = (self.status, Json(Value::Object(body))).into_response();
        let headers = resp.headers_mut();
        if let Some(loc) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(header::LOCATION, loc);
        }
        if let Some(s) = self.retry_after_s {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

/// Turns axum's own rejections for paths and queries into JSON errors.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint; see GET / for the API")
}
