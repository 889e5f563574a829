//! Bearer-token checks for admin writes and for `/control`.

use std::net::SocketAddr;

use axum::http::{header, HeaderMap};

use crate::error::ApiError;
use crate::server::HttpConfig;

/// Constant-time comparison, so a token cannot be guessed byte by byte from
/// response times.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Requires `Authorization: Bearer <admin token>`.
pub fn require_admin(config: &HttpConfig, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = config.admin_token.as_deref() else {
        return Err(ApiError::forbidden("no admin token is configured on this node; start it with --admin-token-file"));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthenticated("missing Authorization: Bearer <admin token>"))?;
    if same_secret(given.trim().as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::forbidden("wrong admin token"))
    }
}

/// `/control` is open to loopback callers while the node itself listens on
/// loopback; everyone else needs the admin token.
pub fn require_control(config: &HttpConfig, peer: SocketAddr, headers: &HeaderMap) -> Result<(), ApiError> {
    if config.listen.ip().is_loopback() && peer.ip().is_loopback() {
        return Ok(());
    }
    require_admin(config, headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use std::time::Duration;

    fn config(token: Option<&str>, listen: &str) -> HttpConfig {
        HttpConfig {
            listen: listen.parse().unwrap(),
            max_body_bytes: 1,
            max_model_bytes: 1,
            write_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            admin_token: token.map(str::to_string),
        }
    }

    fn bearer(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, format!("Bearer {t}").parse().unwrap());
        h
    }

    #[test]
    fn secrets_compare_by_content_and_length() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }

    #[test]
    fn admin_writes_need_the_right_token() {
        let c = config(Some("s3cret"), "127.0.0.1:1");
        assert!(require_admin(&c, &bearer("s3cret")).is_ok());
        assert_eq!(require_admin(&c, &bearer("nope")).unwrap_err().http_status(), StatusCode::FORBIDDEN);
        assert_eq!(require_admin(&c, &HeaderMap::new()).unwrap_err().http_status(), StatusCode::UNAUTHORIZED);
        let none = config(None, "127.0.0.1:1");
        assert_eq!(require_admin(&none, &bearer("s3cret")).unwrap_err().http_status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn control_is_open_only_on_loopback_to_loopback() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        let on_loopback = config(Some("t"), "127.0.0.1:1");
        let on_all = config(Some("t"), "0.0.0.0:1");
        assert!(require_control(&on_loopback, local, &HeaderMap::new()).is_ok());
        assert!(require_control(&on_loopback, remote, &HeaderMap::new()).is_err());
        assert!(require_control(&on_all, local, &HeaderMap::new()).is_err());
        assert!(require_control(&on_all, local, &bearer("t")).is_ok());
    }
}
