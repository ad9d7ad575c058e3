//! [`PartitionWorker`]: the correlate stage of the distributed mode for one partition.
//!
//! Front-ends publish, per batch and partition, the matches that feed correlations (the
//! journal's entry format with the tenant and the events' context). The worker that owns a
//! partition applies its messages in stream order: each feeds the tenant's correlator,
//! which keeps only the partition's groups; the hits become alerts, grouped into incidents
//! in one transaction that also moves the tenant's head for the partition to the message's
//! stream sequence. Now and then the partition's correlators are saved as one checkpoint
//! with the stream sequence it covers.
//!
//! Taking a partition over therefore means: load the checkpoint, read the stream after it,
//! feed every message to the correlators again, and store the alerts only of messages past
//! each tenant's head — so no alert is lost and none is stored twice, even when two workers
//! briefly believe they own the partition (the head is checked under its row lock).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;

use super::PipelineOptions;
use super::alerts::correlation_alert;
use super::bus::partition_state_name;
use super::journal::{self, RuleRefs};
use crate::correlation::Correlator;
use crate::event::{Event, TenantId};
use crate::incident::{Alert, AlertOutcome};
use crate::rules::RuleSet;
use crate::store::{CorrelationState, EventStore, StoreError};

/// The checkpoint's format version.
const CHECKPOINT_VERSION: u32 = 1;

/// What applying one message did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Correlation hits the message completed (stored now or, on a replay, before).
    pub hits: u64,
    /// What storing their alerts did (nothing on a replay).
    pub alerts: AlertOutcome,
    /// Why the message was skipped, when it could not be read.
    pub unreadable: Option<String>,
}

/// One tenant's correlator for the partition, and the last stream sequence whose alerts
/// are stored (`None` until read).
struct TenantState {
    correlator: Correlator,
    head: Option<u64>,
}

/// Correlates one partition's messages for every tenant (see the module documentation).
pub struct PartitionWorker<S: ?Sized> {
    store: Arc<S>,
    rules: Arc<RuleSet>,
    refs: RuleRefs,
    options: PipelineOptions,
    partition: u32,
    partitions: u32,
    name: String,
    tenants: HashMap<TenantId, TenantState>,
    /// The last stream sequence applied.
    applied: u64,
    /// The last stream sequence the saved checkpoint covers.
    checkpointed: u64,
    saved_at: Option<Instant>,
}

impl<S: EventStore + CorrelationState + ?Sized> PartitionWorker<S> {
    /// The worker of `partition` (of `partitions`), resumed from its saved checkpoint.
    /// Problems with the saved state (a tenant's state that cannot be restored) are logged
    /// and that tenant's correlator starts empty.
    pub async fn open(
        store: Arc<S>,
        rules: Arc<RuleSet>,
        options: PipelineOptions,
        partition: u32,
        partitions: u32,
    ) -> Result<Self, StoreError> {
        let refs = RuleRefs::new(
            &rules,
            &Correlator::with_config(&rules, options.correlation.clone()),
        );
        let mut worker = Self {
            store,
            rules,
            refs,
            options,
            partition,
            partitions: partitions.max(1),
            name: partition_state_name(partition),
            tenants: HashMap::new(),
            applied: 0,
            checkpointed: 0,
            saved_at: None,
        };
        let saved = worker
            .store
            .load_correlation_state(&TenantId::default(), &worker.name)
            .await?;
        if let Some(saved) = saved {
            worker.restore(&saved.state);
            worker.applied = saved.seq;
            worker.checkpointed = saved.seq;
        }
        Ok(worker)
    }

    /// The last stream sequence applied: read the partition's messages after it.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The partition.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// Applies the message at stream sequence `seq`. A message at or before the last one
    /// applied is ignored (a redelivery); one that cannot be read is skipped and said so.
    /// On error the worker must be opened again (its correlators saw what was not stored).
    pub async fn apply(&mut self, seq: u64, payload: &[u8]) -> Result<Applied, StoreError> {
        let mut applied = Applied::default();
        if seq <= self.applied {
            return Ok(applied);
        }
        let decoded = match journal::decode(&self.refs, &TenantId::default(), payload) {
            Ok(decoded) => decoded,
            Err(error) => {
                self.applied = seq;
                applied.unreadable = Some(error);
                return Ok(applied);
            }
        };
        let tenant = match decoded.tenant.as_deref().map(TenantId::parse) {
            Some(Ok(tenant)) => tenant,
            Some(Err(error)) => {
                self.applied = seq;
                applied.unreadable = Some(error.to_string());
                return Ok(applied);
            }
            None => {
                self.applied = seq;
                applied.unreadable = Some("the message names no tenant".to_owned());
                return Ok(applied);
            }
        };
        let head = self.head(&tenant).await?;
        let alerts = self.correlate(&tenant, &decoded.fed, &mut applied.hits);
        if seq > head && !alerts.is_empty() {
            applied.alerts = self.store_alerts(&tenant, seq, &alerts).await?;
        }
        self.applied = seq;
        Ok(applied)
    }

