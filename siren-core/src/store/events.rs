//! Events: [`EventStore`] stores them de-duplicated, alone or with the incidents their
//! alerts open, and reads them back.

use chrono::{DateTime, Utc};

use super::{EventRow, StoreError};
use crate::event::{Event, TenantId};
use crate::incident::{Alert, AlertOutcome};

/// Filters for [`EventStore::list_events`].
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only events of this host (exact, case-insensitive).
    pub host: Option<String>,
    /// Only events with this event ID.
    pub event_id: Option<i64>,
    /// Only events of this channel / source (exact, case-insensitive).
    pub source: Option<String>,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only events before this time.
    pub until: Option<DateTime<Utc>>,
    /// At most this many events, newest first.
    pub limit: u32,
}

/// An event as stored: its row id and the event as it was ingested (its fields are reached
/// through the event, e.g. `stored.host`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredEvent {
    /// The store's id for the event.
    pub id: i64,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

impl std::ops::Deref for StoredEvent {
    type Target = Event;
    fn deref(&self) -> &Event {
        &self.event
    }
}

/// Works out the alerts of a batch's new events for [`EventStore::store_batch`]: called
/// inside its transaction with the de-duplication keys of the events that were not stored
/// before.
pub type AlertsOf<'a> = dyn FnMut(&[[u8; 16]]) -> Vec<Alert> + Send + 'a;

/// What [`EventStore::store_batch`] stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchStored {
    /// The de-duplication keys of the events that were new.
    pub new_keys: Vec<[u8; 16]>,
    /// What their alerts did to incidents.
    pub alerts: AlertOutcome,
}

/// Where events are stored. Every method is scoped to one tenant.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync {
    /// Stores events, skipping any already stored (same tenant and dedup key). Returns the
    /// de-duplication keys of the events that were new. All rows are written in one
    /// transaction.
    async fn insert_events(&self, rows: &[EventRow]) -> Result<Vec<[u8; 16]>, StoreError>;

    /// Stores events as [`insert_events`](EventStore::insert_events) does and, in the same
    /// transaction, groups the alerts `alerts` returns for the new ones into incidents of
    /// `tenant` as [`record_alerts`](super::IncidentStore::record_alerts) does (`alerts` is
    /// not called when no event was new). On error nothing of it is stored.
    async fn store_batch(
        &self,
        tenant: &TenantId,
        rows: &[EventRow],
        alerts: &mut AlertsOf<'_>,
        window: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<BatchStored, StoreError>;

    /// Events of `tenant` matching `query`, newest first.
    async fn list_events(
        &self,
        tenant: &TenantId,
        query: &EventQuery,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// How many events `tenant` has stored.
    async fn count_events(&self, tenant: &TenantId) -> Result<u64, StoreError>;

    /// The backend's name (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;
}
