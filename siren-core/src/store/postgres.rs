//! The PostgreSQL store, for teams and for several servers sharing one database; migrations
//! from `migrations/postgres`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};

use super::{AlertsOf, BatchStored, EventQuery, EventRow, Store, StoreError, StoredEvent};
use crate::event::{Event, TenantId};
use crate::incident::AlertOutcome;

/// Rows per INSERT statement: 16 parameters each, well under PostgreSQL's 65,535.
const ROWS_PER_STATEMENT: usize = 1000;

const EVENT_COLUMNS: &str = "id, tenant, ts, host, source, event_id, record_id, severity, user_name, \
     src_ip, dst_ip, process, command_line, parent_process, fields";

/// SIREN's data in a PostgreSQL database.
pub struct PostgresStore {
    pool: PgPool,
    /// The pool writes take (the same pool: PostgreSQL has many writers).
    writer: PgPool,
}

impl PostgresStore {
    /// Connects to the database at `url` and migrates it.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|source| StoreError::Connect {
                url: super::redact_url(url),
                source,
            })?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        Ok(Self {
            writer: pool.clone(),
            pool,
        })
    }
}

/// PostgreSQL text cannot hold NUL characters (nor can JSONB hold `\u0000`): they become
/// U+FFFD. Everything else is stored as it came.
fn pg_text(text: Option<&str>) -> Option<std::borrow::Cow<'_, str>> {
    text.map(|t| {
        if t.contains('\0') {
            t.replace('\0', "\u{FFFD}").into()
        } else {
            t.into()
        }
    })
}

fn pg_json(json: &str) -> std::borrow::Cow<'_, str> {
    if !json.contains("\\u0000") {
        return json.into();
    }
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(mut value) => {
            replace_nul(&mut value);
            serde_json::to_string(&value).unwrap_or_default().into()
        }
        Err(_) => json.into(),
    }
}

fn replace_nul(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
        serde_json::Value::Array(items) => items.iter_mut().for_each(replace_nul),
        serde_json::Value::Object(map) => map.values_mut().for_each(replace_nul),
        _ => {}
    }
}

