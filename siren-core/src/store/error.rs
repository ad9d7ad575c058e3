//! [`StoreError`]: what can go wrong in the store.

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
    /// The message bus of the distributed mode did not take a batch's correlation input
    /// (unreachable, or it refused it); nothing of the batch is committed.
    #[error("message bus: {0}")]
    Bus(String),
    /// The archive that events go to before they are deleted failed; nothing was deleted.
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
}

impl StoreError {
    /// Whether the database could not write for lack of disk space (SQLite's
    /// `SQLITE_FULL`, PostgreSQL's `disk_full`): nothing of the failed write is kept, and
    /// retrying once space is freed succeeds.
    pub fn is_disk_full(&self) -> bool {
        let (StoreError::Connect { source, .. } | StoreError::Query(source)) = self else {
            return false;
        };
        source.as_database_error().is_some_and(|e| {
            let code = e.code();
            matches!(code.as_deref(), Some("13") | Some("53100"))
                || e.message().contains("database or disk is full")
        })
    }

    /// Whether retrying later may succeed (the database or the archive was busy or
    /// unreachable).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Connect { source, .. } | StoreError::Query(source) => {
                matches!(
                    source,
                    sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
                ) || source
                    .as_database_error()
                    .is_some_and(|e| e.message().contains("database is locked"))
                    || self.is_disk_full()
            }
            StoreError::Bus(_) => true,
            // The archive's store could not be reached or refused the write: nothing was
            // deleted, and the next run tries again.
            StoreError::Archive(crate::archive::ArchiveError::Store { .. }) => true,
            _ => false,
        }
    }
}
