//! Storage: the [`Store`] trait and its SQLite (embedded default) and PostgreSQL backends,
//! picked from the database URL's scheme.

mod incidents;
mod outbox;
#[cfg(feature = "postgres")]
mod postgres;
pub mod report;
mod row;
pub mod server;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use outbox::{
    ChangeKind, Delivery, DeliveryFilter, DeliveryKind, DeliveryOutcome, DeliveryState,
    IncidentChange, NewDelivery, OutboxStore,
};
pub use row::EventRow;
pub use server::ServerStore;

use crate::event::{Event, TenantId};
use crate::incident::{
    Alert, AlertOutcome, Incident, IncidentFilter, IncidentId, IncidentPage, Resolution, Status,
    TimelineEntry, TimelinePage, TimelineQuery,
};
use crate::user::{Actor, Role, User};

/// The database used when none is configured: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://siren.db";

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The URL names no backend this build has.
    #[error("unsupported database URL '{0}': use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    /// The database could not be opened or reached.
    #[error("cannot open database '{url}': {source}")]
    Connect {
        /// The URL, with any password removed.
        url: String,
        /// Why.
        source: sqlx::Error,
    },
    /// The schema migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    /// A stored value could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// What was asked for does not exist (for this tenant).
    #[error("{0} not found")]
    NotFound(String),
    /// The change is not allowed (an invalid status move, an unknown user…).
    #[error("{0}")]
    Refused(String),
}

impl StoreError {
    /// Whether retrying later may succeed (the database was busy or unreachable).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Connect { source, .. } | StoreError::Query(source) => {
                matches!(
                    source,
                    sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
                ) || source
                    .as_database_error()
                    .is_some_and(|e| e.message().contains("database is locked"))
            }
            _ => false,
        }
    }
}

/// Filters for [`Store::list_events`].
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

/// A page of an incident's triggering events and the cursor of the next one.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EventPage {
    /// The events, in the order of their alerts (oldest first).
    pub events: Vec<StoredEvent>,
    /// Pass back to [`IncidentStore::incident_events_page`] for the events after these;
    /// `None` on the last page.
    pub after: Option<String>,
}

/// One entry of the append-only audit log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// From where.
    pub origin: String,
    /// What (`incident.assign`, `incident.status`, `incident.note`, `user.add`…).
    pub action: String,
    /// On what (`incident:42`, `user:bob`).
    pub object: String,
    /// Details.
    pub detail: String,
}

