//! The append-only audit log ([`AuditLog`]): who did what, from where. Changes made through
//! the other stores write their audit records themselves, in their own transactions.

use chrono::{DateTime, Utc};

use super::StoreError;
use crate::event::TenantId;
use crate::user::Actor;

/// One entry of the append-only audit log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// From where.
    pub origin: String,
    /// What (`incident.assign`, `incident.status`, `incident.note`, `user.add`…).
    pub action: String,
    /// On what (`incident:42`, `user:bob`).
    pub object: String,
    /// Details.
    pub detail: String,
}

/// Reading the audit log, and appending what happened outside the store (a login lockout).
#[async_trait::async_trait]
pub trait AuditLog: Send + Sync {
    /// The latest audit log entries, newest first.
    async fn audit_log(&self, tenant: &TenantId, limit: u32)
    -> Result<Vec<AuditEntry>, StoreError>;
    /// Appends an entry to the tenant's audit log (what the server saw happen: a login
    /// lockout, …).
    async fn record_audit(
        &self,
        tenant: &TenantId,
        actor: &Actor,
        action: &str,
        object: &str,
        detail: &str,
    ) -> Result<(), StoreError>;
}