    /// Feeds a message's matches to the tenant's correlator; returns the alerts of the
    /// hits it completes.
    fn correlate(
        &mut self,
        tenant: &TenantId,
        fed: &[(usize, String, Event)],
        hits: &mut u64,
    ) -> Vec<Alert> {
        let rules = &self.rules;
        let state = self
            .tenants
            .get_mut(tenant)
            .expect("the tenant's state is loaded by head()");
        let by_name: HashMap<&str, (&Event, [u8; 16])> = fed
            .iter()
            .filter_map(|(_, name, event)| {
                Some((name.as_str(), (event, super::alerts::key_from_text(name)?)))
            })
            .collect();
        let mut alerts = Vec::new();
        for (index, name, event) in fed {
            for hit in state.correlator.observe_keyed(*index, event, Some(name)) {
                if !hit.reported {
                    continue;
                }
                *hits += 1;
                alerts.push(correlation_alert(rules, &hit, |name| {
                    by_name.get(name).copied()
                }));
            }
        }
        alerts
    }

    /// Stores the alerts of the message at `seq` and moves the tenant's head to it, in one
    /// transaction, unless another worker stored them already.
    async fn store_alerts(
        &mut self,
        tenant: &TenantId,
        seq: u64,
        alerts: &[Alert],
    ) -> Result<AlertOutcome, StoreError> {
        let mut batch = self.store.begin_batch(tenant, &self.name).await?;
        let stored = batch.journal_head();
        let mut outcome = AlertOutcome::default();
        if stored < seq {
            outcome = batch
                .record_alerts(alerts, self.options.grouping_window, chrono::Utc::now())
                .await?;
            batch.move_head(seq).await?;
            batch.commit().await?;
        }
        if let Some(state) = self.tenants.get_mut(tenant) {
            state.head = Some(stored.max(seq));
        }
        Ok(outcome)
    }

    /// The tenant's head for the partition, its correlator created on first sight.
    async fn head(&mut self, tenant: &TenantId) -> Result<u64, StoreError> {
        if !self.tenants.contains_key(tenant) {
            let correlator = self.correlator_for(tenant);
            self.tenants.insert(
                tenant.clone(),
                TenantState {
                    correlator,
                    head: None,
                },
            );
        }
        if let Some(head) = self.tenants.get(tenant).and_then(|s| s.head) {
            return Ok(head);
        }
        // Reading the head takes its row lock for a moment; the batch is rolled back.
        let batch = self.store.begin_batch(tenant, &self.name).await?;
        let head = batch.journal_head();
        drop(batch);
        if let Some(state) = self.tenants.get_mut(tenant) {
            state.head = Some(head);
        }
        Ok(head)
    }

    fn correlator_for(&self, tenant: &TenantId) -> Correlator {
        let mut correlator = Correlator::with_config(&self.rules, self.options.correlation.clone());
        correlator.keep_partition(tenant, self.partition, self.partitions);
        correlator
    }

    /// Restores the tenants' correlators from a checkpoint's bytes.
    fn restore(&mut self, bytes: &[u8]) {
        #[derive(serde::Deserialize)]
        struct Saved<'a> {
            v: u32,
            #[serde(borrow)]
            tenants: HashMap<String, &'a RawValue>,
        }
        let saved = match serde_json::from_slice::<Saved<'_>>(bytes) {
            Ok(saved) if saved.v == CHECKPOINT_VERSION => saved,
            Ok(saved) => {
                tracing::warn!(
                    partition = self.partition,
                    version = saved.v,
                    "partition checkpoint of another format version not used"
                );
                return;
            }
            Err(error) => {
                tracing::warn!(partition = self.partition, %error, "partition checkpoint not readable");
                return;
            }
        };
        for (name, state) in saved.tenants {
            let Ok(tenant) = TenantId::parse(&name) else {
                continue;
            };
            let mut correlator = self.correlator_for(&tenant);
            match correlator.restore(state.get().as_bytes()) {
                Ok(report) => {
                    for dropped in report.dropped {
                        tracing::warn!(partition = self.partition, tenant = %name, %dropped, "saved correlation state dropped");
                    }
                }
                Err(error) => {
                    tracing::warn!(partition = self.partition, tenant = %name, %error, "saved correlation state not used");
                }
            }
            self.tenants.insert(
                tenant,
                TenantState {
                    correlator,
                    head: None,
                },
            );
        }
    }

    /// Saves the partition's correlators as one checkpoint covering the messages applied,
    /// when they include messages the saved one does not and `every` has passed since the
    /// last save (or `now`).
    pub async fn checkpoint(&mut self, every: Duration, now: bool) -> Result<(), StoreError> {
        let due = now || self.saved_at.is_none_or(|at| at.elapsed() >= every);
        if self.applied <= self.checkpointed || !due {
            return Ok(());
        }
        let mut text = format!("{{\"v\":{CHECKPOINT_VERSION},\"tenants\":{{");
        let mut names: Vec<&TenantId> = self.tenants.keys().collect();
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        for (i, tenant) in names.into_iter().enumerate() {
            let snapshot = self.tenants[tenant].correlator.snapshot();
            if i > 0 {
                text.push(',');
            }
            text.push_str(&serde_json::to_string(tenant.as_str()).unwrap_or_default());
            text.push(':');
            text.push_str(&String::from_utf8_lossy(&snapshot));
        }
        text.push_str("}}");
        self.store
            .save_correlation_state(
                &TenantId::default(),
                &self.name,
                text.as_bytes(),
                self.applied,
            )
            .await?;
        self.checkpointed = self.applied;
        self.saved_at = Some(Instant::now());
        Ok(())
    }
}
