//! [`EventStore`] for [`SqlStore`]: events stored de-duplicated in multi-row `INSERT`s,
//! counted per tenant and minute in `event_counts` in the same transaction, and read back.

use std::borrow::Cow;

use chrono::Utc;
use sqlx::{Row, Transaction};

use super::rows::{MINUTE, parse_tenant};
use super::statement::Statement;
use super::{Backend, SqlStore};
use crate::event::{Event, TenantId};
use crate::store::{BatchWrite, EventQuery, EventRow, EventStore, StoreError, StoredEvent};

/// The columns every event query selects, as [`decode_event`] reads them.
pub(super) const EVENT_COLUMNS: &str = "id, tenant, ts, host, source, event_id, record_id, \
    severity, user_name, src_ip, dst_ip, process, command_line, parent_process, fields";

/// [`EVENT_COLUMNS`] of the events table named `e`.
pub(super) const EVENT_COLUMNS_OF_E: &str = "e.id, e.tenant, e.ts, e.host, e.source, e.event_id, \
    e.record_id, e.severity, e.user_name, e.src_ip, e.dst_ip, e.process, e.command_line, \
    e.parent_process, e.fields";

const INSERT_EVENTS: &str = "INSERT INTO events (tenant, dedup_key, ts, host, source, event_id, \
    record_id, severity, user_name, src_ip, dst_ip, process, command_line, parent_process, \
    fields, ingested_at) ";

/// Adds `$3` events stored by `$1` in minute `$2` (since the epoch) to `event_counts`, in the
/// transaction that stores them.
const COUNT_STORED: &str = "INSERT INTO event_counts (tenant, minute, n) VALUES ($1, $2, $3) \
    ON CONFLICT (tenant, minute) DO UPDATE SET n = event_counts.n + excluded.n";

const COUNT_EVENTS: &str = "SELECT COUNT(*) FROM events WHERE tenant = $1";

/// An event as [`EVENT_COLUMNS`] selects it.
pub(super) fn decode_event<B: Backend>(row: &B::Row) -> Result<StoredEvent, StoreError> {
    let tenant: String = row.try_get("tenant")?;
    let ts: Option<B::Time> = row.try_get("ts")?;
    Ok(StoredEvent {
        id: row.try_get("id")?,
        event: Event {
            tenant: parse_tenant(&tenant)?,
            timestamp: ts.and_then(B::read_time),
            host: row.try_get("host")?,
            source: row.try_get("source")?,
            event_id: row.try_get("event_id")?,
            record_id: row.try_get("record_id")?,
            severity: row.try_get("severity")?,
            user: row.try_get("user_name")?,
            src_ip: row.try_get("src_ip")?,
            dst_ip: row.try_get("dst_ip")?,
            process: row.try_get("process")?,
            command_line: row.try_get("command_line")?,
            parent_process: row.try_get("parent_process")?,
            fields: B::read_fields(row.try_get("fields")?)?,
        },
    })
}

/// An optional text column's value as the backend keeps it.
fn text<B: Backend>(value: &Option<String>) -> Option<Cow<'_, str>> {
    value.as_deref().map(B::text)
}

