//! Where a report's incidents come from on the second pass: the store, a page at a time (a
//! period report), or the few incidents an incident report names. Redaction is applied on
//! the way out, so every format sees the same pseudonyms.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use super::ReportError;
use super::model::{ReportIncident, StatusChange, parse_status_change};
use super::redact::Redactor;
use crate::event::TenantId;
use crate::incident::IncidentId;
use crate::store::report::{MAX_IDS_PER_CALL, ReportRange};
use crate::store::{ReportSource, StoreError};

/// Incidents read per page (and status-change query).
pub const PAGE: u32 = MAX_IDS_PER_CALL as u32;

/// A page of incidents with their acknowledgement and resolution times, and the next cursor.
pub async fn page(
    store: &dyn ReportSource,
    tenant: &TenantId,
    range: &ReportRange,
    cursor: Option<&str>,
) -> Result<(Vec<ReportIncident>, Option<String>), StoreError> {
    let page = store.report_incidents(tenant, range, cursor, PAGE).await?;
    let ids: Vec<IncidentId> = page.incidents.iter().map(|i| i.id).collect();
    let mut changes: HashMap<IncidentId, Vec<StatusChange>> = HashMap::new();
    for (id, entry) in store.status_changes(tenant, &ids).await? {
        if let Some(change) = parse_status_change(&entry) {
            changes.entry(id).or_default().push(change);
        }
    }
    let items = page
        .incidents
        .into_iter()
        .map(|incident| {
            let list = changes.remove(&incident.id).unwrap_or_default();
            ReportIncident::new(incident, &list)
        })
        .collect();
    Ok((items, page.next_cursor))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The incidents of one report, for any number of passes.
pub struct Source {
    store: Arc<dyn ReportSource>,
    tenant: TenantId,
    range: ReportRange,
    detailed: Option<Vec<ReportIncident>>,
    handle: tokio::runtime::Handle,
    redactor: Mutex<Redactor>,
    error: Mutex<Option<ReportError>>,
    len: u64,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("tenant", &self.tenant)
            .field("range", &self.range)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Source {
    /// A source over the store (`detailed` is `None`) or over the given incidents. Must be
    /// iterated off the async runtime's worker threads (in `spawn_blocking`).
    pub fn new(
        store: Arc<dyn ReportSource>,
        tenant: TenantId,
        range: ReportRange,
        detailed: Option<Vec<ReportIncident>>,
        redactor: Redactor,
        len: u64,
    ) -> Self {
        Self {
            store,
            tenant,
            range,
            detailed,
            handle: tokio::runtime::Handle::current(),
            redactor: Mutex::new(redactor),
            error: Mutex::new(None),
            len,
        }
    }

    /// How many incidents the report has.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the report has no incident.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first error a pass met (the pass stopped there).
    pub fn take_error(&self) -> Option<ReportError> {
        lock(&self.error).take()
    }

    /// Redacts free text with the report's pseudonyms.
    pub fn redact_text(&self, text: &str) -> String {
        lock(&self.redactor).text(text)
    }

    /// One pass over the incidents, redacted.
    pub fn iter(self: &Arc<Self>) -> SourceIter {
        SourceIter {
            source: Arc::clone(self),
            buffer: self
                .detailed
                .as_ref()
                .map(|list| list.iter().cloned().collect())
                .unwrap_or_default(),
            cursor: None,
            done: self.detailed.is_some(),
        }
    }
}

/// One pass over a [`Source`].
pub struct SourceIter {
    source: Arc<Source>,
    buffer: VecDeque<ReportIncident>,
    cursor: Option<String>,
    done: bool,
}

impl Iterator for SourceIter {
    type Item = ReportIncident;

    fn next(&mut self) -> Option<ReportIncident> {
        if self.buffer.is_empty() && !self.done {
            let source = &self.source;
            let fetched = source.handle.block_on(page(
                source.store.as_ref(),
                &source.tenant,
                &source.range,
                self.cursor.as_deref(),
            ));
            match fetched {
                Ok((items, next)) => {
                    self.done = next.is_none();
                    self.cursor = next;
                    self.buffer = items.into();
                }
                Err(error) => {
                    self.done = true;
                    lock(&source.error).get_or_insert(ReportError::Store(error));
                }
            }
        }
        let mut item = self.buffer.pop_front()?;
        item.redact(&mut lock(&self.source.redactor));
        Some(item)
    }
}
