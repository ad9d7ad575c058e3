//! [`Retention`] for [`SqlStore`]: each kind removed in bounded transactions of the writer
//! pool, each beginning with the statement that writes (so SQLite takes its write lock, and
//! PostgreSQL its row locks, before anything is read).
//!
//! A dry run counts with the predicates the purge deletes by: an event or outbox row due
//! because its incident goes is counted, whether or not the incidents have gone yet.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::events::{EVENT_COLUMNS_OF_E, decode_event, insert_rows};
use super::rows::{MINUTE, parse_tenant};
use super::server::EVENTS_TOTAL;
use super::statement::Statement;
use super::{Backend, SqlStore};
use crate::event::TenantId;
use crate::store::retention::{Cutoffs, DueEvent, Purged, Retention, TenantSpan};
use crate::store::{EventRow, StoreError};

const TENANTS: &str = "SELECT tenant FROM event_counts UNION SELECT tenant FROM incidents \
    UNION SELECT tenant FROM users UNION SELECT tenant FROM sessions ORDER BY tenant";

/// `$1`'s incidents due under cutoff `$2` (microseconds).
const DUE_INCIDENTS: &str = "SELECT id FROM incidents WHERE tenant = $1 \
    AND status IN ('resolved', 'closed') AND updated_at < $2";

/// Takes up to `$3` due incidents (the no-op update locks them: an incident reopened
/// meanwhile is not due any more) and returns their ids.
const TAKE_INCIDENTS: &str = "UPDATE incidents SET updated_at = updated_at WHERE tenant = $1 \
    AND status IN ('resolved', 'closed') AND updated_at < $2 AND id IN (\
    SELECT id FROM incidents WHERE tenant = $1 AND status IN ('resolved', 'closed') \
    AND updated_at < $2 ORDER BY id LIMIT $3) RETURNING id";

/// The tables whose rows belong to an incident, removed before it.
const INCIDENT_CHILDREN: [&str; 4] = [
    "alerts",
    "incident_timeline",
    "notify_deliveries",
    "incident_changes",
];

/// An event of `$1` that no alert of a kept incident points to (`$3`: the incidents'
/// cutoff).
const EVENT_UNCLAIMED: &str = "e.tenant = $1 AND NOT EXISTS (SELECT 1 FROM alerts a \
    JOIN incidents i ON i.id = a.incident_id WHERE a.tenant = e.tenant \
    AND a.event_key = e.dedup_key \
    AND NOT (i.status IN ('resolved', 'closed') AND i.updated_at < $3))";

/// Events with a time before `$2`, and those without one ingested before `$2`.
const EVENT_TIMED: &str = "e.ts < $2";
const EVENT_UNTIMED: &str = "e.ts IS NULL AND e.ingested_at < $2";

/// An event not held (restored from an archive and kept until after `$n`).
fn not_held(n: u8) -> String {
    format!("(e.restored_until IS NULL OR e.restored_until < ${n})")
}

const UNCOUNT_EVENTS: &str = "UPDATE event_counts SET n = n - $3 WHERE tenant = $1 AND minute = $2";
const DROP_EMPTY_COUNT: &str =
    "DELETE FROM event_counts WHERE tenant = $1 AND minute = $2 AND n <= 0";

/// `$1`'s outbox changes dispatched before `$2`.
const CHANGES_DUE: &str = "tenant = $1 AND dispatched_at IS NOT NULL AND at < $2";
/// `$1`'s deliveries finished before `$2` whose incident (if any) is not open.
const DELIVERIES_DUE: &str = "tenant = $1 AND state IN ('sent', 'digested', 'cancelled', \
    'failed') AND updated_at < $2 AND (incident_id IS NULL OR incident_id IN (\
    SELECT id FROM incidents WHERE tenant = $1 AND status IN ('resolved', 'closed')))";