/// Stores `rows` in `tx`, skipping those already stored, and adds the new ones to
/// `event_counts`; returns their keys.
pub(super) async fn insert_rows<B: Backend>(
    tx: &mut Transaction<'_, B>,
    rows: &[EventRow],
) -> Result<Vec<[u8; 16]>, StoreError> {
    let now = Utc::now();
    let mut stored = Vec::new();
    // New events per tenant, for `event_counts`.
    let mut counts: Vec<(String, i64)> = Vec::new();
    for chunk in rows.chunks(B::EVENTS_PER_INSERT) {
        let mut insert = Statement::<B>::new(INSERT_EVENTS);
        insert.push("VALUES ");
        for (n, row) in chunk.iter().enumerate() {
            insert.push(if n == 0 { "(" } else { ", (" });
            insert
                .push_bind(row.tenant.as_str())
                .push(", ")
                .push_bind(&row.dedup_key[..])
                .push(", ")
                .push_bind(B::maybe_time(row.ts_micros))
                .push(", ")
                .push_bind(text::<B>(&row.host))
                .push(", ")
                .push_bind(text::<B>(&row.source))
                .push(", ")
                .push_bind(row.event_id)
                .push(", ")
                .push_bind(row.record_id)
                .push(", ")
                .push_bind(text::<B>(&row.severity))
                .push(", ")
                .push_bind(text::<B>(&row.user))
                .push(", ")
                .push_bind(text::<B>(&row.src_ip))
                .push(", ")
                .push_bind(text::<B>(&row.dst_ip))
                .push(", ")
                .push_bind(text::<B>(&row.process))
                .push(", ")
                .push_bind(text::<B>(&row.command_line))
                .push(", ")
                .push_bind(text::<B>(&row.parent_process))
                .push(", ")
                .push_bind(B::json(&row.fields_json))
                .push(B::FIELDS_CAST)
                .push(", ")
                .push_bind(B::time(now))
                .push(")");
        }
        insert.push(" ON CONFLICT (tenant, dedup_key) DO NOTHING RETURNING tenant, dedup_key");
        let stored_now: Vec<(String, Vec<u8>)> = insert.fetch_all_as(&mut **tx).await?;
        for (tenant, key) in stored_now {
            match counts.iter_mut().find(|(t, _)| *t == tenant) {
                Some((_, n)) => *n += 1,
                None => counts.push((tenant, 1)),
            }
            stored.push(
                key.try_into()
                    .map_err(|_| StoreError::Corrupt("a dedup key is not 16 bytes".to_owned()))?,
            );
        }
    }
    let minute = now.timestamp_micros().div_euclid(MINUTE);
    for (tenant, n) in counts {
        sqlx::query(COUNT_STORED)
            .bind(tenant)
            .bind(minute)
            .bind(n)
            .execute(&mut **tx)
            .await?;
    }
    Ok(stored)
}

#[async_trait::async_trait]
impl<B: Backend> EventStore for SqlStore<B> {
    async fn insert_events(&self, rows: &[EventRow]) -> Result<Vec<[u8; 16]>, StoreError> {
        let mut tx = self.writer.begin().await?;
        let stored = insert_rows(&mut tx, rows).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn begin_batch(
        &self,
        tenant: &TenantId,
        journal: &str,
    ) -> Result<Box<dyn BatchWrite>, StoreError> {
        Ok(Box::new(
            super::batch::SqlBatch::begin(&self.writer, tenant, journal).await?,
        ))
    }

    async fn list_events(
        &self,
        tenant: &TenantId,
        query: &EventQuery,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut select = Statement::<B>::new(format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE tenant = "
        ));
        select.push_bind(tenant.as_str());
        if let Some(host) = &query.host {
            B::push_same_text(&mut select, "host", host);
        }
        if let Some(event_id) = query.event_id {
            select.push(" AND event_id = ").push_bind(event_id);
        }
        if let Some(source) = &query.source {
            B::push_same_text(&mut select, "source", source);
        }
        if let Some(since) = query.since {
            select.push(" AND ts >= ").push_bind(B::time(since));
        }
        if let Some(until) = query.until {
            select.push(" AND ts < ").push_bind(B::time(until));
        }
        select
            .push(format_args!(" ORDER BY {} LIMIT ", B::NEWEST_EVENTS_FIRST))
            .push_bind(i64::from(query.limit));
        let rows = select.fetch_all(&self.pool).await?;
        rows.iter().map(decode_event::<B>).collect()
    }

    async fn count_events(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(COUNT_EVENTS)
            .bind(tenant.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok(count as u64)
    }

    fn backend(&self) -> &'static str {
        B::BACKEND
    }
}
