//! [`Outbox`] for [`SqlStore`]: the changes waiting to be planned, and the deliveries
//! planned from them, claimed with a lease and finished with their timeline entry.

use chrono::{DateTime, Utc};
use sqlx::{Row, Transaction};

use super::pages::page_size;
use super::records::{self, NewEntry};
use super::rows::{parse_status, parse_tenant, time};
use super::statement::Statement;
use super::{Backend, RowsAffected, SqlStore};
use crate::event::TenantId;
use crate::incident::IncidentId;
use crate::store::{
    ChangeKind, Delivery, DeliveryFilter, DeliveryKind, DeliveryOutcome, DeliveryState,
    NewDelivery, Outbox, OutboxChange, StoreError,
};

const PENDING_CHANGES: &str = "SELECT id, tenant, incident_id, kind, alert_count, status, at \
    FROM incident_changes WHERE dispatched_at IS NULL AND ($1 IS NULL OR tenant = $1) \
    ORDER BY id LIMIT $2";
const MARK_CHANGE: &str = "UPDATE incident_changes SET dispatched_at = $1 WHERE id = $2";
const INSERT_DELIVERY: &str = "INSERT INTO notify_deliveries (tenant, dedup_key, incident_id, channel, \
    kind, alert_count, payload, state, attempts, due_at, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $9, $9) ON CONFLICT (tenant, dedup_key) DO NOTHING";
const CANCEL_ESCALATIONS: &str = "UPDATE notify_deliveries SET state = 'cancelled', last_error = $1, \
    updated_at = $2 WHERE tenant = $3 AND incident_id = $4 AND kind = 'escalation' AND state = 'pending' \
    AND (lease_until IS NULL OR lease_until < $2)";
/// The columns every delivery query selects, as [`decode_delivery`] reads them.
const COLUMNS: &str = "id, tenant, incident_id, channel, kind, alert_count, payload, state, \
    attempts, due_at, last_error, created_at, updated_at, sent_at";
const FINISH_SENT: &str = "UPDATE notify_deliveries SET state = 'sent', sent_at = $1, updated_at = $1, \
    lease_owner = NULL, lease_until = NULL, last_error = NULL WHERE id = $2 AND lease_owner = $3";
const FINISH_RETRY: &str = "UPDATE notify_deliveries SET due_at = $1, last_error = $2, updated_at = $3, \
    lease_owner = NULL, lease_until = NULL WHERE id = $4 AND lease_owner = $5";
const FINISH_FAILED: &str = "UPDATE notify_deliveries SET state = 'failed', last_error = $1, updated_at = $2, \
    lease_owner = NULL, lease_until = NULL WHERE id = $3 AND lease_owner = $4";
/// Held and cancelled deliveries made no attempt.
const FINISH_OTHER: &str = "UPDATE notify_deliveries SET state = $1, last_error = $2, updated_at = $3, \
    attempts = attempts - 1, lease_owner = NULL, lease_until = NULL WHERE id = $4 AND lease_owner = $5";
const DIGESTED_INCIDENTS: &str = "SELECT DISTINCT incident_id FROM notify_deliveries \
    WHERE tenant = $1 AND digest_id = $2 AND incident_id IS NOT NULL";
const SENT_SINCE: &str = "SELECT COUNT(*) FROM notify_deliveries WHERE channel = $1 AND state = 'sent' \
    AND sent_at >= $2";
const DIGEST_ID: &str = "SELECT id FROM notify_deliveries WHERE tenant = $1 AND dedup_key = $2";
const MARK_DIGESTED: &str = "UPDATE notify_deliveries SET state = 'digested', digest_id = $1, updated_at = $2 \
    WHERE tenant = $3 AND id = $4 AND state = 'held'";
const RETRY: &str = "UPDATE notify_deliveries SET state = 'pending', due_at = $1, updated_at = $1 \
    WHERE tenant = $2 AND (state = 'failed' OR (state = 'pending' AND due_at > $1))";

