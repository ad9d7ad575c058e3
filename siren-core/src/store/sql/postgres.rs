//! PostgreSQL, for teams and for several servers sharing one database: one pool for reads
//! and writes, migrations from `migrations/postgres`.

use std::borrow::Cow;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Postgres;
use sqlx::postgres::{PgArguments, PgPoolOptions};
use sqlx::types::Json;

use super::statement::Statement;
use super::{Backend, Binds, Executes, Reads, SqlStore};
use crate::event::Fields;
use crate::store::{StoreError, redact_url};

/// Connections at once.
const CONNECTIONS: u32 = 8;

/// Reads and writes share one pool: PostgreSQL has many writers.
impl Backend for Postgres {
    const BACKEND: &'static str = "postgres";
    /// 1,000 × 16 parameters, well under PostgreSQL's 65,535.
    const EVENTS_PER_INSERT: usize = 1000;
    const FIELDS_CAST: &'static str = "::jsonb";
    /// PostgreSQL sorts NULL last, so first when descending unless told.
    const NEWEST_EVENTS_FIRST: &'static str = "ts DESC NULLS LAST, id DESC";

    const DATABASE_BYTES: &'static str = "SELECT pg_database_size(current_database())";

    const DATABASE_FILE: Option<&'static str> = None;

    type Time = DateTime<Utc>;
    type MaybeTime = Option<DateTime<Utc>>;
    type StoredFields = Json<Fields>;

    async fn open(url: &str) -> Result<SqlStore<Self>, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|source| StoreError::Connect {
                url: redact_url(url),
                source,
            })?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        Ok(SqlStore {
            writer: pool.clone(),
            pool,
        })
    }

    fn time(at: DateTime<Utc>) -> DateTime<Utc> {
        at
    }

    fn maybe_time(micros: Option<i64>) -> Option<DateTime<Utc>> {
        micros.and_then(DateTime::<Utc>::from_timestamp_micros)
    }

    fn read_time(stored: DateTime<Utc>) -> Option<DateTime<Utc>> {
        Some(stored)
    }

    fn read_fields(stored: Json<Fields>) -> Result<Fields, StoreError> {
        Ok(stored.0)
    }

    fn text(text: &str) -> Cow<'_, str> {
        if text.contains('\0') {
            text.replace('\0', "\u{FFFD}").into()
        } else {
            text.into()
        }
    }

    fn json(json: &str) -> Cow<'_, str> {
        if !json.contains("\\u0000") {
            return json.into();
        }
        match serde_json::from_str::<serde_json::Value>(json) {
            Ok(mut value) => {
                replace_nul(&mut value);
                serde_json::to_string(&value).unwrap_or_default().into()
            }
            Err(_) => json.into(),
        }
    }

    fn shorten<'a: 'b, 'b>(arguments: PgArguments) -> PgArguments {
        arguments
    }

    fn push_same_text<'a>(query: &mut Statement<'a, Self>, column: &str, value: &'a str) {
        query
            .push(format_args!(" AND lower({column}) = lower("))
            .push_bind(value)
            .push(")");
    }
}

/// Replaces NUL characters in the strings of `value` with U+FFFD.
fn replace_nul(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
        serde_json::Value::Array(items) => items.iter_mut().for_each(replace_nul),
        serde_json::Value::Object(map) => map.values_mut().for_each(replace_nul),
        _ => {}
    }
}

/// The bounds [`Backend`] states hold for Postgres.
impl Executes for Postgres {}
impl Binds for Postgres {}
impl Reads for Postgres {}
