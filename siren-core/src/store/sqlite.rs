//! The SQLite store: one file, WAL mode, migrations from `migrations/sqlite`.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{AlertsOf, BatchStored, EventQuery, EventRow, Store, StoreError, StoredEvent};
use crate::event::{Event, TenantId};
use crate::incident::AlertOutcome;

/// Rows per INSERT statement: 16 parameters each, well under SQLite's 32,766.
const ROWS_PER_STATEMENT: usize = 500;

/// Each connection's page cache, in KiB. SQLite's default (2 MiB) holds a small part of the
/// event indexes once a few hundred thousand events are stored; every batch then reads back
/// and rewrites pages of the de-duplication index (random keys) that it had just evicted.
const PAGE_CACHE_KIB: i64 = 64 * 1024;

/// WAL pages after which a commit copies the log into the database (SQLite's default is
/// 1,000, i.e. about every other batch of events). Fewer, larger checkpoints write a page
/// that several batches changed once.
const WAL_CHECKPOINT_PAGES: i64 = 10_000;

/// The columns every event query selects, in [`decode_event`]'s order.
const EVENT_COLUMNS: &str = "id, tenant, ts, host, source, event_id, record_id, severity, user_name, \
     src_ip, dst_ip, process, command_line, parent_process, fields";

/// Connections that read (the dashboard's users, searches, reports) at once.
const READERS: u32 = 8;

/// SIREN's data in a SQLite database.
///
/// Every write goes through one connection of its own (`writer`): SQLite has one writer at a
/// time anyway, and a connection keeps its page cache only while no other connection changes
/// the database, so the writer finds the de-duplication index it needs in memory instead of
/// reading it back after every commit. Reads use the other connections (`pool`).
pub struct SqliteStore {
    pool: SqlitePool,
    writer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and migrates it.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let connect_error = |source| StoreError::Connect {
            url: url.to_owned(),
            source,
        };
        let options = if url.to_ascii_lowercase().starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url).map_err(connect_error)?
        } else {
            SqliteConnectOptions::new().filename(url)
        };
        if !is_in_memory(url) {
            create_private(options.get_filename())
                .map_err(|e| connect_error(sqlx::Error::Io(e)))?;
        }
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            .pragma("cache_size", (-PAGE_CACHE_KIB).to_string())
            .pragma("wal_autocheckpoint", WAL_CHECKPOINT_PAGES.to_string());
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(connect_error)?;
        sqlx::migrate!("../migrations/sqlite").run(&writer).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(options)
            .await
            .map_err(connect_error)?;
        Ok(Self { pool, writer })
    }
}

/// Whether `url` names an in-memory database (`sqlite::memory:`, `?mode=memory`) or one
/// opened read-only, for which no file is created.
fn is_in_memory(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.contains(":memory:") || lower.contains("mode=memory") || lower.contains("mode=ro")
}

/// Creates the database file at `path`, readable by its owner only, before SQLite opens it;
/// SQLite gives the `-wal` and `-shm` files it creates beside it the database file's mode. An
/// existing database (and its `-wal` and `-shm` files) loses any access for others; its
/// owner and group keep theirs.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    if path.as_os_str().is_empty() || crate::owner_only::create_file(path)? {
        return Ok(());
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        // Best effort: a database of another user's stays as it is.
        let _ = crate::owner_only::restrict(std::path::Path::new(&name), 0o007);
    }
    Ok(())
}

/// Stores `rows` in `tx`, skipping those already stored, and adds the new ones to
/// `event_counts`; returns their keys.
async fn insert_rows(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    rows: &[EventRow],
) -> Result<Vec<[u8; 16]>, StoreError> {
    let now = Utc::now().timestamp_micros();
    let mut stored = Vec::new();
    // New events per tenant, for `event_counts`.
    let mut counts: Vec<(String, i64)> = Vec::new();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO events (tenant, dedup_key, ts, host, source, event_id, record_id, \
             severity, user_name, src_ip, dst_ip, process, command_line, parent_process, \
             fields, ingested_at) ",
        );
        insert.push_values(chunk, |mut values, row| {
            values
                .push_bind(row.tenant.as_str())
                .push_bind(&row.dedup_key[..])
                .push_bind(row.ts_micros)
                .push_bind(row.host.as_deref())
                .push_bind(row.source.as_deref())
                .push_bind(row.event_id)
                .push_bind(row.record_id)
                .push_bind(row.severity.as_deref())
                .push_bind(row.user.as_deref())
                .push_bind(row.src_ip.as_deref())
                .push_bind(row.dst_ip.as_deref())
                .push_bind(row.process.as_deref())
                .push_bind(row.command_line.as_deref())
                .push_bind(row.parent_process.as_deref())
                .push_bind(row.fields_json.as_str())
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
    let minute = now.div_euclid(super::server::MINUTE);
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
impl Store for SqliteStore {
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
        let mut select = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE tenant = "
        ));
        select.push_bind(tenant.as_str());
        if let Some(host) = &query.host {
            select
                .push(" AND host = ")
                .push_bind(host)
                .push(" COLLATE NOCASE");
        }
        if let Some(event_id) = query.event_id {
            select.push(" AND event_id = ").push_bind(event_id);
        }
        if let Some(source) = &query.source {
            select
                .push(" AND source = ")
                .push_bind(source)
                .push(" COLLATE NOCASE");
        }
        if let Some(since) = query.since {
            select
                .push(" AND ts >= ")
                .push_bind(since.timestamp_micros());
        }
        if let Some(until) = query.until {
            select
                .push(" AND ts < ")
                .push_bind(until.timestamp_micros());
        }
        select
            .push(" ORDER BY ts DESC, id DESC LIMIT ")
            .push_bind(i64::from(query.limit));
        let rows = select.build().fetch_all(&self.pool).await?;
        rows.iter().map(decode_event).collect()
    }

    async fn count_events(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE tenant = ?")
            .bind(tenant.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok(count as u64)
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

fn decode_event(row: &SqliteRow) -> Result<StoredEvent, StoreError> {
    let tenant: String = row.try_get("tenant")?;
    let fields: String = row.try_get("fields")?;
    let ts: Option<i64> = row.try_get("ts")?;
    Ok(StoredEvent {
        id: row.try_get("id")?,
        event: Event {
            tenant: TenantId::parse(&tenant).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            timestamp: ts.and_then(DateTime::<Utc>::from_timestamp_micros),
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
            fields: serde_json::from_str(&fields)
                .map_err(|e| StoreError::Corrupt(format!("event fields: {e}")))?,
        },
    })
}

/// Incidents, users, audit log and correlation state, from the shared implementation.
mod incident_store {
    use super::SqliteStore;
    super::super::incidents::incident_methods!(
        SqliteStore,
        sqlx::Sqlite,
        super::decode_event,
        "e.id, e.tenant, e.ts, e.host, e.source, e.event_id, e.record_id, e.severity, e.user_name, e.src_ip, \
         e.dst_ip, e.process, e.command_line, e.parent_process, e.fields"
    );
    super::super::report::report_methods!(SqliteStore, sqlx::Sqlite);
}

/// Tokens, sessions, agents, the change feed and the dashboard's counts, from the shared
/// implementation.
mod server_store {
    use super::SqliteStore;
    super::super::server::server_methods!(SqliteStore, sqlx::Sqlite);
}

/// The notification outbox, from the shared implementation.
mod outbox_store {
    use super::SqliteStore;
    super::super::outbox::outbox_methods!(SqliteStore, sqlx::Sqlite);
}
