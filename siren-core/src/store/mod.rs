//! Storage: narrow traits by what their users need, one SQL implementation for SQLite (the
//! embedded default) and PostgreSQL, and [`open`], which picks the backend from the
//! database URL's scheme.
//!
//! - [`EventStore`] — events in (de-duplicated, alone or with the incidents their alerts
//!   open) and out.
//! - [`IncidentStore`] — incidents: grouping alerts, reading, assigning, moving, noting.
//! - [`AuditLog`], [`AuthStore`] (users, sessions, API tokens), [`CorrelationState`].
//! - [`Outbox`] — incident changes waiting to be notified and their deliveries.
//! - [`ReportSource`] — incidents by time range, for period reports.
//! - [`Retention`] — purging what retention policies no longer keep.
//! - [`ServerStore`] — agents, the change feed, alert pages and the dashboard's counts.
//!
//! [`Store`] is all of them, for the code that needs everything. The implementation
//! (`sql/`) is generic over the backend: the SQL is written once, with the few real
//! differences between SQLite and PostgreSQL in a small dialect trait.

pub mod audit;
pub mod auth;
#[cfg(feature = "sqlite")]
pub mod backup;
mod batch;
pub mod correlation;
mod error;
pub mod events;
pub mod incidents;
mod open;
pub mod outbox;
pub mod report;
pub mod retention;
mod row;
pub mod server;
mod sql;

pub use audit::{AuditEntry, AuditLog};
pub use auth::{ApiToken, AuthStore, LoginRecord, NewToken, SessionRecord};
pub use batch::BatchWrite;
pub use correlation::{Checkpoint, CorrelationState};
pub use error::StoreError;
pub use events::{EventQuery, EventStore, StoredEvent};
pub use incidents::{EventPage, IncidentStore};
pub use open::{DEFAULT_DATABASE_URL, Store, open, redact_url};
pub use outbox::{
    ChangeKind, Delivery, DeliveryFilter, DeliveryKind, DeliveryOutcome, DeliveryState,
    NewDelivery, Outbox, OutboxChange,
};
pub use report::{ReportRange, ReportSource};
pub use retention::{Cutoffs, DueEvent, Purged, Retention, TenantSpan};
pub use row::EventRow;
pub use server::ServerStore;
