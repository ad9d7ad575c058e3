//! [`BatchWrite`] for [`SqlStore`]: one transaction of the writer pool. It begins by taking
//! the row of the tenant's journal head in `correlation_heads` (an upsert: a row lock in
//! PostgreSQL, the database's write lock in SQLite), so writers of one tenant take turns
//! from the first statement on, and learns the head at the same time.

use chrono::{DateTime, Utc};
use sqlx::{Pool, Transaction};

use super::correlation::seq_column;
use super::events::insert_rows;
use super::{Backend, alerts};
use crate::event::TenantId;
use crate::incident::{Alert, AlertOutcome};
use crate::store::{BatchWrite, EventRow, StoreError};

/// Takes (creating) the journal head's row and returns its sequence number.
const LOCK_HEAD: &str = "INSERT INTO correlation_heads (tenant, name, seq) VALUES ($1, $2, 0) \
    ON CONFLICT (tenant, name) DO UPDATE SET seq = correlation_heads.seq RETURNING seq";
const APPEND: &str =
    "INSERT INTO correlation_journal (tenant, name, seq, entry) VALUES ($1, $2, $3, $4)";
const MOVE_HEAD: &str = "UPDATE correlation_heads SET seq = $3 WHERE tenant = $1 AND name = $2";

/// A batch being written: the transaction and what commit needs.
pub(super) struct SqlBatch<B: Backend> {
    tx: Transaction<'static, B>,
    writer: Pool<B>,
    tenant: TenantId,
    journal: String,
    head: u64,
    /// What the batch's alerts did, for the statistics refresh after commit.
    outcome: AlertOutcome,
}

impl<B: Backend> SqlBatch<B> {
    /// Begins a batch of `tenant`'s, locking its journal `journal`.
    pub(super) async fn begin(
        writer: &Pool<B>,
        tenant: &TenantId,
        journal: &str,
    ) -> Result<Self, StoreError> {
        let mut tx = writer.begin().await?;
        let head: i64 = sqlx::query_scalar(LOCK_HEAD)
            .bind(tenant.as_str())
            .bind(journal)
            .fetch_one(&mut *tx)
            .await?;
        Ok(Self {
            tx,
            writer: writer.clone(),
            tenant: tenant.clone(),
            journal: journal.to_owned(),
            head: head.max(0) as u64,
            outcome: AlertOutcome::default(),
        })
    }
}

#[async_trait::async_trait]
impl<B: Backend> BatchWrite for SqlBatch<B> {
    fn journal_head(&self) -> u64 {
        self.head
    }

    async fn insert_events(&mut self, rows: &[EventRow]) -> Result<Vec<[u8; 16]>, StoreError> {
        insert_rows(&mut self.tx, rows).await
    }

    async fn record_alerts(
        &mut self,
        found: &[Alert],
        window: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<AlertOutcome, StoreError> {
        if found.is_empty() {
            return Ok(AlertOutcome::default());
        }
        let outcome =
            alerts::record_alerts_in(&mut self.tx, self.tenant.as_str(), found, window, now)
                .await?;
        self.outcome.alerts += outcome.alerts;
        self.outcome.incidents_created += outcome.incidents_created;
        self.outcome.incidents_updated += outcome.incidents_updated;
        Ok(outcome)
    }

    async fn append_journal(&mut self, entry: &[u8]) -> Result<u64, StoreError> {
        let seq = self.head + 1;
        sqlx::query(APPEND)
            .bind(self.tenant.as_str())
            .bind(self.journal.as_str())
            .bind(seq_column(seq))
            .bind(entry)
            .execute(&mut *self.tx)
            .await?;
        self.move_head(seq).await?;
        Ok(seq)
    }

    async fn move_head(&mut self, seq: u64) -> Result<(), StoreError> {
        sqlx::query(MOVE_HEAD)
            .bind(self.tenant.as_str())
            .bind(self.journal.as_str())
            .bind(seq_column(seq))
            .execute(&mut *self.tx)
            .await?;
        self.head = seq;
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        let Self {
            tx,
            writer,
            outcome,
            ..
        } = *self;
        tx.commit().await?;
        alerts::after_alerts(&writer, &outcome).await
    }
}
