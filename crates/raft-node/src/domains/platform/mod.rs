//! The platform domain: who may use the cluster and the data they bring.
//!
//! - users, with one role each, their password hashes (argon2, computed by
//!   the leader before proposing) and whether they are banned;
//! - bearer tokens, held only as SHA-256 hashes with their expiry;
//! - datasets: CSV files in the blob store, with the schema and statistics
//!   the leader computed when it validated the upload.
//!
//! Everything random (salts, tokens) and every clock reading is made by the
//! leader and travels in the command, so applying stays deterministic.
//! Permissions are not checked here: the admin service checks the caller's
//! role before it proposes; this domain only keeps the state consistent
//! (unique emails, no token for a banned user, no dataset name twice).

pub mod datasets;
pub mod users;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::integrity::chain;
use super::{CommandResult, Refusal};
pub use datasets::{ColumnKind, Dataset, DatasetColumn, DatasetTask};
pub use users::{Role, TokenRecord, User};

/// Commands of the platform domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PlatformCommand {
    /// Adds a user; refused when the email is taken.
    CreateUser { email: String, role: Role, password_hash: String, at_ms: u64 },
    /// Bans or unbans a user; a ban also revokes every token they hold.
    SetBanned { user_id: u64, banned: bool },
    /// Removes a user and every token they hold.
    DeleteUser { user_id: u64 },
    /// Records a token the leader issued (by its SHA-256); refused for a
    /// banned or unknown user. Expired tokens are dropped at the same time.
    IssueToken { token_sha256: String, user_id: u64, issued_at_ms: u64, expires_at_ms: u64 },
    /// Forgets a token.
    RevokeToken { token_sha256: String },
    /// Names a dataset whose bytes were staged as serving-domain upload
    /// chunks (see `ServingCommand::UploadChunk`).
    CreateDataset { dataset: Dataset, upload_id: u64, chunks: u32 },
    /// Removes a dataset.
    DeleteDataset { name: String },
}

/// What applying a platform command produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PlatformResult {
    User(User),
    Token(TokenRecord),
    Dataset(Dataset),
    /// The command took effect and has nothing to report.
    Done,
}

/// The platform domain's part of the applied state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PlatformState {
    pub users: BTreeMap<u64, User>,
    pub next_user_id: u64,
    /// Live tokens by their SHA-256.
    pub tokens: BTreeMap<String, TokenRecord>,
    pub datasets: BTreeMap<String, Dataset>,
    digest: String,
}

impl PlatformState {
    pub fn digest(&self) -> &str {
        &self.digest
    }

    pub fn user_by_email(&self, email: &str) -> Option<&User> {
        self.users.values().find(|u| u.email == email)
    }

    /// The user a token belongs to, if the token is live at `now_ms` and the
    /// user is not banned.
    pub fn authenticate(&self, token_sha256: &str, now_ms: u64) -> Option<&User> {
        let t = self.tokens.get(token_sha256)?;
        if t.expires_at_ms <= now_ms {
            return None;
        }
        self.users.get(&t.user_id).filter(|u| !u.banned)
    }

    /// Blobs the datasets refer to.
    pub fn blob_refs(&self) -> BTreeSet<String> {
        self.datasets.values().map(|d| d.sha256.clone()).collect()
    }

    fn fold(&mut self, index: u64, parts: &[&[u8]]) {
        self.digest = chain(&self.digest, index, parts);
    }

    fn drop_tokens_of(&mut self, user_id: u64) {
        self.tokens.retain(|_, t| t.user_id != user_id);
    }
}

