//! [`CorrelationState`] for [`SqlStore`]: the correlator's saved state, one row per tenant
//! and name, replaced on save.

use chrono::Utc;

use super::{Backend, SqlStore};
use crate::event::TenantId;
use crate::store::{CorrelationState, StoreError};

const LOAD_STATE: &str = "SELECT state FROM correlation_state WHERE tenant = $1 AND name = $2";
const SAVE_STATE: &str = "INSERT INTO correlation_state (tenant, name, state, updated_at) \
    VALUES ($1, $2, $3, $4) ON CONFLICT (tenant, name) DO UPDATE SET state = excluded.state, \
    updated_at = excluded.updated_at";

#[async_trait::async_trait]
impl<B: Backend> CorrelationState for SqlStore<B> {
    async fn load_correlation_state(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(sqlx::query_scalar(LOAD_STATE)
            .bind(tenant.as_str())
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn save_correlation_state(
        &self,
        tenant: &TenantId,
        name: &str,
        state: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query(SAVE_STATE)
            .bind(tenant.as_str())
            .bind(name)
            .bind(state)
            .bind(Utc::now().timestamp_micros())
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}
