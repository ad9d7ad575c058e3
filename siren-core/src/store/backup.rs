//! Backup, check and restore of a SIREN database.
//!
//! The embedded store (SQLite) is copied while the server keeps writing: `VACUUM INTO` reads
//! one consistent snapshot (a read transaction, which the write-ahead log lets run beside
//! the writer) into a new, compacted file that only its owner can read. A copy is checked
//! (`PRAGMA integrity_check`, and its schema version against this build's migrations) and
//! restored only into an empty database, which is then migrated to this build's schema.
//! PostgreSQL is backed up and restored with its own tools (`pg_dump`, `pg_restore`: see
//! the README); [`check`] then verifies the restored database.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sqlx::{Connection, Row};

use super::StoreError;

/// What a backup, or a database checked, holds.
#[derive(Debug, Clone, Serialize)]
pub struct BackupSummary {
    /// The file or database (a URL without its password).
    pub database: String,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// The result of the integrity check (`ok`, or what the database reported).
    pub integrity: String,
    /// The latest schema migration applied to it.
    pub schema_version: i64,
    /// The latest schema migration this build knows.
    pub build_schema_version: i64,
    /// Events stored.
    pub events: i64,
    /// Alerts stored.
    pub alerts: i64,
    /// Incidents stored.
    pub incidents: i64,
    /// The file's size in bytes (SQLite).
    pub bytes: Option<u64>,
}

/// Why a backup, check or restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Not possible as asked (a PostgreSQL database, a target that is not empty, a backup of
    /// a newer build); the message says what to do instead.
    #[error("{0}")]
    Refused(String),
    /// The file is not a SIREN database, or fails its integrity check.
    #[error("{path}: {message}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The database could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file could not be created or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// How PostgreSQL databases are backed up and restored, for messages.
pub const POSTGRES_TOOLS: &str = "back a PostgreSQL database up with its own tools: \
    pg_dump --format=custom --file FILE URL, and restore it into an empty database with \
    pg_restore --dbname URL FILE; then `siren --db URL backup --check` verifies it";

/// The latest migration this build applies to SQLite databases.
fn build_schema_version() -> i64 {
    sqlx::migrate!("../migrations/sqlite")
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

/// The file an SQLite URL or path names (`None` for PostgreSQL).
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        return None;
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    Some(PathBuf::from(path.split('?').next().unwrap_or(path)))
}

async fn connect_file(path: &Path, read_only: bool) -> Result<sqlx::SqliteConnection, BackupError> {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(read_only)
        .busy_timeout(std::time::Duration::from_secs(30));
    sqlx::SqliteConnection::connect_with(&options)
        .await
        .map_err(|source| {
            BackupError::Store(StoreError::Connect {
                url: path.display().to_string(),
                source,
            })
        })
}

/// Checks the SQLite database in `path`: integrity, schema version and what it holds.
async fn check_file(path: &Path) -> Result<BackupSummary, BackupError> {
    let damaged = |message: String| BackupError::Damaged {
        path: path.to_owned(),
        message,
    };
    let bytes = std::fs::metadata(path)
        .map_err(|source| BackupError::Io {
            path: path.to_owned(),
            source,
        })?
        .len();
    let mut connection = connect_file(path, true).await?;
    let problems: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut connection)
        .await
        .map_err(|e| damaged(format!("not an SQLite database ({e})")))?;
    let integrity = problems.join("; ");
    if integrity != "ok" {
        return Err(damaged(format!("fails its integrity check: {integrity}")));
    }
    let schema_version: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut connection)
            .await
            .map_err(|_| {
                damaged("not a SIREN database (it has no schema migrations)".to_owned())
            })?;
    let count = |table: &'static str| format!("SELECT COUNT(*) FROM {table}");
    let mut counts = [0i64; 3];
    for (slot, table) in counts.iter_mut().zip(["events", "alerts", "incidents"]) {
        *slot = sqlx::query(&count(table))
            .fetch_one(&mut connection)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| damaged(format!("cannot count its {table} ({e})")))?;
    }
    Ok(BackupSummary {
        database: path.display().to_string(),
        backend: "sqlite",
        integrity,
        schema_version: schema_version.unwrap_or(0),
        build_schema_version: build_schema_version(),
        events: counts[0],
        alerts: counts[1],
        incidents: counts[2],
        bytes: Some(bytes),
    })
}