const SESSIONS_DUE: &str = "tenant = $1 AND expires_at < $2";
/// `$1`'s checkpoints saved before `$2` that cover their whole journal.
const CORRELATION_DUE: &str = "tenant = $1 AND updated_at < $2 AND NOT EXISTS (\
    SELECT 1 FROM correlation_heads h WHERE h.tenant = correlation_state.tenant \
    AND h.name = correlation_state.name AND h.seq > correlation_state.seq)";

const OLDEST_EVENT: &str = "SELECT MIN(ts) FROM events WHERE tenant = $1";

/// A cutoff in microseconds (`i64::MIN`: nothing is before it).
fn micros(cutoff: Option<DateTime<Utc>>) -> i64 {
    cutoff.map_or(i64::MIN, |t| t.timestamp_micros())
}

/// A count as the database returned it.
fn count(n: i64) -> u64 {
    n.max(0) as u64
}

impl<B: Backend> SqlStore<B> {
    async fn count_where(&self, sql: String, tenant: &str, cutoff: i64) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(&sql)
            .bind(tenant)
            .bind(cutoff)
            .fetch_one(&self.pool)
            .await?;
        Ok(count(n))
    }

    /// Events due under `cutoffs` (timed, then untimed), counted.
    async fn count_events(&self, tenant: &str, cutoffs: &Cutoffs) -> Result<u64, StoreError> {
        let Some(cutoff) = cutoffs.events else {
            return Ok(0);
        };
        let mut total = 0;
        for which in [EVENT_TIMED, EVENT_UNTIMED] {
            let sql = format!(
                "SELECT COUNT(*) FROM events e WHERE {EVENT_UNCLAIMED} AND {which} AND {}",
                not_held(4)
            );
            let n: i64 = sqlx::query_scalar(&sql)
                .bind(tenant)
                .bind(B::time(cutoff))
                .bind(micros(cutoffs.incidents))
                .bind(cutoffs.now_micros())
                .fetch_one(&self.pool)
                .await?;
            total += count(n);
        }
        Ok(total)
    }

    /// Removes up to `limit` due incidents with what belongs to them.
    async fn purge_incidents(
        &self,
        tenant: &str,
        cutoff: i64,
        limit: u32,
    ) -> Result<Purged, StoreError> {
        let mut tx = self.writer.begin().await?;
        let ids: Vec<i64> = sqlx::query_scalar(TAKE_INCIDENTS)
            .bind(tenant)
            .bind(cutoff)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        let mut purged = Purged::default();
        if ids.is_empty() {
            return Ok(purged);
        }
        let mut removed = [0u64; 5];
        for (slot, table) in removed
            .iter_mut()
            .zip(INCIDENT_CHILDREN.into_iter().chain(["incidents"]))
        {
            let column = if table == "incidents" {
                "id"
            } else {
                "incident_id"
            };
            let mut delete = Statement::<B>::new(format!("DELETE FROM {table} WHERE tenant = "));
            delete.push_bind(tenant).push(format!(" AND {column} IN ("));
            for (n, id) in ids.iter().enumerate() {
                if n > 0 {
                    delete.push(", ");
                }
                delete.push_bind(*id);
            }
            delete.push(")");
            *slot = delete.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        [
            purged.alerts,
            purged.timeline,
            purged.deliveries,
            purged.changes,
            purged.incidents,
        ] = removed;
        Ok(purged)
    }

    /// Removes up to `limit` due events (`which`: timed or untimed), taking them off the
    /// per-minute counts.
    async fn purge_events(
        &self,
        tenant: &str,
        (cutoff, incidents, now): (DateTime<Utc>, i64, i64),
        which: &str,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "DELETE FROM events WHERE id IN (SELECT e.id FROM events e \
             WHERE {EVENT_UNCLAIMED} AND {which} AND {} ORDER BY e.ts LIMIT $4) \
             RETURNING ingested_at",
            not_held(5)
        );
        let mut tx = self.writer.begin().await?;
        let ingested: Vec<B::Time> = sqlx::query_scalar(&sql)
            .bind(tenant)
            .bind(B::time(cutoff))
            .bind(incidents)
            .bind(i64::from(limit))
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        let removed = ingested.len() as u64;
        uncount::<B>(&mut tx, tenant, ingested).await?;
        tx.commit().await?;
        Ok(removed)
    }

    /// Removes up to `limit` rows of `table` matching `due` (over `$1` tenant, `$2`
    /// cutoff), picked by `key`.
    async fn purge_rows(
        &self,
        table: &str,
        key: &str,
        due: &str,
        tenant: &str,
        cutoff: i64,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "DELETE FROM {table} WHERE tenant = $1 AND {key} IN (SELECT {key} FROM {table} \
             WHERE {due} ORDER BY {key} LIMIT $3)"
        );
        let done = sqlx::query(&sql)
            .bind(tenant)
            .bind(cutoff)
            .bind(i64::from(limit))
            .execute(&self.writer)
            .await?;
        Ok(super::RowsAffected::rows_affected(&done))
    }
}

