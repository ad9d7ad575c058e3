//! What every change to an incident, a user or a token writes in its own transaction: the
//! incident's timeline entry, the audit record, and the outbox's change.

use sqlx::{Executor, Transaction};

use super::Backend;
use crate::incident::{Incident, SYSTEM_ACTOR};
use crate::store::StoreError;
use crate::user::Actor;

const INSERT_TIMELINE: &str = "INSERT INTO incident_timeline (tenant, incident_id, at, actor, kind, detail) \
    VALUES ($1, $2, $3, $4, $5, $6)";
const INSERT_AUDIT: &str = "INSERT INTO audit_log (tenant, at, actor, origin, action, object, detail) \
    VALUES ($1, $2, $3, $4, $5, $6, $7)";
const INSERT_CHANGE: &str = "INSERT INTO incident_changes (tenant, incident_id, kind, alert_count, status, at) \
    VALUES ($1, $2, $3, $4, $5, $6)";

/// An entry of an incident's timeline, at `at` (microseconds), by `actor`.
pub(super) struct NewEntry<'a> {
    pub incident: i64,
    pub at: i64,
    pub actor: &'a str,
    pub kind: &'a str,
    pub detail: &'a str,
}

impl<'a> NewEntry<'a> {
    /// An entry SIREN makes itself.
    pub fn by_siren(incident: i64, at: i64, kind: &'a str, detail: &'a str) -> Self {
        Self {
            incident,
            at,
            actor: SYSTEM_ACTOR,
            kind,
            detail,
        }
    }
}

/// Appends `entry` to the timeline of one of `tenant`'s incidents.
pub(super) async fn timeline<B: Backend>(
    tx: &mut Transaction<'_, B>,
    tenant: &str,
    entry: NewEntry<'_>,
) -> Result<(), StoreError> {
    sqlx::query(INSERT_TIMELINE)
        .bind(tenant)
        .bind(entry.incident)
        .bind(entry.at)
        .bind(entry.actor)
        .bind(entry.kind)
        .bind(entry.detail)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Appends to `tenant`'s audit log that `actor` did `action` on `object` at `at`
/// (microseconds), with `detail`.
pub(super) async fn audit<'e, B: Backend>(
    executor: impl Executor<'e, Database = B>,
    tenant: &str,
    at: i64,
    actor: &Actor,
    (action, object, detail): (&str, &str, &str),
) -> Result<(), StoreError> {
    sqlx::query(INSERT_AUDIT)
        .bind(tenant)
        .bind(at)
        .bind(actor.name.as_str())
        .bind(actor.origin.as_str())
        .bind(action)
        .bind(object)
        .bind(detail)
        .execute(executor)
        .await?;
    Ok(())
}

/// Records a change to `incident` (`created`, `grown`, `status`) for the notification
/// outbox, in the transaction that makes it.
pub(super) async fn outbox_change<B: Backend>(
    tx: &mut Transaction<'_, B>,
    tenant: &str,
    id: i64,
    kind: &str,
    incident: &Incident,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(INSERT_CHANGE)
        .bind(tenant)
        .bind(id)
        .bind(kind)
        .bind(incident.alert_count as i64)
        .bind(incident.status.as_str())
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
