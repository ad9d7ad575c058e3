//! What reports read from the store: incidents active in a time range, page by page, and the
//! status changes of a page of incidents in one query (so a report over 100,000 incidents
//! reads them in bounded memory and without one query per incident).

use chrono::{DateTime, Utc};

use super::StoreError;
use crate::event::TenantId;
use crate::incident::{IncidentId, IncidentPage, TimelineEntry};

/// The incidents a period report covers: those active in `[since, until)` (event time: last
/// seen at or after `since`, first seen before `until`). Either end may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportRange {
    /// Only incidents last seen at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only incidents first seen before this time.
    pub until: Option<DateTime<Utc>>,
}

/// Reading incidents for reports.
#[async_trait::async_trait]
pub trait ReportStore: Send + Sync {
    /// A page of the incidents active in `range`, most recently seen first; pass the page's
    /// `next_cursor` back for the next page.
    async fn report_incidents(
        &self,
        tenant: &TenantId,
        range: &ReportRange,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<IncidentPage, StoreError>;

    /// The `status_changed` timeline entries of the given incidents, oldest first per
    /// incident (at most 1,000 ids per call).
    async fn status_changes(
        &self,
        tenant: &TenantId,
        ids: &[IncidentId],
    ) -> Result<Vec<(IncidentId, TimelineEntry)>, StoreError>;
}

/// The most incident ids [`ReportStore::status_changes`] takes at once.
pub const MAX_IDS_PER_CALL: usize = 1000;

/// Instantiates [`ReportStore`] for one backend, inside the module where
/// `incident_methods!` was instantiated (it reuses its row decoder).
macro_rules! report_methods {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::report::ReportStore for $store {
            async fn report_incidents(
                &self,
                tenant: &$crate::event::TenantId,
                range: &$crate::store::report::ReportRange,
                cursor: Option<&str>,
                limit: u32,
            ) -> Result<IncidentPage, StoreError> {
                let tenant = tenant.as_str();
                let mut select = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM incidents WHERE tenant = ",
                    sql::INCIDENT_COLUMNS
                ));
                select.push_bind(tenant.to_owned());
                if let Some(since) = range.since {
                    select.push(" AND last_seen >= ").push_bind(since.timestamp_micros());
                }
                if let Some(until) = range.until {
                    select.push(" AND first_seen < ").push_bind(until.timestamp_micros());
                }
                if let Some(cursor) = cursor {
                    let (last_seen, id) = common::decode_cursor(cursor)?;
                    select.push(" AND (last_seen < ").push_bind(last_seen);
                    select.push(" OR (last_seen = ").push_bind(last_seen);
                    select.push(" AND id < ").push_bind(id).push("))");
                }
                let size = i64::from(limit.clamp(1, 10_000));
                select
                    .push(" ORDER BY last_seen DESC, id DESC LIMIT ")
                    .push_bind(size + 1);
                let rows = select.build().fetch_all(&self.pool).await?;
                let mut incidents = rows
                    .iter()
                    .map(decode_incident)
                    .collect::<Result<Vec<_>, _>>()?;
                let next_cursor = if incidents.len() as i64 > size {
                    incidents.truncate(size as usize);
                    incidents
                        .last()
                        .map(|r| common::encode_cursor(r.last_seen.timestamp_micros(), r.id.map_or(0, |id| id.0)))
                } else {
                    None
                };
                Ok(IncidentPage {
                    incidents: incidents
                        .into_iter()
                        .map(|r| r.into_incident(tenant))
                        .collect(),
                    next_cursor,
                })
            }

            async fn status_changes(
                &self,
                tenant: &$crate::event::TenantId,
                ids: &[IncidentId],
            ) -> Result<Vec<(IncidentId, TimelineEntry)>, StoreError> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                if ids.len() > $crate::store::report::MAX_IDS_PER_CALL {
                    return Err(StoreError::Refused(format!(
                        "at most {} incidents per call, not {}",
                        $crate::store::report::MAX_IDS_PER_CALL,
                        ids.len()
                    )));
                }
                let mut select = sqlx::QueryBuilder::<$db>::new(
                    "SELECT incident_id, at, actor, kind, detail FROM incident_timeline WHERE tenant = ",
                );
                select.push_bind(tenant.as_str().to_owned());
                select.push(" AND kind = 'status_changed' AND incident_id IN (");
                let mut list = select.separated(", ");
                for id in ids {
                    list.push_bind(id.0);
                }
                select.push(") ORDER BY incident_id, at, id");
                let rows = select.build().fetch_all(&self.pool).await?;
                rows.iter()
                    .map(|row| {
                        Ok((
                            IncidentId(row.try_get("incident_id")?),
                            TimelineEntry {
                                at: common::time(row.try_get("at")?),
                                actor: row.try_get("actor")?,
                                kind: row.try_get("kind")?,
                                detail: row.try_get("detail")?,
                            },
                        ))
                    })
                    .collect()
            }
        }
    };
}

pub(super) use report_methods;
