//! [`IncidentStore`] for [`SqlStore`]: reading incidents, their timelines and triggering
//! events, page by page; grouping alerts (`alerts.rs`) and analysts' changes (`changes.rs`)
//! are written elsewhere.

use chrono::{DateTime, Utc};
use sqlx::{Executor, Row};

use super::events::{EVENT_COLUMNS_OF_E, decode_event};
use super::rows::{
    decode_cursor, encode_cursor, page_size, parse_list, parse_resolution, parse_severity,
    parse_status, time,
};
use super::statement::Statement;
use super::{Backend, SqlStore, alerts, changes};
use crate::event::TenantId;
use crate::incident::{
    Alert, AlertOutcome, Incident, IncidentFilter, IncidentId, IncidentPage, IncidentRecord,
    Resolution, Status, TimelineEntry, TimelinePage, TimelineQuery,
};
use crate::store::{EventPage, IncidentStore, StoreError, StoredEvent};
use crate::user::Actor;

/// The columns every incident query selects, as [`decode_incident`] reads them.
pub(super) const INCIDENT_COLUMNS: &str = "id, group_key, rule_id, title, severity, status, \
    resolution, assignee, rule_ids, techniques, hosts, users, ips, investigation, first_seen, \
    last_seen, alert_count, event_count, created_at, updated_at";

const TIMELINE: &str = "SELECT at, actor, kind, detail FROM incident_timeline \
    WHERE tenant = $1 AND incident_id = $2 ORDER BY at, id";
/// The newest entries (`$3` rows), newest first; the `_BEFORE` forms only those older than
/// `($3, $4)` (`$5` rows); the `NOTES_` forms only notes (a partial index holds them).
const TIMELINE_NEWEST: &str = "SELECT id, at, actor, kind, detail FROM incident_timeline \
    WHERE tenant = $1 AND incident_id = $2 ORDER BY at DESC, id DESC LIMIT $3";
const TIMELINE_BEFORE: &str = "SELECT id, at, actor, kind, detail FROM incident_timeline \
    WHERE tenant = $1 AND incident_id = $2 AND (at, id) < ($3, $4) ORDER BY at DESC, id DESC LIMIT $5";
const TIMELINE_SIZE: &str =
    "SELECT COUNT(*) FROM incident_timeline WHERE tenant = $1 AND incident_id = $2";
const NOTES_NEWEST: &str = "SELECT id, at, actor, kind, detail FROM incident_timeline \
    WHERE tenant = $1 AND incident_id = $2 AND kind = 'note' ORDER BY at DESC, id DESC LIMIT $3";
const NOTES_BEFORE: &str = "SELECT id, at, actor, kind, detail FROM incident_timeline \
    WHERE tenant = $1 AND incident_id = $2 AND kind = 'note' AND (at, id) < ($3, $4) \
    ORDER BY at DESC, id DESC LIMIT $5";
const NOTES_SIZE: &str = "SELECT COUNT(*) FROM incident_timeline WHERE tenant = $1 \
    AND incident_id = $2 AND kind = 'note'";
/// An incident's alerts joined to their triggering events.
const ALERT_EVENTS: &str = "FROM alerts a JOIN events e ON e.tenant = a.tenant \
    AND e.dedup_key = a.event_key WHERE a.tenant = $1 AND a.incident_id = $2";

/// An incident as [`INCIDENT_COLUMNS`] selects it.
pub(super) fn decode_incident<B: Backend>(row: &B::Row) -> Result<IncidentRecord, StoreError> {
    let text = |name: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(name)?) };
    let count = |name: &str| -> Result<u64, StoreError> { Ok(row.try_get::<i64, _>(name)? as u64) };
    let at = |name: &str| -> Result<DateTime<Utc>, StoreError> { Ok(time(row.try_get(name)?)) };
    Ok(IncidentRecord {
        id: Some(IncidentId(row.try_get("id")?)),
        key: text("group_key")?,
        rule_id: text("rule_id")?,
        title: text("title")?,
        severity: parse_severity(&text("severity")?)?,
        status: parse_status(&text("status")?)?,
        resolution: parse_resolution(row.try_get("resolution")?)?,
        assignee: row.try_get("assignee")?,
        rule_ids: parse_list(&text("rule_ids")?)?,
        techniques: parse_list(&text("techniques")?)?,
        hosts: parse_list(&text("hosts")?)?,
        users: parse_list(&text("users")?)?,
        ips: parse_list(&text("ips")?)?,
        investigation: parse_list(&text("investigation")?)?,
        first_seen: at("first_seen")?,
        last_seen: at("last_seen")?,
        alert_count: count("alert_count")?,
        event_count: count("event_count")?,
        created_at: at("created_at")?,
        updated_at: at("updated_at")?,
        added: 0,
    })
}

