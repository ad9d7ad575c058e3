//! [`IncidentStore`] for [`SqlStore`]: reading incidents, their timelines and triggering
//! events, page by page; grouping alerts (`alerts.rs`) and analysts' changes (`changes.rs`)
//! are written elsewhere.

use chrono::{DateTime, Utc};
use sqlx::{Executor, Pool, Row};

use super::events::{EVENT_COLUMNS_OF_E, decode_event};
use super::pages::{PageQueries, decode_cursor, fetch_page, page_size, split_page};
use super::rows::{parse_list, parse_resolution, parse_severity, parse_status, time};
use super::statement::Statement;
use super::{Backend, SqlStore, alerts, changes};
use crate::event::TenantId;
use crate::incident::{
    Alert, AlertOutcome, GroupedIncident, Incident, IncidentFilter, IncidentId, IncidentPage,
    Resolution, Status, TimelineEntry, TimelinePage, TimelineQuery, group_of,
};
use crate::store::{EventPage, IncidentStore, StoreError, StoredEvent};
use crate::user::Actor;

/// The columns every incident query selects, as [`decode_incident`] reads them.
pub(super) const INCIDENT_COLUMNS: &str = "id, group_key, title, severity, status, \
    resolution, assignee, rule_ids, techniques, hosts, users, ips, investigation, first_seen, \
    last_seen, alert_count, event_count, created_at, updated_at";

const TIMELINE: &str = "SELECT at, actor, kind, detail FROM incident_timeline \
    WHERE tenant = $1 AND incident_id = $2 ORDER BY at, id";
/// An incident's timeline newest first: the newest entries, or those older than a cursor.
const TIMELINE_PAGE: PageQueries<'static> = PageQueries {
    first: "SELECT id, at, actor, kind, detail FROM incident_timeline \
        WHERE tenant = $1 AND incident_id = $2 ORDER BY at DESC, id DESC LIMIT $3",
    after: "SELECT id, at, actor, kind, detail FROM incident_timeline \
        WHERE tenant = $1 AND incident_id = $2 AND (at, id) < ($3, $4) \
        ORDER BY at DESC, id DESC LIMIT $5",
};
const TIMELINE_SIZE: &str =
    "SELECT COUNT(*) FROM incident_timeline WHERE tenant = $1 AND incident_id = $2";
/// [`TIMELINE_PAGE`] of notes only (a partial index holds them).
const NOTES: PageQueries<'static> = PageQueries {
    first: "SELECT id, at, actor, kind, detail FROM incident_timeline \
        WHERE tenant = $1 AND incident_id = $2 AND kind = 'note' ORDER BY at DESC, id DESC LIMIT $3",
    after: "SELECT id, at, actor, kind, detail FROM incident_timeline \
        WHERE tenant = $1 AND incident_id = $2 AND kind = 'note' AND (at, id) < ($3, $4) \
        ORDER BY at DESC, id DESC LIMIT $5",
};
const NOTES_SIZE: &str = "SELECT COUNT(*) FROM incident_timeline WHERE tenant = $1 \
    AND incident_id = $2 AND kind = 'note'";
/// An incident's alerts joined to their triggering events.
const ALERT_EVENTS: &str = "FROM alerts a JOIN events e ON e.tenant = a.tenant \
    AND e.dedup_key = a.event_key WHERE a.tenant = $1 AND a.incident_id = $2";

/// An incident of `tenant` as [`INCIDENT_COLUMNS`] selects it, with the key its alerts join
/// on.
pub(super) fn decode_incident<B: Backend>(
    row: &B::Row,
    tenant: &str,
) -> Result<GroupedIncident, StoreError> {
    let text = |name: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(name)?) };
    let count = |name: &str| -> Result<u64, StoreError> { Ok(row.try_get::<i64, _>(name)? as u64) };
    let at = |name: &str| -> Result<DateTime<Utc>, StoreError> { Ok(time(row.try_get(name)?)) };
    let key = text("group_key")?;
    let incident = Incident {
        id: IncidentId(row.try_get("id")?),
        tenant: tenant.to_owned(),
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
        first_seen: at("first_seen")?,
        last_seen: at("last_seen")?,
        alert_count: count("alert_count")?,
        event_count: count("event_count")?,
        investigation: parse_list(&text("investigation")?)?,
        group_key: group_of(&key).to_owned(),
        created_at: at("created_at")?,
        updated_at: at("updated_at")?,
    };
    Ok(GroupedIncident::stored(incident, key))
}

