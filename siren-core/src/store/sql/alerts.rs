//! Storing what grouping alerts into incidents decided ([`crate::incident::group`]): per
//! key, the open incident is read, the grouping's incidents are written back or inserted
//! with their timeline entries and outbox changes, and the alerts are stored with the
//! incident each joined.

use chrono::{DateTime, Utc};
use sqlx::query::Query;
use sqlx::{Database, Pool, Row, Transaction};

use super::Backend;
use super::incidents::{INCIDENT_COLUMNS, decode_incident};
use super::records::{self, NewEntry};
use super::rows::json_list;
use crate::incident::{
    Alert, AlertOutcome, GroupedIncident, Incident, group, group_alerts, severity_rank,
};
use crate::store::StoreError;

/// Incidents opened by one call after which the planner's statistics are refreshed.
const ANALYZE_AFTER: u64 = 1000;

const INSERT_INCIDENT: &str = "INSERT INTO incidents (severity, severity_rank, rule_ids, techniques, \
    hosts, users, ips, first_seen, last_seen, alert_count, event_count, tenant, group_key, rule_id, title, \
    status, resolution, assignee, investigation, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, \
    $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21) RETURNING id";
const UPDATE_INCIDENT: &str = "UPDATE incidents SET severity = $1, severity_rank = $2, \
    rule_ids = $3, techniques = $4, hosts = $5, users = $6, ips = $7, first_seen = $8, last_seen = $9, \
    alert_count = $10, event_count = $11, updated_at = $12 WHERE tenant = $13 AND id = $14";
const INSERT_ALERT: &str = "INSERT INTO alerts (tenant, incident_id, rule_id, rule_title, severity, \
    event_key, ts, host, user_name, src_ip, detail, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
    $10, $11, $12)";

/// Open incidents of a key a grouping reads at most: those whose window reaches the
/// alerts' times (more would mean alerts of one key spread over many windows in one batch).
const OPEN_CANDIDATES: i64 = 64;

/// The open incidents of a key whose window reaches the alerts' time span (`$3`, `$4`:
/// the first alert's time less the window, the last one's plus the window), most recently
/// seen first.
fn open_incidents() -> String {
    format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE tenant = $1 AND group_key = $2 \
         AND status NOT IN ('resolved', 'closed') AND last_seen >= $3 AND first_seen <= $4 \
         ORDER BY last_seen DESC, id DESC LIMIT {OPEN_CANDIDATES}"
    )
}

