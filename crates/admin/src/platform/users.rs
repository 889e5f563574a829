//! Users and tokens: login, logout, and user management.
//!
//! Passwords are hashed with argon2 on the leader (on a blocking thread)
//! before the command is proposed, so only the hash reaches the log. A
//! login checks the password on the leader, then proposes the new token's
//! SHA-256; the token itself is only in the reply.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use boat_raft::{Command, CommandResult, PlatformCommand, PlatformResult, Role, TokenRecord, User};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{new_token, token_hash, Principal, SUPERADMIN_EMAIL};
use crate::consistency::Consistency;
use crate::error::ApiError;
use crate::inference::now_ms;
use crate::server::AppState;

/// Tokens live this long unless the login asks otherwise.
pub const DEFAULT_TOKEN_TTL_S: u64 = 24 * 3600;
/// The longest a token may live.
pub const MAX_TOKEN_TTL_S: u64 = 30 * 24 * 3600;
const MIN_PASSWORD_LEN: usize = 8;

/// A user as the APIs show it (never with the password hash).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserView {
    pub id: u64,
    pub email: String,
    /// SUPERADMIN, ADMIN, MODEL_DEVELOPER, APP_DEVELOPER or APP_USER.
    pub role: String,
    pub banned: bool,
    pub created_at_ms: u64,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            email: u.email.clone(),
            role: u.role.to_string(),
            banned: u.banned,
            created_at_ms: u.created_at_ms,
        }
    }
}

#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// Lifetime of the token in seconds (default 86400, at most 30 days).
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

// Debug output of these types leaves the password and the token out.
impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest").field("email", &self.email).finish_non_exhaustive()
    }
}

#[derive(Clone, Serialize, ToSchema)]
pub struct LoginResponse {
    /// The bearer token; it is shown only here.
    pub token: String,
    pub expires_at_ms: u64,
    pub user: UserView,
}

impl std::fmt::Debug for LoginResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginResponse").field("user", &self.user).finish_non_exhaustive()
    }
}

#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub email: String,
    pub password: String,
    /// SUPERADMIN, ADMIN, MODEL_DEVELOPER, APP_DEVELOPER or APP_USER.
    pub role: String,
}

impl std::fmt::Debug for CreateUserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUserRequest")
            .field("email", &self.email)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Hashes a password with a fresh salt (argon2id, default cost).
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string())
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(format!("cannot hash the password: {e}")))
}

async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false)
}

fn check_email(email: &str) -> Result<(), ApiError> {
    let ok = email == SUPERADMIN_EMAIL
        || (email.len() <= 254
            && email.split_once('@').is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
            && !email.chars().any(|c| c.is_whitespace() || c.is_control()));
    if ok {
        Ok(())
    } else {
        Err(ApiError::unprocessable(format!("{email:?} is not an email address")))
    }
}

fn user_result(r: CommandResult) -> Result<User, ApiError> {
    match r {
        CommandResult::Platform(PlatformResult::User(u)) => Ok(u),
        other => Err(ApiError::internal(format!("unexpected result {other:?}"))),
    }
}

impl AppState {
    /// Checks a password and issues a token.
    pub async fn login(&self, req: LoginRequest) -> Result<LoginResponse, ApiError> {
        self.require_leader()?;
        self.read_barrier(Consistency::Linearizable).await?;
        let ttl_s = req.ttl_seconds.unwrap_or(DEFAULT_TOKEN_TTL_S);
        if ttl_s == 0 || ttl_s > MAX_TOKEN_TTL_S {
            return Err(ApiError::unprocessable(format!("ttl_seconds must be 1 to {MAX_TOKEN_TTL_S}")));
        }
        let wrong = || ApiError::unauthenticated("wrong email or password");
        let user = self.node.state().read().platform.user_by_email(&req.email).cloned();
        let Some(user) = user else {
            // A missing user costs a hash too, so that timing does not say
            // which emails exist.
            let _ = hash_password(req.password).await;
            return Err(wrong());
        };
        if !verify_password(req.password, user.password_hash.clone()).await {
            return Err(wrong());
        }
        if user.banned {
            return Err(ApiError::forbidden(format!("user {} is banned", user.email)));
        }
        let token = new_token();
        let issued_at_ms = now_ms();
        let expires_at_ms = issued_at_ms + ttl_s * 1000;
        let cmd = PlatformCommand::IssueToken {
            token_sha256: token_hash(&token),
            user_id: user.id,
            issued_at_ms,
            expires_at_ms,
        };
        match self.append(Command::Platform(cmd), "by logging in again").await? {
            CommandResult::Platform(PlatformResult::Token(TokenRecord { expires_at_ms, .. })) => {
                tracing::info!(user = %user.email, "logged in");
                Ok(LoginResponse { token, expires_at_ms, user: UserView::from(&user) })
            }
            other => Err(ApiError::internal(format!("unexpected result {other:?}"))),
        }
    }

