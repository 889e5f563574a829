//! The web admin's scripts and style sheet, compiled into the binary.
//!
//! Each is served with an `ETag` (a prefix of its SHA-256) and
//! `Cache-Control: no-cache`, so a browser revalidates and gets `304` until
//! a new binary changes the file; pages also link them with `?v=` and that
//! tag, so a new binary's page never runs an old script.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

macro_rules! asset {
    ($name:literal, $type:literal) => {
        ($name, $type, include_str!(concat!("assets/", $name)))
    };
}

/// Name, content type and body of every asset.
const ASSETS: &[(&str, &str, &str)] = &[
    asset!("boat.css", "text/css; charset=utf-8"),
    asset!("boat.js", "text/javascript; charset=utf-8"),
    asset!("login.js", "text/javascript; charset=utf-8"),
    asset!("cluster.js", "text/javascript; charset=utf-8"),
    asset!("models.js", "text/javascript; charset=utf-8"),
    asset!("apps.js", "text/javascript; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("datasets.js", "text/javascript; charset=utf-8"),
    asset!("jobs.js", "text/javascript; charset=utf-8"),
    asset!("job.js", "text/javascript; charset=utf-8"),
    asset!("users.js", "text/javascript; charset=utf-8"),
    asset!("notfound.js", "text/javascript; charset=utf-8"),
];

/// Content type and body of the asset `name`.
pub fn find(name: &str) -> Option<(&'static str, &'static str)> {
    ASSETS.iter().find(|(n, _, _)| *n == name).map(|(_, t, body)| (*t, *body))
}

/// The asset's tag: the first 16 hex digits of its SHA-256.
pub fn version(name: &str) -> &'static str {
    static TAGS: OnceLock<HashMap<&'static str, String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS.iter().map(|(n, _, body)| (*n, hex::encode(&Sha256::digest(body.as_bytes())[..8]))).collect()
    });
    tags.get(name).map_or("", String::as_str)
}

pub async fn serve(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some((content_type, body)) = find(&file) else {
        return (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain")], "no such asset").into_response();
    };
    let etag = format!("\"{}\"", version(&file));
    let cached = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v == etag);
    let common = [
        (header::ETAG, etag),
        (header::CACHE_CONTROL, "no-cache".to_string()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
    ];
    if cached {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (common, [(header::CONTENT_TYPE, content_type)], body).into_response()
}