/// One of `tenant`'s incidents (not found when another tenant's).
pub(super) async fn fetch_incident<'e, B: Backend>(
    executor: impl Executor<'e, Database = B>,
    tenant: &str,
    id: IncidentId,
) -> Result<IncidentRecord, StoreError> {
    let select = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE tenant = $1 AND id = $2");
    let row = sqlx::query(&select)
        .bind(tenant)
        .bind(id.0)
        .fetch_optional(executor)
        .await?;
    match row {
        Some(row) => decode_incident::<B>(&row),
        None => Err(StoreError::NotFound(format!("incident {id}"))),
    }
}

/// A page of decoded incidents, and the cursor after it when more rows than `size` came.
pub(super) fn incident_page<B: Backend>(
    rows: &[B::Row],
    tenant: &str,
    size: i64,
) -> Result<IncidentPage, StoreError> {
    let mut incidents = rows
        .iter()
        .map(decode_incident::<B>)
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = if incidents.len() as i64 > size {
        incidents.truncate(size as usize);
        incidents
            .last()
            .map(|r| encode_cursor(r.last_seen.timestamp_micros(), r.id.map_or(0, |id| id.0)))
    } else {
        None
    };
    Ok(IncidentPage {
        incidents: incidents
            .into_iter()
            .map(|r| r.into_incident(tenant))
            .collect(),
        next_cursor,
    })
}

/// Appends the condition of the incidents after `cursor` in the order most recently seen
/// first.
pub(super) fn push_after_cursor<'a, B: Backend>(
    select: &mut Statement<'a, B>,
    cursor: &str,
) -> Result<(), StoreError> {
    let (last_seen, id) = decode_cursor(cursor)?;
    select.push(" AND (last_seen < ").push_bind(last_seen);
    select.push(" OR (last_seen = ").push_bind(last_seen);
    select.push(" AND id < ").push_bind(id).push("))");
    Ok(())
}

/// A timeline entry as its `at`, `actor`, `kind` and `detail` columns hold it.
pub(super) fn timeline_entry<B: Backend>(row: &B::Row) -> Result<TimelineEntry, StoreError> {
    Ok(TimelineEntry {
        at: time(row.try_get("at")?),
        actor: row.try_get("actor")?,
        kind: row.try_get("kind")?,
        detail: row.try_get("detail")?,
    })
}

