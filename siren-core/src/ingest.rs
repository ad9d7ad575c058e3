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

use crate::event::Event;
use crate::normalize::{self, Diagnostic, EventSink, Format, Input, ReadOptions};
use crate::store::{EventRow, Store, StoreError};

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
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            read: ReadOptions::default(),
            strict: false,
            batch_size: 2048,
            max_diagnostics: 1000,
            threads: 0,
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

/// Told about the run as it goes (progress bars, warnings). Called from reader threads.
pub trait IngestObserver: Send + Sync {
    /// `bytes` more input were consumed.
    fn progress(&self, _bytes: u64) {}
    /// A record or file was skipped.
    fn diagnostic(&self, _diagnostic: &Diagnostic) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl IngestObserver for Quiet {}

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
    Batch(Vec<EventRow>),
    Diagnostic(Diagnostic),
    Ignored(Diagnostic),
    FileDone(Option<Format>),
}

/// Reads `inputs`, storing every event in `store`. Returns the run's summary; fails only
/// when the store fails (what was stored before stays stored).
pub async fn ingest(
    store: Arc<dyn Store>,
    inputs: Vec<Input>,
    options: IngestOptions,
    observer: Arc<dyn IngestObserver>,
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
        workers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Some(input) = inputs.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                let mut sink = RowSink {
                    tx: &tx,
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
    let mut failure = None;
    while let Some(message) = rx.recv().await {
        match message {
            Message::Batch(rows) => {
                summary.records_read += rows.len() as u64;
                match store.insert_events(&rows).await {
                    Ok(stored) => {
                        summary.stored += stored;
                        summary.duplicates += rows.len() as u64 - stored;
                    }
                    Err(source) => {
                        stop.store(true, Ordering::Relaxed);
                        failure = Some(source);
                        break;
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

/// Batches one reader thread's events into rows and sends them on.
struct RowSink<'a> {
    tx: &'a mpsc::Sender<Message>,
    batch: Vec<EventRow>,
    batch_size: usize,
    strict: bool,
    observer: &'a dyn IngestObserver,
    stop: &'a AtomicBool,
}

impl RowSink<'_> {
    /// Sends the pending batch. False when the writer has gone.
    fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(self.batch_size));
        self.tx.blocking_send(Message::Batch(batch)).is_ok()
    }
}

impl EventSink for RowSink<'_> {
    fn event(&mut self, event: Event) -> ControlFlow<()> {
        self.batch.push(EventRow::from_event(&event));
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