    /// Revokes a token (a logout).
    pub async fn revoke(&self, token: &str) -> Result<(), ApiError> {
        self.require_leader()?;
        let cmd = PlatformCommand::RevokeToken { token_sha256: token_hash(token) };
        self.append(Command::Platform(cmd), "by using the token").await.map(|_| ())
    }

    pub async fn create_user(&self, who: &Principal, req: CreateUserRequest) -> Result<UserView, ApiError> {
        let role = Role::parse(&req.role).ok_or_else(|| {
            ApiError::unprocessable(format!(
                "unknown role {:?}; use one of {}",
                req.role,
                Role::ALL.map(Role::as_str).join(", ")
            ))
        })?;
        if role.is_admin() && who.role != Role::Superadmin {
            return Err(ApiError::forbidden("only the superadmin creates admins"));
        }
        check_email(&req.email)?;
        if req.password.chars().count() < MIN_PASSWORD_LEN {
            return Err(ApiError::unprocessable(format!("a password has at least {MIN_PASSWORD_LEN} characters")));
        }
        self.require_leader()?;
        let password_hash = hash_password(req.password).await?;
        let cmd = PlatformCommand::CreateUser { email: req.email, role, password_hash, at_ms: now_ms() };
        let user = user_result(self.append(Command::Platform(cmd), "GET /api/users").await?)?;
        tracing::info!(user = %user.email, role = %user.role, by = %who.email, "user created");
        Ok(UserView::from(&user))
    }

    /// Every user (admins only: the caller was authorized for that).
    pub fn list_users(&self) -> Vec<UserView> {
        self.node.state().read().platform.users.values().map(UserView::from).collect()
    }

    /// Finds a user by id or email.
    pub fn find_user(&self, id_or_email: &str) -> Result<User, ApiError> {
        let state = self.node.state().read();
        let users = &state.platform.users;
        let found = match id_or_email.parse::<u64>() {
            Ok(id) => users.get(&id),
            Err(_) => users.values().find(|u| u.email == id_or_email),
        };
        found.cloned().ok_or_else(|| ApiError::not_found(format!("no user {id_or_email:?}")))
    }

    /// Checks that `who` may ban or delete `target`.
    fn may_manage(&self, who: &Principal, target: &User, what: &str) -> Result<(), ApiError> {
        if target.id == who.user_id || target.email == who.email {
            return Err(ApiError::conflict(format!("you cannot {what} yourself")));
        }
        if target.role.is_admin() && who.role != Role::Superadmin {
            return Err(ApiError::forbidden(format!("only the superadmin may {what} an admin")));
        }
        if target.email == SUPERADMIN_EMAIL {
            return Err(ApiError::forbidden(format!("the bootstrap superadmin cannot be {what}ned or removed")));
        }
        Ok(())
    }

    pub async fn set_banned(&self, who: &Principal, id_or_email: &str, banned: bool) -> Result<UserView, ApiError> {
        let target = self.find_user(id_or_email)?;
        self.may_manage(who, &target, "ban")?;
        let cmd = PlatformCommand::SetBanned { user_id: target.id, banned };
        let user = user_result(self.append(Command::Platform(cmd), "GET /api/users").await?)?;
        tracing::info!(user = %user.email, banned, by = %who.email, "user ban changed");
        Ok(UserView::from(&user))
    }

    pub async fn delete_user(&self, who: &Principal, id_or_email: &str) -> Result<UserView, ApiError> {
        let target = self.find_user(id_or_email)?;
        self.may_manage(who, &target, "delete")?;
        let cmd = PlatformCommand::DeleteUser { user_id: target.id };
        let user = user_result(self.append(Command::Platform(cmd), "GET /api/users").await?)?;
        tracing::info!(user = %user.email, by = %who.email, "user deleted");
        Ok(UserView::from(&user))
    }

    /// Creates the bootstrap superadmin, whose password is the admin token,
    /// when the cluster has none. Runs on the leader.
    pub async fn bootstrap_superadmin(&self) -> Result<(), ApiError> {
        let Some(token) = self.config.admin_token.clone() else { return Ok(()) };
        if self.node.state().read().platform.user_by_email(SUPERADMIN_EMAIL).is_some() {
            return Ok(());
        }
        let password_hash = hash_password(token).await?;
        let cmd = PlatformCommand::CreateUser {
            email: SUPERADMIN_EMAIL.into(),
            role: Role::Superadmin,
            password_hash,
            at_ms: now_ms(),
        };
        match self.append(Command::Platform(cmd), "GET /api/users").await {
            Ok(_) => {
                tracing::info!("bootstrap superadmin created");
                Ok(())
            }
            // Another leader created it first.
            Err(e) if e.http_status() == axum::http::StatusCode::CONFLICT => Ok(()),
            Err(e) => Err(e),
        }
    }
}
