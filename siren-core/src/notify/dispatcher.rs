//! The outbox's worker: plans deliveries from incident changes by the policies, makes digests
//! of what throttles held back, and sends what is due, with retries and a lease.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tokio::sync::Notify;

use super::config::NotifyConfig;
use super::message::{Message, MessageKind};
use super::policy::{self, QuietWindow};
use super::{Clock, Notifier, NotifyError};
use crate::event::TenantId;
use crate::incident::{Incident, IncidentId, Status};
use crate::store::{
    ChangeKind, Delivery, DeliveryFilter, DeliveryKind, DeliveryOutcome, DeliveryState,
    IncidentStore, NewDelivery, Outbox, OutboxChange, Store, StoreError,
};

/// Changes planned per store round trip.
const CHANGES_PER_ROUND: u32 = 200;

/// Deliveries claimed per round.
const CLAIM_BATCH: u32 = 32;

/// Held deliveries gathered into one digest at most.
const DIGEST_MAX: u32 = 200;

/// How often [`Dispatcher::run`] looks for work when nobody wakes it.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// What one round of dispatching did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DispatchReport {
    /// Incident changes planned.
    pub changes: u64,
    /// Deliveries planned.
    pub planned: u64,
    /// Messages sent.
    pub sent: u64,
    /// Failed attempts that will be retried.
    pub retried: u64,
    /// Deliveries given up.
    pub failed: u64,
    /// Deliveries held back by a throttle.
    pub held: u64,
    /// Escalations no longer needed.
    pub cancelled: u64,
    /// Digests planned.
    pub digests: u64,
}

impl DispatchReport {
    fn add(&mut self, other: &DispatchReport) {
        self.changes += other.changes;
        self.planned += other.planned;
        self.sent += other.sent;
        self.retried += other.retried;
        self.failed += other.failed;
        self.held += other.held;
        self.cancelled += other.cancelled;
        self.digests += other.digests;
    }
}

/// Looks up a rule's tags by its id (for policies that filter on tactics).
pub type RuleTags = dyn Fn(&str) -> Vec<String> + Send + Sync;

/// The [`RuleTags`] lookup of the rules SIREN detects with (keyed by [`crate::rules::Rule::key`],
/// as alerts name their rule).
pub fn rule_tags_of(rules: &crate::rules::RuleSet) -> Box<RuleTags> {
    let tags: std::collections::HashMap<String, Vec<String>> = rules
        .rules()
        .iter()
        .map(|rule| (rule.key(), rule.tags.clone()))
        .collect();
    Box::new(move |rule| tags.get(rule).cloned().unwrap_or_default())
}

struct Inner<S: ?Sized> {
    store: Arc<S>,
    config: NotifyConfig,
    notifier: Notifier,
    clock: Arc<dyn Clock>,
    owner: String,
    tenant: Option<TenantId>,
    rule_tags: Box<RuleTags>,
    quiet: Vec<Option<QuietWindow>>,
    lease: chrono::Duration,
    wake: Arc<Notify>,
    /// How often `run` looks for work unwoken.
    poll: Duration,
}

/// The notification dispatcher. Cheap to clone; clones share their state.
///
/// Of its store `S` it uses the outbox ([`Outbox`]) and the incidents its messages are about
/// ([`IncidentStore`]).
///
/// ```no_run
/// # async fn demo(store: std::sync::Arc<dyn siren_core::store::Store>,
/// #               config: siren_core::notify::NotifyConfig) -> Result<(), siren_core::notify::NotifyError> {
/// use std::sync::Arc;
/// use siren_core::notify::{Dispatcher, SystemClock};
/// let dispatcher = Dispatcher::new(store, config, Arc::new(SystemClock))?;
/// let waker = dispatcher.waker(); // call `waker.notify_one()` after storing alerts
/// tokio::spawn(dispatcher.run(async { let _ = tokio::signal::ctrl_c().await; }));
/// # Ok(()) }
/// ```
pub struct Dispatcher<S: ?Sized = dyn Store> {
    inner: Arc<Inner<S>>,
}

impl<S: ?Sized> Clone for Dispatcher<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S: ?Sized> std::fmt::Debug for Dispatcher<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("owner", &self.inner.owner)
            .field("tenant", &self.inner.tenant)
            .finish_non_exhaustive()
    }
}

