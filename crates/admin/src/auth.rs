//! Who is calling: bearer tokens, roles, and the `/control` rule.
//!
//! A token is either one a user got from a login (held in the replicated
//! state by its SHA-256, with its expiry) or the node's configured admin
//! token (`--admin-token-file`), which acts as the bootstrap superadmin so
//! that a new cluster can be administered before anyone has logged in.
//! Tokens are compared by hash or in constant time and never logged.

use std::net::SocketAddr;

use axum::http::{header, HeaderMap};
use boat_raft::{sha256_hex, Role, User};

use crate::error::ApiError;
use crate::inference::now_ms;
use crate::server::{AppState, HttpConfig};

/// Email of the bootstrap superadmin (whose password is the admin token).
pub const SUPERADMIN_EMAIL: &str = "superadmin";

/// Prefix of the tokens a login issues, so that they are easy to recognise
/// (and to look for in logs, where they must never appear).
pub const TOKEN_PREFIX: &str = "boat_";

/// Roles allowed to manage models.
pub const MODEL_WRITERS: &[Role] = &[Role::Superadmin, Role::Admin, Role::ModelDeveloper];
/// Roles allowed to manage datasets and apps.
pub const APP_WRITERS: &[Role] = &[Role::Superadmin, Role::Admin, Role::AppDeveloper];
/// Roles allowed to manage users and the cluster.
pub const ADMINS: &[Role] = &[Role::Superadmin, Role::Admin];
/// Every role.
pub const ANYONE: &[Role] = &Role::ALL;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// 0 for the configured admin token before the bootstrap superadmin
    /// exists in the replicated state.
    pub user_id: u64,
    pub email: String,
    pub role: Role,
}

impl Principal {
    fn of(user: &User) -> Self {
        Self { user_id: user.id, email: user.email.clone(), role: user.role }
    }

    /// Admins see everything; other users see what they own.
    pub fn sees(&self, owner: u64) -> bool {
        self.role.is_admin() || self.user_id == owner
    }
}

/// Constant-time comparison, so a token cannot be guessed byte by byte from
/// response times.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
}

/// A fresh token: 32 random bytes, hex, behind [`TOKEN_PREFIX`].
pub fn new_token() -> String {
    format!("{TOKEN_PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()))
}

/// How tokens are stored and looked up.
pub fn token_hash(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

impl AppState {
    /// Resolves a bearer token to its user. Reads the local state: call it
    /// after the read barrier when the token may be brand new.
    pub fn authenticate(&self, token: Option<&str>) -> Result<Principal, ApiError> {
        let token =
            token.ok_or_else(|| ApiError::unauthenticated("missing Authorization: Bearer <token>; log in first"))?;
        if let Some(admin) = self.config.admin_token.as_deref() {
            if same_secret(token.as_bytes(), admin.as_bytes()) {
                let state = self.node.state().read();
                let user = state.platform.user_by_email(SUPERADMIN_EMAIL);
                return Ok(user.map(Principal::of).unwrap_or(Principal {
                    user_id: 0,
                    email: SUPERADMIN_EMAIL.into(),
                    role: Role::Superadmin,
                }));
            }
        }
        let state = self.node.state().read();
        state
            .platform
            .authenticate(&token_hash(token), now_ms())
            .map(Principal::of)
            .ok_or_else(|| ApiError::unauthenticated("the token is invalid, expired or revoked, or its user is banned"))
    }

    /// Authenticates and checks that the caller has one of `roles`.
    pub fn authorize(&self, token: Option<&str>, roles: &[Role]) -> Result<Principal, ApiError> {
        let who = self.authenticate(token)?;
        if roles.contains(&who.role) {
            Ok(who)
        } else {
            let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::forbidden(format!(
                "this needs one of the roles {}; you are {}",
                allowed.join(", "),
                who.role
            ))
            .with("required_roles", allowed))
        }
    }

    /// For a write: redirects to the leader before looking at the token, so
    /// that a token (or a name) this follower has not applied yet is judged
    /// by the leader, which has.
    pub fn authorize_write(&self, headers: &HeaderMap, roles: &[Role]) -> Result<Principal, ApiError> {
        self.require_leader()?;
        self.authorize_http(headers, roles)
    }

    /// [`Self::authorize`] with the token of an HTTP request.
    pub fn authorize_http(&self, headers: &HeaderMap, roles: &[Role]) -> Result<Principal, ApiError> {
        self.authorize(bearer(headers), roles)
    }
}

/// `/control` is open to loopback callers while the node itself listens on
/// loopback; everyone else needs an admin's token.
pub fn require_control(app: &AppState, peer: SocketAddr, headers: &HeaderMap) -> Result<(), ApiError> {
    if loopback_only(&app.config, peer) {
        return Ok(());
    }
    app.authorize_http(headers, ADMINS).map(|_| ())
}

fn loopback_only(config: &HttpConfig, peer: SocketAddr) -> bool {
    config.listen.ip().is_loopback() && peer.ip().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_by_content_and_length() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }

    #[test]
    fn tokens_are_random_and_prefixed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64);
        assert_ne!(token_hash(&a), a);
    }

    #[test]
    fn bearer_is_read_from_the_authorization_header() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer abc ".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
    }

    #[test]
    fn control_is_open_only_on_loopback_to_loopback() {
        let config = |listen: &str| HttpConfig {
            listen: listen.parse().unwrap(),
            max_body_bytes: 1,
            max_model_bytes: 1,
            write_timeout: std::time::Duration::from_secs(1),
            read_timeout: std::time::Duration::from_secs(1),
            admin_token: None,
            unreplicated: false,
        };
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        assert!(loopback_only(&config("127.0.0.1:1"), local));
        assert!(!loopback_only(&config("127.0.0.1:1"), remote));
        assert!(!loopback_only(&config("0.0.0.0:1"), local));
    }
}
