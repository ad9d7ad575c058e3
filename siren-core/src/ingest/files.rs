//! [`ingest`]: reading files, folders or standard input into the store. Reader threads (one
//! per core, each taking the next input) parse events, prepare rows and match them; one
//! async writer (`writer.rs`, the server's too) stores batches as they arrive, each in one
//! transaction with its alerts, incidents and correlation journal entry, with a bounded
//! channel between them.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::mpsc;

use super::alerts::Matched;
use super::writer::{BatchWriter, WriterOptions};
use super::{DiagnosticRecord, IngestError, IngestOptions, IngestSummary, PipelineOptions};
use crate::event::Event;
use crate::normalize::{self, Diagnostic, EventSink, Format, Input, ReadObserver};
use crate::rules::RuleSet;
use crate::store::{CorrelationState, EventRow, EventStore};

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
    S: EventStore + CorrelationState + ?Sized,
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
    let writer = BatchWriter::new(
        store,
        options.rules.clone(),
        WriterOptions {
            grouping_window: options.grouping_window,
            correlation: options.correlation.clone(),
            checkpoint_interval: PipelineOptions::default().checkpoint_interval,
        },
    );
    let mut failure = None;
    // Events this run has stored or found stored already: inputs that overlap (the same
    // export twice, sample sets sharing files) skip the store for them.
    let mut known: HashSet<[u8; 16]> = HashSet::new();
    while let Some(message) = rx.recv().await {
        match message {
            Message::Batch(rows, matched) => {
                summary.records_read += rows.len() as u64;
                let read = rows.len();
                let (rows, matched) = skip_known(&known, rows, matched);
                let written = match writer.write(&tenant, &rows, &matched, &mut summary).await {
                    Ok(written) => written,
                    Err(source) => {
                        stop.store(true, Ordering::Relaxed);
                        failure = Some(source);
                        break;
                    }
                };
                for row in &rows {
                    if known.len() >= KNOWN_KEYS {
                        break;
                    }
                    known.insert(row.dedup_key);
                }
                summary.stored += written.new_keys.len() as u64;
                summary.duplicates += (read - written.new_keys.len()) as u64;
                summary.alerts += written.alerts.alerts;
                summary.incidents_created += written.alerts.incidents_created;
                summary.incidents_updated += written.alerts.incidents_updated;
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
    summary.correlation = writer.correlation_stats(&tenant).await;
    if failure.is_none() {
        if let Err(source) = writer.checkpoint().await {
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

/// The rows of a batch not in `known`, and the matches of those rows (renumbered).
fn skip_known(
    known: &HashSet<[u8; 16]>,
    rows: Vec<EventRow>,
    matched: Vec<Matched>,
) -> (Vec<EventRow>, Vec<Matched>) {
    if known.is_empty() {
        return (rows, matched);
    }
    let mut position = Vec::with_capacity(rows.len());
    let mut kept = Vec::with_capacity(rows.len());
    for row in rows {
        if known.contains(&row.dedup_key) {
            position.push(None);
        } else {
            position.push(Some(kept.len()));
            kept.push(row);
        }
    }
    let matched = matched
        .into_iter()
        .filter_map(|mut m| {
            m.row = position[m.row]?;
            Some(m)
        })
        .collect();
    (kept, matched)
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
            self.matched
                .extend(Matched::detect(rules, event, self.batch.len() - 1));
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
