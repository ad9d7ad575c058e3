//! The notification outbox ([`Outbox`]): incident changes recorded in the transaction that
//! makes them, and the per-channel deliveries the dispatcher plans from them, claims with a
//! lease, and marks sent, retried, held back, cancelled or failed.

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

    /// Parses a kind's name.
    pub fn parse(text: &str) -> Option<Self> {
        [ChangeKind::Created, ChangeKind::Grown, ChangeKind::Status]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// A change to an incident in the outbox, waiting to be turned into deliveries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxChange {
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

/// Filters for [`Outbox::list_deliveries`].
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
pub trait Outbox: Send + Sync {
    /// Changes not yet planned, oldest first.
    async fn pending_changes(
        &self,
        tenant: Option<&TenantId>,
        limit: u32,
    ) -> Result<Vec<OutboxChange>, StoreError>;

    /// Records the deliveries planned for a change (those whose key exists are skipped) and
    /// marks it planned, in one transaction; with `cancel_escalations`, also cancels the
    /// incident's pending escalations. Returns how many deliveries were added.
    async fn plan_change(
        &self,
        change: &OutboxChange,
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
