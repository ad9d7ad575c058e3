//! SQLite, the embedded default: one file in WAL mode, migrations from `migrations/sqlite`,
//! every write through one connection of its own and reads through a pool of others.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};

use super::statement::Statement;
use super::{Backend, Binds, Executes, Reads, SqlStore};
use crate::event::Fields;
use crate::store::StoreError;

/// Each connection's page cache, in KiB. SQLite's default (2 MiB) holds a small part of the
/// event indexes once a few hundred thousand events are stored; every batch then reads back
/// and rewrites pages of the de-duplication index that it had just evicted.
const PAGE_CACHE_KIB: i64 = 64 * 1024;

/// WAL pages after which a commit copies the log into the database (SQLite's default is
/// 1,000, i.e. about every other batch of events). Fewer, larger checkpoints write a page
/// that several batches changed once.
const WAL_CHECKPOINT_PAGES: i64 = 10_000;

/// Connections that read (the dashboard's users, searches, reports) at once.
const READERS: u32 = 8;

/// Every write goes through one connection of its own (the store's `writer` pool): SQLite
/// has one writer at a time anyway, and a connection keeps its page cache only while no
/// other connection changes the database, so the writer finds the de-duplication index it
/// needs in memory instead of reading it back after every commit. Reads use the other
/// connections.
impl Backend for Sqlite {
    const BACKEND: &'static str = "sqlite";
    /// 500 × 16 parameters, well under SQLite's 32,766.
    const EVENTS_PER_INSERT: usize = 500;
    const FIELDS_CAST: &'static str = "";
    /// SQLite sorts NULL first, so last when descending.
    const NEWEST_EVENTS_FIRST: &'static str = "ts DESC, id DESC";

    /// The main file's pages (the write-ahead log comes and goes with checkpoints).
    const DATABASE_BYTES: &'static str =
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()";

    const DATABASE_FILE: Option<&'static str> =
        Some("SELECT file FROM pragma_database_list WHERE name = 'main'");

    type Time = i64;
    type MaybeTime = Option<i64>;
    type StoredFields = String;

    async fn open(url: &str) -> Result<SqlStore<Self>, StoreError> {
        let connect_error = |source| StoreError::Connect {
            url: url.to_owned(),
            source,
        };
        let options = if url.to_ascii_lowercase().starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url).map_err(connect_error)?
        } else {
            SqliteConnectOptions::new().filename(url)
        };
        if !is_in_memory(url) {
            create_private(options.get_filename())
                .map_err(|e| connect_error(sqlx::Error::Io(e)))?;
        }
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            .pragma("cache_size", (-PAGE_CACHE_KIB).to_string())
            .pragma("wal_autocheckpoint", WAL_CHECKPOINT_PAGES.to_string());
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(connect_error)?;
        sqlx::migrate!("../migrations/sqlite").run(&writer).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(options)
            .await
            .map_err(connect_error)?;
        Ok(SqlStore { pool, writer })
    }

    fn time(at: DateTime<Utc>) -> i64 {
        at.timestamp_micros()
    }

    fn maybe_time(micros: Option<i64>) -> Option<i64> {
        micros
    }

    fn read_time(stored: i64) -> Option<DateTime<Utc>> {
        DateTime::<Utc>::from_timestamp_micros(stored)
    }

    fn read_fields(stored: String) -> Result<Fields, StoreError> {
        serde_json::from_str(&stored).map_err(|e| StoreError::Corrupt(format!("event fields: {e}")))
    }

    fn text(text: &str) -> Cow<'_, str> {
        Cow::Borrowed(text)
    }

    fn json(json: &str) -> Cow<'_, str> {
        Cow::Borrowed(json)
    }

    fn shorten<'a: 'b, 'b>(arguments: SqliteArguments<'a>) -> SqliteArguments<'b> {
        arguments
    }

    fn push_same_text<'a>(query: &mut Statement<'a, Self>, column: &str, value: &'a str) {
        query
            .push(format_args!(" AND {column} = "))
            .push_bind(value)
            .push(" COLLATE NOCASE");
    }
}

/// Whether `url` names an in-memory database (`sqlite::memory:`, `?mode=memory`) or one
/// opened read-only, for which no file is created.
fn is_in_memory(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.contains(":memory:") || lower.contains("mode=memory") || lower.contains("mode=ro")
}

/// Creates the database file at `path`, readable by its owner only, before SQLite opens it;
/// SQLite gives the `-wal` and `-shm` files it creates beside it the database file's mode. An
/// existing database (and its `-wal` and `-shm` files) loses any access for others; its
/// owner and group keep theirs.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    if path.as_os_str().is_empty() || crate::owner_only::create_file(path)? {
        return Ok(());
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        // Best effort: a database of another user's stays as it is.
        let _ = crate::owner_only::restrict(std::path::Path::new(&name), 0o007);
    }
    Ok(())
}

/// The bounds [`Backend`] states hold for Sqlite.
impl Executes for Sqlite {}
impl Binds for Sqlite {}
impl Reads for Sqlite {}
