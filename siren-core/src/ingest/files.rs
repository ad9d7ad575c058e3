//! [`ingest`]: reading files, folders or standard input into the store. Reader threads (one
//! per core, each taking the next input) parse events and prepare rows; one async writer
//! stores batches as they arrive, with a bounded channel between them.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::mpsc;

use super::alerts::{CORRELATION_STATE, Matched, alerts_for};
use super::{DiagnosticRecord, IngestError, IngestOptions, IngestSummary};
use crate::correlation::Correlator;
use crate::event::Event;
use crate::normalize::{self, Diagnostic, EventSink, Format, Input, ReadObserver};
use crate::rules::RuleSet;
use crate::store::{CorrelationState, EventRow, EventStore, IncidentStore};

/// What reader threads send to the writer.
enum Message {
    Batch(Vec<EventRow>, Vec<Matched>),
    Diagnostic(Diagnostic),
    Ignored(Diagnostic),
    FileDone(Option<Format>),
}

/// Reads `inputs`, storing every event in `store` and the incidents their alerts open, with
/// the correlator's state. Returns the run's summary; fails only when the store fails (what
/// was stored before stays stored).
pub async fn ingest<S>(
    store: Arc<S>,
    inputs: Vec<Input>,
    options: IngestOptions,
    observer: Arc<dyn ReadObserver>,
) -> Result<IngestSummary, IngestError>
where
    S: EventStore + IncidentStore + CorrelationState + ?Sized,
{
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
