//! [`ReportSource`] for [`SqlStore`]: incidents active in a time range, page by page, and
//! the status changes of a page of incidents in one query.

use sqlx::Row;

use super::incidents::{INCIDENT_COLUMNS, incident_page, timeline_entry};
use super::statement::Statement;
use super::{Backend, SqlStore};
use crate::event::TenantId;
use crate::incident::{IncidentId, IncidentPage, TimelineEntry};
use crate::store::report::MAX_IDS_PER_CALL;
use crate::store::{ReportRange, ReportSource, StoreError};

#[async_trait::async_trait]
impl<B: Backend> ReportSource for SqlStore<B> {
    async fn report_incidents(
        &self,
        tenant: &TenantId,
        range: &ReportRange,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<IncidentPage, StoreError> {
        let tenant = tenant.as_str();
        let mut select = Statement::<B>::new(format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE tenant = "
        ));
        select.push_bind(tenant);
        if let Some(since) = range.since {
            select
                .push(" AND last_seen >= ")
                .push_bind(since.timestamp_micros());
        }
        if let Some(until) = range.until {
            select
                .push(" AND first_seen < ")
                .push_bind(until.timestamp_micros());
        }
        incident_page(&self.pool, select, tenant, cursor, limit).await
    }

    async fn status_changes(
        &self,
        tenant: &TenantId,
        ids: &[IncidentId],
    ) -> Result<Vec<(IncidentId, TimelineEntry)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        if ids.len() > MAX_IDS_PER_CALL {
            return Err(StoreError::Refused(format!(
                "at most {MAX_IDS_PER_CALL} incidents per call, not {}",
                ids.len()
            )));
        }
        let mut select = Statement::<B>::new(
            "SELECT incident_id, at, actor, kind, detail FROM incident_timeline WHERE tenant = ",
        );
        select.push_bind(tenant.as_str());
        select.push(" AND kind = 'status_changed' AND incident_id IN (");
        for (n, id) in ids.iter().enumerate() {
            if n > 0 {
                select.push(", ");
            }
            select.push_bind(id.0);
        }
        select.push(") ORDER BY incident_id, at, id");
        let rows = select.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok((
                    IncidentId(row.try_get("incident_id")?),
                    timeline_entry::<B>(row)?,
                ))
            })
            .collect()
    }
}
