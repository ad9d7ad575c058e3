//! Removing what a retention policy no longer keeps ([`Retention`]): a tenant's old events,
//! closed incidents, finished notifications, expired sessions and stale correlation state,
//! in small transactions. The audit log is never removed.
//!
//! What a purge removes, and what it keeps:
//! - **incidents** resolved or closed whose last change is older than the cutoff, with
//!   their alerts, timeline, outbox changes and deliveries; an open incident is kept
//!   whatever its age;
//! - **events** whose time (their ingest time when they have none) is older than the cutoff,
//!   except those an alert of a kept incident points to: an incident's evidence lives as
//!   long as the incident;
//! - **outbox** changes already dispatched and deliveries finished (`sent`, `digested`,
//!   `cancelled`, `failed`) whose incident is gone or no longer open;
//! - **sessions** expired before the cutoff;
//! - **correlation** checkpoints not saved since the cutoff and with no journal after them.
//!
//! Events brought back from an archive ([`Retention::restore_events`]) are kept until their
//! hold ends, whatever their age, and are never archived again.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{EventRow, StoreError};
use crate::event::{Event, TenantId};

/// The times before which each kind of data goes, for one tenant (`None`: kept).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Cutoffs {
    /// Events.
    pub events: Option<DateTime<Utc>>,
    /// Closed incidents (by their last change).
    pub incidents: Option<DateTime<Utc>>,
    /// Dispatched outbox changes and finished deliveries.
    pub outbox: Option<DateTime<Utc>>,
    /// Sessions (by their expiry).
    pub sessions: Option<DateTime<Utc>>,
    /// Correlation checkpoints (by their last save).
    pub correlation: Option<DateTime<Utc>>,
    /// The time holds on restored events are compared with (`None`: the clock's).
    #[serde(skip)]
    pub now: Option<DateTime<Utc>>,
}

impl Cutoffs {
    /// Whether no kind goes.
    pub fn keeps_all(&self) -> bool {
        self.events.is_none()
            && self.incidents.is_none()
            && self.outbox.is_none()
            && self.sessions.is_none()
            && self.correlation.is_none()
    }

    /// The time holds are compared with, in microseconds.
    pub fn now_micros(&self) -> i64 {
        self.now.unwrap_or_else(Utc::now).timestamp_micros()
    }
}

/// An event due to go, as an archive keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct DueEvent {
    /// The store's id for it.
    pub id: i64,
    /// Its de-duplication key (see [`EventRow::dedup_key`]).
    pub key: [u8; 16],
    /// When it was ingested.
    pub ingested_at: DateTime<Utc>,
    /// Whether it came from an archive (and is there still: it is not archived again).
    pub restored: bool,
    /// The event.
    pub event: Event,
}

/// Rows removed (or, in a dry run, that would be), per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Purged {
    /// Events.
    pub events: u64,
    /// Incidents.
    pub incidents: u64,
    /// Alerts (of the incidents removed).
    pub alerts: u64,
    /// Timeline entries (of the incidents removed).
    pub timeline: u64,
    /// Outbox changes.
    pub changes: u64,
    /// Notification deliveries.
    pub deliveries: u64,
    /// Sessions.
    pub sessions: u64,
    /// Correlation checkpoints.
    pub correlation: u64,
}

impl Purged {
    /// Rows in all.
    pub fn total(&self) -> u64 {
        self.events
            + self.incidents
            + self.alerts
            + self.timeline
            + self.changes
            + self.deliveries
            + self.sessions
            + self.correlation
    }
}

impl std::ops::AddAssign for Purged {
    fn add_assign(&mut self, other: Self) {
        self.events += other.events;
        self.incidents += other.incidents;
        self.alerts += other.alerts;
        self.timeline += other.timeline;
        self.changes += other.changes;
        self.deliveries += other.deliveries;
        self.sessions += other.sessions;
        self.correlation += other.correlation;
    }
}

/// What a tenant's data spans: for status pages and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TenantSpan {
    /// Tenant.
    pub tenant: String,
    /// The oldest stored event's time (its ingest time when it has none).
    pub oldest_event: Option<DateTime<Utc>>,
    /// Events stored.
    pub events: u64,
}

/// Purging by cutoffs, in batches.
#[async_trait::async_trait]
pub trait Retention: Send + Sync {
    /// Every tenant that has data (events, incidents, users or sessions).
    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError>;

    /// What [`Retention::purge_batch`] would remove, until nothing is left, if nothing
    /// else changed meanwhile.
    async fn purge_count(&self, tenant: &TenantId, cutoffs: &Cutoffs)
    -> Result<Purged, StoreError>;

    /// Removes up to `limit` rows of each kind due under `cutoffs` (incidents first, with
    /// their alerts and timeline), each kind in a transaction of its own; call again until
    /// it removes nothing.
    async fn purge_batch(
        &self,
        tenant: &TenantId,
        cutoffs: &Cutoffs,
        limit: u32,
    ) -> Result<Purged, StoreError>;

    /// Up to `limit` of `tenant`'s events due under `cutoffs`, oldest first: what an archive
    /// must keep (unless they came from it) before [`Retention::remove_events`] removes
    /// them.
    async fn due_events(
        &self,
        tenant: &TenantId,
        cutoffs: &Cutoffs,
        limit: u32,
    ) -> Result<Vec<DueEvent>, StoreError>;

    /// Removes the events `ids` of `tenant` (taking them off the per-minute counts), except
    /// any an alert of an incident kept under `cutoffs` has come to point to meanwhile.
    /// Returns how many went.
    async fn remove_events(
        &self,
        tenant: &TenantId,
        cutoffs: &Cutoffs,
        ids: &[i64],
    ) -> Result<u64, StoreError>;

    /// Stores events brought back from an archive (de-duplicated by their keys, which the
    /// rows carry), in one transaction, and holds them, and any already stored with the same
    /// keys, until `until`. Returns how many were not stored already.
    async fn restore_events(
        &self,
        tenant: &TenantId,
        rows: &[EventRow],
        until: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Each tenant's oldest event and event count.
    async fn spans(&self) -> Result<Vec<TenantSpan>, StoreError>;

    /// The database's size on disk in bytes (every tenant).
    async fn database_bytes(&self) -> Result<u64, StoreError>;

    /// The database's file, when it is one on this machine (SQLite).
    async fn database_file(&self) -> Result<Option<std::path::PathBuf>, StoreError>;
}
