//! [`BatchWriter`]: the one writer both ingest paths (files and the server's batches) store
//! through. For each batch, in one transaction the store begins: the tenant's correlator is
//! brought up to the journal's head (another process may have written since), the rows are
//! stored, the new events' matches become alerts and correlation hits, the alerts are grouped
//! into incidents, and what the batch fed the correlator is appended to the journal. A batch
//! is committed whole or not at all, so a crash at any point leaves the store as if the
//! batches before it were the whole run: running the same input again raises exactly what
//! the uninterrupted run would have.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::alerts::{CORRELATION_STATE, Matched, alerts_for, detections_for_bus};
use super::bus::Publisher;
use super::journal::{self, RuleRefs};
use super::{IngestError, IngestSummary};
use crate::correlation::{Correlator, CorrelatorConfig, CorrelatorStats};
use crate::event::TenantId;
use crate::incident::AlertOutcome;
use crate::rules::RuleSet;
use crate::store::{BatchWrite, CorrelationState, EventRow, EventStore, StoreError};

/// How a [`BatchWriter`] groups, correlates and checkpoints.
#[derive(Debug, Clone)]
pub(super) struct WriterOptions {
    pub grouping_window: chrono::Duration,
    pub correlation: CorrelatorConfig,
    /// How often at most a tenant's correlator state is saved as a checkpoint while batches
    /// arrive (the journal covers the batches in between).
    pub checkpoint_interval: Duration,
}

/// What one batch stored.
#[derive(Debug, Default)]
pub(super) struct Written {
    /// The de-duplication keys of the events that were new.
    pub new_keys: Vec<[u8; 16]>,
    /// What their alerts did to incidents.
    pub alerts: AlertOutcome,
}

/// One tenant's correlator, as of journal entry `applied`.
#[derive(Default)]
struct TenantCorrelation {
    /// `None` until loaded, and again after a failed batch (whose matches it had seen).
    correlator: Option<Correlator>,
    /// The last journal entry the correlator includes.
    applied: u64,
    /// The last journal entry the saved checkpoint includes.
    checkpointed: u64,
    saved_at: Option<Instant>,
    /// What loading the saved state dropped or could not read, not yet reported.
    problems: Vec<String>,
}

/// Stores batches, with their alerts, incidents and correlation journal entries, for any
/// number of tenants; one tenant's batches at a time.
pub(super) struct BatchWriter<S: ?Sized> {
    store: Arc<S>,
    rules: Option<(Arc<RuleSet>, RuleRefs)>,
    options: WriterOptions,
    tenants: std::sync::Mutex<HashMap<TenantId, Arc<tokio::sync::Mutex<TenantCorrelation>>>>,
    /// SQLite has one writer: batches of different tenants take turns rather than fail with
    /// a busy database half-way through a batch.
    single_writer: Option<tokio::sync::Mutex<()>>,
    /// In the distributed mode: where matches that feed correlations are published, instead
    /// of being correlated here.
    bus: Option<BusLink>,
}

/// A front-end's link to the bus: the publisher, the number of partitions, and a correlator
/// that only routes (it is never fed).
struct BusLink {
    publisher: Arc<dyn Publisher>,
    partitions: u32,
    router: Correlator,
}

impl<S: EventStore + CorrelationState + ?Sized> BatchWriter<S> {
    pub(super) fn new(store: Arc<S>, rules: Option<Arc<RuleSet>>, options: WriterOptions) -> Self {
        let single_writer = (store.backend() == "sqlite").then(|| tokio::sync::Mutex::new(()));
        Self {
            rules: rules.map(|rules| {
                let refs = RuleRefs::new(
                    &rules,
                    &Correlator::with_config(&rules, options.correlation.clone()),
                );
                (rules, refs)
            }),
            store,
            options,
            tenants: std::sync::Mutex::new(HashMap::new()),
            single_writer,
            bus: None,
        }
    }

    /// Publishes each batch's matches that feed correlations to `publisher`, partitioned
    /// over `partitions`, before the batch commits, instead of correlating them here.
    pub(super) fn with_bus(mut self, publisher: Arc<dyn Publisher>, partitions: u32) -> Self {
        let router = match self.rules() {
            Some(rules) => Correlator::with_config(rules, self.options.correlation.clone()),
            None => Correlator::with_config(&RuleSet::default(), self.options.correlation.clone()),
        };
        self.bus = Some(BusLink {
            publisher,
            partitions: partitions.max(1),
            router,
        });
        self
    }

