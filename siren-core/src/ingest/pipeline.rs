//! [`Pipeline`]: the long-lived ingest path for events that arrive in batches over time (the
//! server's `POST /events`), as opposed to [`ingest`](super::ingest), which reads files.
//!
//! Each batch is normalised (the JSON reader's flattening), prepared into rows and matched
//! against the rules off the async threads; then, under the tenant's lock, stored, correlated
//! and grouped into incidents by the writer file ingest uses too (`writer.rs`), all in one
//! transaction ([`EventStore::begin_batch`]): a batch's events, the incidents they open and
//! its correlation journal entry are committed together or not at all. The call returns
//! only once they are committed.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;

use super::alerts::Matched;
use super::writer::{BatchWriter, WriterOptions, store_failed};
use super::{IngestError, IngestOptions, IngestSummary};
use crate::correlation::CorrelatorConfig;
use crate::event::{Event, Fields, TenantId};
use crate::normalize::flatten::flatten;
use crate::rules::RuleSet;
use crate::store::{CorrelationState, EventRow, EventStore, Store, StoreError};

/// How a [`Pipeline`] behaves.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// How far apart alerts of one rule and key may be and still share an incident.
    pub grouping_window: chrono::Duration,
    /// Correlation limits (the same defaults as file ingest).
    pub correlation: CorrelatorConfig,
    /// How often a tenant's correlation state is saved as a checkpoint at most while
    /// batches arrive (each batch appends what it fed the correlator to a journal in its
    /// own transaction; [`Pipeline::checkpoint`] saves what changed since). Saving the state
    /// after every batch would cost time in proportion to the state, which grows with the
    /// correlation windows.
    pub checkpoint_interval: std::time::Duration,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        let ingest = IngestOptions::default();
        Self {
            grouping_window: ingest.grouping_window,
            correlation: ingest.correlation,
            checkpoint_interval: std::time::Duration::from_secs(5),
        }
    }
}

pub use crate::api::{BatchOutcome, Rejected};

/// A batch normalised, prepared and matched: CPU work only.
struct Prepared {
    received: u64,
    rows: Vec<EventRow>,
    matched: Vec<Matched>,
    rejected: Vec<Rejected>,
    repeated: u64,
}

/// Stores, detects, correlates and opens incidents for batches of events, one tenant's
/// batches at a time (so correlation sees them in a consistent order), many tenants at once.
///
/// Of its store `S` it uses events ([`EventStore`], whose batches also group alerts into
/// incidents) and the correlator's checkpoint and journal ([`CorrelationState`]).
pub struct Pipeline<S: ?Sized = dyn Store> {
    writer: BatchWriter<S>,
}

impl<S: EventStore + CorrelationState + ?Sized> Pipeline<S> {
    /// A pipeline storing into `store`, detecting with `rules` (none: store only).
    pub fn new(store: Arc<S>, rules: Option<Arc<RuleSet>>, options: PipelineOptions) -> Self {
        let options = WriterOptions {
            grouping_window: options.grouping_window,
            correlation: options.correlation,
            checkpoint_interval: options.checkpoint_interval,
        };
        Self {
            writer: BatchWriter::new(store, rules, options),
        }
    }

    /// Makes it a front-end of the distributed mode: each batch's matches that feed
    /// correlations are published to `publisher` (partitioned over `partitions`, before the
    /// batch commits) instead of being correlated here; the workers that own the partitions
    /// correlate them ([`PartitionWorker`](super::PartitionWorker)).
    pub fn with_bus(mut self, publisher: Arc<dyn super::bus::Publisher>, partitions: u32) -> Self {
        self.writer = self.writer.with_bus(publisher, partitions);
        self
    }

    /// The rules it detects with.
    pub fn rules(&self) -> Option<&Arc<RuleSet>> {
        self.writer.rules()
    }

    /// The store it writes to.
    pub fn store(&self) -> &Arc<S> {
        self.writer.store()
    }

