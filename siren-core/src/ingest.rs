//! The ingest pipeline: read inputs in parallel, prepare rows, store them in batched
//! transactions, and account for every record (stored, duplicate or skipped with a reason).
//!
//! Reader threads (one per core, each taking the next input) parse and prepare rows; one
//! async writer stores batches as they arrive. A bounded channel between them keeps memory
//! flat whatever the input size.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::correlation::{CorrelationHit, Correlator, CorrelatorConfig};
use crate::event::Event;
use crate::incident::{Alert, default_investigation, raised};
use crate::normalize::{self, Diagnostic, EventSink, Format, Input, ReadObserver, ReadOptions};
use crate::rules::{Rule, RuleSet};
use crate::store::{EventRow, Store, StoreError};

mod pipeline;
pub use pipeline::{BatchOutcome, Pipeline, PipelineOptions, Rejected, is_transient};

/// How an ingest run behaves.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Reader options (tenant, size limits).
    pub read: ReadOptions,
    /// Stop at the first skipped record or file.
    pub strict: bool,
    /// Events per write transaction.
    pub batch_size: usize,
    /// Diagnostics kept in the summary; the rest are only counted.
    pub max_diagnostics: usize,
    /// Reader threads (0 = one per core).
    pub threads: usize,
    /// Rules to detect with (none: store only).
    pub rules: Option<Arc<RuleSet>>,
    /// How far apart alerts of one rule and key may be and still share an incident.
    pub grouping_window: chrono::Duration,
    /// Correlation limits. Ingest reads archives in any order (files of different years,
    /// several runs), so by default each group keeps its own clock (10 minutes of lateness
    /// within a group) and only groups idle for ten years of event time are forgotten by age;
    /// the group and entry caps bound the rest.
    pub correlation: CorrelatorConfig,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            read: ReadOptions::default(),
            strict: false,
            batch_size: 2048,
            max_diagnostics: 1000,
            threads: 0,
            rules: None,
            grouping_window: chrono::Duration::hours(24),
            correlation: CorrelatorConfig::default()
                .with_lateness(std::time::Duration::from_secs(10 * 365 * 86_400))
                .with_group_clock(std::time::Duration::from_secs(600))
                .with_max_entries(2_000),
        }
    }
}

impl IngestOptions {
    /// Sets the reader options.
    pub fn with_read(mut self, read: ReadOptions) -> Self {
        self.read = read;
        self
    }

    /// Makes the first skipped record or file end the run.
    pub fn with_strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Sets the number of reader threads (0 = one per core).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Detects with `rules`: alerts, correlation, incidents.
    pub fn with_rules(mut self, rules: Arc<RuleSet>) -> Self {
        self.rules = Some(rules);
        self
    }
}

/// What an ingest run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestSummary {
    /// Inputs read (wholly or partly).
    pub files: u64,
    /// Inputs skipped as a whole (unreadable, empty, unrecognised).
    pub files_skipped: u64,
    /// Files found in folders and left alone: empty, or not logs (a README, a licence).
    pub files_ignored: u64,
    /// Records parsed into events.
    pub records_read: u64,
    /// Events stored that were not stored before.
    pub stored: u64,
    /// Events already stored (same host + channel + record, or same content).
    pub duplicates: u64,
    /// Records that could not be parsed.
    pub records_skipped: u64,
    /// Inputs read per detected format.
    pub formats: BTreeMap<String, u64>,
    /// The first diagnostics, in the order they were found.
    pub diagnostics: Vec<DiagnosticRecord>,
    /// Diagnostics not kept in `diagnostics`.
    pub diagnostics_dropped: u64,
    /// The first files ignored, with why.
    pub ignored: Vec<DiagnosticRecord>,
    /// Detection and correlation alerts raised by new events.
    pub alerts: u64,
    /// Correlation hits among them.
    pub correlation_hits: u64,
    /// Incidents opened.
    pub incidents_created: u64,
    /// Open incidents that received alerts.
    pub incidents_updated: u64,
    /// Problems with the saved correlation state (it was partly or wholly reset).
    pub correlation_state_problems: Vec<String>,
    /// The correlator's counters (matches observed, late, expired, dropped…).
    pub correlation: Option<crate::correlation::CorrelatorStats>,
    /// Whether `strict` ended the run early.
    pub stopped_early: bool,
    /// Wall-clock time.
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
}

