//! Who may sign in and with what: [`AuthStore`] keeps users (roles, argon2id password
//! hashes, disabled and global flags), browser sessions and API tokens. Sessions and tokens
//! are looked up by the hash of their secret, never the secret; every change a person makes
//! is audited in its transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::StoreError;
use crate::event::TenantId;
use crate::user::{Actor, Role, User};

/// An active user's login details (never serialised: it holds the password hash).
#[derive(Debug, Clone)]
pub struct LoginRecord {
    /// Login name.
    pub name: String,
    /// The user's own tenant.
    pub tenant: String,
    /// Role.
    pub role: Role,
    /// A global admin may work on every tenant.
    pub global: bool,
    /// argon2id hash.
    pub password_hash: String,
}

/// A live browser session, with its user as it is now (disabled users have none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The user's tenant.
    pub tenant: String,
    /// Login name.
    pub user: String,
    /// The user's role.
    pub role: Role,
    /// Whether the user is a global admin.
    pub global: bool,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
}

/// A bearer API token as listed (never with its secret or hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    /// Id (to revoke it).
    pub id: i64,
    /// The tenant it works on.
    pub tenant: String,
    /// What it is for (`agent dc01`, `ci export`).
    pub name: String,
    /// Role.
    pub role: Role,
    /// Whether it may work on every tenant (admin tokens only).
    pub global: bool,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new token's details; the secret's hash is computed by the caller.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    /// The tenant it works on.
    pub tenant: &'a TenantId,
    /// What it is for.
    pub name: &'a str,
    /// Role.
    pub role: Role,
    /// Every tenant (admin only).
    pub global: bool,
    /// Keyed hash of the secret.
    pub secret_hash: &'a [u8],
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Users, sessions and API tokens. Token and session lookups take the secret's hash, never
/// the secret.
#[async_trait::async_trait]
pub trait AuthStore: Send + Sync {
    /// Adds a user (the password already hashed with argon2id).
    async fn add_user(
        &self,
        tenant: &TenantId,
        name: &str,
        role: Role,
        password_hash: &str,
        actor: &Actor,
    ) -> Result<User, StoreError>;
    /// The tenant's users.
    async fn list_users(&self, tenant: &TenantId) -> Result<Vec<User>, StoreError>;
    /// Disables (or enables again) a user; disabling ends the user's sessions.
    async fn set_user_disabled(
        &self,
        tenant: &TenantId,
        name: &str,
        disabled: bool,
        actor: &Actor,
    ) -> Result<User, StoreError>;
    /// Makes an admin global (or not).
    async fn set_user_global(
        &self,
        tenant: &TenantId,
        name: &str,
        global: bool,
        actor: &Actor,
    ) -> Result<(), StoreError>;
    /// An active user's password hash, to verify a login.
    async fn password_hash(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<String>, StoreError>;
    /// An active (not disabled) user's login details.
    async fn login_record(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<LoginRecord>, StoreError>;
    /// Stores a new session under the hash of its secret.
    async fn create_session(
        &self,
        id_hash: &[u8],
        tenant: &TenantId,
        user: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// The live session with this hash, with its user's current role (none when expired or
    /// the user is disabled).
    async fn session(
        &self,
        id_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<SessionRecord>, StoreError>;
    /// Ends a session.
    async fn delete_session(&self, id_hash: &[u8]) -> Result<(), StoreError>;
    /// Removes expired sessions; returns how many.
    async fn purge_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Creates a token (audited).
    async fn create_token(
        &self,
        token: &NewToken<'_>,
        actor: &Actor,
    ) -> Result<ApiToken, StoreError>;
    /// The tenant's tokens, revoked ones included.
    async fn list_tokens(&self, tenant: &TenantId) -> Result<Vec<ApiToken>, StoreError>;
    /// Revokes a token of the tenant (audited).
    async fn revoke_token(
        &self,
        tenant: &TenantId,
        id: i64,
        actor: &Actor,
    ) -> Result<ApiToken, StoreError>;
    /// The valid (not revoked, not expired) token with this secret hash.
    async fn token_by_hash(
        &self,
        secret_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<ApiToken>, StoreError>;
}