/// Groups `alerts` into incidents of `tenant` in one transaction of the `writer` pool.
pub(super) async fn record_alerts<B: Backend>(
    writer: &Pool<B>,
    tenant: &str,
    alerts: &[Alert],
    window: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<AlertOutcome, StoreError> {
    if alerts.is_empty() {
        return Ok(AlertOutcome::default());
    }
    let mut tx = writer.begin().await?;
    let outcome = record_alerts_in(&mut tx, tenant, alerts, window, now).await?;
    tx.commit().await?;
    after_alerts(writer, &outcome).await?;
    Ok(outcome)
}

/// After a burst of new incidents, fresh statistics keep the planners on the indexes (a
/// query planned against an empty table would scan it).
pub(super) async fn after_alerts<B: Backend>(
    writer: &Pool<B>,
    outcome: &AlertOutcome,
) -> Result<(), StoreError> {
    if outcome.incidents_created >= ANALYZE_AFTER {
        sqlx::query("ANALYZE incidents").execute(writer).await?;
    }
    Ok(())
}

/// [`record_alerts`] in the caller's transaction.
pub(super) async fn record_alerts_in<B: Backend>(
    tx: &mut Transaction<'_, B>,
    tenant: &str,
    alerts: &[Alert],
    window: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<AlertOutcome, StoreError> {
    let at = now.timestamp_micros();
    let now = super::rows::time(at);
    let mut outcome = AlertOutcome::default();
    let open_incidents = open_incidents();
    let reach = window.num_microseconds().unwrap_or(i64::MAX);
    for (key, alerts) in group_alerts(alerts) {
        let (Some(first), Some(last)) = (alerts.first(), alerts.last()) else {
            continue;
        };
        let rows = sqlx::query(&open_incidents)
            .bind(tenant)
            .bind(key.as_str())
            .bind(first.time.timestamp_micros().saturating_sub(reach))
            .bind(last.time.timestamp_micros().saturating_add(reach))
            .fetch_all(&mut **tx)
            .await?;
        let open = rows
            .iter()
            .map(|row| decode_incident::<B>(row, tenant))
            .collect::<Result<Vec<_>, _>>()?;
        let grouping = group(tenant, &key, open, &alerts, window, now);
        let mut ids = Vec::with_capacity(grouping.incidents.len());
        for grouped in &grouping.incidents {
            let incident = &grouped.incident;
            let (id, change) = if grouped.stored {
                update_incident(tx, tenant, incident, at).await?;
                outcome.incidents_updated += 1;
                (incident.id.0, "grown")
            } else {
                let id = insert_incident(tx, tenant, grouped).await?;
                let opened = format!("opened by rule {}", grouped.opened_by());
                let entry = NewEntry::by_siren(id, at, "created", &opened);
                records::timeline(tx, tenant, entry).await?;
                outcome.incidents_created += 1;
                (id, "created")
            };
            let added = grouped.added_text();
            let entry = NewEntry::by_siren(id, at, "alert_added", &added);
            records::timeline(tx, tenant, entry).await?;
            records::outbox_change(tx, tenant, id, change, incident, at).await?;
            ids.push(id);
        }
        for (index, alert) in grouping.alerts {
            insert_alert(tx, tenant, ids[index], alert, at).await?;
            outcome.alerts += 1;
        }
    }
    Ok(outcome)
}

/// Binds what alerts change in an incident, in the order [`INSERT_INCIDENT`] and
/// [`UPDATE_INCIDENT`] both list it.
fn bind_grown<'q, B: Backend>(
    query: Query<'q, B, <B as Database>::Arguments<'q>>,
    incident: &'q Incident,
) -> Query<'q, B, <B as Database>::Arguments<'q>> {
    query
        .bind(incident.severity.as_str())
        .bind(severity_rank(incident.severity))
        .bind(json_list(&incident.rule_ids))
        .bind(json_list(&incident.techniques))
        .bind(json_list(&incident.hosts))
        .bind(json_list(&incident.users))
        .bind(json_list(&incident.ips))
        .bind(incident.first_seen.timestamp_micros())
        .bind(incident.last_seen.timestamp_micros())
        .bind(incident.alert_count as i64)
        .bind(incident.event_count as i64)
}

/// Stores an incident grouping opened; returns its id.
async fn insert_incident<B: Backend>(
    tx: &mut Transaction<'_, B>,
    tenant: &str,
    grouped: &GroupedIncident,
) -> Result<i64, StoreError> {
    let incident = &grouped.incident;
    let row = bind_grown(sqlx::query(INSERT_INCIDENT), incident)
        .bind(tenant)
        .bind(grouped.key.as_str())
        .bind(grouped.opened_by())
        .bind(incident.title.as_str())
        .bind(incident.status.as_str())
        .bind(incident.resolution.map(|r| r.as_str()))
        .bind(incident.assignee.as_deref())
        .bind(json_list(&incident.investigation))
        .bind(incident.created_at.timestamp_micros())
        .bind(incident.updated_at.timestamp_micros())
        .fetch_one(&mut **tx)
        .await?;
    Ok(row.try_get("id")?)
}

/// Writes back what alerts changed in a stored incident.
async fn update_incident<B: Backend>(
    tx: &mut Transaction<'_, B>,
    tenant: &str,
    incident: &Incident,
    now: i64,
) -> Result<(), StoreError> {
    bind_grown(sqlx::query(UPDATE_INCIDENT), incident)
        .bind(now)
        .bind(tenant)
        .bind(incident.id.0)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Stores `alert`, of incident `incident`, with its triggering event's key.
async fn insert_alert<B: Backend>(
    tx: &mut Transaction<'_, B>,
    tenant: &str,
    incident: i64,
    alert: &Alert,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(INSERT_ALERT)
        .bind(tenant)
        .bind(incident)
        .bind(alert.rule_id.as_str())
        .bind(alert.rule_title.as_str())
        .bind(alert.severity.as_str())
        .bind(alert.event_key.as_ref().map(|key| &key[..]))
        .bind(alert.time.timestamp_micros())
        .bind(alert.hosts.first().map(String::as_str))
        .bind(alert.users.first().map(String::as_str))
        .bind(alert.ips.first().map(String::as_str))
        .bind(alert.detail.to_string())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