impl IngestSummary {
    /// Events parsed per second of wall-clock time.
    pub fn events_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.records_read as f64 / secs
        } else {
            0.0
        }
    }

    /// Whether anything was skipped.
    pub fn is_clean(&self) -> bool {
        self.files_skipped == 0 && self.records_skipped == 0
    }
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// A diagnostic in the summary's public (JSON) form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiagnosticRecord {
    /// The input.
    pub file: String,
    /// `line 12`, `record 7`, `chunk 3`, or empty for the whole file.
    pub location: String,
    /// Why it was skipped.
    pub reason: String,
}

impl From<&Diagnostic> for DiagnosticRecord {
    fn from(d: &Diagnostic) -> Self {
        Self {
            file: d.file.clone(),
            location: d.location.to_string(),
            reason: d.reason.clone(),
        }
    }
}

/// Why an ingest run failed as a whole. Batches stored before the failure stay stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The store refused a batch.
    #[error("storing events failed after {stored} were stored: {source}")]
    Store {
        /// Events stored before the failure.
        stored: u64,
        /// The store's error.
        source: StoreError,
    },
    /// A reader thread died.
    #[error("a reader thread failed: {0}")]
    Reader(String),
}

/// What reader threads send to the writer.
enum Message {
    Batch(Vec<EventRow>, Vec<Matched>),
    Diagnostic(Diagnostic),
    Ignored(Diagnostic),
    FileDone(Option<Format>),
}

/// An event that rules matched, kept until the writer knows whether it is new.
struct Matched {
    /// Its row in the batch.
    row: usize,
    /// The rules that matched it.
    rules: Vec<usize>,
    event: Event,
}

/// The name correlation state is saved under.
const CORRELATION_STATE: &str = "correlation";