/// The SELECT of deliveries that `rest` (`WHERE …`) picks.
fn select_deliveries(rest: &str) -> String {
    format!("SELECT {COLUMNS} FROM notify_deliveries {rest}")
}

/// Error texts are kept short in the store.
fn short(text: &str) -> String {
    const MAX: usize = 2000;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn corrupt(what: &str, text: &str) -> StoreError {
    StoreError::Corrupt(format!("unknown {what} '{text}'"))
}

fn decode_change<B: Backend>(row: &B::Row) -> Result<OutboxChange, StoreError> {
    let count: i64 = row.try_get("alert_count")?;
    let kind: String = row.try_get("kind")?;
    Ok(OutboxChange {
        id: row.try_get("id")?,
        tenant: parse_tenant(&row.try_get::<String, _>("tenant")?)?,
        incident_id: IncidentId(row.try_get("incident_id")?),
        kind: ChangeKind::parse(&kind).ok_or_else(|| corrupt("change kind", &kind))?,
        alert_count: count.max(0) as u64,
        status: parse_status(&row.try_get::<String, _>("status")?)?,
        at: time(row.try_get("at")?),
    })
}

fn decode_delivery<B: Backend>(row: &B::Row) -> Result<Delivery, StoreError> {
    let incident: Option<i64> = row.try_get("incident_id")?;
    let attempts: i64 = row.try_get("attempts")?;
    let alert_count: i64 = row.try_get("alert_count")?;
    let sent_at: Option<i64> = row.try_get("sent_at")?;
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    let payload: String = row.try_get("payload")?;
    Ok(Delivery {
        id: row.try_get("id")?,
        tenant: parse_tenant(&row.try_get::<String, _>("tenant")?)?,
        incident_id: incident.map(IncidentId),
        channel: row.try_get("channel")?,
        kind: DeliveryKind::parse(&kind).ok_or_else(|| corrupt("delivery kind", &kind))?,
        alert_count: alert_count.max(0) as u64,
        payload: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("delivery payload: {e}")))?,
        state: DeliveryState::parse(&state).ok_or_else(|| corrupt("delivery state", &state))?,
        attempts: attempts.clamp(0, i64::from(u32::MAX)) as u32,
        due_at: time(row.try_get("due_at")?),
        last_error: row.try_get("last_error")?,
        created_at: time(row.try_get("created_at")?),
        updated_at: time(row.try_get("updated_at")?),
        sent_at: sent_at.map(time),
    })
}

/// Plans `delivery` for `tenant` unless its key exists; returns how many it added (0 or 1).
async fn insert_delivery<B: Backend>(
    tx: &mut Transaction<'_, B>,
    tenant: &str,
    delivery: &NewDelivery,
    now: i64,
) -> Result<u64, StoreError> {
    let done = sqlx::query(INSERT_DELIVERY)
        .bind(tenant)
        .bind(delivery.dedup_key.as_str())
        .bind(delivery.incident_id.map(|i| i.0))
        .bind(delivery.channel.as_str())
        .bind(delivery.kind.as_str())
        .bind(delivery.alert_count as i64)
        .bind(delivery.payload.to_string())
        .bind(delivery.due_at.timestamp_micros())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected())
}

/// The incidents a delivery speaks of: its own, or a digest's.
async fn incidents_of<B: Backend>(
    tx: &mut Transaction<'_, B>,
    delivery: &Delivery,
) -> Result<Vec<i64>, StoreError> {
    if let Some(id) = delivery.incident_id {
        return Ok(vec![id.0]);
    }
    Ok(sqlx::query_scalar(DIGESTED_INCIDENTS)
        .bind(delivery.tenant.as_str())
        .bind(delivery.id)
        .fetch_all(&mut **tx)
        .await?)
}