/// Takes events removed in `tx` (their ingest times) off `tenant`'s per-minute counts.
async fn uncount<B: Backend>(
    tx: &mut sqlx::Transaction<'_, B>,
    tenant: &str,
    ingested: Vec<B::Time>,
) -> Result<(), StoreError> {
    let mut per_minute: BTreeMap<i64, i64> = BTreeMap::new();
    for at in ingested {
        let at = B::read_time(at).map_or(0, |t| t.timestamp_micros());
        *per_minute.entry(at.div_euclid(MINUTE)).or_default() += 1;
    }
    for (minute, n) in per_minute {
        for sql in [UNCOUNT_EVENTS, DROP_EMPTY_COUNT] {
            sqlx::query(sql)
                .bind(tenant)
                .bind(minute)
                .bind(n)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// Pushes `(a, b, …)` binding `values`.
fn push_list<'q, B: Backend, T>(
    statement: &mut Statement<'q, B>,
    values: impl IntoIterator<Item = T>,
) where
    T: 'q + sqlx::Encode<'q, B> + sqlx::Type<B>,
{
    statement.push("(");
    for (n, value) in values.into_iter().enumerate() {
        if n > 0 {
            statement.push(", ");
        }
        statement.push_bind(value);
    }
    statement.push(")");
}

#[async_trait::async_trait]
impl<B: Backend> Retention for SqlStore<B> {
    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar(TENANTS).fetch_all(&self.pool).await?;
        names.iter().map(|name| parse_tenant(name)).collect()
    }

    async fn purge_count(
        &self,
        tenant: &TenantId,
        cutoffs: &Cutoffs,
    ) -> Result<Purged, StoreError> {
        let t = tenant.as_str();
        let incidents = micros(cutoffs.incidents);
        let outbox = micros(cutoffs.outbox);
        let mut purged = Purged {
            incidents: self
                .count_where(
                    format!("SELECT COUNT(*) FROM ({DUE_INCIDENTS}) d"),
                    t,
                    incidents,
                )
                .await?,
            events: self.count_events(t, cutoffs).await?,
            sessions: self
                .count_where(
                    format!("SELECT COUNT(*) FROM sessions WHERE {SESSIONS_DUE}"),
                    t,
                    micros(cutoffs.sessions),
                )
                .await?,
            correlation: self
                .count_where(
                    format!("SELECT COUNT(*) FROM correlation_state WHERE {CORRELATION_DUE}"),
                    t,
                    micros(cutoffs.correlation),
                )
                .await?,
            ..Purged::default()
        };
        for table in ["alerts", "incident_timeline"] {
            let n = self
                .count_where(
                    format!("SELECT COUNT(*) FROM {table} WHERE tenant = $1 AND incident_id IN ({DUE_INCIDENTS})"),
                    t,
                    incidents,
                )
                .await?;
            if table == "alerts" {
                purged.alerts = n;
            } else {
                purged.timeline = n;
            }
        }
        // An outbox row goes with its incident, or by the outbox's own cutoff.
        for (table, due) in [
            ("incident_changes", CHANGES_DUE),
            ("notify_deliveries", DELIVERIES_DUE),
        ] {
            let own = due.replace("$2", "$3");
            let sql = format!(
                "SELECT COUNT(*) FROM {table} WHERE tenant = $1 AND (incident_id IN ({DUE_INCIDENTS}) OR ({own}))"
            );
            let n: i64 = sqlx::query_scalar(&sql)
                .bind(t)
                .bind(incidents)
                .bind(outbox)
                .fetch_one(&self.pool)
                .await?;
            if table == "incident_changes" {
                purged.changes = count(n);
            } else {
                purged.deliveries = count(n);
            }
        }
        Ok(purged)
    }

    async fn purge_batch(
        &self,
        tenant: &TenantId,
        cutoffs: &Cutoffs,
        limit: u32,
    ) -> Result<Purged, StoreError> {
        let t = tenant.as_str();
        let limit = limit.max(1);
        let mut purged = Purged::default();
        if cutoffs.incidents.is_some() {
            purged += self
                .purge_incidents(t, micros(cutoffs.incidents), limit)
                .await?;
        }
        if let Some(cutoff) = cutoffs.events {
            let due = (cutoff, micros(cutoffs.incidents), cutoffs.now_micros());
            purged.events += self.purge_events(t, due, EVENT_TIMED, limit).await?;
            purged.events += self.purge_events(t, due, EVENT_UNTIMED, limit).await?;
        }
        if let Some(cutoff) = cutoffs.outbox {
            let cutoff = cutoff.timestamp_micros();
            purged.changes += self
                .purge_rows("incident_changes", "id", CHANGES_DUE, t, cutoff, limit)
                .await?;
            purged.deliveries += self
                .purge_rows("notify_deliveries", "id", DELIVERIES_DUE, t, cutoff, limit)
                .await?;
        }
        if let Some(cutoff) = cutoffs.sessions {
            purged.sessions = self
                .purge_rows(
                    "sessions",
                    "id_hash",
                    SESSIONS_DUE,
                    t,
                    cutoff.timestamp_micros(),
                    limit,
                )
                .await?;
        }
        if let Some(cutoff) = cutoffs.correlation {
            purged.correlation = self
                .purge_rows(
                    "correlation_state",
                    "name",
                    CORRELATION_DUE,
                    t,
                    cutoff.timestamp_micros(),
                    limit,
                )
                .await?;
        }
        Ok(purged)
    }

    async fn due_events(
        &self,
        tenant: &TenantId,
        cutoffs: &Cutoffs,
        limit: u32,
    ) -> Result<Vec<DueEvent>, StoreError> {
        let Some(cutoff) = cutoffs.events else {
            return Ok(Vec::new());
        };
        let mut due = Vec::new();
        for which in [EVENT_TIMED, EVENT_UNTIMED] {
            let left = i64::from(limit.max(1)) - due.len() as i64;
            if left <= 0 {
                break;
            }
            let sql = format!(
                "SELECT {EVENT_COLUMNS_OF_E}, e.dedup_key, e.ingested_at, e.restored_until \
                 FROM events e WHERE {EVENT_UNCLAIMED} AND {which} AND {} \
                 ORDER BY e.ts, e.id LIMIT $4",
                not_held(5)
            );
            let rows: Vec<B::Row> = sqlx::query(&sql)
                .bind(tenant.as_str())
                .bind(B::time(cutoff))
                .bind(micros(cutoffs.incidents))
                .bind(left)
                .bind(cutoffs.now_micros())
                .fetch_all(&self.pool)
                .await?;
            for row in &rows {
                use sqlx::Row as _;
                let stored = decode_event::<B>(row)?;
                let key: Vec<u8> = row.try_get("dedup_key")?;
                let ingested: B::Time = row.try_get("ingested_at")?;
                let restored: Option<i64> = row.try_get("restored_until")?;
                due.push(DueEvent {
                    id: stored.id,
                    key: key.as_slice().try_into().map_err(|_| {
                        StoreError::Corrupt(format!(
                            "event {}: a key of {} bytes",
                            stored.id,
                            key.len()
                        ))
                    })?,
                    ingested_at: B::read_time(ingested).unwrap_or_default(),
                    restored: restored.is_some(),
                    event: stored.event,
                });
            }
        }
        Ok(due)
    }

    async fn remove_events(
        &self,
        tenant: &TenantId,
        cutoffs: &Cutoffs,
        ids: &[i64],
    ) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut delete = Statement::<B>::new(
            "DELETE FROM events WHERE id IN (SELECT e.id FROM events e WHERE e.tenant = ",
        );
        delete.push_bind(tenant.as_str()).push(" AND e.id IN ");
        push_list(&mut delete, ids.iter().copied());
        delete.push(
            " AND NOT EXISTS (SELECT 1 FROM alerts a JOIN incidents i ON i.id = a.incident_id \
             WHERE a.tenant = e.tenant AND a.event_key = e.dedup_key \
             AND NOT (i.status IN ('resolved', 'closed') AND i.updated_at < ",
        );
        delete
            .push_bind(micros(cutoffs.incidents))
            .push("))) RETURNING ingested_at");
        let mut tx = self.writer.begin().await?;
        let rows = delete.fetch_all(&mut *tx).await?;
        let mut ingested = Vec::with_capacity(rows.len());
        for row in &rows {
            use sqlx::Row as _;
            ingested.push(row.try_get::<B::Time, _>("ingested_at")?);
        }
        let removed = ingested.len() as u64;
        uncount::<B>(&mut tx, tenant.as_str(), ingested).await?;
        tx.commit().await?;
        Ok(removed)
    }

    async fn restore_events(
        &self,
        tenant: &TenantId,
        rows: &[EventRow],
        until: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        if let Some(row) = rows.iter().find(|row| row.tenant != *tenant) {
            return Err(StoreError::Refused(format!(
                "restoring into tenant '{}' an event of tenant '{}'",
                tenant.as_str(),
                row.tenant.as_str()
            )));
        }
        let mut tx = self.writer.begin().await?;
        let new = insert_rows(&mut tx, rows).await?;
        for chunk in rows.chunks(500) {
            let mut hold = Statement::<B>::new("UPDATE events SET restored_until = ");
            hold.push_bind(until.timestamp_micros())
                .push(" WHERE tenant = ")
                .push_bind(tenant.as_str())
                .push(" AND dedup_key IN ");
            push_list(&mut hold, chunk.iter().map(|row| &row.dedup_key[..]));
            hold.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(new.len() as u64)
    }

    async fn spans(&self) -> Result<Vec<TenantSpan>, StoreError> {
        let mut spans = Vec::new();
        for tenant in self.tenants().await? {
            let oldest: Option<B::Time> = sqlx::query_scalar(OLDEST_EVENT)
                .bind(tenant.as_str())
                .fetch_one(&self.pool)
                .await?;
            let events: i64 = sqlx::query_scalar(EVENTS_TOTAL)
                .bind(tenant.as_str())
                .fetch_one(&self.pool)
                .await?;
            spans.push(TenantSpan {
                tenant: tenant.as_str().to_owned(),
                oldest_event: oldest.and_then(B::read_time),
                events: count(events),
            });
        }
        Ok(spans)
    }

    async fn database_bytes(&self) -> Result<u64, StoreError> {
        let bytes: i64 = sqlx::query_scalar(B::DATABASE_BYTES)
            .fetch_one(&self.pool)
            .await?;
        Ok(count(bytes))
    }

    async fn database_file(&self) -> Result<Option<std::path::PathBuf>, StoreError> {
        let Some(query) = B::DATABASE_FILE else {
            return Ok(None);
        };
        let file: Option<String> = sqlx::query_scalar(query).fetch_optional(&self.pool).await?;
        Ok(file.filter(|f| !f.is_empty()).map(Into::into))
    }
}
