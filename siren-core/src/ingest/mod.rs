//! The ingest pipeline: read inputs in parallel, prepare rows, store them in batched
//! transactions, and account for every record (stored, duplicate or skipped with a reason).
//!
//! Two entry points share the stages: [`ingest`] reads files (reader threads, one async
//! writer, a bounded channel between them, so memory stays flat whatever the input size),
//! and [`Pipeline`] takes batches that arrive over time (the server). Both store through one
//! batch writer (`writer.rs`): each batch's rows, the alerts and correlation hits of its new
//! events (`alerts.rs`), the incidents they open and what it fed the correlator (`journal.rs`)
//! in one transaction.

mod alerts;
pub mod bus;
mod files;
mod journal;
mod options;
mod partition;
mod pipeline;
mod summary;
mod writer;

pub use files::ingest;
pub use options::IngestOptions;
pub use partition::{Applied, PartitionWorker};
pub use pipeline::{BatchOutcome, Pipeline, PipelineOptions, Rejected, is_transient};
pub use summary::{DiagnosticRecord, IngestError, IngestSummary};