#[async_trait::async_trait]
impl<B: Backend> IncidentStore for SqlStore<B> {
    async fn record_alerts(
        &self,
        tenant: &TenantId,
        alerts: &[Alert],
        window: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<AlertOutcome, StoreError> {
        alerts::record_alerts(&self.writer, tenant.as_str(), alerts, window, now).await
    }

    async fn list_incidents(
        &self,
        tenant: &TenantId,
        filter: &IncidentFilter,
    ) -> Result<IncidentPage, StoreError> {
        let tenant = tenant.as_str();
        let mut select = Statement::<B>::new(format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE tenant = "
        ));
        select.push_bind(tenant);
        if let Some(status) = filter.status {
            select.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(severity) = filter.severity {
            select.push(" AND severity = ").push_bind(severity.as_str());
        }
        if let Some(assignee) = &filter.assignee {
            select.push(" AND assignee = ").push_bind(assignee.as_str());
        }
        if let Some(since) = filter.since {
            select
                .push(" AND last_seen >= ")
                .push_bind(since.timestamp_micros());
        }
        if let Some(cursor) = &filter.cursor {
            push_after_cursor(&mut select, cursor)?;
        }
        let size = page_size(filter.limit);
        select
            .push(" ORDER BY last_seen DESC, id DESC LIMIT ")
            .push_bind(size + 1);
        let (sql, arguments) = select.finish()?;
        let rows = sqlx::query_with(&sql, arguments)
            .fetch_all(&self.pool)
            .await?;
        incident_page::<B>(&rows, tenant, size)
    }

    async fn get_incident(
        &self,
        tenant: &TenantId,
        id: IncidentId,
    ) -> Result<Incident, StoreError> {
        let tenant = tenant.as_str();
        Ok(fetch_incident(&self.pool, tenant, id)
            .await?
            .into_incident(tenant))
    }

    async fn incident_timeline(
        &self,
        tenant: &TenantId,
        id: IncidentId,
    ) -> Result<Vec<TimelineEntry>, StoreError> {
        let tenant = tenant.as_str();
        fetch_incident(&self.pool, tenant, id).await?;
        let rows = sqlx::query(TIMELINE)
            .bind(tenant)
            .bind(id.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(timeline_entry::<B>).collect()
    }

    async fn incident_timeline_page(
        &self,
        tenant: &TenantId,
        id: IncidentId,
        query: &TimelineQuery,
    ) -> Result<TimelinePage, StoreError> {
        let tenant = tenant.as_str();
        let size = page_size(query.limit);
        let (newest, before, count) = if query.notes_only {
            (NOTES_NEWEST, NOTES_BEFORE, NOTES_SIZE)
        } else {
            (TIMELINE_NEWEST, TIMELINE_BEFORE, TIMELINE_SIZE)
        };
        // One more row than asked tells whether older entries remain.
        let rows = match &query.before {
            Some(cursor) => {
                let (at, entry) = decode_cursor(cursor)?;
                sqlx::query(before)
                    .bind(tenant)
                    .bind(id.0)
                    .bind(at)
                    .bind(entry)
                    .bind(size + 1)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(newest)
                    .bind(tenant)
                    .bind(id.0)
                    .bind(size + 1)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        let total: i64 = sqlx::query_scalar(count)
            .bind(tenant)
            .bind(id.0)
            .fetch_one(&self.pool)
            .await?;
        let mut entries: Vec<(i64, i64, TimelineEntry)> =
            Vec::with_capacity(rows.len().min(size as usize));
        let mut before = None;
        for (n, row) in rows.iter().enumerate() {
            if n as i64 == size {
                before = entries
                    .last()
                    .map(|(at, entry, _)| encode_cursor(*at, *entry));
                break;
            }
            entries.push((
                row.try_get("at")?,
                row.try_get("id")?,
                timeline_entry::<B>(row)?,
            ));
        }
        Ok(TimelinePage {
            entries: entries
                .into_iter()
                .rev()
                .map(|(_, _, entry)| entry)
                .collect(),
            total: total.max(0) as u64,
            before,
        })
    }

    async fn incident_events(
        &self,
        tenant: &TenantId,
        id: IncidentId,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let tenant = tenant.as_str();
        fetch_incident(&self.pool, tenant, id).await?;
        let select =
            format!("SELECT {EVENT_COLUMNS_OF_E} {ALERT_EVENTS} ORDER BY a.ts, a.id LIMIT $3");
        let rows = sqlx::query(&select)
            .bind(tenant)
            .bind(id.0)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode_event::<B>).collect()
    }

    async fn incident_events_page(
        &self,
        tenant: &TenantId,
        id: IncidentId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<EventPage, StoreError> {
        let tenant = tenant.as_str();
        let size = page_size(limit);
        // One more row than asked tells whether more follow.
        let rows = match after {
            Some(cursor) => {
                let (ts, alert) = decode_cursor(cursor)?;
                let select = format!(
                    "SELECT a.ts AS alert_ts, a.id AS alert_id, {EVENT_COLUMNS_OF_E} {ALERT_EVENTS} \
                     AND (a.ts, a.id) > ($3, $4) ORDER BY a.ts, a.id LIMIT $5"
                );
                sqlx::query(&select)
                    .bind(tenant)
                    .bind(id.0)
                    .bind(ts)
                    .bind(alert)
                    .bind(size + 1)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                let select = format!(
                    "SELECT a.ts AS alert_ts, a.id AS alert_id, {EVENT_COLUMNS_OF_E} {ALERT_EVENTS} \
                     ORDER BY a.ts, a.id LIMIT $3"
                );
                sqlx::query(&select)
                    .bind(tenant)
                    .bind(id.0)
                    .bind(size + 1)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        let mut page = EventPage {
            events: Vec::with_capacity(rows.len().min(size as usize)),
            after: None,
        };
        let mut last = None;
        for (n, row) in rows.iter().enumerate() {
            if n as i64 == size {
                page.after = last.map(|(ts, alert)| encode_cursor(ts, alert));
                break;
            }
            last = Some((
                row.try_get::<i64, _>("alert_ts")?,
                row.try_get::<i64, _>("alert_id")?,
            ));
            page.events.push(decode_event::<B>(row)?);
        }
        Ok(page)
    }

    async fn assign_incident(
        &self,
        tenant: &TenantId,
        id: IncidentId,
        assignee: &str,
        actor: &Actor,
    ) -> Result<Incident, StoreError> {
        changes::assign(&self.writer, tenant.as_str(), id, assignee, actor).await
    }

    async fn change_status(
        &self,
        tenant: &TenantId,
        id: IncidentId,
        to: Status,
        resolution: Option<Resolution>,
        note: Option<&str>,
        actor: &Actor,
    ) -> Result<Incident, StoreError> {
        let change = changes::StatusChange {
            to,
            resolution,
            note,
        };
        changes::change_status(&self.writer, tenant.as_str(), id, change, actor).await
    }

    async fn add_note(
        &self,
        tenant: &TenantId,
        id: IncidentId,
        text: &str,
        actor: &Actor,
    ) -> Result<Incident, StoreError> {
        changes::add_note(&self.writer, tenant.as_str(), id, text, actor).await
    }
}
