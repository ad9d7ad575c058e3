//! [`CorrelationState`] for [`SqlStore`]: the correlator's checkpoint, one row per tenant
//! and name, replaced on save, and the journal of entries after it (`correlation_journal`,
//! appended by batches, see `batch.rs`).

use chrono::Utc;

use super::{Backend, SqlStore};
use crate::event::TenantId;
use crate::store::{Checkpoint, CorrelationState, StoreError};

const LOAD_STATE: &str = "SELECT state, seq FROM correlation_state WHERE tenant = $1 AND name = $2";
/// Replaces the checkpoint unless the saved one covers more of the journal.
const SAVE_STATE: &str = "INSERT INTO correlation_state (tenant, name, state, updated_at, seq) \
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, name) DO UPDATE SET state = excluded.state, \
    updated_at = excluded.updated_at, seq = excluded.seq \
    WHERE correlation_state.seq <= excluded.seq";
const PRUNE_JOURNAL: &str =
    "DELETE FROM correlation_journal WHERE tenant = $1 AND name = $2 AND seq <= $3";
const READ_JOURNAL: &str = "SELECT seq, entry FROM correlation_journal \
    WHERE tenant = $1 AND name = $2 AND seq > $3 ORDER BY seq";

/// A sequence number as the database keeps it (the journal never comes near 2^63).
pub(super) fn seq_column(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

#[async_trait::async_trait]
impl<B: Backend> CorrelationState for SqlStore<B> {
    async fn load_correlation_state(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<Checkpoint>, StoreError> {
        let saved: Option<(Vec<u8>, i64)> = sqlx::query_as(LOAD_STATE)
            .bind(tenant.as_str())
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(saved.map(|(state, seq)| Checkpoint {
            state,
            seq: seq.max(0) as u64,
        }))
    }

    async fn save_correlation_state(
        &self,
        tenant: &TenantId,
        name: &str,
        state: &[u8],
        seq: u64,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(SAVE_STATE)
            .bind(tenant.as_str())
            .bind(name)
            .bind(state)
            .bind(Utc::now().timestamp_micros())
            .bind(seq_column(seq))
            .execute(&mut *tx)
            .await?;
        sqlx::query(PRUNE_JOURNAL)
            .bind(tenant.as_str())
            .bind(name)
            .bind(seq_column(seq))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn correlation_journal(
        &self,
        tenant: &TenantId,
        name: &str,
        after: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let entries: Vec<(i64, Vec<u8>)> = sqlx::query_as(READ_JOURNAL)
            .bind(tenant.as_str())
            .bind(name)
            .bind(seq_column(after))
            .fetch_all(&self.pool)
            .await?;
        Ok(entries
            .into_iter()
            .map(|(seq, entry)| (seq.max(0) as u64, entry))
            .collect())
    }
}
