//! Incidents, alerts, timeline, audit log, users and correlation state: one implementation for
//! both backends. The SQL is written once (numbered `$n` parameters, which SQLite and
//! PostgreSQL both read; times as microseconds; lists as JSON text) and the macro below
//! instantiates it for each backend's pool and row types.

use chrono::{DateTime, Utc};

use super::StoreError;
use crate::incident::{IncidentFilter, Resolution, Severity, Status};

pub(super) fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

pub(super) fn parse_list(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("list column: {e}")))
}

pub(super) fn time(micros: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_micros(micros).unwrap_or_default()
}

pub(super) fn parse_severity(text: &str) -> Result<Severity, StoreError> {
    Severity::parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown severity '{text}'")))
}

pub(super) fn parse_status(text: &str) -> Result<Status, StoreError> {
    Status::parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown status '{text}'")))
}

pub(super) fn parse_resolution(text: Option<String>) -> Result<Option<Resolution>, StoreError> {
    text.map(|t| {
        Resolution::parse(&t)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown resolution '{t}'")))
    })
    .transpose()
}

/// A cursor for incident pages: the last row's `last_seen` and id.
pub(super) fn encode_cursor(last_seen: i64, id: i64) -> String {
    format!("{last_seen}.{id}")
}

pub(super) fn decode_cursor(cursor: &str) -> Result<(i64, i64), StoreError> {
    let invalid = || StoreError::Refused(format!("invalid cursor '{cursor}'"));
    let (a, b) = cursor.split_once('.').ok_or_else(invalid)?;
    Ok((
        a.parse().map_err(|_| invalid())?,
        b.parse().map_err(|_| invalid())?,
    ))
}

/// What `filter` asks for, checked.
pub(super) fn page_size(filter: &IncidentFilter) -> i64 {
    i64::from(filter.limit.clamp(1, 10_000))
}

