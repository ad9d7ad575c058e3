//! [`Statement`]: SQL put together at run time (optional filters, `IN` lists, the rows of a
//! multi-row `INSERT`) with its arguments, the backend writing each placeholder.
//!
//! sqlx's `QueryBuilder` lends its arguments to the query for as long as the builder lives,
//! which code generic over the backend cannot shorten; a statement here is consumed by the
//! call that runs it.

use std::fmt::{Display, Write as _};

use sqlx::error::BoxDynError;
use sqlx::{Arguments as _, Database, Encode, Executor, FromRow, Type};

use super::Backend;
use crate::store::StoreError;

/// A statement's text and arguments, put together at run time.
pub(crate) struct Statement<'q, B: Backend> {
    sql: String,
    arguments: <B as Database>::Arguments<'q>,
    /// The first value that could not be encoded (reported when the statement runs).
    error: Option<BoxDynError>,
}

impl<'q, B: Backend> Statement<'q, B> {
    /// A statement starting with `sql`.
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            arguments: Default::default(),
            error: None,
        }
    }

    /// Appends SQL text.
    pub fn push(&mut self, sql: impl Display) -> &mut Self {
        // Writing to a `String` cannot fail.
        let _ = write!(self.sql, "{sql}");
        self
    }

    /// Appends a placeholder for `value`, bound to it.
    pub fn push_bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'q + Encode<'q, B> + Type<B>,
    {
        if let Err(error) = self.arguments.add(value) {
            self.error.get_or_insert(error);
        }
        let _ = self.arguments.format_placeholder(&mut self.sql);
        self
    }

    /// Runs the statement and returns its rows.
    pub async fn fetch_all<'e>(
        self,
        executor: impl Executor<'e, Database = B>,
    ) -> Result<Vec<B::Row>, StoreError> {
        let (sql, arguments) = self.finish()?;
        Ok(sqlx::query_with(&sql, B::shorten(arguments))
            .fetch_all(executor)
            .await?)
    }

    /// Runs the statement and returns its rows as `O`s.
    pub async fn fetch_all_as<'e, O>(
        self,
        executor: impl Executor<'e, Database = B>,
    ) -> Result<Vec<O>, StoreError>
    where
        O: for<'r> FromRow<'r, B::Row> + Send + Unpin,
    {
        let (sql, arguments) = self.finish()?;
        Ok(sqlx::query_as_with(&sql, B::shorten(arguments))
            .fetch_all(executor)
            .await?)
    }

    /// Runs the statement and returns how many rows it changed.
    pub async fn execute<'e>(
        self,
        executor: impl Executor<'e, Database = B>,
    ) -> Result<u64, StoreError> {
        let (sql, arguments) = self.finish()?;
        let done = sqlx::query_with(&sql, B::shorten(arguments))
            .execute(executor)
            .await?;
        Ok(super::RowsAffected::rows_affected(&done))
    }

    /// The text and the arguments (an error when a value could not be encoded).
    fn finish(self) -> Result<(String, <B as Database>::Arguments<'q>), StoreError> {
        match self.error {
            Some(error) => Err(StoreError::Query(sqlx::Error::Encode(error))),
            None => Ok((self.sql, self.arguments)),
        }
    }
}
