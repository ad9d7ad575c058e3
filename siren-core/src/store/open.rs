//! Opening a store by URL: [`open`] picks the backend from the scheme and returns it as a
//! [`Store`], the bound of everything a store does.

use std::sync::Arc;

use super::{
    AuditLog, AuthStore, CorrelationState, EventStore, IncidentStore, Outbox, ReportSource,
    Retention, ServerStore, StoreError,
};

/// The database used when none is configured: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://siren.db";

/// Everything a store does, for the code that needs all of it (opening one by URL returns
/// it); other code takes the narrower trait it uses, to which an `Arc<dyn Store>` converts.
pub trait Store:
    EventStore
    + IncidentStore
    + AuditLog
    + AuthStore
    + CorrelationState
    + Outbox
    + ReportSource
    + Retention
    + ServerStore
{
}

impl<T> Store for T where
    T: EventStore
        + IncidentStore
        + AuditLog
        + AuthStore
        + CorrelationState
        + Outbox
        + ReportSource
        + Retention
        + ServerStore
        + ?Sized
{
}

/// Opens the store a URL names, creating the database (SQLite) and running the migrations.
///
/// `sqlite://PATH` (or `sqlite:PATH`, or a bare path ending in `.db`) selects SQLite;
/// `postgres://…` / `postgresql://…` selects PostgreSQL.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return Ok(Arc::new(
            super::sql::SqlStore::<sqlx::Postgres>::open(url).await?,
        ));
    }
    let sqlite_path = lower.starts_with("sqlite:") || !lower.contains("://");
    if sqlite_path {
        #[cfg(feature = "sqlite")]
        return Ok(Arc::new(
            super::sql::SqlStore::<sqlx::Sqlite>::open(url).await?,
        ));
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
