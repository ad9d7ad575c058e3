//! What a run that reads inputs (hunt, ingest) tells its caller as it goes: progress and the
//! records or files it skipped.

use super::Diagnostic;

/// Told about a run as it reads its inputs (progress bars, warnings). Called from reader
/// threads.
pub trait ReadObserver: Send + Sync {
    /// `bytes` more input were consumed.
    fn progress(&self, _bytes: u64) {}
    /// A record or file was skipped.
    fn diagnostic(&self, _diagnostic: &Diagnostic) {}
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl ReadObserver for Quiet {}
