//! Events: [`EventStore`] stores them de-duplicated, alone or in a batch with the incidents
//! their alerts open, and reads them back.

use chrono::{DateTime, Utc};

use super::{BatchWrite, EventRow, StoreError};
use crate::event::{Event, TenantId};

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

/// Where events are stored. Every method is scoped to one tenant.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync {
    /// Stores events, skipping any already stored (same tenant and dedup key). Returns the
    /// de-duplication keys of the events that were new. All rows are written in one
    /// transaction.
    async fn insert_events(&self, rows: &[EventRow]) -> Result<Vec<[u8; 16]>, StoreError>;

    /// Begins writing a batch of `tenant`'s in one transaction: its events, the incidents
    /// their alerts open and its entry in the correlation journal `journal`, committed
    /// together or not at all (see [`BatchWrite`]).
    async fn begin_batch(
        &self,
        tenant: &TenantId,
        journal: &str,
    ) -> Result<Box<dyn BatchWrite>, StoreError>;

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
