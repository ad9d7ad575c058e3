//! [`IngestOptions`]: how an ingest run behaves.

use std::sync::Arc;

use crate::correlation::CorrelatorConfig;
use crate::normalize::ReadOptions;
use crate::rules::RuleSet;

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
            correlation: CorrelatorConfig::for_files(),
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
