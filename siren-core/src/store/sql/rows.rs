//! Reading stored values back: times, lists, names of severities, statuses, resolutions,
//! roles and tenants, and the cursors of pages.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::Backend;
use crate::event::TenantId;
use crate::incident::{Resolution, Severity, Status};
use crate::store::StoreError;
use crate::user::Role;

/// A time kept as microseconds since the Unix epoch.
pub(super) fn time(micros: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_micros(micros).unwrap_or_default()
}

/// A list as JSON text.
pub(super) fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

/// A list kept as JSON text.
pub(super) fn parse_list(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("list column: {e}")))
}

pub(super) fn parse_severity(text: &str) -> Result<Severity, StoreError> {
    Severity::parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown severity '{text}'")))
}

pub(super) fn parse_status(text: &str) -> Result<Status, StoreError> {
    Status::parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown status '{text}'")))
}

pub(super) fn parse_resolution(text: Option<String>) -> Result<Option<Resolution>, StoreError> {
    text.map(|t| {
        Resolution::parse(&t)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown resolution '{t}'")))
    })
    .transpose()
}

pub(super) fn parse_role(text: &str) -> Result<Role, StoreError> {
    Role::parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown role '{text}'")))
}

pub(super) fn parse_tenant(text: &str) -> Result<TenantId, StoreError> {
    TenantId::parse(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A row's `n` column, a count.
pub(super) fn count<B: Backend>(row: &B::Row) -> Result<u64, StoreError> {
    let n: i64 = row.try_get("n")?;
    Ok(n.max(0) as u64)
}

/// A minute, in microseconds.
pub(super) const MINUTE: i64 = 60_000_000;

/// A day, in microseconds.
pub(super) const DAY: i64 = 86_400_000_000;
