//! [`ServerStore`] for [`SqlStore`]: agent heartbeats, the incident change feed, pages of an
//! incident's alerts, and the dashboard's and metrics' counts.

use chrono::{DateTime, Utc};
use sqlx::{Pool, Row};

use super::pages::{PageQueries, fetch_page, page_size, split_page};
use super::rows::{DAY, MINUTE, count, parse_severity, parse_tenant, time};
use super::{Backend, SqlStore};
use crate::event::TenantId;
use crate::incident::{IncidentId, Severity, Status};
use crate::store::server::{
    AgentHeartbeat, AgentStatus, AlertPage, CountAt, DashboardStats, FeedChange, NamedCount,
    StoredAlert,
};
use crate::store::{ServerStore, StoreError};

/// Minutes in the overview's events-per-minute series.
const STATS_MINUTES: i64 = 60;
/// Days in the overview's incidents-over-time series.
const STATS_DAYS: i64 = 30;
/// Days the top rules and hosts look back.
const TOP_DAYS: i64 = 7;
/// Entries in each top list.
const TOP_N: i64 = 10;

const HEARTBEAT: &str = "INSERT INTO agents (tenant, agent, hostname, version, queue_depth, last_error, \
    origin, last_seen) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant, agent) DO UPDATE SET \
    hostname = excluded.hostname, version = excluded.version, queue_depth = excluded.queue_depth, \
    last_error = excluded.last_error, origin = excluded.origin, last_seen = excluded.last_seen";
const AGENTS: &str = "SELECT tenant, agent, hostname, version, queue_depth, last_error, origin, last_seen \
    FROM agents WHERE tenant = $1 ORDER BY last_seen DESC, agent";
const CHANGED: &str = "SELECT tenant, id, created_at, updated_at FROM incidents WHERE updated_at >= $1 \
    ORDER BY updated_at, id LIMIT $2";
/// An incident's alerts oldest first: the first, or those after a cursor.
const ALERTS: PageQueries<'static> = PageQueries {
    first: "SELECT id, rule_id, rule_title, severity, event_key, ts, host, user_name, src_ip, \
        detail, created_at FROM alerts WHERE tenant = $1 AND incident_id = $2 ORDER BY ts, id LIMIT $3",
    after: "SELECT id, rule_id, rule_title, severity, event_key, ts, host, user_name, src_ip, \
        detail, created_at FROM alerts WHERE tenant = $1 AND incident_id = $2 AND (ts, id) > ($3, $4) \
        ORDER BY ts, id LIMIT $5",
};
const OPEN_BY_SEVERITY: &str = "SELECT severity, COUNT(*) AS n FROM incidents WHERE tenant = $1 \
    AND status NOT IN ('resolved', 'closed') GROUP BY severity";
const BY_STATUS: &str =
    "SELECT status, COUNT(*) AS n FROM incidents WHERE tenant = $1 GROUP BY status";
const ALL_BY_STATUS: &str = "SELECT status, COUNT(*) AS n FROM incidents GROUP BY status";
/// Events stored, from `event_counts` (counting a million events takes a while).
pub(super) const EVENTS_TOTAL: &str =
    "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM event_counts WHERE tenant = $1";
/// Events per minute of ingest from minute `$2` (since the epoch).
const EVENTS_PER_MINUTE: &str =
    "SELECT minute AS bucket, n FROM event_counts WHERE tenant = $1 AND minute >= $2";
const INCIDENTS_PER_DAY: &str = "SELECT created_at / 86400000000 AS bucket, COUNT(*) AS n FROM incidents \
    WHERE tenant = $1 AND created_at >= $2 GROUP BY created_at / 86400000000";
const TOP_RULES: &str = "SELECT rule_id, MAX(rule_title) AS title, COUNT(*) AS n FROM alerts \
    WHERE tenant = $1 AND created_at >= $2 GROUP BY rule_id ORDER BY n DESC, rule_id LIMIT $3";
const TOP_HOSTS: &str = "SELECT host, COUNT(*) AS n FROM alerts WHERE tenant = $1 AND created_at >= $2 \
    AND host IS NOT NULL GROUP BY host ORDER BY n DESC, host LIMIT $3";

/// Fills gaps in a count series: `buckets` periods of `step` microseconds ending at `now`.
fn series(
    counts: &[(i64, i64)],
    now: i64,
    step: i64,
    buckets: i64,
    label: fn(DateTime<Utc>) -> String,
) -> Vec<CountAt> {
    let last = now.div_euclid(step);
    let first = last - buckets + 1;
    (first..=last)
        .map(|bucket| CountAt {
            t: label(time(bucket * step)),
            count: counts
                .iter()
                .find(|(b, _)| *b == bucket)
                .map_or(0, |(_, n)| (*n).max(0) as u64),
        })
        .collect()
}

fn minute_label(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn day_label(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// An alert's event key as the API shows it (hexadecimal).
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `(bucket, n)` rows of a count-per-period `query` for `tenant` from `since`.
async fn bucket_counts<B: Backend>(
    pool: &Pool<B>,
    query: &str,
    tenant: &str,
    since: i64,
) -> Result<Vec<(i64, i64)>, StoreError> {
    let rows = sqlx::query(query)
        .bind(tenant)
        .bind(since)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("bucket")?, row.try_get("n")?)))
        .collect()
}

/// A `(name, title, n)` top list of `query` for `tenant` since `since`.
async fn top_list<B: Backend>(
    pool: &Pool<B>,
    query: &str,
    tenant: &str,
    since: i64,
    name: &str,
    title: Option<&str>,
) -> Result<Vec<NamedCount>, StoreError> {
    let rows = sqlx::query(query)
        .bind(tenant)
        .bind(since)
        .bind(TOP_N)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| {
            let named: String = row.try_get(name)?;
            Ok(NamedCount {
                title: match title {
                    Some(title) => row.try_get(title)?,
                    None => named.clone(),
                },
                name: named,
                count: count::<B>(row)?,
            })
        })
        .collect()
}

