//! The notification outbox: incident changes recorded in the transaction that makes them, and
//! the per-channel deliveries the dispatcher plans from them, claims with a lease, and marks
//! sent, retried, held back, cancelled or failed. One implementation for both backends (the
//! SQL is written once, `$n` parameters, times as microseconds), instantiated by a macro.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::StoreError;
use crate::event::TenantId;
use crate::incident::{IncidentId, Status};

/// What happened to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// It was opened.
    Created,
    /// Alerts joined it.
    Grown,
    /// Its status moved.
    Status,
}

impl ChangeKind {
    /// The kind's name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Grown => "grown",
            ChangeKind::Status => "status",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "created" => Ok(ChangeKind::Created),
            "grown" => Ok(ChangeKind::Grown),
            "status" => Ok(ChangeKind::Status),
            other => Err(StoreError::Corrupt(format!(
                "unknown change kind '{other}'"
            ))),
        }
    }
}

/// One change to an incident, waiting to be turned into deliveries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentChange {
    /// The change's id (in recording order).
    pub id: i64,
    /// The incident's tenant.
    pub tenant: TenantId,
    /// The incident.
    pub incident_id: IncidentId,
    /// What happened.
    pub kind: ChangeKind,
    /// The incident's alert count after the change.
    pub alert_count: u64,
    /// The incident's status after the change.
    pub status: Status,
    /// When.
    pub at: DateTime<Utc>,
}

/// What a delivery says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryKind {
    /// The first message about an incident on a channel.
    New,
    /// A later message about a grown incident, with the new count.
    Update,
    /// The incident was not acknowledged in time.
    Escalation,
    /// What throttling held back, in one message.
    Digest,
}

impl DeliveryKind {
    /// The kind's name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::New => "new",
            DeliveryKind::Update => "update",
            DeliveryKind::Escalation => "escalation",
            DeliveryKind::Digest => "digest",
        }
    }

    /// Parses a kind's name.
    pub fn parse(text: &str) -> Option<Self> {
        [
            DeliveryKind::New,
            DeliveryKind::Update,
            DeliveryKind::Escalation,
            DeliveryKind::Digest,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

impl fmt::Display for DeliveryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting to be sent (possibly after a failed attempt).
    Pending,
    /// Sent.
    Sent,
    /// Held back by the channel's throttle, waiting for a digest.
    Held,
    /// Sent as part of a digest.
    Digested,
    /// Not needed any more (an escalation for an incident acknowledged in time).
    Cancelled,
    /// Given up after the last attempt (or refused for good by the endpoint).
    Failed,
}

impl DeliveryState {
    /// Every state.
    pub const ALL: [DeliveryState; 6] = [
        DeliveryState::Pending,
        DeliveryState::Sent,
        DeliveryState::Held,
        DeliveryState::Digested,
        DeliveryState::Cancelled,
        DeliveryState::Failed,
    ];

    /// The state's name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Sent => "sent",
            DeliveryState::Held => "held",
            DeliveryState::Digested => "digested",
            DeliveryState::Cancelled => "cancelled",
            DeliveryState::Failed => "failed",
        }
    }

    /// Parses a state's name.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase();
        DeliveryState::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A delivery to plan.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// What makes it unique within its tenant: planning the same key twice adds nothing.
    pub dedup_key: String,
    /// The incident it is about (none for a digest).
    pub incident_id: Option<IncidentId>,
    /// The channel's name.
    pub channel: String,
    /// What it says.
    pub kind: DeliveryKind,
    /// The incident's alert count when planned.
    pub alert_count: u64,
    /// What the message needs beyond the incident (JSON object).
    pub payload: serde_json::Value,
    /// Not before.
    pub due_at: DateTime<Utc>,
}

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    /// Id.
    pub id: i64,
    /// Tenant.
    pub tenant: TenantId,
    /// The incident it is about (none for a digest).
    pub incident_id: Option<IncidentId>,
    /// The channel's name.
    pub channel: String,
    /// What it says.
    pub kind: DeliveryKind,
    /// The incident's alert count when planned.
    pub alert_count: u64,
    /// What the message needs beyond the incident.
    pub payload: serde_json::Value,
    /// Where it is.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// Not before.
    pub due_at: DateTime<Utc>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was planned.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was sent.
    pub sent_at: Option<DateTime<Utc>>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    /// Sent; `detail` goes to the incident's timeline.
    Sent {
        /// Timeline text.
        detail: String,
    },
    /// Failed for now; try again at `at`.
    Retry {
        /// Why.
        error: String,
        /// When to try again.
        at: DateTime<Utc>,
    },
    /// Failed for good.
    Failed {
        /// Why.
        error: String,
    },
    /// Held back by the channel's throttle (for a digest).
    Held,
    /// Not needed any more.
    Cancelled {
        /// Why.
        reason: String,
    },
}

