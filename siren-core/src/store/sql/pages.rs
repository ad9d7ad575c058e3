//! Reading lists a page at a time: cursors (a row's sort time and id), page sizes, and the
//! pages of an incident's timeline, events and alerts, whose queries take the tenant, the
//! incident and, after a cursor, its time and id.

use sqlx::{Pool, Row};

use super::Backend;
use crate::store::StoreError;

/// Page sizes are clamped to 1..=10,000.
pub(super) fn page_size(limit: u32) -> i64 {
    i64::from(limit.clamp(1, 10_000))
}

/// The cursor of a page that ends at the row with this sort time and id.
pub(super) fn encode_cursor(at: i64, id: i64) -> String {
    format!("{at}.{id}")
}

/// The sort time and id an [`encode_cursor`] cursor names.
pub(super) fn decode_cursor(cursor: &str) -> Result<(i64, i64), StoreError> {
    let invalid = || StoreError::Refused(format!("invalid cursor '{cursor}'"));
    let (a, b) = cursor.split_once('.').ok_or_else(invalid)?;
    Ok((
        a.parse().map_err(|_| invalid())?,
        b.parse().map_err(|_| invalid())?,
    ))
}

/// The two queries of an incident's list: the first page (`$1` tenant, `$2` incident, `$3`
/// rows) and a page after a cursor (`$3` and `$4` the cursor's time and id, `$5` rows).
pub(super) struct PageQueries<'a> {
    pub first: &'a str,
    pub after: &'a str,
}

/// The rows of a page of `size` of incident `incident`'s list, after `cursor` when given,
/// and one row more, which tells whether another page follows ([`split_page`]).
pub(super) async fn fetch_page<B: Backend>(
    pool: &Pool<B>,
    queries: PageQueries<'_>,
    (tenant, incident): (&str, i64),
    cursor: Option<&str>,
    size: i64,
) -> Result<Vec<B::Row>, StoreError> {
    let rows = match cursor {
        Some(cursor) => {
            let (at, id) = decode_cursor(cursor)?;
            sqlx::query(queries.after)
                .bind(tenant)
                .bind(incident)
                .bind(at)
                .bind(id)
                .bind(size + 1)
                .fetch_all(pool)
                .await?
        }
        None => {
            sqlx::query(queries.first)
                .bind(tenant)
                .bind(incident)
                .bind(size + 1)
                .fetch_all(pool)
                .await?
        }
    };
    Ok(rows)
}

/// The first `size` of `rows` (as [`fetch_page`] read them), and the cursor after the last of
/// them, from its `at` and `id` columns, when more rows came.
pub(super) fn split_page<'r, B: Backend>(
    rows: &'r [B::Row],
    size: i64,
    (at, id): (&str, &str),
) -> Result<(&'r [B::Row], Option<String>), StoreError> {
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if rows.len() <= size {
        return Ok((rows, None));
    }
    let page = &rows[..size];
    let cursor = match page.last() {
        Some(last) => Some(encode_cursor(last.try_get(at)?, last.try_get(id)?)),
        None => None,
    };
    Ok((page, cursor))
}