/// One of `tenant`'s incidents (not found when another tenant's).
pub(super) async fn fetch_incident<'e, B: Backend>(
    executor: impl Executor<'e, Database = B>,
    tenant: &str,
    id: IncidentId,
) -> Result<Incident, StoreError> {
    let select = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE tenant = $1 AND id = $2");
    let row = sqlx::query(&select)
        .bind(tenant)
        .bind(id.0)
        .fetch_optional(executor)
        .await?;
    match row {
        Some(row) => Ok(decode_incident::<B>(&row, tenant)?.incident),
        None => Err(StoreError::NotFound(format!("incident {id}"))),
    }
}

/// The page of incidents `select` (`SELECT … FROM incidents WHERE tenant = … AND …`)
/// picks: after `cursor`, most recently seen first, `limit` of them.
pub(super) async fn incident_page<B: Backend>(
    pool: &Pool<B>,
    mut select: Statement<'_, B>,
    tenant: &str,
    cursor: Option<&str>,
    limit: u32,
) -> Result<IncidentPage, StoreError> {
    if let Some(cursor) = cursor {
        let (last_seen, id) = decode_cursor(cursor)?;
        select.push(" AND (last_seen < ").push_bind(last_seen);
        select.push(" OR (last_seen = ").push_bind(last_seen);
        select.push(" AND id < ").push_bind(id).push("))");
    }
    let size = page_size(limit);
    select
        .push(" ORDER BY last_seen DESC, id DESC LIMIT ")
        .push_bind(size + 1);
    let rows = select.fetch_all(pool).await?;
    let (page, next_cursor) = split_page::<B>(&rows, size, ("last_seen", "id"))?;
    let incidents = page
        .iter()
        .map(|row| Ok(decode_incident::<B>(row, tenant)?.incident))
        .collect::<Result<_, StoreError>>()?;
    Ok(IncidentPage {
        incidents,
        next_cursor,
    })
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
        let cursor = filter.cursor.as_deref();
        incident_page(&self.pool, select, tenant, cursor, filter.limit).await
    }

    async fn get_incident(
        &self,
        tenant: &TenantId,
        id: IncidentId,
    ) -> Result<Incident, StoreError> {
        fetch_incident(&self.pool, tenant.as_str(), id).await
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
        let (queries, count) = if query.notes_only {
            (NOTES, NOTES_SIZE)
        } else {
            (TIMELINE_PAGE, TIMELINE_SIZE)
        };
        let cursor = query.before.as_deref();
        let rows = fetch_page(&self.pool, queries, (tenant, id.0), cursor, size).await?;
        let total: i64 = sqlx::query_scalar(count)
            .bind(tenant)
            .bind(id.0)
            .fetch_one(&self.pool)
            .await?;
        // Newest first, each page read back to front.
        let (page, before) = split_page::<B>(&rows, size, ("at", "id"))?;
        Ok(TimelinePage {
            entries: page
                .iter()
                .rev()
                .map(timeline_entry::<B>)
                .collect::<Result<_, _>>()?,
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
        let first = format!(
            "SELECT a.ts AS alert_ts, a.id AS alert_id, {EVENT_COLUMNS_OF_E} {ALERT_EVENTS} \
             ORDER BY a.ts, a.id LIMIT $3"
        );
        let later = format!(
            "SELECT a.ts AS alert_ts, a.id AS alert_id, {EVENT_COLUMNS_OF_E} {ALERT_EVENTS} \
             AND (a.ts, a.id) > ($3, $4) ORDER BY a.ts, a.id LIMIT $5"
        );
        let queries = PageQueries {
            first: &first,
            after: &later,
        };
        let rows = fetch_page(&self.pool, queries, (tenant, id.0), after, size).await?;
        let (page, after) = split_page::<B>(&rows, size, ("alert_ts", "alert_id"))?;
        Ok(EventPage {
            events: page
                .iter()
                .map(decode_event::<B>)
                .collect::<Result<_, _>>()?,
            after,
        })
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