/// Shared by both instantiations: the SQL.
pub(super) mod sql {
    pub const INCIDENT_COLUMNS: &str = "id, group_key, rule_id, title, severity, status, resolution, assignee, \
        rule_ids, techniques, hosts, users, ips, investigation, first_seen, last_seen, alert_count, event_count, \
        created_at, updated_at";
    pub const OPEN_INCIDENT: &str = "SELECT id, group_key, rule_id, title, severity, status, resolution, assignee, \
        rule_ids, techniques, hosts, users, ips, investigation, first_seen, last_seen, alert_count, event_count, \
        created_at, updated_at FROM incidents WHERE tenant = $1 AND group_key = $2 \
        AND status NOT IN ('resolved', 'closed') ORDER BY last_seen DESC, id DESC LIMIT 1";
    pub const INSERT_INCIDENT: &str = "INSERT INTO incidents (tenant, group_key, rule_id, title, severity, \
        severity_rank, status, resolution, assignee, rule_ids, techniques, hosts, users, ips, investigation, \
        first_seen, last_seen, alert_count, event_count, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, \
        $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21) RETURNING id";
    pub const UPDATE_INCIDENT_ALERTS: &str = "UPDATE incidents SET severity = $1, severity_rank = $2, \
        rule_ids = $3, techniques = $4, hosts = $5, users = $6, ips = $7, first_seen = $8, last_seen = $9, \
        alert_count = $10, event_count = $11, updated_at = $12 WHERE tenant = $13 AND id = $14";
    pub const INSERT_ALERT: &str = "INSERT INTO alerts (tenant, incident_id, rule_id, rule_title, severity, \
        event_key, ts, host, user_name, src_ip, detail, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
        $10, $11, $12)";
    pub const INSERT_TIMELINE: &str = "INSERT INTO incident_timeline (tenant, incident_id, at, actor, kind, detail) \
        VALUES ($1, $2, $3, $4, $5, $6)";
    pub const INSERT_AUDIT: &str = "INSERT INTO audit_log (tenant, at, actor, origin, action, object, detail) \
        VALUES ($1, $2, $3, $4, $5, $6, $7)";
    pub const GET_INCIDENT: &str = "SELECT id, group_key, rule_id, title, severity, status, resolution, assignee, \
        rule_ids, techniques, hosts, users, ips, investigation, first_seen, last_seen, alert_count, event_count, \
        created_at, updated_at FROM incidents WHERE tenant = $1 AND id = $2";
    pub const TIMELINE: &str = "SELECT at, actor, kind, detail FROM incident_timeline \
        WHERE tenant = $1 AND incident_id = $2 ORDER BY at, id";
    /// The newest entries (`$3` rows), newest first; the `_BEFORE` forms only those older than
    /// `($3, $4)` (`$5` rows); the `NOTES_` forms only notes (a partial index holds them).
    pub const TIMELINE_NEWEST: &str = "SELECT id, at, actor, kind, detail FROM incident_timeline \
        WHERE tenant = $1 AND incident_id = $2 ORDER BY at DESC, id DESC LIMIT $3";
    pub const TIMELINE_BEFORE: &str = "SELECT id, at, actor, kind, detail FROM incident_timeline \
        WHERE tenant = $1 AND incident_id = $2 AND (at, id) < ($3, $4) ORDER BY at DESC, id DESC LIMIT $5";
    pub const TIMELINE_SIZE: &str =
        "SELECT COUNT(*) FROM incident_timeline WHERE tenant = $1 AND incident_id = $2";
    pub const NOTES_NEWEST: &str = "SELECT id, at, actor, kind, detail FROM incident_timeline \
        WHERE tenant = $1 AND incident_id = $2 AND kind = 'note' ORDER BY at DESC, id DESC LIMIT $3";
    pub const NOTES_BEFORE: &str = "SELECT id, at, actor, kind, detail FROM incident_timeline \
        WHERE tenant = $1 AND incident_id = $2 AND kind = 'note' AND (at, id) < ($3, $4) \
        ORDER BY at DESC, id DESC LIMIT $5";
    pub const NOTES_SIZE: &str = "SELECT COUNT(*) FROM incident_timeline WHERE tenant = $1 \
        AND incident_id = $2 AND kind = 'note'";
    pub const SET_ASSIGNEE: &str =
        "UPDATE incidents SET assignee = $1, updated_at = $2 WHERE tenant = $3 AND id = $4";
    pub const SET_STATUS: &str = "UPDATE incidents SET status = $1, resolution = $2, updated_at = $3 WHERE tenant = $4 AND id = $5";
    pub const TOUCH: &str = "UPDATE incidents SET updated_at = $1 WHERE tenant = $2 AND id = $3";
    pub const AUDIT: &str = "SELECT at, actor, origin, action, object, detail FROM audit_log WHERE tenant = $1 \
        ORDER BY at DESC, id DESC LIMIT $2";
    pub const INSERT_USER: &str = "INSERT INTO users (tenant, name, role, password_hash, disabled, created_at) \
        VALUES ($1, $2, $3, $4, 0, $5)";
    pub const USERS: &str = "SELECT name, role, disabled, is_global, created_at FROM users \
        WHERE tenant = $1 ORDER BY name";
    pub const USER: &str = "SELECT name, role, disabled, is_global, created_at FROM users \
        WHERE tenant = $1 AND name = $2";
    pub const USER_HASH: &str =
        "SELECT password_hash FROM users WHERE tenant = $1 AND name = $2 AND disabled = 0";
    pub const SET_DISABLED: &str = "UPDATE users SET disabled = $1 WHERE tenant = $2 AND name = $3";
    pub const DELETE_USER_SESSIONS: &str =
        "DELETE FROM sessions WHERE tenant = $1 AND user_name = $2";
    pub const LOAD_STATE: &str =
        "SELECT state FROM correlation_state WHERE tenant = $1 AND name = $2";
    pub const SAVE_STATE: &str = "INSERT INTO correlation_state (tenant, name, state, updated_at) \
        VALUES ($1, $2, $3, $4) ON CONFLICT (tenant, name) DO UPDATE SET state = excluded.state, \
        updated_at = excluded.updated_at";
}

