//! Sigma rules: parsing, the log-source mapping, and the compiled matcher.
//!
//! [`RuleSet::load`] reads rule files and folders (multi-document YAML: detection, correlation
//! and filter rules), compiles every detection rule once, and reports each rule it could not
//! load as a [`RuleDiagnostic`] naming the file, the rule and the construct. The set is
//! `Send + Sync`; [`RuleSet::matches`] tests one event against only the rules whose log source
//! can produce it (rules are bucketed by channel and event ID through the [`LogSourceMap`]).
//!
//! ```
//! use siren_core::rules::{LoadOptions, RuleSet};
//! use siren_core::{Event, TenantId};
//!
//! let rule = r#"
//! title: Failed logon for a disabled account
//! id: 3c1f8a52-0000-4000-8000-000000000001
//! level: medium
//! logsource: {product: windows, service: security}
//! detection:
//!     selection:
//!         EventID: 4625
//!         Status|endswith: '0072'
//!     condition: selection
//! "#;
//! let (rules, diagnostics) = RuleSet::from_yaml("example.yml", rule, &LoadOptions::default());
//! assert!(diagnostics.is_empty());
//!
//! let mut fields = siren_core::Fields::default();
//! fields.insert("Channel".into(), "Security".into());
//! fields.insert("EventID".into(), 4625.into());
//! fields.insert("Status".into(), "0xC0000072".into());
//! let event = Event::from_fields(fields, TenantId::default());
//! let hits: Vec<&str> = rules.matches(&event).map(|r| r.title.as_str()).collect();
//! assert_eq!(hits, ["Failed logon for a disabled account"]);
//! ```
//!
//! # What is supported
//! The Sigma 2.x specification: every value modifier (`contains`, `startswith`, `endswith`,
//! `all`, `exists`, `cased`, `neq`, `windash`, `re` with `i`/`m`/`s`, `base64`, `base64offset`,
//! `utf16le`/`wide`, `utf16be`, `utf16`, `lt`, `lte`, `gt`, `gte`, `cidr`, `expand` with the
//! placeholders of [`LoadOptions`], `fieldref`, `minute`…`year`) and their chains; `*` / `?`
//! wildcards with `\` escapes; case-insensitive matching unless `cased`; `null` (missing, null
//! or empty) and `''`; lists (OR, or AND with `all`) and maps (AND); keyword searches over every
//! field; the whole condition grammar; filter rules (`filter:`), ANDed into the rules they
//! name; correlation rules (`correlation:`), parsed and validated into [`Correlation`] for the
//! correlation engine. Deprecated Sigma 1.0 constructs (`action:` collections, `| count()`
//! aggregations) are reported as unsupported.
//!
//! Field names that Windows writes with spaces (`Threat Name`) match their Sigma spelling
//! without (`ThreatName`).
//!
//! # The `siren:` extension
//! One optional top-level key, ignored by other Sigma tools (unknown keys under it are errors):
//! ```yaml
//! siren:
//!   group_by: [TargetUserName]      # incident grouping key (default: the host)
//!   severity: high                  # overrides `level` for incidents
//!   investigation:                  # suggested steps, shown with the incident
//!     - Check the source IP's other logons
//!   tests:                          # run by `siren rules test`
//!     match:    [{Channel: Security, EventID: 4625, TargetUserName: bob}]
//!     no_match: [{Channel: Security, EventID: 4624}]
//! ```
//! See [`SirenExtension`] and [`RuleSet::run_embedded_tests`].
//!
//! # Log sources
//! [`LogSourceMap::default`] is `rules/logsources.yml`, embedded in the library; a user's file
//! in the same format replaces it ([`LogSourceMap::load`], [`LoadOptions::with_logsources`]).
//! A rule whose log source the mapping does not know is still loaded
//! ([`Rule::logsource_mapped`] is false) and meets every event of its product: Windows rules
//! every event with a channel, other rules every event without one.
//!
//! # Speed
//! Each rule is compiled once per source of its log source (with that source's field names).
//! An event meets only the rules of its (channel, event ID) bucket; within a bucket, an
//! Aho-Corasick automaton per field over the literals each rule needs lets through only the
//! rules one of whose literals the event contains. A rule's needed literals come from its
//! values, from its regexes (every match begins with one of the regex's prefix literals and
//! ends with one of its suffix literals) and from its keywords (searched in every field).
//! Literal comparisons are ASCII case-insensitive without allocating; regexes are checked at
//! load and compiled once, on first use, like the automata, so start-up stays short and rules
//! no event reaches cost nothing. Identical pattern lists and regexes (a rule compiled for
//! Sysmon and for Security, buckets with the same literals) share one build (`memo`). Each of
//! an event's longer texts is lower-cased once, whichever buckets' prefilters scan it.

// `options.rs` (`LoadOptions`) and `builder.rs` (`RuleSetBuilder`: files, parsing on a few
// threads, compiling per log source, the buckets) load; `parse/`, `condition.rs` and
// `value/` turn YAML into detections; `set.rs` (`RuleSet`) matches an event against its
// buckets, through `prefilter.rs` (the literals each bucket's rules need) and `subject.rs`
// (the event's fields, looked up and lower-cased once); `matched.rs` keeps the rules one event
// matched; `cache.rs` keeps parsed rule files, `memo.rs` shared automata and regexes.

mod builder;
mod builtin;
mod cache;
mod condition;
mod error;
mod logsource;
mod matched;
mod memo;
mod model;
mod options;
mod parse;
mod pipeline;
mod prefilter;
mod set;
mod subject;
mod value;

pub use builder::RuleSetBuilder;
pub use builtin::builtin;
pub use error::{LogSourceError, RuleDiagnostic, RuleError};
pub use logsource::{DEFAULT_MAPPING, EventSelector, LogSourceEntry, LogSourceMap};
pub use model::{
    CompareOp, Correlation, CorrelationCondition, CorrelationType, Filter, Level, LogSource, Rule,
    RuleId, RuleKind, RuleTests, SirenExtension, Status,
};
pub use options::LoadOptions;
pub use pipeline::{Pipeline, PipelineError};
pub use set::{EmbeddedTestReport, RuleSet};

#[cfg(test)]
mod tests;