    /// Ingests a batch of JSON documents (any shape the JSON reader understands: `evtx_dump`
    /// JSON, Winlogbeat / ECS, flat objects). An `Err` item is one the caller could not parse;
    /// it is rejected with its index, like a document that is not an object. Returns after
    /// the events are committed; on error, nothing of the batch's events may be assumed
    /// stored (a retry is safe: stored events are de-duplicated).
    pub async fn ingest_json(
        &self,
        tenant: &TenantId,
        items: Vec<Result<Value, String>>,
    ) -> Result<BatchOutcome, IngestError> {
        self.ingest_flattened(tenant, move || {
            items
                .into_iter()
                .map(|item| item.and_then(flatten))
                .collect()
        })
        .await
    }

    /// Ingests a batch whose items `flatten` turns into fields, each or why it is not an
    /// event (rejected with its index), as [`ingest_json`](Self::ingest_json) does. `flatten`
    /// runs with the rest of the batch's preparation on a blocking thread, so a caller holding
    /// the batch as text can flatten it straight from the text
    /// ([`flatten_json_slice`](crate::normalize::flatten::flatten_json_slice)) instead
    /// of building a `serde_json::Value` tree first.
    pub async fn ingest_flattened<F>(
        &self,
        tenant: &TenantId,
        flatten: F,
    ) -> Result<BatchOutcome, IngestError>
    where
        F: FnOnce() -> Vec<Result<Fields, String>> + Send + 'static,
    {
        let rules = self.writer.rules().cloned();
        let owner = tenant.clone();
        let prepared =
            tokio::task::spawn_blocking(move || prepare(flatten(), &owner, rules.as_deref()))
                .await
                .map_err(|e| IngestError::Reader(format!("preparing a batch failed: {e}")))?;
        let mut outcome = BatchOutcome {
            received: prepared.received,
            duplicates: prepared.repeated,
            rejected: prepared.rejected,
            ..BatchOutcome::default()
        };
        let mut summary = IngestSummary::default();
        let written = self
            .writer
            .write(tenant, &prepared.rows, &prepared.matched, &mut summary)
            .await
            .map_err(store_failed(0))?;
        outcome.stored = written.new_keys.len() as u64;
        outcome.duplicates += (prepared.rows.len() - written.new_keys.len()) as u64;
        outcome.alerts = written.alerts.alerts;
        outcome.incidents_created = written.alerts.incidents_created;
        outcome.incidents_updated = written.alerts.incidents_updated;
        Ok(outcome)
    }

    /// Saves every tenant's correlation state that includes batches its last checkpoint does
    /// not (call it every [`PipelineOptions::checkpoint_interval`] while idle, and before
    /// stopping; the journal keeps those batches meanwhile, so nothing is lost without it).
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        self.writer.checkpoint().await
    }
}

/// Whether a failed batch may succeed when sent again later.
pub fn is_transient(error: &IngestError) -> bool {
    matches!(error, IngestError::Store { source, .. } if source.is_transient())
        || matches!(
            error,
            IngestError::Store {
                source: StoreError::Connect { .. },
                ..
            }
        )
}

fn prepare(
    items: Vec<Result<Fields, String>>,
    tenant: &TenantId,
    rules: Option<&RuleSet>,
) -> Prepared {
    let mut prepared = Prepared {
        received: items.len() as u64,
        rows: Vec::with_capacity(items.len()),
        matched: Vec::new(),
        rejected: Vec::new(),
        repeated: 0,
    };
    let mut seen = HashSet::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let fields = match item {
            Ok(fields) => fields,
            Err(error) => {
                prepared.rejected.push(Rejected { index, error });
                continue;
            }
        };
        let event = Event::from_fields(fields, tenant.clone());
        let row = EventRow::from_event(&event);
        if !seen.insert(row.dedup_key) {
            prepared.repeated += 1;
            continue;
        }
        prepared.rows.push(row);
        if let Some(rules) = rules {
            let row = prepared.rows.len() - 1;
            prepared.matched.extend(Matched::detect(rules, event, row));
        }
    }
    prepared
}