fn decode_alert<B: Backend>(row: &B::Row) -> Result<StoredAlert, StoreError> {
    let severity: String = row.try_get("severity")?;
    let key: Option<Vec<u8>> = row.try_get("event_key")?;
    let detail: String = row.try_get("detail")?;
    Ok(StoredAlert {
        id: row.try_get("id")?,
        rule_id: row.try_get("rule_id")?,
        rule_title: row.try_get("rule_title")?,
        severity: parse_severity(&severity)?,
        event_key: key.as_deref().map(hex),
        time: time(row.try_get("ts")?),
        host: row.try_get("host")?,
        user: row.try_get("user_name")?,
        src_ip: row.try_get("src_ip")?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
        created_at: time(row.try_get("created_at")?),
    })
}

#[async_trait::async_trait]
impl<B: Backend> ServerStore for SqlStore<B> {
    async fn agent_heartbeat(
        &self,
        tenant: &TenantId,
        heartbeat: &AgentHeartbeat,
        origin: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(HEARTBEAT)
            .bind(tenant.as_str())
            .bind(heartbeat.agent.as_str())
            .bind(heartbeat.hostname.as_str())
            .bind(heartbeat.version.as_str())
            .bind(heartbeat.queue_depth)
            .bind(heartbeat.last_error.as_deref())
            .bind(origin)
            .bind(now.timestamp_micros())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn list_agents(&self, tenant: &TenantId) -> Result<Vec<AgentStatus>, StoreError> {
        let rows = sqlx::query(AGENTS)
            .bind(tenant.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(AgentStatus {
                    tenant: row.try_get("tenant")?,
                    heartbeat: AgentHeartbeat {
                        agent: row.try_get("agent")?,
                        hostname: row.try_get("hostname")?,
                        version: row.try_get("version")?,
                        queue_depth: row.try_get("queue_depth")?,
                        last_error: row.try_get("last_error")?,
                    },
                    origin: row.try_get("origin")?,
                    last_seen: time(row.try_get("last_seen")?),
                })
            })
            .collect()
    }

    async fn incidents_changed_since(
        &self,
        since: i64,
        limit: u32,
    ) -> Result<Vec<FeedChange>, StoreError> {
        let rows = sqlx::query(CHANGED)
            .bind(since)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let tenant: String = row.try_get("tenant")?;
                Ok(FeedChange {
                    tenant: parse_tenant(&tenant)?,
                    id: IncidentId(row.try_get("id")?),
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    async fn incident_alerts(
        &self,
        tenant: &TenantId,
        id: IncidentId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<AlertPage, StoreError> {
        let size = page_size(limit);
        let rows = fetch_page(&self.pool, ALERTS, (tenant.as_str(), id.0), after, size).await?;
        let (page, after) = split_page::<B>(&rows, size, ("ts", "id"))?;
        Ok(AlertPage {
            alerts: page
                .iter()
                .map(decode_alert::<B>)
                .collect::<Result<_, _>>()?,
            after,
        })
    }

    async fn dashboard_stats(
        &self,
        tenant: &TenantId,
        now: DateTime<Utc>,
    ) -> Result<DashboardStats, StoreError> {
        let t = tenant.as_str();
        let now = now.timestamp_micros();
        let mut stats = DashboardStats::default();
        for severity in [
            Severity::Critical,
            Severity::High,
            Severity::Medium,
            Severity::Low,
            Severity::Informational,
        ] {
            stats
                .open_by_severity
                .insert(severity.as_str().to_owned(), 0);
        }
        for status in Status::ALL {
            stats.by_status.insert(status.as_str().to_owned(), 0);
        }
        for row in sqlx::query(OPEN_BY_SEVERITY)
            .bind(t)
            .fetch_all(&self.pool)
            .await?
        {
            let severity: String = row.try_get("severity")?;
            let n = count::<B>(&row)?;
            stats.incidents_open += n;
            stats.open_by_severity.insert(severity, n);
        }
        for row in sqlx::query(BY_STATUS).bind(t).fetch_all(&self.pool).await? {
            let status: String = row.try_get("status")?;
            stats.by_status.insert(status, count::<B>(&row)?);
        }
        let total: i64 = sqlx::query_scalar(EVENTS_TOTAL)
            .bind(t)
            .fetch_one(&self.pool)
            .await?;
        stats.events_total = total.max(0) as u64;
        let since = (now.div_euclid(MINUTE) - STATS_MINUTES + 1) * MINUTE;
        let per_minute =
            bucket_counts(&self.pool, EVENTS_PER_MINUTE, t, since.div_euclid(MINUTE)).await?;
        stats.events_per_minute = series(&per_minute, now, MINUTE, STATS_MINUTES, minute_label);
        let since = (now.div_euclid(DAY) - STATS_DAYS + 1) * DAY;
        let per_day = bucket_counts(&self.pool, INCIDENTS_PER_DAY, t, since).await?;
        stats.incidents_over_time = series(&per_day, now, DAY, STATS_DAYS, day_label);
        let since = now - TOP_DAYS * DAY;
        stats.top_rules =
            top_list(&self.pool, TOP_RULES, t, since, "rule_id", Some("title")).await?;
        stats.top_hosts = top_list(&self.pool, TOP_HOSTS, t, since, "host", None).await?;
        Ok(stats)
    }

    async fn incidents_by_status(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = sqlx::query(ALL_BY_STATUS).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| Ok((row.try_get("status")?, count::<B>(row)?)))
            .collect()
    }
}