/// Applies a platform command that needs no node-local resource (all but
/// `CreateDataset`, which `datasets::complete` applies with the blob store).
pub(crate) fn apply(s: &mut PlatformState, index: u64, cmd: PlatformCommand) -> CommandResult {
    let result = match cmd {
        PlatformCommand::CreateUser { email, role, password_hash, at_ms } => {
            if s.user_by_email(&email).is_some() {
                Err(Refusal::conflict(format!("a user with email {email:?} exists")))
            } else {
                s.next_user_id = s.next_user_id.max(1);
                let id = s.next_user_id;
                s.next_user_id += 1;
                let user = User { id, email, role, password_hash, banned: false, created_at_ms: at_ms };
                s.fold(index, &[b"user", &id.to_be_bytes(), user.email.as_bytes(), role.as_str().as_bytes()]);
                s.users.insert(id, user.clone());
                Ok(PlatformResult::User(user))
            }
        }
        PlatformCommand::SetBanned { user_id, banned } => match s.users.get_mut(&user_id) {
            None => Err(Refusal::not_found(format!("no user {user_id}"))),
            Some(u) => {
                u.banned = banned;
                let user = u.clone();
                if banned {
                    s.drop_tokens_of(user_id);
                }
                s.fold(index, &[b"ban", &user_id.to_be_bytes(), &[banned as u8]]);
                Ok(PlatformResult::User(user))
            }
        },
        PlatformCommand::DeleteUser { user_id } => match s.users.remove(&user_id) {
            None => Err(Refusal::not_found(format!("no user {user_id}"))),
            Some(user) => {
                s.drop_tokens_of(user_id);
                s.fold(index, &[b"delete-user", &user_id.to_be_bytes()]);
                Ok(PlatformResult::User(user))
            }
        },
        PlatformCommand::IssueToken { token_sha256, user_id, issued_at_ms, expires_at_ms } => {
            // Expiry is judged by the leader's clock in the entry, so every
            // replica drops the same tokens.
            s.tokens.retain(|_, t| t.expires_at_ms > issued_at_ms);
            match s.users.get(&user_id) {
                None => Err(Refusal::not_found(format!("no user {user_id}"))),
                Some(u) if u.banned => Err(Refusal::conflict(format!("user {} is banned", u.email))),
                Some(_) => {
                    let t = TokenRecord { user_id, issued_at_ms, expires_at_ms, index };
                    s.fold(index, &[b"token", token_sha256.as_bytes(), &user_id.to_be_bytes()]);
                    s.tokens.insert(token_sha256, t.clone());
                    Ok(PlatformResult::Token(t))
                }
            }
        }
        PlatformCommand::RevokeToken { token_sha256 } => match s.tokens.remove(&token_sha256) {
            None => Err(Refusal::not_found("no such token (it may have expired)")),
            Some(_) => {
                s.fold(index, &[b"revoke", token_sha256.as_bytes()]);
                Ok(PlatformResult::Done)
            }
        },
        PlatformCommand::DeleteDataset { name } => match s.datasets.remove(&name) {
            None => Err(Refusal::not_found(format!("no dataset {name:?}"))),
            Some(d) => {
                s.fold(index, &[b"delete-dataset", name.as_bytes()]);
                Ok(PlatformResult::Dataset(d))
            }
        },
        // Needs the blob store: see `datasets::complete`.
        PlatformCommand::CreateDataset { .. } => Err(Refusal::conflict("internal: dataset applied without its blobs")),
    };
    match result {
        Ok(r) => CommandResult::Platform(r),
        Err(refusal) => CommandResult::Refused(refusal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(s: &mut PlatformState, index: u64, email: &str) -> CommandResult {
        let cmd = PlatformCommand::CreateUser {
            email: email.into(),
            role: Role::AppUser,
            password_hash: "h".into(),
            at_ms: 1,
        };
        apply(s, index, cmd)
    }

    #[test]
    fn emails_are_unique_and_ids_increase() {
        let mut s = PlatformState::default();
        assert!(matches!(create(&mut s, 1, "a@x"), CommandResult::Platform(PlatformResult::User(User { id: 1, .. }))));
        assert!(matches!(create(&mut s, 2, "a@x"), CommandResult::Refused(_)));
        assert!(matches!(create(&mut s, 3, "b@x"), CommandResult::Platform(PlatformResult::User(User { id: 2, .. }))));
    }

    #[test]
    fn tokens_expire_by_entry_time_and_bans_revoke_them() {
        let mut s = PlatformState::default();
        create(&mut s, 1, "a@x");
        let issue = |sha: &str, at: u64| PlatformCommand::IssueToken {
            token_sha256: sha.into(),
            user_id: 1,
            issued_at_ms: at,
            expires_at_ms: at + 100,
        };
        apply(&mut s, 2, issue("t1", 1000));
        assert_eq!(s.authenticate("t1", 1050).map(|u| u.id), Some(1));
        assert!(s.authenticate("t1", 1100).is_none(), "expired at its deadline");
        apply(&mut s, 3, issue("t2", 1200));
        assert!(!s.tokens.contains_key("t1"), "an expired token is dropped when the next one is issued");
        apply(&mut s, 4, PlatformCommand::SetBanned { user_id: 1, banned: true });
        assert!(s.tokens.is_empty(), "a ban revokes every token");
        assert!(matches!(apply(&mut s, 5, issue("t3", 1300)), CommandResult::Refused(_)), "no token for a banned user");
    }

    #[test]
    fn the_digest_follows_every_change() {
        let (mut a, mut b) = (PlatformState::default(), PlatformState::default());
        create(&mut a, 1, "a@x");
        create(&mut b, 1, "a@x");
        assert_eq!(a.digest(), b.digest());
        create(&mut a, 2, "b@x");
        create(&mut b, 2, "c@x");
        assert_ne!(a.digest(), b.digest());
    }
}