/// Reads `inputs`, storing every event in `store`. Returns the run's summary; fails only
/// when the store fails (what was stored before stays stored).
pub async fn ingest(
    store: Arc<dyn Store>,
    inputs: Vec<Input>,
    options: IngestOptions,
    observer: Arc<dyn ReadObserver>,
) -> Result<IngestSummary, IngestError> {
    let started = Instant::now();
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(inputs.len().max(1));
    let mut read = options.read.clone();
    // Many inputs: one file per thread. One input: let the EVTX parser use every core.
    if threads > 1 {
        read.evtx_threads = 1;
    }
    let (tx, mut rx) = mpsc::channel::<Message>(threads);
    let inputs = Arc::new(inputs);
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::with_capacity(threads);
    for _ in 0..threads {
        let (tx, inputs, next, stop, read, observer) = (
            tx.clone(),
            inputs.clone(),
            next.clone(),
            stop.clone(),
            read.clone(),
            observer.clone(),
        );
        let (strict, batch_size) = (options.strict, options.batch_size);
        let rules = options.rules.clone();
        workers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Some(input) = inputs.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                let mut sink = RowSink {
                    tx: &tx,
                    rules: rules.as_deref(),
                    matched: Vec::new(),
                    batch: Vec::with_capacity(batch_size),
                    batch_size,
                    strict,
                    observer: &*observer,
                    stop: &stop,
                };
                let format = normalize::read_input(input, &read, &mut sink);
                if !sink.flush() || tx.blocking_send(Message::FileDone(format)).is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);

    let mut summary = IngestSummary::default();
    let tenant = options.read.tenant.clone();
    let mut correlator = match &options.rules {
        Some(rules) => {
            let mut correlator = Correlator::with_config(rules, options.correlation.clone());
            match store
                .load_correlation_state(&tenant, CORRELATION_STATE)
                .await
            {
                Ok(Some(state)) => match correlator.restore(&state) {
                    Ok(report) => summary.correlation_state_problems.extend(report.dropped),
                    Err(error) => summary
                        .correlation_state_problems
                        .push(format!("saved state not used: {error}")),
                },
                Ok(None) => {}
                Err(source) => return Err(IngestError::Store { stored: 0, source }),
            }
            Some(correlator)
        }
        None => None,
    };
    let mut failure = None;
    // Events this run has stored or found stored already: inputs that overlap (the same
    // export twice, sample sets sharing files) skip the store for them.
    let mut known: std::collections::HashSet<[u8; 16]> = std::collections::HashSet::new();
    while let Some(message) = rx.recv().await {
        match message {
            Message::Batch(rows, matched) => {
                summary.records_read += rows.len() as u64;
                let read = rows.len();
                let matched_keys: Vec<[u8; 16]> =
                    matched.iter().map(|m| rows[m.row].dedup_key).collect();
                let rows: Vec<EventRow> = if known.is_empty() {
                    rows
                } else {
                    rows.into_iter()
                        .filter(|row| !known.contains(&row.dedup_key))
                        .collect()
                };
                let new_keys = if rows.is_empty() {
                    Vec::new()
                } else {
                    match store.insert_events(&rows).await {
                        Ok(keys) => keys,
                        Err(source) => {
                            stop.store(true, Ordering::Relaxed);
                            failure = Some(source);
                            break;
                        }
                    }
                };
                for row in &rows {
                    if known.len() >= KNOWN_KEYS {
                        break;
                    }
                    known.insert(row.dedup_key);
                }
                summary.stored += new_keys.len() as u64;
                summary.duplicates += (read - new_keys.len()) as u64;
                if let (Some(rules), Some(correlator)) = (&options.rules, correlator.as_mut()) {
                    // Only new events raise alerts: a re-ingested file opens nothing new.
                    let new_keys: std::collections::HashSet<[u8; 16]> =
                        new_keys.into_iter().collect();
                    let fresh: Vec<(&Matched, [u8; 16])> = matched
                        .iter()
                        .zip(matched_keys)
                        .filter(|(_, key)| new_keys.contains(key))
                        .collect();
                    let alerts = alerts_for(rules, correlator, fresh, &mut summary);
                    if !alerts.is_empty() {
                        match store
                            .record_alerts(
                                &tenant,
                                &alerts,
                                options.grouping_window,
                                chrono::Utc::now(),
                            )
                            .await
                        {
                            Ok(outcome) => {
                                summary.alerts += outcome.alerts;
                                summary.incidents_created += outcome.incidents_created;
                                summary.incidents_updated += outcome.incidents_updated;
                            }
                            Err(source) => {
                                stop.store(true, Ordering::Relaxed);
                                failure = Some(source);
                                break;
                            }
                        }
                    }
                }
            }
            Message::Diagnostic(diagnostic) => {
                if diagnostic.is_file_level() {
                    summary.files_skipped += 1;
                } else {
                    summary.records_skipped += 1;
                }
                if summary.diagnostics.len() < options.max_diagnostics {
                    summary
                        .diagnostics
                        .push(DiagnosticRecord::from(&diagnostic));
                } else {
                    summary.diagnostics_dropped += 1;
                }
            }
            Message::Ignored(notice) => {
                summary.files_ignored += 1;
                if summary.ignored.len() < options.max_diagnostics {
                    summary.ignored.push(DiagnosticRecord::from(&notice));
                }
            }
            Message::FileDone(format) => {
                if let Some(format) = format {
                    summary.files += 1;
                    *summary.formats.entry(format.to_string()).or_default() += 1;
                }
            }
        }
    }
    drop(rx);
    summary.correlation = correlator.as_ref().map(|c| c.stats().clone());
    if let (Some(correlator), None) = (&correlator, &failure) {
        if let Err(source) = store
            .save_correlation_state(&tenant, CORRELATION_STATE, &correlator.snapshot())
            .await
        {
            failure = Some(source);
        }
    }
    let panicked = workers
        .into_iter()
        .map(std::thread::JoinHandle::join)
        .any(|r| r.is_err());
    if let Some(source) = failure {
        return Err(IngestError::Store {
            stored: summary.stored,
            source,
        });
    }
    if panicked {
        return Err(IngestError::Reader("a reader thread panicked".to_owned()));
    }
    summary.stopped_early = stop.load(Ordering::Relaxed);
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Keys of stored events one ingest run remembers at most (about 40 MB), to skip the store
/// for events it meets again.
const KNOWN_KEYS: usize = 1 << 20;

/// Batches one reader thread's events into rows and sends them on.
struct RowSink<'a> {
    tx: &'a mpsc::Sender<Message>,
    rules: Option<&'a RuleSet>,
    matched: Vec<Matched>,
    batch: Vec<EventRow>,
    batch_size: usize,
    strict: bool,
    observer: &'a dyn ReadObserver,
    stop: &'a AtomicBool,
}