/// Filters for [`OutboxStore::list_deliveries`].
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only this state.
    pub state: Option<DeliveryState>,
    /// Only this channel.
    pub channel: Option<String>,
    /// Only deliveries about this incident.
    pub incident: Option<IncidentId>,
    /// At most this many, newest first.
    pub limit: u32,
}

/// The durable notification outbox. Changes are recorded by [`super::IncidentStore`]'s
/// methods in their own transactions; the dispatcher (`crate::notify`) reads them from here.
///
/// Methods that take `tenant: Option<&TenantId>` work across tenants when given `None` (a
/// server's dispatcher serves them all).
#[async_trait::async_trait]
pub trait OutboxStore: Send + Sync {
    /// Changes not yet planned, oldest first.
    async fn pending_changes(
        &self,
        tenant: Option<&TenantId>,
        limit: u32,
    ) -> Result<Vec<IncidentChange>, StoreError>;

    /// Records the deliveries planned for a change (those whose key exists are skipped) and
    /// marks it planned, in one transaction; with `cancel_escalations`, also cancels the
    /// incident's pending escalations. Returns how many deliveries were added.
    async fn plan_change(
        &self,
        change: &IncidentChange,
        deliveries: &[NewDelivery],
        cancel_escalations: bool,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// The latest `new` or `update` delivery about an incident on a channel.
    async fn latest_delivery(
        &self,
        tenant: &TenantId,
        incident: IncidentId,
        channel: &str,
    ) -> Result<Option<Delivery>, StoreError>;

    /// Claims up to `limit` pending deliveries due at `now` for `owner` until `now + lease`
    /// (a delivery leased by another owner is skipped until its lease runs out), counting
    /// the attempt.
    async fn claim_deliveries(
        &self,
        tenant: Option<&TenantId>,
        owner: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Records how an attempt ended (and the incident's timeline entry), if `owner` still
    /// holds the lease. Returns whether it did.
    async fn finish_delivery(
        &self,
        delivery: &Delivery,
        owner: &str,
        outcome: &DeliveryOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// How many messages a channel has sent since `since` (all tenants).
    async fn sent_since(&self, channel: &str, since: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Deliveries of a channel held back by its throttle, oldest first.
    async fn held_deliveries(
        &self,
        tenant: Option<&TenantId>,
        channel: &str,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Plans a digest of held deliveries and marks them digested, in one transaction.
    /// Returns false when the digest's key exists already.
    async fn create_digest(
        &self,
        tenant: &TenantId,
        held: &[i64],
        digest: &NewDelivery,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Deliveries, newest first.
    async fn list_deliveries(
        &self,
        tenant: &TenantId,
        filter: &DeliveryFilter,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Makes failed and waiting deliveries due now (an operator's "retry now"). Returns how
    /// many.
    async fn retry_deliveries(
        &self,
        tenant: &TenantId,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
}

pub(super) fn parse_kind(text: &str) -> Result<DeliveryKind, StoreError> {
    DeliveryKind::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown delivery kind '{text}'")))
}

pub(super) fn parse_state(text: &str) -> Result<DeliveryState, StoreError> {
    DeliveryState::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown delivery state '{text}'")))
}

pub(super) fn parse_change_kind(text: &str) -> Result<ChangeKind, StoreError> {
    ChangeKind::parse(text)
}

pub(super) fn parse_tenant(text: &str) -> Result<TenantId, StoreError> {
    TenantId::parse(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(super) fn parse_payload(text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("delivery payload: {e}")))
}

/// Error texts are kept short in the store.
pub(super) fn short(text: &str) -> String {
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

/// Shared by both instantiations: the SQL.
pub(super) mod sql {
    /// Recorded by the incident methods in their own transactions.
    pub const INSERT_CHANGE: &str = "INSERT INTO incident_changes (tenant, incident_id, kind, alert_count, status, at) \
        VALUES ($1, $2, $3, $4, $5, $6)";
    pub const PENDING_CHANGES: &str = "SELECT id, tenant, incident_id, kind, alert_count, status, at FROM incident_changes \
        WHERE dispatched_at IS NULL AND ($1 IS NULL OR tenant = $1) ORDER BY id LIMIT $2";
    pub const MARK_CHANGE: &str = "UPDATE incident_changes SET dispatched_at = $1 WHERE id = $2";
    pub const INSERT_DELIVERY: &str = "INSERT INTO notify_deliveries (tenant, dedup_key, incident_id, channel, kind, \
        alert_count, payload, state, attempts, due_at, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $9, $9) ON CONFLICT (tenant, dedup_key) DO NOTHING";
    pub const CANCEL_ESCALATIONS: &str = "UPDATE notify_deliveries SET state = 'cancelled', last_error = $1, \
        updated_at = $2 WHERE tenant = $3 AND incident_id = $4 AND kind = 'escalation' AND state = 'pending' \
        AND (lease_until IS NULL OR lease_until < $2)";
    pub const COLUMNS: &str = "id, tenant, incident_id, channel, kind, alert_count, payload, state, attempts, due_at, \
        last_error, created_at, updated_at, sent_at";
    pub const LATEST: &str = "SELECT id, tenant, incident_id, channel, kind, alert_count, payload, state, attempts, \
        due_at, last_error, created_at, updated_at, sent_at FROM notify_deliveries WHERE tenant = $1 \
        AND incident_id = $2 AND channel = $3 AND kind IN ('new', 'update') ORDER BY id DESC LIMIT 1";
    pub const CLAIM: &str = "UPDATE notify_deliveries SET lease_owner = $1, lease_until = $2, attempts = attempts + 1, \
        updated_at = $3 WHERE id IN (SELECT id FROM notify_deliveries WHERE state = 'pending' AND due_at <= $3 \
        AND (lease_until IS NULL OR lease_until < $3) AND ($4 IS NULL OR tenant = $4) ORDER BY due_at, id LIMIT $5) \
        AND state = 'pending' AND (lease_until IS NULL OR lease_until < $3) \
        RETURNING id, tenant, incident_id, channel, kind, alert_count, payload, state, attempts, due_at, \
        last_error, created_at, updated_at, sent_at";
    pub const FINISH_SENT: &str = "UPDATE notify_deliveries SET state = 'sent', sent_at = $1, updated_at = $1, \
        lease_owner = NULL, lease_until = NULL, last_error = NULL WHERE id = $2 AND lease_owner = $3";
    pub const FINISH_RETRY: &str = "UPDATE notify_deliveries SET due_at = $1, last_error = $2, updated_at = $3, \
        lease_owner = NULL, lease_until = NULL WHERE id = $4 AND lease_owner = $5";
    pub const FINISH_FAILED: &str = "UPDATE notify_deliveries SET state = 'failed', last_error = $1, updated_at = $2, \
        lease_owner = NULL, lease_until = NULL WHERE id = $3 AND lease_owner = $4";
    /// Held and cancelled deliveries made no attempt.
    pub const FINISH_OTHER: &str = "UPDATE notify_deliveries SET state = $1, last_error = $2, updated_at = $3, \
        attempts = attempts - 1, lease_owner = NULL, lease_until = NULL WHERE id = $4 AND lease_owner = $5";
    pub const DIGESTED_INCIDENTS: &str = "SELECT DISTINCT incident_id FROM notify_deliveries \
        WHERE tenant = $1 AND digest_id = $2 AND incident_id IS NOT NULL";
    pub const SENT_SINCE: &str = "SELECT COUNT(*) FROM notify_deliveries WHERE channel = $1 AND state = 'sent' \
        AND sent_at >= $2";
    pub const HELD: &str = "SELECT id, tenant, incident_id, channel, kind, alert_count, payload, state, attempts, \
        due_at, last_error, created_at, updated_at, sent_at FROM notify_deliveries WHERE channel = $1 \
        AND state = 'held' AND ($2 IS NULL OR tenant = $2) ORDER BY id LIMIT $3";
    pub const DIGEST_ID: &str =
        "SELECT id FROM notify_deliveries WHERE tenant = $1 AND dedup_key = $2";
    pub const MARK_DIGESTED: &str = "UPDATE notify_deliveries SET state = 'digested', digest_id = $1, updated_at = $2 \
        WHERE tenant = $3 AND id = $4 AND state = 'held'";
    pub const RETRY: &str = "UPDATE notify_deliveries SET state = 'pending', due_at = $1, updated_at = $1 \
        WHERE tenant = $2 AND (state = 'failed' OR (state = 'pending' AND due_at > $1))";
    pub const INSERT_TIMELINE: &str = "INSERT INTO incident_timeline (tenant, incident_id, at, actor, kind, detail) \
        VALUES ($1, $2, $3, $4, $5, $6)";
}

/// Instantiates [`OutboxStore`] for one backend: `$db` is the sqlx database type.
macro_rules! outbox_methods {
    ($store:ty, $db:ty) => {
        use sqlx::Row as _;
        use $crate::event::TenantId;
        use $crate::incident::IncidentId;
        use $crate::store::StoreError;
        use $crate::store::incidents::time;
        use $crate::store::outbox::{
            self as common, Delivery, DeliveryFilter, DeliveryOutcome, IncidentChange, NewDelivery,
            sql,
        };

        type Tx<'a> = sqlx::Transaction<'a, $db>;

        fn decode_delivery(row: &<$db as sqlx::Database>::Row) -> Result<Delivery, StoreError> {
            let incident: Option<i64> = row.try_get("incident_id")?;
            let attempts: i64 = row.try_get("attempts")?;
            let alert_count: i64 = row.try_get("alert_count")?;
            let sent_at: Option<i64> = row.try_get("sent_at")?;
            Ok(Delivery {
                id: row.try_get("id")?,
                tenant: common::parse_tenant(&row.try_get::<String, _>("tenant")?)?,
                incident_id: incident.map(IncidentId),
                channel: row.try_get("channel")?,
                kind: common::parse_kind(&row.try_get::<String, _>("kind")?)?,
                alert_count: alert_count.max(0) as u64,
                payload: common::parse_payload(&row.try_get::<String, _>("payload")?)?,
                state: common::parse_state(&row.try_get::<String, _>("state")?)?,
                attempts: attempts.clamp(0, i64::from(u32::MAX)) as u32,
                due_at: time(row.try_get("due_at")?),
                last_error: row.try_get("last_error")?,
                created_at: time(row.try_get("created_at")?),
                updated_at: time(row.try_get("updated_at")?),
                sent_at: sent_at.map(time),
            })
        }

        async fn insert_delivery(
            tx: &mut Tx<'_>,
            tenant: &str,
            delivery: &NewDelivery,
            now: i64,
        ) -> Result<u64, StoreError> {
            let done = sqlx::query(sql::INSERT_DELIVERY)
                .bind(tenant)
                .bind(&delivery.dedup_key)
                .bind(delivery.incident_id.map(|i| i.0))
                .bind(&delivery.channel)
                .bind(delivery.kind.as_str())
                .bind(delivery.alert_count as i64)
                .bind(delivery.payload.to_string())
                .bind(delivery.due_at.timestamp_micros())
                .bind(now)
                .execute(&mut **tx)
                .await?;
            Ok(done.rows_affected())
        }

        async fn timeline(
            tx: &mut Tx<'_>,
            tenant: &str,
            incident: i64,
            at: i64,
            kind: &str,
            detail: &str,
        ) -> Result<(), StoreError> {
            sqlx::query(sql::INSERT_TIMELINE)
                .bind(tenant)
                .bind(incident)
                .bind(at)
                .bind($crate::incident::SYSTEM_ACTOR)
                .bind(kind)
                .bind(detail)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        /// The incidents a delivery speaks of: its own, or a digest's.
        async fn incidents_of(
            tx: &mut Tx<'_>,
            delivery: &Delivery,
        ) -> Result<Vec<i64>, StoreError> {
            if let Some(id) = delivery.incident_id {
                return Ok(vec![id.0]);
            }
            Ok(sqlx::query_scalar(sql::DIGESTED_INCIDENTS)
                .bind(delivery.tenant.as_str())
                .bind(delivery.id)
                .fetch_all(&mut **tx)
                .await?)
        }

        #[async_trait::async_trait]
        impl $crate::store::OutboxStore for $store {
            async fn pending_changes(
                &self,
                tenant: Option<&TenantId>,
                limit: u32,
            ) -> Result<Vec<IncidentChange>, StoreError> {
                let rows = sqlx::query(sql::PENDING_CHANGES)
                    .bind(tenant.map(|t| t.as_str().to_owned()))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|row| {
                        let count: i64 = row.try_get("alert_count")?;
                        Ok(IncidentChange {
                            id: row.try_get("id")?,
                            tenant: common::parse_tenant(&row.try_get::<String, _>("tenant")?)?,
                            incident_id: IncidentId(row.try_get("incident_id")?),
                            kind: common::parse_change_kind(&row.try_get::<String, _>("kind")?)?,
                            alert_count: count.max(0) as u64,
                            status: $crate::store::incidents::parse_status(
                                &row.try_get::<String, _>("status")?,
                            )?,
                            at: time(row.try_get("at")?),
                        })
                    })
                    .collect()
            }

            async fn plan_change(
                &self,
                change: &IncidentChange,
                deliveries: &[NewDelivery],
                cancel_escalations: bool,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<u64, StoreError> {
                let now = now.timestamp_micros();
                let tenant = change.tenant.as_str();
                let mut tx = self.writer.begin().await?;
                let mut added = 0;
                for delivery in deliveries {
                    added += insert_delivery(&mut tx, tenant, delivery, now).await?;
                }
                if cancel_escalations {
                    sqlx::query(sql::CANCEL_ESCALATIONS)
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
                sqlx::query(sql::MARK_CHANGE)
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
                let row = sqlx::query(sql::LATEST)
                    .bind(tenant.as_str())
                    .bind(incident.0)
                    .bind(channel)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(decode_delivery).transpose()
            }

            async fn claim_deliveries(
                &self,
                tenant: Option<&TenantId>,
                owner: &str,
                now: chrono::DateTime<chrono::Utc>,
                lease: chrono::Duration,
                limit: u32,
            ) -> Result<Vec<Delivery>, StoreError> {
                let until = now + lease;
                let rows = sqlx::query(sql::CLAIM)
                    .bind(owner)
                    .bind(until.timestamp_micros())
                    .bind(now.timestamp_micros())
                    .bind(tenant.map(|t| t.as_str().to_owned()))
                    .bind(i64::from(limit))
                    .fetch_all(&self.writer)
                    .await?;
                let mut claimed = rows
                    .iter()
                    .map(decode_delivery)
                    .collect::<Result<Vec<_>, _>>()?;
                claimed.sort_by_key(|d| (d.due_at, d.id));
                Ok(claimed)
            }

            async fn finish_delivery(
                &self,
                delivery: &Delivery,
                owner: &str,
                outcome: &DeliveryOutcome,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<bool, StoreError> {
                let at = now.timestamp_micros();
                let tenant = delivery.tenant.as_str();
                let mut tx = self.writer.begin().await?;
                let done = match outcome {
                    DeliveryOutcome::Sent { .. } => {
                        sqlx::query(sql::FINISH_SENT)
                            .bind(at)
                            .bind(delivery.id)
                            .bind(owner)
                            .execute(&mut *tx)
                            .await?
                    }
                    DeliveryOutcome::Retry {
                        error,
                        at: retry_at,
                    } => {
                        sqlx::query(sql::FINISH_RETRY)
                            .bind(retry_at.timestamp_micros())
                            .bind(common::short(error))
                            .bind(at)
                            .bind(delivery.id)
                            .bind(owner)
                            .execute(&mut *tx)
                            .await?
                    }
                    DeliveryOutcome::Failed { error } => {
                        sqlx::query(sql::FINISH_FAILED)
                            .bind(common::short(error))
                            .bind(at)
                            .bind(delivery.id)
                            .bind(owner)
                            .execute(&mut *tx)
                            .await?
                    }
                    DeliveryOutcome::Held => {
                        sqlx::query(sql::FINISH_OTHER)
                            .bind("held")
                            .bind(None::<String>)
                            .bind(at)
                            .bind(delivery.id)
                            .bind(owner)
                            .execute(&mut *tx)
                            .await?
                    }
                    DeliveryOutcome::Cancelled { reason } => {
                        sqlx::query(sql::FINISH_OTHER)
                            .bind("cancelled")
                            .bind(common::short(reason))
                            .bind(at)
                            .bind(delivery.id)
                            .bind(owner)
                            .execute(&mut *tx)
                            .await?
                    }
                };
                if done.rows_affected() == 0 {
                    // The lease ran out and another dispatcher has it now.
                    return Ok(false);
                }
                let entry = match outcome {
                    DeliveryOutcome::Sent { detail } => Some(("notification_sent", detail.clone())),
                    DeliveryOutcome::Failed { error } => Some((
                        "notification_failed",
                        format!(
                            "{} to {} failed for good after {} attempts: {}",
                            delivery.kind,
                            delivery.channel,
                            delivery.attempts,
                            common::short(error)
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
                            common::short(error)
                        ),
                    )),
                    _ => None,
                };
                if let Some((kind, detail)) = entry {
                    for incident in incidents_of(&mut tx, delivery).await? {
                        timeline(&mut tx, tenant, incident, at, kind, &detail).await?;
                    }
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn sent_since(
                &self,
                channel: &str,
                since: chrono::DateTime<chrono::Utc>,
            ) -> Result<u64, StoreError> {
                let count: i64 = sqlx::query_scalar(sql::SENT_SINCE)
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
                let rows = sqlx::query(sql::HELD)
                    .bind(channel)
                    .bind(tenant.map(|t| t.as_str().to_owned()))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(decode_delivery).collect()
            }

            async fn create_digest(
                &self,
                tenant: &TenantId,
                held: &[i64],
                digest: &NewDelivery,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<bool, StoreError> {
                let now = now.timestamp_micros();
                let mut tx = self.writer.begin().await?;
                if insert_delivery(&mut tx, tenant.as_str(), digest, now).await? == 0 {
                    return Ok(false);
                }
                let id: i64 = sqlx::query_scalar(sql::DIGEST_ID)
                    .bind(tenant.as_str())
                    .bind(&digest.dedup_key)
                    .fetch_one(&mut *tx)
                    .await?;
                for held_id in held {
                    sqlx::query(sql::MARK_DIGESTED)
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
                let mut select = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM notify_deliveries WHERE tenant = ",
                    sql::COLUMNS
                ));
                select.push_bind(tenant.as_str().to_owned());
                if let Some(state) = filter.state {
                    select.push(" AND state = ").push_bind(state.as_str());
                }
                if let Some(channel) = &filter.channel {
                    select.push(" AND channel = ").push_bind(channel.clone());
                }
                if let Some(incident) = filter.incident {
                    select.push(" AND incident_id = ").push_bind(incident.0);
                }
                select
                    .push(" ORDER BY id DESC LIMIT ")
                    .push_bind(i64::from(filter.limit.clamp(1, 10_000)));
                let rows = select.build().fetch_all(&self.pool).await?;
                rows.iter().map(decode_delivery).collect()
            }

            async fn retry_deliveries(
                &self,
                tenant: &TenantId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<u64, StoreError> {
                let done = sqlx::query(sql::RETRY)
                    .bind(now.timestamp_micros())
                    .bind(tenant.as_str())
                    .execute(&self.writer)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(super) use outbox_methods;
