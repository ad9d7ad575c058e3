//! Sigma correlation rules, evaluated over a stream of detections: counts, distinct values,
//! temporal sequences and value aggregations per group, within sliding windows of event time.
//!
//! A [`Correlator`] is built from a [`RuleSet`](crate::rules::RuleSet) and fed every detection
//! in order of arrival (`rule index, &Event`); it answers with the [`CorrelationHit`]s those
//! detections complete. Its whole state can be saved with [`Correlator::snapshot`] and loaded
//! into a later correlator with [`Correlator::restore`], so runs over consecutive batches of
//! logs (a cron job every five minutes) correlate as one run would.
//!
//! # Semantics
//!
//! - **Windows over event time.** A correlation holds for a group at time `T` when its
//!   condition holds over the group's matches with times in `[T - timespan, T]`. It is
//!   evaluated when a match arrives, over the window that ends at the match's time and (for a
//!   match that arrived out of order) over the window that ends at the group's newest match.
//! - **Groups.** `group-by` fields are read from each event (through `aliases` where the
//!   correlation renames a field for one rule); a field the event lacks is a value of its own
//!   (`None`), so events without it form their own group.
//! - **Episodes: one hit per attack, not one per event.** When the condition first holds for a
//!   group, it fires once. It stays silent while the condition keeps holding again within one
//!   timespan of the last time it held; it re-arms only once a whole timespan has passed
//!   since then without the condition holding. Two hits for one group therefore never
//!   share a contributing match for the count types (their windows are disjoint).
//! - **Lateness.** The correlator's clock (the *watermark*) is the latest event time seen.
//!   Matches up to [`CorrelatorConfig::lateness`] older than it are placed in order; older
//!   ones are dropped and counted ([`CorrelatorStats::late`]). Feed each batch sorted by
//!   event time ([`Correlator::observe_sorted`] sorts for you).
//! - **Sources with clocks far apart** (archives of different years read in any order, hosts
//!   whose logs arrive hours late): [`CorrelatorConfig::with_group_clock`] gives each group
//!   its own clock and lateness, the correlator's lateness then only deciding when idle
//!   groups are forgotten.
//! - **Bounded state.** Matches older than `watermark - lateness - timespan` can never be in
//!   a window again and are expired; empty groups past their episode are removed. Each
//!   correlation keeps at most [`CorrelatorConfig::max_groups`] groups (the least recently
//!   fed are evicted) and each group at most [`CorrelatorConfig::max_entries`] matches (the oldest
//!   are dropped), and both are counted.
//! - **Replays** of a match already in a window (same rule, time, host, record id and key)
//!   are ignored, so feeding a file twice within the lateness does not count it twice. Only
//!   events with a record id or a caller's key can be recognised: give a key (e.g. a hash of
//!   the record) for logs without record ids if they may be fed twice.
//! - **Events without a time** are placed at the correlator's clock (the latest time seen);
//!   before any time was seen they are dropped and counted ([`CorrelatorStats::untimed`]).
//! - **Conditions** are all of the comparisons (`gte: 5` and `lt: 10` is a range). They are
//!   evaluated as matches arrive, so a condition with only an upper bound (`lt: 3`) holds at
//!   the first match of a group: give it a lower bound too. Temporal
//!   correlations without a condition need every rule (in order for `temporal_ordered`);
//!   their value is the number of distinct rules seen (`temporal`) or the length of the
//!   longest prefix of the rule list seen in order (`temporal_ordered`). `value_count`
//!   counts the distinct values present (a match without the field adds none); the other
//!   value aggregations ignore matches whose field is missing or not a number (decimal or
//!   `0x` hexadecimal);
//!   `value_percentile` interpolates linearly between ranks; `value_median` is the 50th.
//! - **`generate`**: [`Correlator::is_reported`] says whether a rule's own matches (or a
//!   correlation's own hits) are alerts in their own right: yes unless every correlation
//!   referring to it says `generate: false` (the default). Hits carry the same answer in
//!   [`CorrelationHit::reported`].
//! - **Chains**: a hit of correlation A is a match of rule A for every correlation B that
//!   refers to A, at the hit's last time; B reads its `group-by` fields from A's group.
//!
//! ```
//! use siren_core::correlation::Correlator;
//! use siren_core::rules::{LoadOptions, RuleSet};
//! use siren_core::{Event, TenantId};
//!
//! let yaml = r#"
//! title: Failed logon
//! name: failed_logon
//! logsource: {product: windows, service: security}
//! detection:
//!   selection: {EventID: 4625}
//!   condition: selection
//! ---
//! title: Brute force
//! correlation:
//!   type: event_count
//!   rules: [failed_logon]
//!   group-by: [TargetUserName]
//!   timespan: 2m
//!   condition: {gte: 5}
//! "#;
//! let (rules, problems) = RuleSet::from_yaml("rules.yml", yaml, &LoadOptions::default());
//! assert!(problems.is_empty());
//! let mut correlator = Correlator::new(&rules);
//! let mut hits = Vec::new();
//! for second in 0..50 {
//!     let fields = serde_json::json!({"EventID": 4625, "Channel": "Security",
//!         "TargetUserName": "bob", "TimeCreated": format!("2024-01-01T10:00:{second:02}Z")});
//!     let fields = fields.as_object().unwrap().clone().into_iter().collect();
//!     let event = Event::from_fields(fields, TenantId::default());
//!     rules.for_each_match(&event, |rule| hits.extend(correlator.observe(rule, &event)));
//! }
//! assert_eq!(hits.len(), 1); // one brute force, one hit
//! assert_eq!(hits[0].value, 5.0);
//!
//! // The state survives a restart.
//! let saved = correlator.snapshot();
//! let mut later = Correlator::new(&rules);
//! later.restore(&saved).unwrap();
//! ```

// `correlator.rs` prepares the correlation rules (`Correlator`); `feed.rs` routes each
// match to its correlations' groups and evaluates their windows; `window.rs` is one group's
// window and the aggregate its type computes; `key.rs` reads the `group-by` values;
// `config.rs`, `hit.rs` and `error.rs` are the configuration, the results and the errors;
// `snapshot.rs` saves and restores the state.

mod config;
mod correlator;
mod error;
mod feed;
mod hit;
mod key;
mod route;
mod snapshot;
#[cfg(test)]
mod tests;
mod window;

pub use config::CorrelatorConfig;
pub use correlator::Correlator;
pub use error::{CorrelationError, StateError};
pub use hit::{CorrelationHit, CorrelatorStats, EventRef};
pub use route::{GroupRoute, partition_of};
pub use snapshot::{RestoreReport, STATE_FORMAT, STATE_VERSION};