/// Instantiates the incident methods for one backend: `$db` is the sqlx database type,
/// `$decode_event` the backend's event row decoder, `$event_columns` its event columns with
/// an `e.` prefix.
macro_rules! incident_methods {
    ($store:ty, $db:ty, $decode_event:path, $event_columns:expr) => {
        use sqlx::Row as _;
        use $crate::incident::{
            AlertOutcome, Incident, IncidentFilter, IncidentId, IncidentPage, Resolution, Status, TimelineEntry,
            TimelinePage, TimelineQuery,
        };
        use $crate::store::incidents::{self as common, sql};
        use $crate::incident::IncidentRecord as IncidentRow;
        use $crate::store::{AuditEntry, EventPage, StoreError, StoredEvent};
        use $crate::user::{Actor, Role, User};

        type Pool = sqlx::Pool<$db>;
        type Tx<'a> = sqlx::Transaction<'a, $db>;

        fn decode_incident(row: &<$db as sqlx::Database>::Row) -> Result<IncidentRow, StoreError> {
            let text = |name: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(name)?) };
            Ok(IncidentRow {
                id: Some(IncidentId(row.try_get("id")?)),
                key: text("group_key")?,
                rule_id: text("rule_id")?,
                title: text("title")?,
                severity: common::parse_severity(&text("severity")?)?,
                status: common::parse_status(&text("status")?)?,
                resolution: common::parse_resolution(row.try_get("resolution")?)?,
                assignee: row.try_get("assignee")?,
                rule_ids: common::parse_list(&text("rule_ids")?)?,
                techniques: common::parse_list(&text("techniques")?)?,
                hosts: common::parse_list(&text("hosts")?)?,
                users: common::parse_list(&text("users")?)?,
                ips: common::parse_list(&text("ips")?)?,
                investigation: common::parse_list(&text("investigation")?)?,
                first_seen: common::time(row.try_get("first_seen")?),
                last_seen: common::time(row.try_get("last_seen")?),
                alert_count: row.try_get::<i64, _>("alert_count")? as u64,
                event_count: row.try_get::<i64, _>("event_count")? as u64,
                created_at: common::time(row.try_get("created_at")?),
                updated_at: common::time(row.try_get("updated_at")?),
                added: 0,
            })
        }

        async fn timeline_entry(
            tx: &mut Tx<'_>,
            tenant: &str,
            id: i64,
            at: i64,
            actor: &str,
            kind: &str,
            detail: &str,
        ) -> Result<(), StoreError> {
            sqlx::query(sql::INSERT_TIMELINE)
                .bind(tenant)
                .bind(id)
                .bind(at)
                .bind(actor)
                .bind(kind)
                .bind(detail)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        async fn audit(
            tx: &mut Tx<'_>,
            tenant: &str,
            at: i64,
            actor: &Actor,
            action: &str,
            object: &str,
            detail: &str,
        ) -> Result<(), StoreError> {
            sqlx::query(sql::INSERT_AUDIT)
                .bind(tenant)
                .bind(at)
                .bind(&actor.name)
                .bind(&actor.origin)
                .bind(action)
                .bind(object)
                .bind(detail)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        /// Records a change for the notification outbox, in the transaction that makes it.
        async fn record_change(tx: &mut Tx<'_>, tenant: &str, id: i64, kind: &str, row: &IncidentRow, at: i64) -> Result<(), StoreError> {
            sqlx::query($crate::store::outbox::sql::INSERT_CHANGE)
                .bind(tenant)
                .bind(id)
                .bind(kind)
                .bind(row.alert_count as i64)
                .bind(row.status.as_str())
                .bind(at)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        async fn insert_incident(tx: &mut Tx<'_>, tenant: &str, row: &IncidentRow) -> Result<i64, StoreError> {
            let id: i64 = sqlx::query_scalar(sql::INSERT_INCIDENT)
                .bind(tenant)
                .bind(&row.key)
                .bind(&row.rule_id)
                .bind(&row.title)
                .bind(row.severity.as_str())
                .bind($crate::incident::severity_rank(row.severity))
                .bind(row.status.as_str())
                .bind(row.resolution.map(Resolution::as_str))
                .bind(row.assignee.as_deref())
                .bind(common::json_list(&row.rule_ids))
                .bind(common::json_list(&row.techniques))
                .bind(common::json_list(&row.hosts))
                .bind(common::json_list(&row.users))
                .bind(common::json_list(&row.ips))
                .bind(common::json_list(&row.investigation))
                .bind(row.first_seen.timestamp_micros())
                .bind(row.last_seen.timestamp_micros())
                .bind(row.alert_count as i64)
                .bind(row.event_count as i64)
                .bind(row.created_at.timestamp_micros())
                .bind(row.updated_at.timestamp_micros())
                .fetch_one(&mut **tx)
                .await?;
            Ok(id)
        }

        async fn update_incident(tx: &mut Tx<'_>, tenant: &str, row: &IncidentRow, now: i64) -> Result<(), StoreError> {
            sqlx::query(sql::UPDATE_INCIDENT_ALERTS)
                .bind(row.severity.as_str())
                .bind($crate::incident::severity_rank(row.severity))
                .bind(common::json_list(&row.rule_ids))
                .bind(common::json_list(&row.techniques))
                .bind(common::json_list(&row.hosts))
                .bind(common::json_list(&row.users))
                .bind(common::json_list(&row.ips))
                .bind(row.first_seen.timestamp_micros())
                .bind(row.last_seen.timestamp_micros())
                .bind(row.alert_count as i64)
                .bind(row.event_count as i64)
                .bind(now)
                .bind(tenant)
                .bind(row.id.map_or(0, |id| id.0))
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        /// Groups alerts into incidents (see [`crate::incident`]), in one transaction.
        pub(super) async fn record_alerts(
            pool: &Pool,
            tenant: &str,
            alerts: &[$crate::incident::Alert],
            window: chrono::Duration,
            now: chrono::DateTime<chrono::Utc>,
        ) -> Result<AlertOutcome, StoreError> {
            if alerts.is_empty() {
                return Ok(AlertOutcome::default());
            }
            let mut tx = pool.begin().await?;
            let outcome = record_alerts_in(&mut tx, tenant, alerts, window, now).await?;
            tx.commit().await?;
            after_alerts(pool, &outcome).await?;
            Ok(outcome)
        }

        /// After a burst of new incidents, fresh statistics keep the planners on the indexes
        /// (a query planned against an empty table would scan it).
        pub(super) async fn after_alerts(pool: &Pool, outcome: &AlertOutcome) -> Result<(), StoreError> {
            if outcome.incidents_created >= 1000 {
                sqlx::query("ANALYZE incidents").execute(pool).await?;
            }
            Ok(())
        }

        /// [`record_alerts`] in the caller's transaction.
        pub(super) async fn record_alerts_in(
            tx: &mut Tx<'_>,
            tenant: &str,
            alerts: &[$crate::incident::Alert],
            window: chrono::Duration,
            now: chrono::DateTime<chrono::Utc>,
        ) -> Result<AlertOutcome, StoreError> {
            let now = now.timestamp_micros();
            let mut outcome = AlertOutcome::default();
            for (key, group) in $crate::incident::group_alerts(alerts) {
                let open = sqlx::query(sql::OPEN_INCIDENT).bind(tenant).bind(&key).fetch_optional(&mut **tx).await?;
                let open = open.as_ref().map(decode_incident).transpose()?;
                let grouping = $crate::incident::group(&key, open, &group, window, chrono::DateTime::<chrono::Utc>::from_timestamp_micros(now).unwrap_or_default());
                let finished = grouping.incidents;
                let pending = grouping.alerts;
                let mut ids = Vec::with_capacity(finished.len());
                for row in &finished {
                    let id = match row.id.map(|id| id.0) {
                        Some(id) => {
                            update_incident(tx, tenant, row, now).await?;
                            outcome.incidents_updated += 1;
                            id
                        }
                        None => {
                            let id = insert_incident(tx, tenant, row).await?;
                            timeline_entry(tx, tenant, id, now, $crate::incident::SYSTEM_ACTOR, "created", &format!("opened by rule {}", row.rule_id)).await?;
                            outcome.incidents_created += 1;
                            id
                        }
                    };
                    timeline_entry(tx, tenant, id, now, $crate::incident::SYSTEM_ACTOR, "alert_added", &row.added_text()).await?;
                    record_change(tx, tenant, id, if row.id.is_some() { "grown" } else { "created" }, row, now).await?;
                    ids.push(id);
                }
                for (index, alert) in pending {
                    sqlx::query(sql::INSERT_ALERT)
                        .bind(tenant)
                        .bind(ids[index])
                        .bind(&alert.rule_id)
                        .bind(&alert.rule_title)
                        .bind(alert.severity.as_str())
                        .bind(alert.event_key.map(|k| k.to_vec()))
                        .bind(alert.time.timestamp_micros())
                        .bind(alert.hosts.first())
                        .bind(alert.users.first())
                        .bind(alert.ips.first())
                        .bind(alert.detail.to_string())
                        .bind(now)
                        .execute(&mut **tx)
                        .await?;
                    outcome.alerts += 1;
                }
            }
            Ok(outcome)
        }

        pub(super) async fn list_incidents(pool: &Pool, tenant: &str, filter: &IncidentFilter) -> Result<IncidentPage, StoreError> {
            let mut select = sqlx::QueryBuilder::<$db>::new(format!("SELECT {} FROM incidents WHERE tenant = ", sql::INCIDENT_COLUMNS));
            select.push_bind(tenant.to_owned());
            if let Some(status) = filter.status {
                select.push(" AND status = ").push_bind(status.as_str());
            }
            if let Some(severity) = filter.severity {
                select.push(" AND severity = ").push_bind(severity.as_str());
            }
            if let Some(assignee) = &filter.assignee {
                select.push(" AND assignee = ").push_bind(assignee.clone());
            }
            if let Some(since) = filter.since {
                select.push(" AND last_seen >= ").push_bind(since.timestamp_micros());
            }
            if let Some(cursor) = &filter.cursor {
                let (last_seen, id) = common::decode_cursor(cursor)?;
                select.push(" AND (last_seen < ").push_bind(last_seen);
                select.push(" OR (last_seen = ").push_bind(last_seen);
                select.push(" AND id < ").push_bind(id).push("))");
            }
            let size = common::page_size(filter);
            select.push(" ORDER BY last_seen DESC, id DESC LIMIT ").push_bind(size + 1);
            let rows = select.build().fetch_all(pool).await?;
            let mut incidents = rows.iter().map(decode_incident).collect::<Result<Vec<_>, _>>()?;
            let next_cursor = if incidents.len() as i64 > size {
                incidents.truncate(size as usize);
                incidents.last().map(|r| common::encode_cursor(r.last_seen.timestamp_micros(), r.id.map_or(0, |id| id.0)))
            } else {
                None
            };
            Ok(IncidentPage { incidents: incidents.into_iter().map(|r| r.into_incident(tenant)).collect(), next_cursor })
        }

        async fn fetch_incident(executor: impl sqlx::Executor<'_, Database = $db>, tenant: &str, id: IncidentId) -> Result<IncidentRow, StoreError> {
            let row = sqlx::query(sql::GET_INCIDENT).bind(tenant).bind(id.0).fetch_optional(executor).await?;
            match row {
                Some(row) => decode_incident(&row),
                None => Err(StoreError::NotFound(format!("incident {id}"))),
            }
        }

        pub(super) async fn get_incident(pool: &Pool, tenant: &str, id: IncidentId) -> Result<Incident, StoreError> {
            Ok(fetch_incident(pool, tenant, id).await?.into_incident(tenant))
        }

        pub(super) async fn incident_timeline(pool: &Pool, tenant: &str, id: IncidentId) -> Result<Vec<TimelineEntry>, StoreError> {
            fetch_incident(pool, tenant, id).await?;
            let rows = sqlx::query(sql::TIMELINE).bind(tenant).bind(id.0).fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    Ok(TimelineEntry {
                        at: common::time(row.try_get("at")?),
                        actor: row.try_get("actor")?,
                        kind: row.try_get("kind")?,
                        detail: row.try_get("detail")?,
                    })
                })
                .collect()
        }

        pub(super) async fn incident_timeline_page(
            pool: &Pool,
            tenant: &str,
            id: IncidentId,
            query: &TimelineQuery,
        ) -> Result<TimelinePage, StoreError> {
            let size = i64::from(query.limit.clamp(1, 10_000));
            let (newest, before, count) = if query.notes_only {
                (sql::NOTES_NEWEST, sql::NOTES_BEFORE, sql::NOTES_SIZE)
            } else {
                (sql::TIMELINE_NEWEST, sql::TIMELINE_BEFORE, sql::TIMELINE_SIZE)
            };
            // One more row than asked tells whether older entries remain.
            let rows = match &query.before {
                Some(cursor) => {
                    let (at, entry) = common::decode_cursor(cursor)?;
                    sqlx::query(before).bind(tenant).bind(id.0).bind(at).bind(entry).bind(size + 1).fetch_all(pool).await?
                }
                None => sqlx::query(newest).bind(tenant).bind(id.0).bind(size + 1).fetch_all(pool).await?,
            };
            let total: i64 = sqlx::query_scalar(count).bind(tenant).bind(id.0).fetch_one(pool).await?;
            let mut entries = Vec::with_capacity(rows.len().min(size as usize));
            let mut before = None;
            for (n, row) in rows.iter().enumerate() {
                if n as i64 == size {
                    before = entries.last().map(|(at, entry, _): &(i64, i64, TimelineEntry)| common::encode_cursor(*at, *entry));
                    break;
                }
                let at: i64 = row.try_get("at")?;
                entries.push((at, row.try_get("id")?, TimelineEntry {
                    at: common::time(at),
                    actor: row.try_get("actor")?,
                    kind: row.try_get("kind")?,
                    detail: row.try_get("detail")?,
                }));
            }
            Ok(TimelinePage {
                entries: entries.into_iter().rev().map(|(_, _, entry)| entry).collect(),
                total: total.max(0) as u64,
                before,
            })
        }

        pub(super) async fn incident_events(pool: &Pool, tenant: &str, id: IncidentId, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
            fetch_incident(pool, tenant, id).await?;
            let query = format!(
                "SELECT {} FROM alerts a JOIN events e ON e.tenant = a.tenant AND e.dedup_key = a.event_key \
                 WHERE a.tenant = $1 AND a.incident_id = $2 ORDER BY a.ts, a.id LIMIT $3",
                $event_columns
            );
            let rows = sqlx::query(&query).bind(tenant).bind(id.0).bind(i64::from(limit)).fetch_all(pool).await?;
            rows.iter().map($decode_event).collect()
        }

        pub(super) async fn incident_events_page(
            pool: &Pool,
            tenant: &str,
            id: IncidentId,
            after: Option<&str>,
            limit: u32,
        ) -> Result<EventPage, StoreError> {
            let size = i64::from(limit.clamp(1, 10_000));
            let from = "FROM alerts a JOIN events e ON e.tenant = a.tenant AND e.dedup_key = a.event_key \
                WHERE a.tenant = $1 AND a.incident_id = $2";
            // One more row than asked tells whether more follow.
            let rows = match after {
                Some(cursor) => {
                    let (ts, alert) = common::decode_cursor(cursor)?;
                    let query = format!(
                        "SELECT a.ts AS alert_ts, a.id AS alert_id, {} {from} AND (a.ts, a.id) > ($3, $4) \
                         ORDER BY a.ts, a.id LIMIT $5",
                        $event_columns
                    );
                    sqlx::query(&query).bind(tenant).bind(id.0).bind(ts).bind(alert).bind(size + 1).fetch_all(pool).await?
                }
                None => {
                    let query = format!("SELECT a.ts AS alert_ts, a.id AS alert_id, {} {from} ORDER BY a.ts, a.id LIMIT $3", $event_columns);
                    sqlx::query(&query).bind(tenant).bind(id.0).bind(size + 1).fetch_all(pool).await?
                }
            };
            let mut page = EventPage { events: Vec::with_capacity(rows.len().min(size as usize)), after: None };
            let mut last = None;
            for (n, row) in rows.iter().enumerate() {
                if n as i64 == size {
                    page.after = last.map(|(ts, alert)| common::encode_cursor(ts, alert));
                    break;
                }
                last = Some((row.try_get::<i64, _>("alert_ts")?, row.try_get::<i64, _>("alert_id")?));
                page.events.push($decode_event(row)?);
            }
            Ok(page)
        }

        async fn active_user(tx: &mut Tx<'_>, tenant: &str, name: &str) -> Result<User, StoreError> {
            let row = sqlx::query(sql::USER).bind(tenant).bind(name).fetch_optional(&mut **tx).await?;
            let user = row.as_ref().map(|r| decode_user(r, tenant)).transpose()?;
            match user {
                None => Err(StoreError::Refused(format!("unknown user '{name}' (see siren users list)"))),
                Some(user) if user.disabled => Err(StoreError::Refused(format!("user '{name}' is disabled"))),
                Some(user) => Ok(user),
            }
        }

        pub(super) async fn assign_incident(pool: &Pool, tenant: &str, id: IncidentId, assignee: &str, actor: &Actor) -> Result<Incident, StoreError> {
            let now = chrono::Utc::now().timestamp_micros();
            let mut tx = pool.begin().await?;
            let before = fetch_incident(&mut *tx, tenant, id).await?;
            active_user(&mut tx, tenant, assignee).await?;
            sqlx::query(sql::SET_ASSIGNEE).bind(assignee).bind(now).bind(tenant).bind(id.0).execute(&mut *tx).await?;
            let detail = match &before.assignee {
                Some(previous) if previous != assignee => format!("assigned to {assignee} (was {previous})"),
                _ => format!("assigned to {assignee}"),
            };
            timeline_entry(&mut tx, tenant, id.0, now, &actor.name, "assigned", &detail).await?;
            audit(&mut tx, tenant, now, actor, "incident.assign", &format!("incident:{id}"), &detail).await?;
            let after = fetch_incident(&mut *tx, tenant, id).await?;
            tx.commit().await?;
            Ok(after.into_incident(tenant))
        }

        pub(super) async fn change_status(
            pool: &Pool,
            tenant: &str,
            id: IncidentId,
            to: Status,
            resolution: Option<Resolution>,
            note: Option<&str>,
            actor: &Actor,
        ) -> Result<Incident, StoreError> {
            let now = chrono::Utc::now().timestamp_micros();
            let mut tx = pool.begin().await?;
            let before = fetch_incident(&mut *tx, tenant, id).await?;
            before.status.check_transition(to, resolution).map_err(|e| StoreError::Refused(e.to_string()))?;
            // Reopening clears the old resolution.
            let kept = if to == Status::Resolved { resolution } else if to == Status::Closed { before.resolution } else { None };
            sqlx::query(sql::SET_STATUS).bind(to.as_str()).bind(kept.map(Resolution::as_str)).bind(now).bind(tenant).bind(id.0).execute(&mut *tx).await?;
            let mut detail = format!("{} → {}", before.status, to);
            if let Some(resolution) = resolution {
                detail.push_str(&format!(" ({})", resolution.as_str()));
            }
            timeline_entry(&mut tx, tenant, id.0, now, &actor.name, "status_changed", &detail).await?;
            let mut changed = before.clone();
            changed.status = to;
            record_change(&mut tx, tenant, id.0, "status", &changed, now).await?;
            audit(&mut tx, tenant, now, actor, "incident.status", &format!("incident:{id}"), &detail).await?;
            if let Some(note) = note.filter(|n| !n.trim().is_empty()) {
                timeline_entry(&mut tx, tenant, id.0, now, &actor.name, "note", note).await?;
                audit(&mut tx, tenant, now, actor, "incident.note", &format!("incident:{id}"), note).await?;
            }
            let after = fetch_incident(&mut *tx, tenant, id).await?;
            tx.commit().await?;
            Ok(after.into_incident(tenant))
        }

        pub(super) async fn add_note(pool: &Pool, tenant: &str, id: IncidentId, text: &str, actor: &Actor) -> Result<Incident, StoreError> {
            if text.trim().is_empty() {
                return Err(StoreError::Refused("a note needs some text".to_owned()));
            }
            let now = chrono::Utc::now().timestamp_micros();
            let mut tx = pool.begin().await?;
            fetch_incident(&mut *tx, tenant, id).await?;
            sqlx::query(sql::TOUCH).bind(now).bind(tenant).bind(id.0).execute(&mut *tx).await?;
            timeline_entry(&mut tx, tenant, id.0, now, &actor.name, "note", text).await?;
            audit(&mut tx, tenant, now, actor, "incident.note", &format!("incident:{id}"), text).await?;
            let after = fetch_incident(&mut *tx, tenant, id).await?;
            tx.commit().await?;
            Ok(after.into_incident(tenant))
        }

        pub(super) async fn audit_log(pool: &Pool, tenant: &str, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
            let rows = sqlx::query(sql::AUDIT).bind(tenant).bind(i64::from(limit)).fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    Ok(AuditEntry {
                        at: common::time(row.try_get("at")?),
                        actor: row.try_get("actor")?,
                        origin: row.try_get("origin")?,
                        action: row.try_get("action")?,
                        object: row.try_get("object")?,
                        detail: row.try_get("detail")?,
                    })
                })
                .collect()
        }

        fn decode_user(row: &<$db as sqlx::Database>::Row, tenant: &str) -> Result<User, StoreError> {
            let role: String = row.try_get("role")?;
            let disabled: i64 = row.try_get("disabled")?;
            let global: i64 = row.try_get("is_global")?;
            Ok(User {
                name: row.try_get("name")?,
                tenant: tenant.to_owned(),
                role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("unknown role '{role}'")))?,
                disabled: disabled != 0,
                global: global != 0,
                created_at: common::time(row.try_get("created_at")?),
            })
        }

        pub(super) async fn add_user(pool: &Pool, tenant: &str, name: &str, role: Role, password_hash: &str, actor: &Actor) -> Result<User, StoreError> {
            if !role.is_for_people() {
                return Err(StoreError::Refused(format!("role '{}' is for API tokens, not users", role.as_str())));
            }
            if !$crate::user::valid_user_name(name) {
                return Err(StoreError::Refused(format!("invalid user name '{name}': use 1 to 64 letters, digits, '.', '_', '-', '@'")));
            }
            let now = chrono::Utc::now().timestamp_micros();
            let mut tx = pool.begin().await?;
            if sqlx::query(sql::USER).bind(tenant).bind(name).fetch_optional(&mut *tx).await?.is_some() {
                return Err(StoreError::Refused(format!("user '{name}' already exists")));
            }
            sqlx::query(sql::INSERT_USER).bind(tenant).bind(name).bind(role.as_str()).bind(password_hash).bind(now).execute(&mut *tx).await?;
            audit(&mut tx, tenant, now, actor, "user.add", &format!("user:{name}"), &format!("role {}", role.as_str())).await?;
            let row = sqlx::query(sql::USER).bind(tenant).bind(name).fetch_one(&mut *tx).await?;
            let user = decode_user(&row, tenant)?;
            tx.commit().await?;
            Ok(user)
        }

        pub(super) async fn list_users(pool: &Pool, tenant: &str) -> Result<Vec<User>, StoreError> {
            let rows = sqlx::query(sql::USERS).bind(tenant).fetch_all(pool).await?;
            rows.iter().map(|r| decode_user(r, tenant)).collect()
        }

        pub(super) async fn set_user_disabled(pool: &Pool, tenant: &str, name: &str, disabled: bool, actor: &Actor) -> Result<User, StoreError> {
            let now = chrono::Utc::now().timestamp_micros();
            let mut tx = pool.begin().await?;
            let done = sqlx::query(sql::SET_DISABLED).bind(i64::from(disabled)).bind(tenant).bind(name).execute(&mut *tx).await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("user '{name}'")));
            }
            // Disabling ends the user's sessions for good: enabling them again does not bring
            // an old cookie back.
            let ended = if disabled {
                sqlx::query(sql::DELETE_USER_SESSIONS).bind(tenant).bind(name).execute(&mut *tx).await?.rows_affected()
            } else {
                0
            };
            let action = if disabled { "user.disable" } else { "user.enable" };
            let detail = if disabled { format!("{ended} session(s) ended") } else { String::new() };
            audit(&mut tx, tenant, now, actor, action, &format!("user:{name}"), &detail).await?;
            let row = sqlx::query(sql::USER).bind(tenant).bind(name).fetch_one(&mut *tx).await?;
            let user = decode_user(&row, tenant)?;
            tx.commit().await?;
            Ok(user)
        }

        pub(super) async fn password_hash(pool: &Pool, tenant: &str, name: &str) -> Result<Option<String>, StoreError> {
            Ok(sqlx::query_scalar(sql::USER_HASH).bind(tenant).bind(name).fetch_optional(pool).await?)
        }

        pub(super) async fn load_state(pool: &Pool, tenant: &str, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(sqlx::query_scalar(sql::LOAD_STATE).bind(tenant).bind(name).fetch_optional(pool).await?)
        }

        pub(super) async fn save_state(pool: &Pool, tenant: &str, name: &str, state: &[u8]) -> Result<(), StoreError> {
            let now = chrono::Utc::now().timestamp_micros();
            sqlx::query(sql::SAVE_STATE).bind(tenant).bind(name).bind(state).bind(now).execute(pool).await?;
            Ok(())
        }

        #[async_trait::async_trait]
        impl $crate::store::IncidentStore for $store {
            async fn record_alerts(
                &self,
                tenant: &$crate::event::TenantId,
                alerts: &[$crate::incident::Alert],
                window: chrono::Duration,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<AlertOutcome, StoreError> {
                record_alerts(&self.writer, tenant.as_str(), alerts, window, now).await
            }
            async fn list_incidents(&self, tenant: &$crate::event::TenantId, filter: &IncidentFilter) -> Result<IncidentPage, StoreError> {
                list_incidents(&self.pool, tenant.as_str(), filter).await
            }
            async fn get_incident(&self, tenant: &$crate::event::TenantId, id: IncidentId) -> Result<Incident, StoreError> {
                get_incident(&self.pool, tenant.as_str(), id).await
            }
            async fn incident_timeline(&self, tenant: &$crate::event::TenantId, id: IncidentId) -> Result<Vec<TimelineEntry>, StoreError> {
                incident_timeline(&self.pool, tenant.as_str(), id).await
            }
            async fn incident_timeline_page(&self, tenant: &$crate::event::TenantId, id: IncidentId, query: &TimelineQuery) -> Result<TimelinePage, StoreError> {
                incident_timeline_page(&self.pool, tenant.as_str(), id, query).await
            }
            async fn incident_events(&self, tenant: &$crate::event::TenantId, id: IncidentId, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
                incident_events(&self.pool, tenant.as_str(), id, limit).await
            }
            async fn incident_events_page(&self, tenant: &$crate::event::TenantId, id: IncidentId, after: Option<&str>, limit: u32) -> Result<EventPage, StoreError> {
                incident_events_page(&self.pool, tenant.as_str(), id, after, limit).await
            }
            async fn assign_incident(&self, tenant: &$crate::event::TenantId, id: IncidentId, assignee: &str, actor: &Actor) -> Result<Incident, StoreError> {
                assign_incident(&self.writer, tenant.as_str(), id, assignee, actor).await
            }
            async fn change_status(
                &self,
                tenant: &$crate::event::TenantId,
                id: IncidentId,
                to: Status,
                resolution: Option<Resolution>,
                note: Option<&str>,
                actor: &Actor,
            ) -> Result<Incident, StoreError> {
                change_status(&self.writer, tenant.as_str(), id, to, resolution, note, actor).await
            }
            async fn add_note(&self, tenant: &$crate::event::TenantId, id: IncidentId, text: &str, actor: &Actor) -> Result<Incident, StoreError> {
                add_note(&self.writer, tenant.as_str(), id, text, actor).await
            }
            async fn audit_log(&self, tenant: &$crate::event::TenantId, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
                audit_log(&self.pool, tenant.as_str(), limit).await
            }
            async fn add_user(&self, tenant: &$crate::event::TenantId, name: &str, role: Role, password_hash: &str, actor: &Actor) -> Result<User, StoreError> {
                add_user(&self.writer, tenant.as_str(), name, role, password_hash, actor).await
            }
            async fn list_users(&self, tenant: &$crate::event::TenantId) -> Result<Vec<User>, StoreError> {
                list_users(&self.pool, tenant.as_str()).await
            }
            async fn set_user_disabled(&self, tenant: &$crate::event::TenantId, name: &str, disabled: bool, actor: &Actor) -> Result<User, StoreError> {
                set_user_disabled(&self.writer, tenant.as_str(), name, disabled, actor).await
            }
            async fn password_hash(&self, tenant: &$crate::event::TenantId, name: &str) -> Result<Option<String>, StoreError> {
                password_hash(&self.pool, tenant.as_str(), name).await
            }
            async fn load_correlation_state(&self, tenant: &$crate::event::TenantId, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
                load_state(&self.pool, tenant.as_str(), name).await
            }
            async fn save_correlation_state(&self, tenant: &$crate::event::TenantId, name: &str, state: &[u8]) -> Result<(), StoreError> {
                save_state(&self.writer, tenant.as_str(), name, state).await
            }
        }
    };
}

pub(super) use incident_methods;
