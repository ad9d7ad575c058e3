//! [`AuditLog`] for [`SqlStore`]: the append-only audit log, read newest first.

use chrono::Utc;
use sqlx::Row;

use super::records;
use super::rows::time;
use super::{Backend, SqlStore};
use crate::event::TenantId;
use crate::store::{AuditEntry, AuditLog, StoreError};
use crate::user::Actor;

const AUDIT: &str = "SELECT at, actor, origin, action, object, detail FROM audit_log \
    WHERE tenant = $1 ORDER BY at DESC, id DESC LIMIT $2";

#[async_trait::async_trait]
impl<B: Backend> AuditLog for SqlStore<B> {
    async fn audit_log(
        &self,
        tenant: &TenantId,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(AUDIT)
            .bind(tenant.as_str())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    at: time(row.try_get("at")?),
                    actor: row.try_get("actor")?,
                    origin: row.try_get("origin")?,
                    action: row.try_get("action")?,
                    object: row.try_get("object")?,
                    detail: row.try_get("detail")?,
                })
            })
            .collect()
    }

    async fn record_audit(
        &self,
        tenant: &TenantId,
        actor: &Actor,
        action: &str,
        object: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        let at = Utc::now().timestamp_micros();
        let what = (action, object, detail);
        records::audit(&self.writer, tenant.as_str(), at, actor, what).await
    }
}
