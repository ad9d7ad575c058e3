//! [`Pipeline`]: the long-lived ingest path for events that arrive in batches over time (the
//! server's `POST /events`), as opposed to [`ingest`](super::ingest), which reads files.
//!
//! Each batch is normalised (the JSON reader's flattening), prepared into rows and matched
//! against the rules off the async threads; then, under the tenant's lock, stored, correlated
//! and grouped into incidents with the same code as file ingest, all in one transaction
//! ([`EventStore::store_batch`]): a batch's events and the incidents they open are committed
//! together or not at all. The call returns only once they are committed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use super::alerts::{CORRELATION_STATE, Matched, alerts_for};
use super::{IngestError, IngestOptions, IngestSummary};
use crate::correlation::{Correlator, CorrelatorConfig};
use crate::event::{Event, Fields, TenantId};
use crate::incident::Alert;
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
    /// How often a tenant's correlation state is written to the store at most while batches
    /// arrive (it is held in memory; [`Pipeline::checkpoint`] writes what changed since).
    /// Writing it after every batch costs time in proportion to the state, which grows with
    /// the correlation windows.
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

/// One tenant's correlation state, loaded from the store on first use.
#[derive(Default)]
struct TenantState {
    correlator: Option<Correlator>,
    loaded: bool,
    /// Changed since it was last written to the store.
    dirty: bool,
    /// When it was last written.
    saved_at: Option<std::time::Instant>,
}

/// Stores, detects, correlates and opens incidents for batches of events, one tenant's
/// batches at a time (so correlation sees them in a consistent order), many tenants at once.
///
/// Of its store `S` it uses events ([`EventStore`], which also groups a batch's alerts into
/// incidents) and the correlator's saved state ([`CorrelationState`]).
pub struct Pipeline<S: ?Sized = dyn Store> {
    store: Arc<S>,
    rules: Option<Arc<RuleSet>>,
    options: PipelineOptions,
    tenants: std::sync::Mutex<HashMap<TenantId, Arc<tokio::sync::Mutex<TenantState>>>>,
    /// SQLite has one writer: batches of different tenants take turns rather than fail with
    /// a busy database half-way through a batch.
    single_writer: Option<tokio::sync::Mutex<()>>,
}

impl<S: EventStore + CorrelationState + ?Sized> Pipeline<S> {
    /// A pipeline storing into `store`, detecting with `rules` (none: store only).
    pub fn new(store: Arc<S>, rules: Option<Arc<RuleSet>>, options: PipelineOptions) -> Self {
        let single_writer = (store.backend() == "sqlite").then(|| tokio::sync::Mutex::new(()));
        Self {
            store,
            rules,
            options,
            tenants: std::sync::Mutex::new(HashMap::new()),
            single_writer,
        }
    }

    /// The rules it detects with.
    pub fn rules(&self) -> Option<&Arc<RuleSet>> {
        self.rules.as_ref()
    }

    /// The store it writes to.
    pub fn store(&self) -> &Arc<S> {
        &self.store
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
        let rules = self.rules.clone();
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
        if prepared.rows.is_empty() {
            return Ok(outcome);
        }
        let state = self.tenant_state(tenant);
        let mut state = state.lock().await;
        let _writer = self.writer().await;
        let store_error = |source| IngestError::Store { stored: 0, source };
        if !state.loaded {
            if let Some(rules) = &self.rules {
                let mut correlator =
                    Correlator::with_config(rules, self.options.correlation.clone());
                if let Some(saved) = self
                    .store
                    .load_correlation_state(tenant, CORRELATION_STATE)
                    .await
                    .map_err(store_error)?
                {
                    // A state that no longer fits the rules is dropped (file ingest reports it).
                    let _ = correlator.restore(&saved);
                }
                state.correlator = Some(correlator);
            }
            state.loaded = true;
        }
        let TenantState {
            correlator,
            dirty,
            saved_at,
            ..
        } = &mut *state;
        let rows = prepared.rows;
        let matched = prepared.matched;
        let rules = self.rules.as_deref();
        let mut summary = IngestSummary::default();
        // Run inside the store's transaction, once the new events are known: only they are
        // correlated and raise alerts, so a re-sent batch opens nothing new.
        let mut alerts_of_new = |new_keys: &[[u8; 16]]| -> Vec<Alert> {
            let (Some(rules), Some(correlator)) = (rules, correlator.as_mut()) else {
                return Vec::new();
            };
            let new_keys: HashSet<&[u8; 16]> = new_keys.iter().collect();
            let fresh: Vec<(&Matched, [u8; 16])> = matched
                .iter()
                .map(|m| (m, rows[m.row].dedup_key))
                .filter(|(_, key)| new_keys.contains(key))
                .collect();
            if fresh.is_empty() {
                return Vec::new();
            }
            *dirty = true;
            alerts_for(rules, correlator, fresh, &mut summary)
        };
        let stored = self
            .store
            .store_batch(
                tenant,
                &rows,
                &mut alerts_of_new,
                self.options.grouping_window,
                chrono::Utc::now(),
            )
            .await
            .map_err(store_error)?;
        outcome.stored = stored.new_keys.len() as u64;
        outcome.duplicates += (rows.len() - stored.new_keys.len()) as u64;
        outcome.alerts = stored.alerts.alerts;
        outcome.incidents_created = stored.alerts.incidents_created;
        outcome.incidents_updated = stored.alerts.incidents_updated;
        let Some(correlator) = correlator.as_ref() else {
            return Ok(outcome);
        };
        if *dirty && saved_at.is_none_or(|at| at.elapsed() >= self.options.checkpoint_interval) {
            let stored = outcome.stored;
            self.store
                .save_correlation_state(tenant, CORRELATION_STATE, &correlator.snapshot())
                .await
                .map_err(|source| IngestError::Store { stored, source })?;
            *saved_at = Some(std::time::Instant::now());
            *dirty = false;
        }
        Ok(outcome)
    }

    /// Writes every tenant's correlation state that changed since it was last written (call
    /// it every [`PipelineOptions::checkpoint_interval`] while idle, and before stopping).
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        let tenants: Vec<_> = self
            .tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(tenant, state)| (tenant.clone(), state.clone()))
            .collect();
        for (tenant, state) in tenants {
            let mut state = state.lock().await;
            if !state.dirty {
                continue;
            }
            let Some(correlator) = &state.correlator else {
                continue;
            };
            let _writer = self.writer().await;
            self.store
                .save_correlation_state(&tenant, CORRELATION_STATE, &correlator.snapshot())
                .await?;
            state.dirty = false;
            state.saved_at = Some(std::time::Instant::now());
        }
        Ok(())
    }

    /// On SQLite, the turn to write (see `single_writer`).
    async fn writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.single_writer {
            Some(lock) => Some(lock.lock().await),
            None => None,
        }
    }

    fn tenant_state(&self, tenant: &TenantId) -> Arc<tokio::sync::Mutex<TenantState>> {
        let mut tenants = self
            .tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tenants.entry(tenant.clone()).or_default().clone()
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
            let mut matched = Vec::new();
            rules.for_each_match(&event, |rule| matched.push(rule));
            if !matched.is_empty() {
                prepared.matched.push(Matched {
                    row: prepared.rows.len() - 1,
                    rules: matched,
                    event,
                });
            }
        }
    }
    prepared
}
