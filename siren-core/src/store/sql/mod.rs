//! The store's one implementation: [`SqlStore`], generic over the [`Backend`] (SQLite or
//! PostgreSQL). The SQL is written once, with `$n` parameters (which both backends read),
//! times as integer microseconds since the Unix epoch and lists as JSON text; the events
//! table, whose time and fields columns differ, goes through the backend's dialect.
//!
//! One file per trait it implements (`events.rs`, `incidents.rs`, `audit.rs`, `auth.rs`,
//! `correlation.rs`, `outbox.rs`, `report.rs`, `retention.rs`, `server.rs`); `alerts.rs` stores what
//! grouping alerts into incidents decided, `changes.rs` the analysts' changes, `records.rs`
//! the timeline entries, audit records and outbox changes written with them. `statement.rs`
//! puts statements together at run time, `pages.rs` reads lists a page at a time, and
//! `rows.rs` reads stored values back.

mod alerts;
mod audit;
mod auth;
mod backend;
mod batch;
mod changes;
mod correlation;
mod events;
mod incidents;
mod outbox;
mod pages;
#[cfg(feature = "postgres")]
mod postgres;
mod records;
mod report;
mod retention;
mod rows;
mod server;
#[cfg(feature = "sqlite")]
mod sqlite;
mod statement;

use sqlx::Pool;

pub(crate) use backend::{Backend, Binds, Executes, Reads, RowsAffected};

/// SIREN's data in a database of backend `B`.
pub(crate) struct SqlStore<B: Backend> {
    /// The connections that read.
    pool: Pool<B>,
    /// The connections that write (SQLite: one of its own; PostgreSQL: the same pool).
    writer: Pool<B>,
}

impl<B: Backend> SqlStore<B> {
    /// Opens (creating where the backend does) the database at `url` and migrates it.
    pub(crate) async fn open(url: &str) -> Result<Self, crate::store::StoreError> {
        B::open(url).await
    }
}