    pub(super) fn store(&self) -> &Arc<S> {
        &self.store
    }

    pub(super) fn rules(&self) -> Option<&Arc<RuleSet>> {
        self.rules.as_ref().map(|(rules, _)| rules)
    }

    /// Stores `rows` (and, for the new ones among them, the alerts of `matched`, whose `row`
    /// indexes `rows`) in one transaction. Counts correlation hits and state problems into
    /// `summary`. On error nothing of the batch is stored.
    pub(super) async fn write(
        &self,
        tenant: &TenantId,
        rows: &[EventRow],
        matched: &[Matched],
        summary: &mut IngestSummary,
    ) -> Result<Written, StoreError> {
        if rows.is_empty() {
            return Ok(Written::default());
        }
        let state = self.tenant(tenant);
        let mut state = state.lock().await;
        let _writer = self.writer().await;
        let mut batch = self.store.begin_batch(tenant, CORRELATION_STATE).await?;
        let result = self
            .write_in(&mut state, &mut *batch, tenant, rows, matched, summary)
            .await;
        let result = match result {
            Ok(written) => {
                let head = batch.journal_head();
                batch.commit().await.map(|()| (written, head))
            }
            Err(error) => Err(error),
        };
        summary
            .correlation_state_problems
            .append(&mut state.problems);
        match result {
            Ok((written, head)) => {
                state.applied = head;
                // The batch is committed and its journal entry with it: a checkpoint that
                // fails now loses nothing and is tried again after the next batch.
                if let Err(error) = self.maybe_checkpoint(tenant, &mut state, false).await {
                    tracing::warn!(%error, tenant = tenant.as_str(), "correlation checkpoint failed");
                }
                Ok(written)
            }
            Err(error) => {
                // The correlator saw matches that were not stored: load it again next time.
                state.correlator = None;
                Err(error)
            }
        }
    }

    async fn write_in(
        &self,
        state: &mut TenantCorrelation,
        batch: &mut dyn BatchWrite,
        tenant: &TenantId,
        rows: &[EventRow],
        matched: &[Matched],
        summary: &mut IngestSummary,
    ) -> Result<Written, StoreError> {
        if self.rules.is_some() && self.bus.is_none() {
            self.catch_up(tenant, state, batch.journal_head()).await?;
        }
        let new_keys = batch.insert_events(rows).await?;
        let mut written = Written {
            new_keys,
            alerts: AlertOutcome::default(),
        };
        if let (Some(bus), Some((rules, refs))) = (&self.bus, &self.rules) {
            let fresh = fresh_matches(rows, matched, &written.new_keys);
            let (alerts, entries) =
                detections_for_bus(rules, refs, &bus.router, tenant, bus.partitions, fresh);
            written.alerts = batch
                .record_alerts(&alerts, self.options.grouping_window, chrono::Utc::now())
                .await?;
            // Published before the commit: a batch whose input the bus did not take is not
            // stored, so the client sends it again. One the bus took but that did not
            // commit is published again with the same id, which the bus recognises.
            let messages = entries
                .into_iter()
                .map(|(partition, entry)| {
                    let id = super::bus::message_id(tenant, partition, &entry);
                    (partition, id, entry)
                })
                .collect::<Vec<_>>();
            if !messages.is_empty() {
                bus.publisher
                    .publish(messages)
                    .await
                    .map_err(StoreError::Bus)?;
            }
            return Ok(written);
        }
        let (Some((rules, refs)), Some(correlator)) = (&self.rules, state.correlator.as_mut())
        else {
            return Ok(written);
        };
        let fresh = fresh_matches(rows, matched, &written.new_keys);
        if fresh.is_empty() {
            return Ok(written);
        }
        let found = alerts_for(rules, refs, correlator, fresh, summary);
        written.alerts = batch
            .record_alerts(
                &found.alerts,
                self.options.grouping_window,
                chrono::Utc::now(),
            )
            .await?;
        if !found.journal.is_empty() {
            batch.append_journal(&found.journal).await?;
        }
        Ok(written)
    }

