//! Users, roles and tokens of the platform domain.

use serde::{Deserialize, Serialize};

/// What a user may do. The admin service maps every operation to the roles
/// allowed to perform it; roles are not ranked, except that a superadmin
/// may do everything an admin may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    Superadmin,
    /// Manages users (not admins).
    Admin,
    /// Manages models (and, later, model templates).
    ModelDeveloper,
    /// Manages datasets, train jobs and apps.
    AppDeveloper,
    /// Makes predictions.
    AppUser,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Superadmin, Role::Admin, Role::ModelDeveloper, Role::AppDeveloper, Role::AppUser];

    /// The role's name as the APIs spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Superadmin => "SUPERADMIN",
            Role::Admin => "ADMIN",
            Role::ModelDeveloper => "MODEL_DEVELOPER",
            Role::AppDeveloper => "APP_DEVELOPER",
            Role::AppUser => "APP_USER",
        }
    }

    /// Parses a role name (case-insensitive; `-` and `_` alike).
    pub fn parse(s: &str) -> Option<Role> {
        let wanted = s.trim().to_ascii_uppercase().replace('-', "_");
        Role::ALL.into_iter().find(|r| r.as_str() == wanted)
    }

    /// Admins and the superadmin manage other users.
    pub fn is_admin(self) -> bool {
        matches!(self, Role::Superadmin | Role::Admin)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One user.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub email: String,
    pub role: Role,
    /// Argon2 PHC string; the password itself is never stored.
    pub password_hash: String,
    pub banned: bool,
    pub created_at_ms: u64,
}

// The password hash is left out of debug output, so that it cannot reach a
// log through a `{:?}`.
impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("banned", &self.banned)
            .finish_non_exhaustive()
    }
}

/// A live bearer token, stored under its SHA-256; the token itself exists
/// only in the reply to the login that created it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub user_id: u64,
    pub issued_at_ms: u64,
    pub expires_at_ms: u64,
    /// Log index of the login.
    pub index: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("app-user"), Some(Role::AppUser));
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn debug_output_hides_the_password_hash() {
        let u = User {
            id: 1,
            email: "a@x".into(),
            role: Role::Admin,
            password_hash: "$argon2id$secret".into(),
            banned: false,
            created_at_ms: 0,
        };
        assert!(!format!("{u:?}").contains("argon2"));
    }
}