/// Incidents, users, the audit log and correlation state. Every method is scoped to one
/// tenant; every change is written with its timeline entry and audit record in one
/// transaction.
#[async_trait::async_trait]
pub trait IncidentStore: Send + Sync {
    /// Groups alerts into incidents: each joins the open incident of its rule and grouping
    /// key when it falls within `window` of it, else opens a new one.
    async fn record_alerts(
        &self,
        tenant: &TenantId,
        alerts: &[Alert],
        window: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<AlertOutcome, StoreError>;
    /// A page of incidents, most recently seen first.
    async fn list_incidents(
        &self,
        tenant: &TenantId,
        filter: &IncidentFilter,
    ) -> Result<IncidentPage, StoreError>;
    /// One incident.
    async fn get_incident(&self, tenant: &TenantId, id: IncidentId)
    -> Result<Incident, StoreError>;
    /// Everything that happened to an incident, oldest first.
    async fn incident_timeline(
        &self,
        tenant: &TenantId,
        id: IncidentId,
    ) -> Result<Vec<TimelineEntry>, StoreError>;
    /// A page of an incident's timeline: the newest entries `query` asks for, with the
    /// timeline's size (an unknown incident has an empty timeline).
    async fn incident_timeline_page(
        &self,
        tenant: &TenantId,
        id: IncidentId,
        query: &TimelineQuery,
    ) -> Result<TimelinePage, StoreError>;
    /// The events that triggered an incident's alerts, oldest first.
    async fn incident_events(
        &self,
        tenant: &TenantId,
        id: IncidentId,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError>;
    /// A page of the events that triggered an incident's alerts, in alert order: the first
    /// `limit`, or those after the cursor a previous page handed back (an unknown incident has
    /// none).
    async fn incident_events_page(
        &self,
        tenant: &TenantId,
        id: IncidentId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<EventPage, StoreError>;
    /// Assigns an incident to an active user.
    async fn assign_incident(
        &self,
        tenant: &TenantId,
        id: IncidentId,
        assignee: &str,
        actor: &Actor,
    ) -> Result<Incident, StoreError>;
    /// Moves an incident along its lifecycle (refused when the move is invalid).
    async fn change_status(
        &self,
        tenant: &TenantId,
        id: IncidentId,
        to: Status,
        resolution: Option<Resolution>,
        note: Option<&str>,
        actor: &Actor,
    ) -> Result<Incident, StoreError>;
    /// Adds a note to an incident.
    async fn add_note(
        &self,
        tenant: &TenantId,
        id: IncidentId,
        text: &str,
        actor: &Actor,
    ) -> Result<Incident, StoreError>;
    /// The latest audit log entries, newest first.
    async fn audit_log(&self, tenant: &TenantId, limit: u32)
    -> Result<Vec<AuditEntry>, StoreError>;
    /// Adds a user (the password already hashed with argon2id).
    async fn add_user(
        &self,
        tenant: &TenantId,
        name: &str,
        role: Role,
        password_hash: &str,
        actor: &Actor,
    ) -> Result<User, StoreError>;
    /// The tenant's users.
    async fn list_users(&self, tenant: &TenantId) -> Result<Vec<User>, StoreError>;
    /// Disables (or enables again) a user.
    async fn set_user_disabled(
        &self,
        tenant: &TenantId,
        name: &str,
        disabled: bool,
        actor: &Actor,
    ) -> Result<User, StoreError>;
    /// An active user's password hash, to verify a login.
    async fn password_hash(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<String>, StoreError>;
    /// Saved correlation state.
    async fn load_correlation_state(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StoreError>;
    /// Saves correlation state.
    async fn save_correlation_state(
        &self,
        tenant: &TenantId,
        name: &str,
        state: &[u8],
    ) -> Result<(), StoreError>;
}

/// Works out the alerts of a batch's new events for [`Store::store_batch`]: called inside its
/// transaction with the de-duplication keys of the events that were not stored before.
pub type AlertsOf<'a> = dyn FnMut(&[[u8; 16]]) -> Vec<Alert> + Send + 'a;

/// What [`Store::store_batch`] stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchStored {
    /// The de-duplication keys of the events that were new.
    pub new_keys: Vec<[u8; 16]>,
    /// What their alerts did to incidents.
    pub alerts: AlertOutcome,
}

/// Where SIREN keeps its data. Every method is scoped to one tenant.
#[async_trait::async_trait]
pub trait Store:
    IncidentStore + ServerStore + OutboxStore + report::ReportStore + Send + Sync
{
    /// Stores events, skipping any already stored (same tenant and dedup key). Returns the
    /// de-duplication keys of the events that were new. All rows are written in one
    /// transaction.
    async fn insert_events(&self, rows: &[EventRow]) -> Result<Vec<[u8; 16]>, StoreError>;

    /// Stores events as [`insert_events`](Store::insert_events) does and, in the same
    /// transaction, groups the alerts `alerts` returns for the new ones into incidents of
    /// `tenant` as [`record_alerts`](IncidentStore::record_alerts) does (`alerts` is not
    /// called when no event was new). On error nothing of it is stored.
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

/// Opens the store a URL names, creating the database (SQLite) and running the migrations.
///
/// `sqlite://PATH` (or `sqlite:PATH`, or a bare path ending in `.db`) selects SQLite;
/// `postgres://…` / `postgresql://…` selects PostgreSQL.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return Ok(Arc::new(postgres::PostgresStore::open(url).await?));
    }
    let sqlite_path = lower.starts_with("sqlite:") || !lower.contains("://");
    if sqlite_path {
        #[cfg(feature = "sqlite")]
        return Ok(Arc::new(sqlite::SqliteStore::open(url).await?));
    }
    Err(StoreError::UnsupportedUrl(redact_url(url)))
}

/// A URL with its password replaced by `***`, for messages.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => {
                format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &rest[..colon],
                    &rest[at..]
                )
            }
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_url("postgres://siren:s3cret@db/siren"),
            "postgres://siren:***@db/siren"
        );
        assert_eq!(
            redact_url("postgres://siren@db/siren"),
            "postgres://siren@db/siren"
        );
        assert_eq!(redact_url("sqlite://siren.db"), "sqlite://siren.db");
    }
}