    /// Brings the tenant's correlator to journal entry `head`: loads the checkpoint when it
    /// has none (or the entries it needs were pruned by a later checkpoint), then replays
    /// the entries it has not seen.
    async fn catch_up(
        &self,
        tenant: &TenantId,
        state: &mut TenantCorrelation,
        head: u64,
    ) -> Result<(), StoreError> {
        let Some((rules, refs)) = &self.rules else {
            return Ok(());
        };
        if state.correlator.is_some() && state.applied == head {
            return Ok(());
        }
        let mut entries = Vec::new();
        if state.correlator.is_some() && state.applied < head {
            entries = self
                .store
                .correlation_journal(tenant, CORRELATION_STATE, state.applied)
                .await?;
        }
        if state.correlator.is_none()
            || state.applied > head
            || entries
                .first()
                .is_none_or(|(seq, _)| *seq != state.applied + 1)
        {
            let mut correlator = Correlator::with_config(rules, self.options.correlation.clone());
            state.applied = 0;
            if let Some(saved) = self
                .store
                .load_correlation_state(tenant, CORRELATION_STATE)
                .await?
            {
                match correlator.restore(&saved.state) {
                    Ok(report) => state.problems.extend(report.dropped),
                    Err(error) => state
                        .problems
                        .push(format!("saved state not used: {error}")),
                }
                state.applied = saved.seq;
            }
            state.checkpointed = state.applied;
            state.correlator = Some(correlator);
            entries = self
                .store
                .correlation_journal(tenant, CORRELATION_STATE, state.applied)
                .await?;
        }
        let correlator = state.correlator.as_mut().expect("loaded above");
        for (seq, entry) in entries.into_iter().take_while(|(seq, _)| *seq <= head) {
            if let Err(error) = journal::replay(refs, correlator, tenant, &entry) {
                state.problems.push(format!(
                    "correlation journal entry {seq} not replayed: {error}"
                ));
            }
            state.applied = seq;
        }
        Ok(())
    }

    /// Saves the tenant's correlator as a checkpoint when it includes journal entries the
    /// saved one does not, and the interval has passed (or `now`).
    async fn maybe_checkpoint(
        &self,
        tenant: &TenantId,
        state: &mut TenantCorrelation,
        now: bool,
    ) -> Result<(), StoreError> {
        let Some(correlator) = &state.correlator else {
            return Ok(());
        };
        let due = now
            || state
                .saved_at
                .is_none_or(|at| at.elapsed() >= self.options.checkpoint_interval);
        if state.applied <= state.checkpointed || !due {
            return Ok(());
        }
        self.store
            .save_correlation_state(
                tenant,
                CORRELATION_STATE,
                &correlator.snapshot(),
                state.applied,
            )
            .await?;
        state.checkpointed = state.applied;
        state.saved_at = Some(Instant::now());
        Ok(())
    }

    /// Saves every tenant's correlator that includes journal entries its checkpoint does not
    /// (call it while idle, and before stopping).
    pub(super) async fn checkpoint(&self) -> Result<(), StoreError> {
        let tenants: Vec<_> = self
            .tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(tenant, state)| (tenant.clone(), state.clone()))
            .collect();
        for (tenant, state) in tenants {
            let mut state = state.lock().await;
            let _writer = self.writer().await;
            self.maybe_checkpoint(&tenant, &mut state, true).await?;
        }
        Ok(())
    }

    /// The tenant's correlator's counters, once it has written a batch.
    pub(super) async fn correlation_stats(&self, tenant: &TenantId) -> Option<CorrelatorStats> {
        let state = self.tenant(tenant);
        let state = state.lock().await;
        state.correlator.as_ref().map(|c| c.stats().clone())
    }

    /// On SQLite, the turn to write (see `single_writer`).
    async fn writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.single_writer {
            Some(lock) => Some(lock.lock().await),
            None => None,
        }
    }

    fn tenant(&self, tenant: &TenantId) -> Arc<tokio::sync::Mutex<TenantCorrelation>> {
        let mut tenants = self
            .tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tenants.entry(tenant.clone()).or_default().clone()
    }
}

/// The matches of the events that were new (`new_keys`), each with its key: only new events
/// raise alerts, so a re-sent batch or re-read file opens nothing new.
fn fresh_matches<'m>(
    rows: &[EventRow],
    matched: &'m [Matched],
    new_keys: &[[u8; 16]],
) -> Vec<(&'m Matched, [u8; 16])> {
    let new: HashSet<&[u8; 16]> = new_keys.iter().collect();
    matched
        .iter()
        .map(|m| (m, rows[m.row].dedup_key))
        .filter(|(_, key)| new.contains(key))
        .collect()
}

/// Turns a store failure into the ingest error that says how much was stored before it.
pub(super) fn store_failed(stored: u64) -> impl FnOnce(StoreError) -> IngestError {
    move |source| IngestError::Store { stored, source }
}