/// The timeline entry an attempt's `outcome` makes, if any: a message sent, failed for good,
/// or failed for the first time.
fn outcome_entry(delivery: &Delivery, outcome: &DeliveryOutcome) -> Option<(&'static str, String)> {
    match outcome {
        DeliveryOutcome::Sent { detail } => Some(("notification_sent", detail.clone())),
        DeliveryOutcome::Failed { error } => Some((
            "notification_failed",
            format!(
                "{} to {} failed for good after {} attempts: {}",
                delivery.kind,
                delivery.channel,
                delivery.attempts,
                short(error)
            ),
        )),
        // The first failure is told; later ones only update the delivery.
        DeliveryOutcome::Retry {
            error,
            at: retry_at,
        } if delivery.attempts == 1 => Some((
            "notification_failed",
            format!(
                "{} to {} failed, retrying (next at {}): {}",
                delivery.kind,
                delivery.channel,
                retry_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                short(error)
            ),
        )),
        _ => None,
    }
}

#[async_trait::async_trait]
impl<B: Backend> Outbox for SqlStore<B> {
    async fn pending_changes(
        &self,
        tenant: Option<&TenantId>,
        limit: u32,
    ) -> Result<Vec<OutboxChange>, StoreError> {
        let rows = sqlx::query(PENDING_CHANGES)
            .bind(tenant.map(TenantId::as_str))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode_change::<B>).collect()
    }

    async fn plan_change(
        &self,
        change: &OutboxChange,
        deliveries: &[NewDelivery],
        cancel_escalations: bool,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let now = now.timestamp_micros();
        let tenant = change.tenant.as_str();
        let mut tx = self.writer.begin().await?;
        let mut added = 0;
        for delivery in deliveries {
            added += insert_delivery(&mut tx, tenant, delivery, now).await?;
        }
        if cancel_escalations {
            sqlx::query(CANCEL_ESCALATIONS)
                .bind(format!(
                    "incident {} before the escalation was due",
                    change.status
                ))
                .bind(now)
                .bind(tenant)
                .bind(change.incident_id.0)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(MARK_CHANGE)
            .bind(now)
            .bind(change.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(added)
    }

    async fn latest_delivery(
        &self,
        tenant: &TenantId,
        incident: IncidentId,
        channel: &str,
    ) -> Result<Option<Delivery>, StoreError> {
        let select = select_deliveries(
            "WHERE tenant = $1 AND incident_id = $2 AND channel = $3 \
             AND kind IN ('new', 'update') ORDER BY id DESC LIMIT 1",
        );
        let row = sqlx::query(&select)
            .bind(tenant.as_str())
            .bind(incident.0)
            .bind(channel)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode_delivery::<B>).transpose()
    }

    async fn claim_deliveries(
        &self,
        tenant: Option<&TenantId>,
        owner: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let until = now + lease;
        let claim = format!(
            "UPDATE notify_deliveries SET lease_owner = $1, lease_until = $2, \
             attempts = attempts + 1, updated_at = $3 WHERE id IN (SELECT id FROM notify_deliveries \
             WHERE state = 'pending' AND due_at <= $3 AND (lease_until IS NULL OR lease_until < $3) \
             AND ($4 IS NULL OR tenant = $4) ORDER BY due_at, id LIMIT $5) AND state = 'pending' \
             AND (lease_until IS NULL OR lease_until < $3) RETURNING {COLUMNS}"
        );
        let rows = sqlx::query(&claim)
            .bind(owner)
            .bind(until.timestamp_micros())
            .bind(now.timestamp_micros())
            .bind(tenant.map(TenantId::as_str))
            .bind(i64::from(limit))
            .fetch_all(&self.writer)
            .await?;
        let mut claimed = rows
            .iter()
            .map(decode_delivery::<B>)
            .collect::<Result<Vec<_>, _>>()?;
        // RETURNING gives the rows in no particular order.
        claimed.sort_by_key(|d| (d.due_at, d.id));
        Ok(claimed)
    }

    async fn finish_delivery(
        &self,
        delivery: &Delivery,
        owner: &str,
        outcome: &DeliveryOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let at = now.timestamp_micros();
        let tenant = delivery.tenant.as_str();
        let mut tx = self.writer.begin().await?;
        let finish = match outcome {
            DeliveryOutcome::Sent { .. } => sqlx::query(FINISH_SENT).bind(at),
            DeliveryOutcome::Retry {
                error,
                at: retry_at,
            } => sqlx::query(FINISH_RETRY)
                .bind(retry_at.timestamp_micros())
                .bind(short(error))
                .bind(at),
            DeliveryOutcome::Failed { error } => {
                sqlx::query(FINISH_FAILED).bind(short(error)).bind(at)
            }
            DeliveryOutcome::Held => sqlx::query(FINISH_OTHER)
                .bind(DeliveryState::Held.as_str())
                .bind(None::<&str>)
                .bind(at),
            DeliveryOutcome::Cancelled { reason } => sqlx::query(FINISH_OTHER)
                .bind(DeliveryState::Cancelled.as_str())
                .bind(short(reason))
                .bind(at),
        };
        let done = finish
            .bind(delivery.id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            // The lease ran out and another dispatcher has it now.
            return Ok(false);
        }
        if let Some((kind, detail)) = outcome_entry(delivery, outcome) {
            for incident in incidents_of(&mut tx, delivery).await? {
                let entry = NewEntry::by_siren(incident, at, kind, &detail);
                records::timeline(&mut tx, tenant, entry).await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn sent_since(&self, channel: &str, since: DateTime<Utc>) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(SENT_SINCE)
            .bind(channel)
            .bind(since.timestamp_micros())
            .fetch_one(&self.pool)
            .await?;
        Ok(count.max(0) as u64)
    }

    async fn held_deliveries(
        &self,
        tenant: Option<&TenantId>,
        channel: &str,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let select = select_deliveries(
            "WHERE channel = $1 AND state = 'held' AND ($2 IS NULL OR tenant = $2) \
             ORDER BY id LIMIT $3",
        );
        let rows = sqlx::query(&select)
            .bind(channel)
            .bind(tenant.map(TenantId::as_str))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode_delivery::<B>).collect()
    }

    async fn create_digest(
        &self,
        tenant: &TenantId,
        held: &[i64],
        digest: &NewDelivery,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now = now.timestamp_micros();
        let mut tx = self.writer.begin().await?;
        if insert_delivery(&mut tx, tenant.as_str(), digest, now).await? == 0 {
            return Ok(false);
        }
        let id: i64 = sqlx::query_scalar(DIGEST_ID)
            .bind(tenant.as_str())
            .bind(digest.dedup_key.as_str())
            .fetch_one(&mut *tx)
            .await?;
        for &held_id in held {
            sqlx::query(MARK_DIGESTED)
                .bind(id)
                .bind(now)
                .bind(tenant.as_str())
                .bind(held_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn list_deliveries(
        &self,
        tenant: &TenantId,
        filter: &DeliveryFilter,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut select = Statement::<B>::new(select_deliveries("WHERE tenant = "));
        select.push_bind(tenant.as_str());
        if let Some(state) = filter.state {
            select.push(" AND state = ").push_bind(state.as_str());
        }
        if let Some(channel) = &filter.channel {
            select.push(" AND channel = ").push_bind(channel.as_str());
        }
        if let Some(incident) = filter.incident {
            select.push(" AND incident_id = ").push_bind(incident.0);
        }
        select
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(page_size(filter.limit));
        let rows = select.fetch_all(&self.pool).await?;
        rows.iter().map(decode_delivery::<B>).collect()
    }

    async fn retry_deliveries(
        &self,
        tenant: &TenantId,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(RETRY)
            .bind(now.timestamp_micros())
            .bind(tenant.as_str())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }
}
