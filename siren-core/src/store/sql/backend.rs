//! [`Backend`]: what differs between SQLite and PostgreSQL for SIREN's SQL, and the sqlx
//! bounds the generic implementation needs, stated once.

use std::borrow::Cow;
use std::future::Future;

use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::SqlStore;
use super::statement::Statement;
use crate::event::Fields;
use crate::store::StoreError;

/// Names `T` as an associated type, so that [`Backend`] can state bounds on `T` that hold
/// wherever `B: Backend` does.
///
/// Rust implies a trait's supertraits and the bounds on its associated types at every use
/// of the trait, but not its other where-clauses: written `trait Backend where i64:
/// Encode<'q, Self>`, the clause would have to be repeated on every generic function and
/// impl of the store. Written as the supertrait `Implied<i64, Ty = i64, Ty: Encode<'q,
/// Self>>`, it bounds an associated type known to be `i64`, and is implied.
pub(crate) trait Implied<T: ?Sized> {
    /// `T`.
    type Ty: ?Sized;
}

impl<T: ?Sized, U: ?Sized> Implied<T> for U {
    type Ty = T;
}

/// How many rows a statement changed (sqlx gives each backend's result a method of its own).
pub(crate) trait RowsAffected {
    /// Rows inserted, updated or deleted.
    fn rows_affected(&self) -> u64;
}

#[cfg(feature = "sqlite")]
impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

#[cfg(feature = "postgres")]
impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

/// The pool and a transaction's connection run queries (`&Pool<B>` executes through its
/// connections).
pub(crate) trait Executes:
    Database
    + for<'c> Implied<
        &'c mut <Self as Database>::Connection,
        Ty = &'c mut <Self as Database>::Connection,
        Ty: Executor<'c, Database = Self>,
    >
{
}

/// The Rust values the SQL binds, each encoded by the backend.
pub(crate) trait Binds:
    Database
    + Implied<i64, Ty = i64, Ty: for<'q> Encode<'q, Self> + Type<Self>>
    + Implied<Option<i64>, Ty = Option<i64>, Ty: for<'q> Encode<'q, Self>>
    + Implied<String, Ty = String, Ty: for<'q> Encode<'q, Self> + Type<Self>>
    + for<'q> Implied<&'q str, Ty = &'q str, Ty: Encode<'q, Self> + Type<Self>>
    + for<'q> Implied<Option<&'q str>, Ty = Option<&'q str>, Ty: Encode<'q, Self>>
    + for<'q> Implied<Cow<'q, str>, Ty = Cow<'q, str>, Ty: Encode<'q, Self> + Type<Self>>
    + for<'q> Implied<Option<Cow<'q, str>>, Ty = Option<Cow<'q, str>>, Ty: Encode<'q, Self>>
    + for<'q> Implied<&'q [u8], Ty = &'q [u8], Ty: Encode<'q, Self> + Type<Self>>
    + for<'q> Implied<Option<&'q [u8]>, Ty = Option<&'q [u8]>, Ty: Encode<'q, Self>>
{
}

/// The Rust values the SQL reads, each decoded by the backend, by column name or position.
pub(crate) trait Reads:
    Database
    + Implied<i64, Ty = i64, Ty: for<'r> Decode<'r, Self> + Type<Self>>
    + Implied<String, Ty = String, Ty: for<'r> Decode<'r, Self> + Type<Self>>
    + Implied<Vec<u8>, Ty = Vec<u8>, Ty: for<'r> Decode<'r, Self> + Type<Self>>
    + for<'a> Implied<&'a str, Ty = &'a str, Ty: ColumnIndex<<Self as Database>::Row>>
    + Implied<usize, Ty = usize, Ty: ColumnIndex<<Self as Database>::Row>>
{
}