/// Stores `rows` in `tx`, skipping those already stored, and adds the new ones to
/// `event_counts`; returns their keys.
async fn insert_rows(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    rows: &[EventRow],
) -> Result<Vec<[u8; 16]>, StoreError> {
    let now = Utc::now();
    let now_micros = now.timestamp_micros();
    let mut stored = Vec::new();
    // New events per tenant, for `event_counts`.
    let mut counts: Vec<(String, i64)> = Vec::new();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut insert = QueryBuilder::<Postgres>::new(
            "INSERT INTO events (tenant, dedup_key, ts, host, source, event_id, record_id, \
             severity, user_name, src_ip, dst_ip, process, command_line, parent_process, \
             fields, ingested_at) ",
        );
        insert.push_values(chunk, |mut values, row| {
            let ts = row
                .ts_micros
                .and_then(DateTime::<Utc>::from_timestamp_micros);
            values
                .push_bind(row.tenant.as_str().to_owned())
                .push_bind(row.dedup_key.to_vec())
                .push_bind(ts)
                .push_bind(pg_text(row.host.as_deref()).map(|t| t.into_owned()))
                .push_bind(pg_text(row.source.as_deref()).map(|t| t.into_owned()))
                .push_bind(row.event_id)
                .push_bind(row.record_id)
                .push_bind(pg_text(row.severity.as_deref()).map(|t| t.into_owned()))
                .push_bind(pg_text(row.user.as_deref()).map(|t| t.into_owned()))
                .push_bind(pg_text(row.src_ip.as_deref()).map(|t| t.into_owned()))
                .push_bind(pg_text(row.dst_ip.as_deref()).map(|t| t.into_owned()))
                .push_bind(pg_text(row.process.as_deref()).map(|t| t.into_owned()))
                .push_bind(pg_text(row.command_line.as_deref()).map(|t| t.into_owned()))
                .push_bind(pg_text(row.parent_process.as_deref()).map(|t| t.into_owned()))
                .push_bind(pg_json(&row.fields_json).into_owned())
                .push_unseparated("::jsonb")
                .push_bind(now);
        });
        insert.push(" ON CONFLICT (tenant, dedup_key) DO NOTHING RETURNING tenant, dedup_key");
        for (tenant, key) in insert
            .build_query_as::<(String, Vec<u8>)>()
            .fetch_all(&mut **tx)
            .await?
        {
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
    let minute = now_micros.div_euclid(super::server::MINUTE);
    for (tenant, n) in counts {
        sqlx::query(super::server::sql::COUNT_STORED)
            .bind(tenant)
            .bind(minute)
            .bind(n)
            .execute(&mut **tx)
            .await?;
    }
    Ok(stored)
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn insert_events(&self, rows: &[EventRow]) -> Result<Vec<[u8; 16]>, StoreError> {
        let mut tx = self.writer.begin().await?;
        let stored = insert_rows(&mut tx, rows).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn store_batch(
        &self,
        tenant: &TenantId,
        rows: &[EventRow],
        alerts: &mut AlertsOf<'_>,
        window: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<BatchStored, StoreError> {
        let mut tx = self.writer.begin().await?;
        let new_keys = insert_rows(&mut tx, rows).await?;
        let found = if new_keys.is_empty() {
            Vec::new()
        } else {
            alerts(&new_keys)
        };
        let outcome = if found.is_empty() {
            AlertOutcome::default()
        } else {
            incident_store::record_alerts_in(&mut tx, tenant.as_str(), &found, window, now).await?
        };
        tx.commit().await?;
        incident_store::after_alerts(&self.writer, &outcome).await?;
        Ok(BatchStored {
            new_keys,
            alerts: outcome,
        })
    }

    async fn list_events(
        &self,
        tenant: &TenantId,
        query: &EventQuery,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut select = QueryBuilder::<Postgres>::new(format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE tenant = "
        ));
        select.push_bind(tenant.as_str().to_owned());
        if let Some(host) = &query.host {
            select
                .push(" AND lower(host) = lower(")
                .push_bind(host.clone())
                .push(")");
        }
        if let Some(event_id) = query.event_id {
            select.push(" AND event_id = ").push_bind(event_id);
        }
        if let Some(source) = &query.source {
            select
                .push(" AND lower(source) = lower(")
                .push_bind(source.clone())
                .push(")");
        }
        if let Some(since) = query.since {
            select.push(" AND ts >= ").push_bind(since);
        }
        if let Some(until) = query.until {
            select.push(" AND ts < ").push_bind(until);
        }
        select
            .push(" ORDER BY ts DESC NULLS LAST, id DESC LIMIT ")
            .push_bind(i64::from(query.limit));
        let rows = select.build().fetch_all(&self.pool).await?;
        rows.iter().map(decode_event).collect()
    }

    async fn count_events(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE tenant = $1")
            .bind(tenant.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok(count as u64)
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}

fn decode_event(row: &PgRow) -> Result<StoredEvent, StoreError> {
    let tenant: String = row.try_get("tenant")?;
    let fields: sqlx::types::Json<crate::event::Fields> = row.try_get("fields")?;
    Ok(StoredEvent {
        id: row.try_get("id")?,
        event: Event {
            tenant: TenantId::parse(&tenant).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            timestamp: row.try_get("ts")?,
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
            fields: fields.0,
        },
    })
}

/// Incidents, users, audit log and correlation state, from the shared implementation.
mod incident_store {
    use super::PostgresStore;
    super::super::incidents::incident_methods!(
        PostgresStore,
        sqlx::Postgres,
        super::decode_event,
        "e.id, e.tenant, e.ts, e.host, e.source, e.event_id, e.record_id, e.severity, e.user_name, e.src_ip, \
         e.dst_ip, e.process, e.command_line, e.parent_process, e.fields"
    );
    super::super::report::report_methods!(PostgresStore, sqlx::Postgres);
}

/// Tokens, sessions, agents, the change feed and the dashboard's counts, from the shared
/// implementation.
mod server_store {
    use super::PostgresStore;
    super::super::server::server_methods!(PostgresStore, sqlx::Postgres);
}

/// The notification outbox, from the shared implementation.
mod outbox_store {
    use super::PostgresStore;
    super::super::outbox::outbox_methods!(PostgresStore, sqlx::Postgres);
}
