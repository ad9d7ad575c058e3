//! What an ingest run did ([`IngestSummary`], its [`DiagnosticRecord`]s) or why it failed
//! ([`IngestError`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::normalize::Diagnostic;
use crate::store::StoreError;

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