/// Writes a consistent copy of the SQLite database at `url` to `to` (which must not exist)
/// while others may keep writing to it, and checks the copy.
pub async fn backup(url: &str, to: &Path) -> Result<BackupSummary, BackupError> {
    let Some(from) = sqlite_file(url) else {
        return Err(BackupError::Refused(format!(
            "siren backup copies the embedded (SQLite) store; {POSTGRES_TOOLS}"
        )));
    };
    if !from.is_file() {
        return Err(BackupError::Io {
            path: from,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such database"),
        });
    }
    if to.exists() {
        return Err(BackupError::Refused(format!(
            "{} exists: name a new file (a backup never overwrites one)",
            to.display()
        )));
    }
    // Created empty and private first: VACUUM INTO fills an empty file and keeps its mode.
    crate::owner_only::create_file(to).map_err(|source| BackupError::Io {
        path: to.to_owned(),
        source,
    })?;
    let copied = async {
        let mut connection = connect_file(&from, true).await?;
        sqlx::query("VACUUM INTO ?")
            .bind(to.to_string_lossy().into_owned())
            .execute(&mut connection)
            .await
            .map_err(StoreError::from)?;
        connection.close().await.map_err(StoreError::from)?;
        check_file(to).await
    }
    .await;
    if copied.is_err() {
        let _ = std::fs::remove_file(to);
    }
    copied
}

/// Checks a backup file, or (without one) the database at `url`: integrity where the
/// backend has a check, the schema version, and what it holds.
pub async fn check(url: &str, file: Option<&Path>) -> Result<BackupSummary, BackupError> {
    if let Some(file) = file {
        return check_file(file).await;
    }
    match sqlite_file(url) {
        Some(path) => check_file(&path).await,
        None => check_postgres(url).await,
    }
}

#[cfg(feature = "postgres")]
async fn check_postgres(url: &str) -> Result<BackupSummary, BackupError> {
    let database = super::redact_url(url);
    let mut connection =
        sqlx::PgConnection::connect(url)
            .await
            .map_err(|source| StoreError::Connect {
                url: database.clone(),
                source,
            })?;
    let refused = |message: String| BackupError::Refused(format!("{database}: {message}"));
    let schema_version: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut connection)
            .await
            .map_err(|_| {
                refused("not a SIREN database (it has no schema migrations)".to_owned())
            })?;
    let mut counts = [0i64; 3];
    for (slot, table) in counts.iter_mut().zip(["events", "alerts", "incidents"]) {
        *slot = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut connection)
            .await
            .map_err(|e| refused(format!("cannot count its {table} ({e})")))?;
    }
    let build = sqlx::migrate!("../migrations/postgres")
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0);
    Ok(BackupSummary {
        database,
        backend: "postgres",
        integrity: "not checked (PostgreSQL: use amcheck / pg_amcheck)".to_owned(),
        schema_version: schema_version.unwrap_or(0),
        build_schema_version: build,
        events: counts[0],
        alerts: counts[1],
        incidents: counts[2],
        bytes: None,
    })
}

#[cfg(not(feature = "postgres"))]
async fn check_postgres(url: &str) -> Result<BackupSummary, BackupError> {
    Err(BackupError::Store(StoreError::UnsupportedUrl(
        super::redact_url(url),
    )))
}

/// Restores the backup `from` into the SQLite database at `url`, which must be empty (no
/// file, or one without tables), after checking the backup; the restored database is then
/// migrated to this build's schema.
pub async fn restore(from: &Path, url: &str) -> Result<BackupSummary, BackupError> {
    let Some(to) = sqlite_file(url) else {
        return Err(BackupError::Refused(format!(
            "siren restore fills an embedded (SQLite) store; {POSTGRES_TOOLS}"
        )));
    };
    let backup = check_file(from).await?;
    if backup.schema_version > backup.build_schema_version {
        return Err(BackupError::Refused(format!(
            "{} was made by a newer SIREN (schema {}; this build knows up to {}): restore it \
             with that version",
            from.display(),
            backup.schema_version,
            backup.build_schema_version
        )));
    }
    if to.exists() {
        let empty = std::fs::metadata(&to).is_ok_and(|m| m.len() == 0) || {
            let mut connection = connect_file(&to, true).await?;
            let tables: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master")
                .fetch_one(&mut connection)
                .await
                .map_err(StoreError::from)?;
            tables == 0
        };
        if !empty {
            return Err(BackupError::Refused(format!(
                "{} is not empty: restore into a new database (a restore never merges or \
                 overwrites)",
                to.display()
            )));
        }
        std::fs::remove_file(&to).map_err(|source| BackupError::Io {
            path: to.clone(),
            source,
        })?;
    }
    crate::owner_only::create_file(&to).map_err(|source| BackupError::Io {
        path: to.clone(),
        source,
    })?;
    let mut connection = connect_file(from, true).await?;
    sqlx::query("VACUUM INTO ?")
        .bind(to.to_string_lossy().into_owned())
        .execute(&mut connection)
        .await
        .map_err(StoreError::from)?;
    connection.close().await.map_err(StoreError::from)?;
    // Opening migrates an older schema to this build's.
    drop(super::open(url).await?);
    check_file(&to).await
}