/// A database SIREN stores into: its dialect, and the sqlx bounds the generic SQL of
/// [`SqlStore`] needs of it.
///
/// sqlx's generic API asks at each call that the backend's arguments bind
/// (`IntoArguments`), that the pool and a transaction's connection run queries
/// ([`Executes`]), that each Rust value bound or read is encoded or decoded by the backend
/// ([`Binds`], [`Reads`]), and, here, that a statement tells how many rows it changed
/// ([`RowsAffected`]). They are the supertraits: bounds on the backend's own types as
/// associated-type bounds on `Database`, bounds on other types in the form [`Implied`]
/// explains. So they hold in every generic function and impl that names `B: Backend`; each
/// backend's empty impls of [`Executes`], [`Binds`] and [`Reads`] check them.
pub(crate) trait Backend:
    Database<QueryResult: RowsAffected>
    + for<'q> Database<Arguments<'q>: IntoArguments<'q, Self>>
    + Executes
    + Binds
    + Reads
{
    /// The backend's name (`sqlite`, `postgres`).
    const BACKEND: &'static str;

    /// Events stored per `INSERT` statement (16 parameters each, within the backend's
    /// limit on parameters).
    const EVENTS_PER_INSERT: usize;

    /// What follows the `fields` parameter of an event's `INSERT` (PostgreSQL's `jsonb`
    /// cast).
    const FIELDS_CAST: &'static str;

    /// The order of events newest first (an event without a time last).
    const NEWEST_EVENTS_FIRST: &'static str;

    /// A query of the database's size on disk in bytes.
    const DATABASE_BYTES: &'static str;

    /// A query of the database's file on this machine (none: a server's database).
    const DATABASE_FILE: Option<&'static str>;

    /// How the `events` table keeps a time (`ts`, `ingested_at`): SQLite as microseconds
    /// since the Unix epoch, PostgreSQL as `timestamptz`.
    type Time: for<'q> Encode<'q, Self>
        + for<'r> Decode<'r, Self>
        + Type<Self>
        + Send
        + Sync
        + Unpin;

    /// [`Self::Time`], or none (the `ts` of an event without a time).
    type MaybeTime: for<'q> Encode<'q, Self> + Type<Self> + Send + Sync;

    /// How the `events` table keeps an event's fields: SQLite as JSON text, PostgreSQL as
    /// `jsonb`.
    type StoredFields: for<'r> Decode<'r, Self> + Type<Self>;

    /// Opens the database at `url` (SQLite creates it, owner-only) and runs the migrations.
    fn open(url: &str) -> impl Future<Output = Result<SqlStore<Self>, StoreError>> + Send;

    /// A time as the `events` table keeps it.
    fn time(at: DateTime<Utc>) -> Self::Time;

    /// An event's time, in microseconds since the epoch, as the `events` table keeps it.
    fn maybe_time(micros: Option<i64>) -> Self::MaybeTime;

    /// A time the `events` table kept (none when out of range).
    fn read_time(stored: Self::Time) -> Option<DateTime<Utc>>;

    /// An event's fields as the `events` table kept them.
    fn read_fields(stored: Self::StoredFields) -> Result<Fields, StoreError>;

    /// Text as the backend can keep it (PostgreSQL text holds no NUL character: it becomes
    /// U+FFFD).
    fn text(text: &str) -> Cow<'_, str>;

    /// A JSON document as the backend can keep it (PostgreSQL's `jsonb` holds no `\u0000`:
    /// such characters in strings become U+FFFD).
    fn json(json: &str) -> Cow<'_, str>;

    /// Arguments that borrow for `'a` as arguments that borrow for the shorter `'b` (each
    /// backend's arguments type is covariant in its lifetime; generic code cannot see that).
    fn shorten<'a: 'b, 'b>(
        arguments: <Self as Database>::Arguments<'a>,
    ) -> <Self as Database>::Arguments<'b>;

    /// Appends ` AND column = value`, compared without regard to ASCII case.
    fn push_same_text<'a>(query: &mut Statement<'a, Self>, column: &str, value: &'a str);
}
