//! The ingest pipeline: read inputs in parallel, prepare rows, store them in batched
//! transactions, and account for every record (stored, duplicate or skipped with a reason).
//!
//! Two entry points share the stages: [`ingest`] reads files (reader threads, one async
//! writer, a bounded channel between them, so memory stays flat whatever the input size),
//! and [`Pipeline`] takes batches that arrive over time (the server). Both store rows, turn
//! the new events that rules matched into alerts and correlation hits (`alerts.rs`), and
//! group the alerts into incidents in the store.

mod alerts;
mod files;
mod options;
mod pipeline;
mod summary;

pub use files::ingest;
pub use options::IngestOptions;
pub use pipeline::{BatchOutcome, Pipeline, PipelineOptions, Rejected, is_transient};
pub use summary::{DiagnosticRecord, IngestError, IngestSummary};
