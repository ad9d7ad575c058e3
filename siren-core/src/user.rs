//! Users and roles. Passwords are stored as argon2id hashes only (hashing is the caller's
//! job, in the binary that reads the password).

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including users and tokens.
    Admin,
    /// Work incidents.
    Analyst,
    /// Read only.
    Viewer,
    /// Send events and heartbeats only (API tokens of endpoint agents; never a person).
    Agent,
}

impl Role {
    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Analyst => "analyst",
            Role::Viewer => "viewer",
            Role::Agent => "agent",
        }
    }

    /// Parses a role name.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "admin" => Some(Role::Admin),
            "analyst" => Some(Role::Analyst),
            "viewer" => Some(Role::Viewer),
            "agent" => Some(Role::Agent),
            _ => None,
        }
    }

    /// Whether this role may change incidents (assign, status, notes).
    pub fn can_work_incidents(self) -> bool {
        matches!(self, Role::Admin | Role::Analyst)
    }

    /// Whether this role may read incidents, events, rules and stats.
    pub fn can_read(self) -> bool {
        matches!(self, Role::Admin | Role::Analyst | Role::Viewer)
    }

    /// Whether this role may send events.
    pub fn can_send_events(self) -> bool {
        matches!(self, Role::Admin | Role::Analyst | Role::Agent)
    }

    /// Whether a person (a user who logs in) may have this role: `agent` is for tokens only.
    pub fn is_for_people(self) -> bool {
        self != Role::Agent
    }
}

/// A user as listed (never with the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Tenant.
    pub tenant: String,
    /// Role.
    pub role: Role,
    /// Disabled users cannot log in or be assigned incidents.
    pub disabled: bool,
    /// A global admin: may work on every tenant, and only other global admins see it.
    pub global: bool,
    /// When the user was added.
    pub created_at: DateTime<Utc>,
}

/// Checks a login name: 1 to 64 characters of letters, digits, `.`, `_`, `-`, `@`.
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || ".-_@".contains(c))
}

/// Who changed something, and from where, for the timeline and the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The user (or `siren` for SIREN itself).
    pub name: String,
    /// Where from: `cli@host`, an IP address, …
    pub origin: String,
}

/// Hashes a password with argon2id and a random salt (PHC string format).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches an argon2 hash (false for a malformed hash).
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_ne!(hash, hash_password("correct horse").unwrap(), "salted");
    }

    #[test]
    fn names_and_roles() {
        assert!(valid_user_name("alice.smith@corp"));
        assert!(!valid_user_name("bob; drop table"));
        assert_eq!(Role::parse("Analyst"), Some(Role::Analyst));
        assert!(!Role::Viewer.can_work_incidents());
    }
}
