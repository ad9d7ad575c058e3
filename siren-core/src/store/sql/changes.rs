//! Analysts' changes to an incident: assigning it, moving it along its lifecycle, adding a
//! note. Each is written with its timeline entry, its audit record and (for a status move)
//! its outbox change in one transaction, and returns the incident as it is after.

use chrono::Utc;
use sqlx::{Pool, Transaction};

use super::Backend;
use super::auth::fetch_user;
use super::incidents::fetch_incident;
use super::records::{self, NewEntry};
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

/// An analyst's change to one incident, in its transaction.
struct Change<'a, B: Backend> {
    tx: Transaction<'static, B>,
    tenant: &'a str,
    id: IncidentId,
    /// When (microseconds).
    at: i64,
    actor: &'a Actor,
}

impl<'a, B: Backend> Change<'a, B> {
    /// Begins a change to incident `id` of `tenant` (not found when another tenant's), and
    /// reads the incident as it is before.
    async fn begin(
        writer: &Pool<B>,
        tenant: &'a str,
        id: IncidentId,
        actor: &'a Actor,
    ) -> Result<(Self, Incident), StoreError> {
        let at = Utc::now().timestamp_micros();
        let mut tx = writer.begin().await?;
        let before = fetch_incident(&mut *tx, tenant, id).await?;
        let change = Self {
            tx,
            tenant,
            id,
            at,
            actor,
        };
        Ok((change, before))
    }

    /// Writes what the analyst did: the incident's timeline entry of `kind` and the audit
    /// record of `action`, both saying `detail`.
    async fn record(&mut self, kind: &str, action: &str, detail: &str) -> Result<(), StoreError> {
        let entry = NewEntry {
            incident: self.id.0,
            at: self.at,
            actor: &self.actor.name,
            kind,
            detail,
        };
        records::timeline(&mut self.tx, self.tenant, entry).await?;
        let object = format!("incident:{}", self.id);
        let what = (action, object.as_str(), detail);
        records::audit(&mut *self.tx, self.tenant, self.at, self.actor, what).await
    }

    /// Commits, and returns the incident as it is now.
    async fn commit(mut self) -> Result<Incident, StoreError> {
        let after = fetch_incident(&mut *self.tx, self.tenant, self.id).await?;
        self.tx.commit().await?;
        Ok(after)
    }
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

/// Assigns incident `id` of `tenant` to the active user `assignee`.
pub(super) async fn assign<B: Backend>(
    writer: &Pool<B>,
    tenant: &str,
    id: IncidentId,
    assignee: &str,
    actor: &Actor,
) -> Result<Incident, StoreError> {
    let (mut change, before) = Change::begin(writer, tenant, id, actor).await?;
    active_user(&mut change.tx, tenant, assignee).await?;
    sqlx::query(SET_ASSIGNEE)
        .bind(assignee)
        .bind(change.at)
        .bind(tenant)
        .bind(id.0)
        .execute(&mut *change.tx)
        .await?;
    let detail = match &before.assignee {
        Some(previous) if previous != assignee => {
            format!("assigned to {assignee} (was {previous})")
        }
        _ => format!("assigned to {assignee}"),
    };
    change
        .record("assigned", "incident.assign", &detail)
        .await?;
    change.commit().await
}

/// Moves incident `id` of `tenant` as `to` asks (refused when the lifecycle does not allow
/// it); a resolved incident that is reopened loses its resolution.
pub(super) async fn change_status<B: Backend>(
    writer: &Pool<B>,
    tenant: &str,
    id: IncidentId,
    to: StatusChange<'_>,
    actor: &Actor,
) -> Result<Incident, StoreError> {
    let StatusChange {
        to,
        resolution,
        note,
    } = to;
    let (mut change, before) = Change::begin(writer, tenant, id, actor).await?;
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
        .bind(change.at)
        .bind(tenant)
        .bind(id.0)
        .execute(&mut *change.tx)
        .await?;
    let mut detail = format!("{} → {}", before.status, to);
    if let Some(resolution) = resolution {
        detail.push_str(&format!(" ({})", resolution.as_str()));
    }
    change
        .record("status_changed", "incident.status", &detail)
        .await?;
    let mut changed = before;
    changed.status = to;
    records::outbox_change(&mut change.tx, tenant, id.0, "status", &changed, change.at).await?;
    if let Some(note) = note.filter(|n| !n.trim().is_empty()) {
        change.record("note", "incident.note", note).await?;
    }
    change.commit().await
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
    let (mut change, _) = Change::begin(writer, tenant, id, actor).await?;
    sqlx::query(TOUCH)
        .bind(change.at)
        .bind(tenant)
        .bind(id.0)
        .execute(&mut *change.tx)
        .await?;
    change.record("note", "incident.note", text).await?;
    change.commit().await
}