impl RowSink<'_> {
    /// Sends the pending batch. False when the writer has gone.
    fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(self.batch_size));
        let matched = std::mem::take(&mut self.matched);
        self.tx
            .blocking_send(Message::Batch(batch, matched))
            .is_ok()
    }
}

impl EventSink for RowSink<'_> {
    fn event(&mut self, event: Event) -> ControlFlow<()> {
        self.batch.push(EventRow::from_event(&event));
        if let Some(rules) = self.rules {
            let mut matched = Vec::new();
            rules.for_each_match(&event, |rule| matched.push(rule));
            if !matched.is_empty() {
                self.matched.push(Matched {
                    row: self.batch.len() - 1,
                    rules: matched,
                    event,
                });
            }
        }
        if self.batch.len() >= self.batch_size && !self.flush() {
            return ControlFlow::Break(());
        }
        if self.stop.load(Ordering::Relaxed) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn diagnostic(&mut self, diagnostic: Diagnostic) -> ControlFlow<()> {
        self.observer.diagnostic(&diagnostic);
        // Events read before the bad record are sent first, so none is lost.
        let sent = self.flush()
            && self
                .tx
                .blocking_send(Message::Diagnostic(diagnostic))
                .is_ok();
        if !sent || self.strict {
            self.stop.store(true, Ordering::Relaxed);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn progress(&mut self, bytes: u64) {
        self.observer.progress(bytes);
    }

    fn ignored(&mut self, file: &str, reason: &str) {
        let _ = self
            .tx
            .blocking_send(Message::Ignored(Diagnostic::file(file, reason)));
    }
}

/// Turns a batch's new matches into alerts: detections of the rules that report on their own,
/// and the hits of correlations they complete (fed in event-time order).
fn alerts_for(
    rules: &RuleSet,
    correlator: &mut Correlator,
    mut fresh: Vec<(&Matched, [u8; 16])>,
    summary: &mut IngestSummary,
) -> Vec<Alert> {
    fresh.sort_by_key(|(m, _)| m.event.timestamp);
    let hex = |key: &[u8; 16]| -> String { key.iter().map(|b| format!("{b:02x}")).collect() };
    // The batch's events by key, so a correlation hit can name the users and addresses of
    // the events behind it (those of earlier batches are in the store, linked by key).
    let by_key: std::collections::HashMap<String, &Event> =
        fresh.iter().map(|(m, key)| (hex(key), &m.event)).collect();
    let mut alerts = Vec::new();
    for (matched, key) in &fresh {
        let key_text = hex(key);
        for &index in &matched.rules {
            let rule = &rules.rules()[index];
            if correlator.is_reported(index) {
                alerts.push(detection_alert(rule, &matched.event, *key));
            }
            for hit in correlator.observe_keyed(index, &matched.event, Some(&key_text)) {
                if hit.reported {
                    summary.correlation_hits += 1;
                    let mut alert = correlation_alert(&rules.rules()[hit.rule], &hit);
                    for event in hit
                        .events
                        .iter()
                        .filter_map(|e| e.key.as_deref())
                        .filter_map(|k| by_key.get(k))
                    {
                        add_unique(&mut alert.users, event.user.as_deref());
                        add_unique(&mut alert.ips, event.src_ip.as_deref());
                        add_unique(&mut alert.ips, event.dst_ip.as_deref());
                    }
                    alerts.push(alert);
                }
            }
        }
    }
    alerts
}

fn add_unique(list: &mut Vec<String>, value: Option<&str>) {
    if let Some(value) = value {
        if !list.iter().any(|v| v.eq_ignore_ascii_case(value)) {
            list.push(value.to_owned());
        }
    }
}

fn investigation(rule: &Rule) -> Vec<String> {
    if rule.siren.investigation.is_empty() {
        default_investigation(&rule.tags)
    } else {
        rule.siren.investigation.clone()
    }
}

fn detection_alert(rule: &Rule, event: &Event, key: [u8; 16]) -> Alert {
    let group_key = if rule.siren.group_by.is_empty() {
        event
            .host
            .clone()
            .unwrap_or_else(|| "unknown host".to_owned())
    } else {
        rule.siren
            .group_by
            .iter()
            .map(|field| format!("{field}={}", event.get_str(field).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Alert {
        rule_id: rule.key(),
        rule_title: rule.title.clone(),
        severity: rule.severity(),
        correlation: false,
        group_key,
        techniques: rule.attack_techniques(),
        investigation: investigation(rule),
        time: event.timestamp.unwrap_or_default(),
        hosts: event.host.iter().cloned().collect(),
        users: event.user.iter().cloned().collect(),
        ips: event
            .src_ip
            .iter()
            .chain(event.dst_ip.iter())
            .cloned()
            .collect(),
        event_count: 1,
        event_key: Some(key),
        detail: serde_json::json!({
            "channel": event.source, "event_id": event.event_id, "record_id": event.record_id,
        }),
    }
}

/// Whether a group-by field names an account or an address.
fn is_user_field(field: &str) -> bool {
    let f = field.to_ascii_lowercase();
    f.contains("user") || f.contains("account")
}

fn is_ip_field(field: &str) -> bool {
    let f = field.to_ascii_lowercase();
    f.contains("ip") || f.contains("address")
}

fn correlation_alert(rule: &Rule, hit: &CorrelationHit) -> Alert {
    let values = |keep: fn(&str) -> bool| -> Vec<String> {
        hit.group
            .iter()
            .filter(|(f, _)| keep(f))
            .filter_map(|(_, v)| v.clone())
            .collect()
    };
    let mut hosts: Vec<String> = Vec::new();
    for host in hit.events.iter().filter_map(|e| e.host.clone()) {
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    let group_key = hit
        .group
        .iter()
        .map(|(f, v)| format!("{f}={}", v.as_deref().unwrap_or("")))
        .collect::<Vec<_>>()
        .join(", ");
    let event_key = hit
        .events
        .iter()
        .find_map(|e| e.key.as_deref())
        .and_then(parse_key);
    Alert {
        rule_id: hit.reference.clone(),
        rule_title: hit.title.clone(),
        severity: raised(rule.severity()),
        correlation: true,
        group_key,
        techniques: rule.attack_techniques(),
        investigation: investigation(rule),
        time: hit.last_seen,
        hosts,
        users: values(is_user_field),
        ips: values(is_ip_field),
        event_count: hit.matches as u64,
        event_key,
        detail: serde_json::json!({
            "correlation": format!("{:?}", hit.kind), "value": hit.value,
            "first_seen": hit.first_seen, "last_seen": hit.last_seen,
            "events": hit.events.iter().filter_map(|e| e.key.clone()).collect::<Vec<_>>(),
        }),
    }
}

fn parse_key(hex: &str) -> Option<[u8; 16]> {
    let mut key = [0u8; 16];
    if hex.len() != 32 {
        return None;
    }
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(key)
}
