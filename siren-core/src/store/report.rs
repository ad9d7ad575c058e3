//! What reports read besides single incidents ([`ReportSource`]): the incidents active in a
//! time range, page by page, and the status changes of a page of incidents in one query (so
//! a report over 100,000 incidents reads them in bounded memory and without one query per
//! incident).

use chrono::{DateTime, Utc};

use super::{IncidentStore, StoreError};
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

/// The most incident ids [`ReportSource::status_changes`] takes at once.
pub const MAX_IDS_PER_CALL: usize = 1000;

/// What reports read: single incidents with their timeline and events ([`IncidentStore`])
/// and, for period reports, the incidents of a time range page by page.
#[async_trait::async_trait]
pub trait ReportSource: IncidentStore + Send + Sync {
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
    /// incident (at most [`MAX_IDS_PER_CALL`] ids per call).
    async fn status_changes(
        &self,
        tenant: &TenantId,
        ids: &[IncidentId],
    ) -> Result<Vec<(IncidentId, TimelineEntry)>, StoreError>;
}