impl<S: Outbox + IncidentStore + ?Sized + 'static> Dispatcher<S> {
    /// A dispatcher over `store` with the channels and policies of `config` (secrets resolved),
    /// taking time from `clock`.
    pub fn new(
        store: Arc<S>,
        config: NotifyConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, NotifyError> {
        let notifier = Notifier::new(&config)?;
        let quiet = config
            .policies
            .iter()
            .map(|p| {
                p.quiet_hours
                    .as_ref()
                    .map(QuietWindow::parse)
                    .transpose()
                    .map_err(NotifyError::Config)
            })
            .collect::<Result<Vec<_>, _>>()?;
        // A lease outlives the slowest channel's timeout, so a live dispatcher keeps it.
        let slowest = notifier
            .channels()
            .filter_map(|(name, _)| notifier.timeout(name))
            .max()
            .unwrap_or(Duration::from_secs(10));
        let lease = chrono::Duration::from_std(
            slowest
                .saturating_mul(2)
                .saturating_add(Duration::from_secs(30)),
        )
        .unwrap_or(chrono::Duration::minutes(5))
        .min(chrono::Duration::days(1));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                config,
                notifier,
                clock,
                owner: format!("dispatcher-{}-{nanos:08x}", std::process::id()),
                tenant: None,
                rule_tags: Box::new(|_| Vec::new()),
                quiet,
                lease,
                wake: Arc::new(Notify::new()),
                poll: POLL_INTERVAL,
            }),
        })
    }

    fn inner_mut(&mut self) -> &mut Inner<S> {
        Arc::get_mut(&mut self.inner).unwrap_or_else(|| {
            unreachable!("builder methods are called before the dispatcher is cloned")
        })
    }

    /// Only this tenant's changes and deliveries (default: every tenant's). Call before
    /// cloning.
    pub fn with_tenant(mut self, tenant: Option<TenantId>) -> Self {
        self.inner_mut().tenant = tenant;
        self
    }

    /// How rule ids map to their tags, for policies filtering on tactics. Call before cloning.
    pub fn with_rule_tags(mut self, lookup: Box<RuleTags>) -> Self {
        self.inner_mut().rule_tags = lookup;
        self
    }

    /// The name this dispatcher claims deliveries under. Call before cloning.
    pub fn with_owner(mut self, owner: impl Into<String>) -> Self {
        self.inner_mut().owner = owner.into();
        self
    }

    /// How often [`Dispatcher::run`] looks for work when nobody wakes it (default
    /// one second). Call before cloning.
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.inner_mut().poll = poll;
        self
    }

    /// The notifier (for `siren notify test`).
    pub fn notifier(&self) -> &Notifier {
        &self.inner.notifier
    }

    /// Wakes [`Dispatcher::run`] at once (call `notify_one()` after storing alerts).
    pub fn waker(&self) -> Arc<Notify> {
        self.inner.wake.clone()
    }

    /// Runs until `shutdown` completes: a round every second, or at once when woken.
    /// Errors are logged and the loop goes on (the outbox keeps the work).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            match self.tick(None).await {
                Ok(report) if report != DispatchReport::default() => {
                    tracing::debug!(?report, "notification round");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "notification round failed; retrying"),
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(self.inner.poll) => {}
            }
        }
    }

    /// Delivers what is due within `budget` of wall-clock time (for `siren ingest`): what
    /// is not sent by then stays in the outbox.
    pub async fn deliver_within(&self, budget: Duration) -> Result<DispatchReport, NotifyError> {
        // A budget beyond what the clock can represent is no deadline at all.
        self.tick(Instant::now().checked_add(budget)).await
    }

    /// One round: plan new changes, make digests, send what is due (claiming nothing new
    /// after `deadline`).
    pub async fn tick(&self, deadline: Option<Instant>) -> Result<DispatchReport, NotifyError> {
        let mut report = DispatchReport::default();
        self.plan(&mut report).await?;
        self.digests(&mut report).await?;
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let now = self.inner.clock.now();
            let claimed = self
                .inner
                .store
                .claim_deliveries(
                    self.inner.tenant.as_ref(),
                    &self.inner.owner,
                    now,
                    self.inner.lease,
                    CLAIM_BATCH,
                )
                .await?;
            if claimed.is_empty() {
                break;
            }
            let full = claimed.len() as u32 == CLAIM_BATCH;
            // One task per channel, so a throttle counts its own sends; channels in parallel.
            let mut by_channel: BTreeMap<String, Vec<Delivery>> = BTreeMap::new();
            for delivery in claimed {
                by_channel
                    .entry(delivery.channel.clone())
                    .or_default()
                    .push(delivery);
            }
            let mut tasks = tokio::task::JoinSet::new();
            for (channel, deliveries) in by_channel {
                let this = self.clone();
                tasks.spawn(
                    async move { this.deliver_channel(&channel, deliveries, deadline).await },
                );
            }
            while let Some(done) = tasks.join_next().await {
                match done {
                    Ok(Ok(part)) => report.add(&part),
                    Ok(Err(error)) => return Err(error),
                    Err(join) => {
                        return Err(NotifyError::Config(format!(
                            "a delivery task failed: {join}"
                        )));
                    }
                }
            }
            if !full {
                break;
            }
        }
        Ok(report)
    }

    /// Deliveries waiting to be sent (this dispatcher's tenant, or `tenant`).
    pub async fn pending(&self, tenant: &TenantId) -> Result<u64, NotifyError> {
        let waiting = self
            .inner
            .store
            .list_deliveries(
                tenant,
                &DeliveryFilter {
                    state: Some(DeliveryState::Pending),
                    limit: 10_000,
                    ..Default::default()
                },
            )
            .await?;
        Ok(waiting.len() as u64)
    }

    async fn plan(&self, report: &mut DispatchReport) -> Result<(), NotifyError> {
        let inner = &self.inner;
        loop {
            let changes = inner
                .store
                .pending_changes(inner.tenant.as_ref(), CHANGES_PER_ROUND)
                .await?;
            for change in &changes {
                let now = inner.clock.now();
                let (deliveries, cancel) = self.plan_change(change, now).await?;
                report.planned += inner
                    .store
                    .plan_change(change, &deliveries, cancel, now)
                    .await?;
                report.changes += 1;
            }
            if (changes.len() as u32) < CHANGES_PER_ROUND {
                return Ok(());
            }
        }
    }

    /// The deliveries a change calls for, and whether it cancels pending escalations.
    async fn plan_change(
        &self,
        change: &OutboxChange,
        now: DateTime<Utc>,
    ) -> Result<(Vec<NewDelivery>, bool), NotifyError> {
        let inner = &self.inner;
        let incident = match inner
            .store
            .get_incident(&change.tenant, change.incident_id)
            .await
        {
            Ok(incident) => incident,
            Err(StoreError::NotFound(_)) => return Ok((Vec::new(), false)),
            Err(e) => return Err(e.into()),
        };
        if change.kind == ChangeKind::Status {
            return Ok((Vec::new(), change.status != Status::New));
        }
        let tags = policy::incident_tags(&incident, &*inner.rule_tags);
        let mut out: Vec<NewDelivery> = Vec::new();
        let mut told: BTreeSet<&str> = BTreeSet::new();
        let mut escalated: BTreeSet<&str> = BTreeSet::new();
        for (index, rule) in inner.config.policies.iter().enumerate() {
            if !policy::matches(rule, &incident, &tags) {
                continue;
            }
            let at_once: &[String] = if rule.escalate_after.is_some() && rule.escalate_to.is_empty()
            {
                &[]
            } else {
                &rule.channels
            };
            let due = inner.quiet[index]
                .and_then(|q| q.defer(now, incident.severity))
                .unwrap_or(now);
            for channel in at_once {
                if !told.insert(channel) {
                    continue;
                }
                let last = inner
                    .store
                    .latest_delivery(&change.tenant, incident.id, channel)
                    .await?;
                match last {
                    None => out.push(NewDelivery {
                        dedup_key: format!("new:{}:{channel}", incident.id),
                        incident_id: Some(incident.id),
                        channel: channel.clone(),
                        kind: DeliveryKind::New,
                        alert_count: change.alert_count,
                        payload: json!({ "policy": index + 1 }),
                        due_at: due,
                    }),
                    Some(last) => {
                        let Some(every) = rule.renotify() else {
                            continue;
                        };
                        // A message still waiting will carry the latest count anyway.
                        if last.state == DeliveryState::Pending
                            || change.alert_count <= last.alert_count
                        {
                            continue;
                        }
                        let since = last.sent_at.unwrap_or(last.updated_at);
                        out.push(NewDelivery {
                            dedup_key: format!("update:{}:{channel}:{}", incident.id, last.id),
                            incident_id: Some(incident.id),
                            channel: channel.clone(),
                            kind: DeliveryKind::Update,
                            alert_count: change.alert_count,
                            payload: json!({ "policy": index + 1 }),
                            due_at: due.max(policy::later(since, every)),
                        });
                    }
                }
            }
            if let Some(after) = rule.escalate_after
                && incident.status == Status::New
            {
                let targets = if rule.escalate_to.is_empty() {
                    &rule.channels
                } else {
                    &rule.escalate_to
                };
                for channel in targets {
                    if !escalated.insert(channel) {
                        continue;
                    }
                    out.push(NewDelivery {
                        dedup_key: format!("escalate:{}:{channel}", incident.id),
                        incident_id: Some(incident.id),
                        channel: channel.clone(),
                        kind: DeliveryKind::Escalation,
                        alert_count: change.alert_count,
                        payload: json!({ "policy": index + 1, "after_secs": after.as_secs() }),
                        due_at: policy::later(incident.created_at, after),
                    });
                }
            }
        }
        Ok((out, false))
    }

    /// Digests of what throttles held back, for channels whose window allows a message.
    async fn digests(&self, report: &mut DispatchReport) -> Result<(), NotifyError> {
        let inner = &self.inner;
        for channel in &inner.config.channels {
            let Some(throttle) = channel.throttle() else {
                continue;
            };
            let now = inner.clock.now();
            if inner
                .store
                .sent_since(channel.name(), policy::earlier(now, throttle.per))
                .await?
                >= u64::from(throttle.max)
            {
                continue;
            }
            let held = inner
                .store
                .held_deliveries(inner.tenant.as_ref(), channel.name(), DIGEST_MAX)
                .await?;
            let mut by_tenant: BTreeMap<TenantId, Vec<Delivery>> = BTreeMap::new();
            for delivery in held {
                by_tenant
                    .entry(delivery.tenant.clone())
                    .or_default()
                    .push(delivery);
            }
            for (tenant, list) in by_tenant {
                let ids: Vec<i64> = list.iter().map(|d| d.id).collect();
                let mut incidents: Vec<i64> = list
                    .iter()
                    .filter_map(|d| d.incident_id.map(|i| i.0))
                    .collect();
                incidents.sort_unstable();
                incidents.dedup();
                let digest = NewDelivery {
                    dedup_key: format!("digest:{}:{}", channel.name(), ids[0]),
                    incident_id: None,
                    channel: channel.name().to_owned(),
                    kind: DeliveryKind::Digest,
                    alert_count: list.len() as u64,
                    payload: json!({ "incidents": incidents }),
                    due_at: now,
                };
                if inner
                    .store
                    .create_digest(&tenant, &ids, &digest, now)
                    .await?
                {
                    report.digests += 1;
                }
            }
        }
        Ok(())
    }

    async fn deliver_channel(
        &self,
        channel: &str,
        deliveries: Vec<Delivery>,
        deadline: Option<Instant>,
    ) -> Result<DispatchReport, NotifyError> {
        let inner = &self.inner;
        let mut report = DispatchReport::default();
        let throttle = inner
            .config
            .channel(channel)
            .and_then(|c| c.throttle())
            .cloned();
        let mut sent_in_window = match &throttle {
            Some(t) => {
                inner
                    .store
                    .sent_since(channel, policy::earlier(inner.clock.now(), t.per))
                    .await?
            }
            None => 0,
        };
        for delivery in deliveries {
            let outcome = self
                .attempt(
                    &delivery,
                    throttle.as_ref().map(|t| (t.max, sent_in_window)),
                    deadline,
                )
                .await?;
            match &outcome {
                DeliveryOutcome::Sent { .. } => {
                    report.sent += 1;
                    sent_in_window += 1;
                }
                DeliveryOutcome::Retry { error, .. } => {
                    tracing::warn!(channel, delivery = delivery.id, attempt = delivery.attempts, %error, "notification failed; will retry");
                    report.retried += 1;
                }
                DeliveryOutcome::Failed { error } => {
                    tracing::warn!(channel, delivery = delivery.id, attempt = delivery.attempts, %error, "notification failed for good");
                    report.failed += 1;
                }
                DeliveryOutcome::Held => report.held += 1,
                DeliveryOutcome::Cancelled { .. } => report.cancelled += 1,
            }
            let kept = inner
                .store
                .finish_delivery(&delivery, &inner.owner, &outcome, inner.clock.now())
                .await?;
            if !kept {
                tracing::warn!(
                    channel,
                    delivery = delivery.id,
                    "lost the lease on a delivery while sending it"
                );
            }
        }
        Ok(report)
    }

    /// Decides and makes one attempt.
    async fn attempt(
        &self,
        delivery: &Delivery,
        throttle: Option<(u32, u64)>,
        deadline: Option<Instant>,
    ) -> Result<DeliveryOutcome, NotifyError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        if inner.config.channel(&delivery.channel).is_none() {
            return Ok(DeliveryOutcome::Failed {
                error: format!("channel '{}' is no longer configured", delivery.channel),
            });
        }
        let ids: Vec<IncidentId> = match delivery.incident_id {
            Some(id) => vec![id],
            None => delivery.payload["incidents"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .filter_map(|v| v.as_i64())
                        .map(IncidentId)
                        .collect()
                })
                .unwrap_or_default(),
        };
        let mut incidents: Vec<Incident> = Vec::with_capacity(ids.len());
        for id in ids {
            match inner.store.get_incident(&delivery.tenant, id).await {
                Ok(incident) => incidents.push(incident),
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if incidents.is_empty() {
            return Ok(DeliveryOutcome::Cancelled {
                reason: "the incident no longer exists".to_owned(),
            });
        }
        if delivery.kind == DeliveryKind::Escalation && incidents[0].status != Status::New {
            return Ok(DeliveryOutcome::Cancelled {
                reason: format!(
                    "incident {} before the escalation was due",
                    incidents[0].status
                ),
            });
        }
        if delivery.kind != DeliveryKind::Digest
            && let Some((max, sent)) = throttle
            && sent >= u64::from(max)
        {
            return Ok(DeliveryOutcome::Held);
        }
        let kind = match delivery.kind {
            DeliveryKind::New => MessageKind::New,
            DeliveryKind::Update => MessageKind::Update,
            DeliveryKind::Escalation => MessageKind::Escalation,
            DeliveryKind::Digest => MessageKind::Digest,
        };
        let message = Message {
            kind,
            tenant: delivery.tenant.as_str().to_owned(),
            channel: delivery.channel.clone(),
            incidents,
            escalate_after: delivery.payload["after_secs"]
                .as_u64()
                .map(Duration::from_secs),
            now,
            id: format!("msg_siren_{}_{}", delivery.tenant.as_str(), delivery.id),
        };
        let limit = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let result = inner.notifier.send(&message, limit).await;
        let after = inner.clock.now();
        Ok(match result {
            Ok(()) => DeliveryOutcome::Sent {
                detail: self.sent_detail(delivery, &message),
            },
            Err(error) if error.permanent || delivery.attempts >= inner.config.retry.attempts => {
                DeliveryOutcome::Failed {
                    error: error.message,
                }
            }
            Err(error) => {
                let wait = policy::backoff(&inner.config.retry, delivery.attempts);
                DeliveryOutcome::Retry {
                    error: error.message,
                    at: policy::later(after, wait),
                }
            }
        })
    }

    fn sent_detail(&self, delivery: &Delivery, message: &Message) -> String {
        let kind = self
            .inner
            .config
            .channel(&delivery.channel)
            .map_or("channel", |c| c.kind());
        match delivery.kind {
            DeliveryKind::New => format!("notified {} ({kind})", delivery.channel),
            DeliveryKind::Update => format!(
                "notified {} ({kind}) of {} alerts",
                delivery.channel,
                message.incidents.first().map_or(0, |i| i.alert_count)
            ),
            DeliveryKind::Escalation => format!(
                "escalated to {} ({kind}): not acknowledged within {}",
                delivery.channel,
                humantime::format_duration(message.escalate_after.unwrap_or_default())
            ),
            DeliveryKind::Digest => format!(
                "notified {} ({kind}) in a digest of {} incidents held back by its throttle",
                delivery.channel,
                message.incidents.len()
            ),
        }
    }
}
