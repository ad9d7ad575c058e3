//! Analysts' changes to an incident: assigning it, moving it along its lifecycle, adding a
//! note. Each is written with its timeline entry, its audit record and (for a status move)
//! its outbox change in one transaction, and returns the incident as it is after.

use chrono::Utc;
use sqlx::{Pool, Transaction};

use super::Backend;
use super::auth::fetch_user;
use super::incidents::fetch_incident;
use super::records::{self, AuditRecord, NewEntry};
use crate::incident::{Incident, IncidentId, Resolution, Status};
use crate::store::StoreError;
use crate::user::{Actor, User};

const SET_ASSIGNEE: &str =
    "UPDATE incidents SET assignee = $1, updated_at = $2 WHERE tenant = $3 AND id = $4";
const SET_STATUS: &str = "UPDATE incidents SET status = $1, resolution = $2, updated_at = $3 \
    WHERE tenant = $4 AND id = $5";
const TOUCH: &str = "UPDATE incidents SET updated_at = $1 WHERE tenant = $2 AND id = $3";

/// A move along the lifecycle, with the resolution a move to `resolved` needs and an
/// optional note.
pub(super) struct StatusChange<'a> {
    pub to: Status,
    pub resolution: Option<Resolution>,
    pub note: Option<&'a str>,
}

/// An active user of `tenant` (refused when unknown or disabled).
async fn active_user<B: Backend>(
    tx: &mut Transaction<'_, B>,
    tenant: &str,
    name: &str,
) -> Result<User, StoreError> {
    match fetch_user(&mut **tx, tenant, name).await? {
        None => Err(StoreError::Refused(format!(
            "unknown user '{name}' (see siren users list)"
        ))),
        Some(user) if user.disabled => {
            Err(StoreError::Refused(format!("user '{name}' is disabled")))
        }
        Some(user) => Ok(user),
    }
}

/// Writes an analyst's timeline entry on incident `id` and its audit record.
async fn record<B: Backend>(
    tx: &mut Transaction<'_, B>,
    tenant: &str,
    id: IncidentId,
    at: i64,
    actor: &Actor,
    (kind, action, detail): (&str, &str, &str),
) -> Result<(), StoreError> {
    let entry = NewEntry {
        incident: id.0,
        at,
        actor: &actor.name,
        kind,
        detail,
    };
    records::timeline(tx, tenant, entry).await?;
    let object = format!("incident:{id}");
    let audited = AuditRecord {
        at,
        actor,
        action,
        object: &object,
        detail,
    };
    records::audit(&mut **tx, tenant, audited).await
}

/// Assigns incident `id` of `tenant` to the active user `assignee`.
pub(super) async fn assign<B: Backend>(
    writer: &Pool<B>,
    tenant: &str,
    id: IncidentId,
    assignee: &str,
    actor: &Actor,
) -> Result<Incident, StoreError> {
    let now = Utc::now().timestamp_micros();
    let mut tx = writer.begin().await?;
    let before = fetch_incident(&mut *tx, tenant, id).await?;
    active_user(&mut tx, tenant, assignee).await?;
    sqlx::query(SET_ASSIGNEE)
        .bind(assignee)
        .bind(now)
        .bind(tenant)
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
    let detail = match &before.assignee {
        Some(previous) if previous != assignee => {
            format!("assigned to {assignee} (was {previous})")
        }
        _ => format!("assigned to {assignee}"),
    };
    let what = ("assigned", "incident.assign", detail.as_str());
    record(&mut tx, tenant, id, now, actor, what).await?;
    let after = fetch_incident(&mut *tx, tenant, id).await?;
    tx.commit().await?;
    Ok(after.into_incident(tenant))
}

/// Moves incident `id` of `tenant` as `change` asks (refused when the lifecycle does not
/// allow it); a resolved incident that is reopened loses its resolution.
pub(super) async fn change_status<B: Backend>(
    writer: &Pool<B>,
    tenant: &str,
    id: IncidentId,
    change: StatusChange<'_>,
    actor: &Actor,
) -> Result<Incident, StoreError> {
    let StatusChange {
        to,
        resolution,
        note,
    } = change;
    let now = Utc::now().timestamp_micros();
    let mut tx = writer.begin().await?;
    let before = fetch_incident(&mut *tx, tenant, id).await?;
    before
        .status
        .check_transition(to, resolution)
        .map_err(|e| StoreError::Refused(e.to_string()))?;
    let kept = match to {
        Status::Resolved => resolution,
        Status::Closed => before.resolution,
        _ => None,
    };
    sqlx::query(SET_STATUS)
        .bind(to.as_str())
        .bind(kept.map(Resolution::as_str))
        .bind(now)
        .bind(tenant)
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
    let mut detail = format!("{} → {}", before.status, to);
    if let Some(resolution) = resolution {
        detail.push_str(&format!(" ({})", resolution.as_str()));
    }
    let what = ("status_changed", "incident.status", detail.as_str());
    record(&mut tx, tenant, id, now, actor, what).await?;
    let mut changed = before.clone();
    changed.status = to;
    records::outbox_change(&mut tx, tenant, id.0, "status", &changed, now).await?;
    if let Some(note) = note.filter(|n| !n.trim().is_empty()) {
        record(
            &mut tx,
            tenant,
            id,
            now,
            actor,
            ("note", "incident.note", note),
        )
        .await?;
    }
    let after = fetch_incident(&mut *tx, tenant, id).await?;
    tx.commit().await?;
    Ok(after.into_incident(tenant))
}

/// Adds a note to incident `id` of `tenant`.
pub(super) async fn add_note<B: Backend>(
    writer: &Pool<B>,
    tenant: &str,
    id: IncidentId,
    text: &str,
    actor: &Actor,
) -> Result<Incident, StoreError> {
    if text.trim().is_empty() {
        return Err(StoreError::Refused("a note needs some text".to_owned()));
    }
    let now = Utc::now().timestamp_micros();
    let mut tx = writer.begin().await?;
    fetch_incident(&mut *tx, tenant, id).await?;
    sqlx::query(TOUCH)
        .bind(now)
        .bind(tenant)
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
    record(
        &mut tx,
        tenant,
        id,
        now,
        actor,
        ("note", "incident.note", text),
    )
    .await?;
    let after = fetch_incident(&mut *tx, tenant, id).await?;
    tx.commit().await?;
    Ok(after.into_incident(tenant))
}
