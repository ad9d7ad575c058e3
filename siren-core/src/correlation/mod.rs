//! Sigma correlation rules, evaluated over a stream of detections: counts, distinct values,
//! temporal sequences and value aggregations per group, within sliding windows of event time.
//!
//! A [`Correlator`] is built from a [`RuleSet`] and fed every detection in order of arrival
//! (`rule index, &Event`); it answers with the [`CorrelationHit`]s those detections complete.
//! Its whole state can be saved with [`Correlator::snapshot`] and loaded into a later
//! correlator with [`Correlator::restore`], so runs over consecutive batches of logs (a cron
//! job every five minutes) correlate as one run would.
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

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::rules::{Correlation, CorrelationType, Rule, RuleKind, RuleSet};

#[cfg(test)]
mod tests;
mod window;

use window::{Aggregate, Entry, Group, minus, plus};

/// A group's values of the `group-by` fields, in order (`None`: the field is missing).
type GroupKey = Vec<Option<String>>;

/// The name written into every snapshot, checked on restore.
pub const STATE_FORMAT: &str = "siren-correlation-state";
/// The snapshot format version this build writes and reads.
pub const STATE_VERSION: u32 = 1;

/// How a [`Correlator`] bounds its state. Builder-lite: `CorrelatorConfig::default()
/// .with_lateness(…)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelatorConfig {
    /// How far behind the latest event time a match may arrive and still be placed in its
    /// window (default 10 minutes).
    pub lateness: Duration,
    /// The most groups one correlation keeps (default 100,000).
    pub max_groups: usize,
    /// The most matches one group keeps (default 10,000).
    pub max_entries: usize,
    /// The most event references a hit carries (default 100).
    pub max_hit_events: usize,
    /// How deep correlations of correlations are followed (default 8).
    pub max_chain_depth: usize,
    /// When set, each group keeps its own clock (its latest match): a match more than this
    /// behind it is dropped as late, and matches older than it by more than this plus the
    /// timespan are expired, whatever the correlator's clock says. See
    /// [`CorrelatorConfig::with_group_clock`].
    pub group_lateness: Option<Duration>,
}

impl Default for CorrelatorConfig {
    fn default() -> Self {
        Self {
            lateness: Duration::from_secs(600),
            max_groups: 100_000,
            max_entries: 10_000,
            max_hit_events: 100,
            max_chain_depth: 8,
            group_lateness: None,
        }
    }
}

impl CorrelatorConfig {
    /// Sets the allowed lateness.
    pub fn with_lateness(mut self, lateness: Duration) -> Self {
        self.lateness = lateness;
        self
    }
    /// Sets the cap on groups per correlation (at least 1).
    pub fn with_max_groups(mut self, max: usize) -> Self {
        self.max_groups = max.max(1);
        self
    }
    /// Sets the cap on matches per group (at least 1).
    pub fn with_max_entries(mut self, max: usize) -> Self {
        self.max_entries = max.max(1);
        self
    }
    /// Gives each group its own clock, with `lateness` allowed behind it.
    ///
    /// For callers that read archives in any order (files of different years, hosts whose
    /// logs arrive hours late): set [`CorrelatorConfig::lateness`] as long as the oldest data
    /// that may still arrive (it then only decides when idle groups are forgotten), and the
    /// group lateness short (minutes): windows stay as small as the timespan needs, however
    /// far apart the sources' clocks are. Replays are not recognised once a group has been
    /// forgotten, so such callers should feed only events they have not fed before.
    pub fn with_group_clock(mut self, lateness: Duration) -> Self {
        self.group_lateness = Some(lateness);
        self
    }
    /// Sets the cap on event references per hit.
    pub fn with_max_hit_events(mut self, max: usize) -> Self {
        self.max_hit_events = max;
        self
    }
}

/// A reference to an event that contributed to a hit, enough to find it again in the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EventRef {
    /// Event time.
    pub time: DateTime<Utc>,
    /// The host (normalised), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The record id within its log, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<i64>,
    /// The caller's own key for the event (e.g. its id in the store), when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A correlation rule whose condition was met: one per group and episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorrelationHit {
    /// The correlation rule's index in [`RuleSet::rules`].
    pub rule: usize,
    /// The rule's stable reference: its id, else its name, else its title.
    pub reference: String,
    /// The rule's title.
    pub title: String,
    /// The correlation type.
    pub kind: CorrelationType,
    /// The `group-by` fields and this group's values (`None`: the events lack the field).
    pub group: Vec<(String, Option<String>)>,
    /// The earliest match in the window.
    pub first_seen: DateTime<Utc>,
    /// The end of the window (the latest match in it).
    pub last_seen: DateTime<Utc>,
    /// The value that met the condition: the count, distinct count, sum, average, percentile,
    /// or number of rules seen (in order, for `temporal_ordered`).
    pub value: f64,
    /// How many matches the window held.
    pub matches: usize,
    /// The contributing events, oldest first, at most [`CorrelatorConfig::max_hit_events`].
    pub events: Vec<EventRef>,
    /// How many contributing events were left out of `events`.
    pub events_omitted: usize,
    /// Whether this hit is an alert in its own right (see [`Correlator::is_reported`]).
    pub reported: bool,
}

impl CorrelationHit {
    /// The value of one `group-by` field (`None` when the field is not grouped on or the
    /// events lack it).
    pub fn group_value(&self, field: &str) -> Option<&str> {
        self.group
            .iter()
            .find(|(f, _)| f == field)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// Counters of what the correlator did and dropped. Saved with the state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CorrelatorStats {
    /// Matches of referenced rules observed (a match counts once per correlation).
    pub observed: u64,
    /// Matches dropped because they arrived later than the allowed lateness.
    pub late: u64,
    /// Matches dropped because the event had no time and no event had been seen yet.
    pub untimed: u64,
    /// Matches ignored because the same match was already in its window.
    pub replays: u64,
    /// Matches expired from windows as event time advanced (the normal case).
    pub expired: u64,
    /// Matches dropped because a group reached [`CorrelatorConfig::max_entries`].
    pub entries_dropped: u64,
    /// Groups evicted because a correlation reached [`CorrelatorConfig::max_groups`].
    pub groups_evicted: u64,
    /// Hits emitted.
    pub hits: u64,
    /// Times the condition held again inside an episode that had already fired.
    pub suppressed: u64,
    /// Chained matches not followed because [`CorrelatorConfig::max_chain_depth`] was reached.
    pub chain_depth_exceeded: u64,
}

/// A correlation rule that cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorrelationError {
    /// A rule the correlation refers to is not loaded.
    #[error("correlation '{correlation}': referenced rule '{reference}' is not loaded")]
    UnknownRule {
        /// The correlation's reference.
        correlation: String,
        /// The missing rule's id or name.
        reference: String,
    },
    /// The correlation refers to a filter rule, which produces no matches.
    #[error("correlation '{correlation}': referenced rule '{reference}' is a filter rule")]
    NotMatchable {
        /// The correlation's reference.
        correlation: String,
        /// The filter rule's id or name.
        reference: String,
    },
}

/// Why a snapshot could not be restored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The bytes are not a correlation state.
    #[error("correlation state is not valid: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The bytes are some other document.
    #[error("correlation state has format '{found}', expected '{STATE_FORMAT}'")]
    WrongFormat {
        /// The format name found.
        found: String,
    },
    /// The state was written by an incompatible version.
    #[error(
        "correlation state version {found} is not supported (this build reads {STATE_VERSION})"
    )]
    UnsupportedVersion {
        /// The version found.
        found: u32,
    },
}

/// What [`Correlator::restore`] kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Correlations whose state was restored.
    pub restored: usize,
    /// Groups restored.
    pub groups: usize,
    /// Saved correlations dropped: no longer loaded, or their definition changed.
    pub dropped: Vec<String>,
}

/// Where one referenced rule's matches go in one correlation.
#[derive(Debug, Clone)]
struct Route {
    /// The correlation's index in `Correlator::plans`.
    plan: usize,
    /// The slot: first position of the rule in the correlation's `rules`.
    slot: u32,
    /// Fields to read for the group key, in `group_by` order (aliases resolved).
    group_fields: Vec<String>,
    /// The aggregated field (aliases resolved), for value aggregations.
    value_field: Option<String>,
}

/// A correlation rule, prepared.
#[derive(Debug, Clone)]
struct Plan {
    rule: usize,
    reference: String,
    title: String,
    fingerprint: String,
    group_by: Vec<String>,
    span: TimeDelta,
    aggregate: Aggregate,
}

/// Per-correlation state.
#[derive(Debug, Clone, Default)]
struct PlanState {
    groups: HashMap<GroupKey, Group>,
    /// When (in event time) the groups are next swept for expired entries.
    next_sweep: Option<DateTime<Utc>>,
}

/// The saved form of the state.
#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    format: String,
    version: u32,
    #[serde(default)]
    watermark: Option<DateTime<Utc>>,
    #[serde(default)]
    stats: CorrelatorStats,
    #[serde(default)]
    correlations: Vec<SavedCorrelation>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedCorrelation {
    reference: String,
    fingerprint: String,
    groups: Vec<(GroupKey, Group)>,
}

/// [`Snapshot`] as it is written: borrowing the state instead of copying it.
#[derive(Serialize)]
struct SnapshotRef<'a> {
    format: &'a str,
    version: u32,
    watermark: Option<DateTime<Utc>>,
    stats: &'a CorrelatorStats,
    correlations: Vec<SavedCorrelationRef<'a>>,
}

/// [`SavedCorrelation`] as it is written.
#[derive(Serialize)]
struct SavedCorrelationRef<'a> {
    reference: &'a str,
    fingerprint: &'a str,
    groups: Vec<(&'a GroupKey, &'a Group)>,
}

/// What a match is read from: an event, or a hit of a correlation that another refers to.
enum Source<'a> {
    Event(&'a Event, Option<&'a str>),
    Hit(&'a CorrelationHit),
}

impl Source<'_> {
    fn field(&self, name: &str) -> Option<String> {
        match self {
            Source::Event(event, _) => event.get_str(name).map(|v| v.into_owned()),
            Source::Hit(hit) => hit.group_value(name).map(str::to_owned),
        }
    }
}

/// Evaluates a rule set's correlation rules over the detections it is fed. See the
/// [module documentation](self) for the semantics.
#[derive(Debug, Clone)]
pub struct Correlator {
    config: CorrelatorConfig,
    plans: Vec<Plan>,
    /// Per rule index: where its matches go.
    routes: Vec<Vec<Route>>,
    /// Per rule index: whether its own matches or hits are alerts.
    reported: Vec<bool>,
    problems: Vec<CorrelationError>,
    states: Vec<PlanState>,
    watermark: Option<DateTime<Utc>>,
    stats: CorrelatorStats,
}

fn fingerprint(correlation: &Correlation) -> String {
    let bytes = serde_json::to_vec(correlation).unwrap_or_default();
    blake3::hash(&bytes).to_hex()[..16].to_owned()
}

impl Correlator {
    /// A correlator for the correlation rules of `rules`, with the default configuration.
    pub fn new(rules: &RuleSet) -> Self {
        Self::with_config(rules, CorrelatorConfig::default())
    }

    /// A correlator for the correlation rules of `rules`.
    ///
    /// Correlations that refer to rules that are not loaded are left out and listed by
    /// [`Correlator::problems`].
    pub fn with_config(rules: &RuleSet, config: CorrelatorConfig) -> Self {
        let all = rules.rules();
        let mut plans = Vec::new();
        let mut routes: Vec<Vec<Route>> = vec![Vec::new(); all.len()];
        let mut referenced = vec![false; all.len()];
        let mut generated = vec![false; all.len()];
        let mut problems = Vec::new();
        for (index, rule) in all.iter().enumerate() {
            let RuleKind::Correlation(correlation) = &rule.kind else {
                continue;
            };
            let reference = rule.key();
            // Resolve the referenced rules; positions of the same rule share a slot.
            let mut targets: Vec<usize> = Vec::new();
            let mut sequence = Vec::new();
            let mut ok = true;
            for name in &correlation.rules {
                match rules.find(name) {
                    Some(t) if matches!(all[t].kind, RuleKind::Filter(_)) => {
                        problems.push(CorrelationError::NotMatchable {
                            correlation: reference.clone(),
                            reference: name.clone(),
                        });
                        ok = false;
                    }
                    Some(t) => {
                        let slot = match targets.iter().position(|&x| x == t) {
                            Some(s) => s,
                            None => {
                                targets.push(t);
                                targets.len() - 1
                            }
                        };
                        sequence.push(slot as u32);
                    }
                    None => {
                        problems.push(CorrelationError::UnknownRule {
                            correlation: reference.clone(),
                            reference: name.clone(),
                        });
                        ok = false;
                    }
                }
            }
            if !ok {
                continue;
            }
            let plan = plans.len();
            let condition = correlation.condition.clone().unwrap_or_default();
            let mut comparisons = condition.comparisons.clone();
            if comparisons.is_empty() {
                // Only the temporal types may omit the condition: every rule is needed.
                let needed = match correlation.kind {
                    CorrelationType::TemporalOrdered => sequence.len(),
                    _ => targets.len(),
                };
                comparisons.push((crate::rules::CompareOp::Gte, needed as f64));
            }
            let aggregate = Aggregate {
                kind: correlation.kind,
                sequence,
                distinct_slots: targets.len(),
                comparisons,
                percentile: match correlation.kind {
                    CorrelationType::ValueMedian => 50.0,
                    _ => condition.percentile.unwrap_or(50.0),
                },
            };
            // The field a group-by (or condition) name stands for in one referenced rule.
            let resolve = |name: &str, target: &Rule| -> String {
                correlation
                    .aliases
                    .iter()
                    .find(|(alias, _)| alias == name)
                    .and_then(|(_, per_rule)| {
                        per_rule
                            .iter()
                            .find(|(r, _)| target.is_called(r))
                            .map(|(_, f)| f.clone())
                    })
                    .unwrap_or_else(|| name.to_owned())
            };
            for (slot, &target) in targets.iter().enumerate() {
                let target_rule = &all[target];
                referenced[target] = true;
                generated[target] |= correlation.generate;
                routes[target].push(Route {
                    plan,
                    slot: slot as u32,
                    group_fields: correlation
                        .group_by
                        .iter()
                        .map(|g| resolve(g, target_rule))
                        .collect(),
                    value_field: condition
                        .field
                        .as_deref()
                        .filter(|_| correlation.kind.needs_field())
                        .map(|f| resolve(f, target_rule)),
                });
            }
            plans.push(Plan {
                rule: index,
                reference,
                title: rule.title.clone(),
                fingerprint: fingerprint(correlation),
                group_by: correlation.group_by.clone(),
                span: TimeDelta::from_std(correlation.timespan).unwrap_or(TimeDelta::MAX),
                aggregate,
            });
        }
        let reported = referenced
            .iter()
            .zip(&generated)
            .map(|(&r, &g)| !r || g)
            .collect();
        let states = vec![PlanState::default(); plans.len()];
        Self {
            config,
            plans,
            routes,
            reported,
            problems,
            states,
            watermark: None,
            stats: CorrelatorStats::default(),
        }
    }

    /// Correlation rules that could not be prepared (and are not evaluated).
    pub fn problems(&self) -> &[CorrelationError] {
        &self.problems
    }

    /// The number of correlation rules evaluated.
    pub fn len(&self) -> usize {
        self.plans.len()
    }

    /// Whether no correlation rule is evaluated (feeding matches is then a no-op).
    pub fn is_empty(&self) -> bool {
        self.plans.is_empty()
    }

    /// Whether the rule at `rule` (an index in [`RuleSet::rules`]) is an alert in its own
    /// right: `false` only when correlations refer to it and none of them says `generate:
    /// true`. Unknown indices are reported.
    pub fn is_reported(&self, rule: usize) -> bool {
        self.reported.get(rule).copied().unwrap_or(true)
    }

    /// Whether any correlation uses the matches of the rule at `rule`.
    pub fn is_referenced(&self, rule: usize) -> bool {
        self.routes.get(rule).is_some_and(|r| !r.is_empty())
    }

    /// The counters.
    pub fn stats(&self) -> &CorrelatorStats {
        &self.stats
    }

    /// The latest event time seen (the correlator's clock).
    pub fn watermark(&self) -> Option<DateTime<Utc>> {
        self.watermark
    }

    /// The number of groups currently held, over all correlations.
    pub fn group_count(&self) -> usize {
        self.states.iter().map(|s| s.groups.len()).sum()
    }

    /// The number of matches currently held in windows, over all correlations.
    pub fn entry_count(&self) -> usize {
        self.states
            .iter()
            .flat_map(|s| s.groups.values())
            .map(|g| g.entries.len())
            .sum()
    }

    /// Feeds one detection: the rule at index `rule` matched `event`. Returns the hits it
    /// completes (usually none), chained correlations' included.
    pub fn observe(&mut self, rule: usize, event: &Event) -> Vec<CorrelationHit> {
        self.observe_keyed(rule, event, None)
    }

    /// Like [`Correlator::observe`], with the caller's key for the event (e.g. its id in the
    /// store), which hits carry in their [`EventRef`]s.
    pub fn observe_keyed(
        &mut self,
        rule: usize,
        event: &Event,
        key: Option<&str>,
    ) -> Vec<CorrelationHit> {
        let mut hits = Vec::new();
        if self.routes.get(rule).is_none_or(|r| r.is_empty()) {
            return hits;
        }
        let time = match event.timestamp.or(self.watermark) {
            Some(t) => t,
            None => {
                self.stats.untimed += 1;
                return hits;
            }
        };
        self.feed(rule, time, &Source::Event(event, key), &mut hits);
        // Chains: each hit is a match of its correlation rule for the correlations that
        // refer to it.
        let mut next = 0;
        let mut depth_of: Vec<usize> = vec![1; hits.len()];
        while next < hits.len() {
            let depth = depth_of[next];
            let hit = hits[next].clone();
            next += 1;
            if !self.is_referenced(hit.rule) {
                continue;
            }
            if depth >= self.config.max_chain_depth {
                self.stats.chain_depth_exceeded += 1;
                continue;
            }
            self.feed(hit.rule, hit.last_seen, &Source::Hit(&hit), &mut hits);
            depth_of.resize(hits.len(), depth + 1);
        }
        hits
    }

    /// Feeds a batch of detections after sorting it by event time (stable, so matches of one
    /// event keep their order). Returns the hits, in order.
    pub fn observe_sorted<'e>(
        &mut self,
        batch: impl IntoIterator<Item = (usize, &'e Event)>,
    ) -> Vec<CorrelationHit> {
        let mut batch: Vec<(usize, &Event)> = batch.into_iter().collect();
        batch.sort_by_key(|(_, e)| e.timestamp);
        let mut hits = Vec::new();
        for (rule, event) in batch {
            hits.extend(self.observe(rule, event));
        }
        hits
    }

    /// Like [`Correlator::observe_sorted`], with the caller's key for each event.
    pub fn observe_sorted_keyed<'e>(
        &mut self,
        batch: impl IntoIterator<Item = (usize, &'e Event, Option<&'e str>)>,
    ) -> Vec<CorrelationHit> {
        let mut batch: Vec<(usize, &Event, Option<&str>)> = batch.into_iter().collect();
        batch.sort_by_key(|(_, e, _)| e.timestamp);
        let mut hits = Vec::new();
        for (rule, event, key) in batch {
            hits.extend(self.observe_keyed(rule, event, key));
        }
        hits
    }

    /// Advances the correlator's clock to `time` (if later), expiring what falls out of every
    /// window — e.g. the wall-clock time at the end of a run, when logs are known to be
    /// complete up to it.
    pub fn advance_to(&mut self, time: DateTime<Utc>) {
        if self.watermark.is_none_or(|w| time > w) {
            self.watermark = Some(time);
        }
        for plan in 0..self.plans.len() {
            self.sweep(plan);
        }
    }

    /// Routes one match of rule `rule` at `time` to every correlation that refers to it.
    fn feed(
        &mut self,
        rule: usize,
        time: DateTime<Utc>,
        source: &Source<'_>,
        hits: &mut Vec<CorrelationHit>,
    ) {
        let lateness = TimeDelta::from_std(self.config.lateness).unwrap_or(TimeDelta::MAX);
        if let Some(w) = self.watermark
            && time < minus(w, lateness)
        {
            self.stats.late += 1;
            return;
        }
        if self.watermark.is_none_or(|w| time > w) {
            self.watermark = Some(time);
        }
        let refs: Vec<EventRef> = match source {
            Source::Event(event, key) => vec![EventRef {
                time,
                host: event.host.clone(),
                record_id: event.record_id,
                key: key.map(str::to_owned),
            }],
            Source::Hit(hit) => hit.events.clone(),
        };
        let routes = self.routes.get(rule).cloned().unwrap_or_default();
        for route in routes {
            self.stats.observed += 1;
            let key: GroupKey = route.group_fields.iter().map(|f| source.field(f)).collect();
            let mut value = route.value_field.as_deref().and_then(|f| source.field(f));
            let numeric = self.plans.get(route.plan).is_some_and(|p| {
                !matches!(
                    p.aggregate.kind,
                    CorrelationType::ValueCount
                        | CorrelationType::EventCount
                        | CorrelationType::Temporal
                        | CorrelationType::TemporalOrdered
                )
            });
            let number = if numeric {
                value.take().as_deref().and_then(window::parse_number)
            } else {
                None
            };
            let entry = Entry {
                time,
                slot: route.slot,
                value,
                number,
                events: refs.clone(),
            };
            if let Some(hit) = self.insert(route.plan, key, entry) {
                hits.push(hit);
            }
            self.maybe_sweep(route.plan);
        }
    }

    /// The earliest time a window may still start at: older matches are expired.
    fn horizon(&self, plan: &Plan) -> Option<DateTime<Utc>> {
        let lateness = TimeDelta::from_std(self.config.lateness).unwrap_or(TimeDelta::MAX);
        self.watermark.map(|w| minus(minus(w, lateness), plan.span))
    }

    /// Inserts `entry` into its group, evaluates, and returns a hit if the group fires.
    fn insert(&mut self, plan_index: usize, key: GroupKey, entry: Entry) -> Option<CorrelationHit> {
        let plan = self.plans.get(plan_index)?;
        let horizon = self.horizon(plan);
        let time = entry.time;
        let max_groups = self.config.max_groups.max(1);
        let state = self.states.get_mut(plan_index)?;
        if !state.groups.contains_key(&key) && state.groups.len() >= max_groups {
            self.stats.expired += sweep_groups(state, horizon, plan.span);
            if state.groups.len() >= max_groups {
                self.stats.groups_evicted += evict_stalest(state, max_groups);
            }
        }
        let group = state.groups.entry(key.clone()).or_default();
        let group_lateness = self
            .config
            .group_lateness
            .map(|l| TimeDelta::from_std(l).unwrap_or(TimeDelta::MAX));
        if let (Some(lateness), Some(clock)) = (group_lateness, group.clock)
            && time < minus(clock, lateness)
        {
            self.stats.late += 1;
            return None;
        }
        group.touched = self.stats.observed;
        if !group.insert(entry) {
            self.stats.replays += 1;
            return None;
        }
        group.clock = Some(group.clock.map_or(time, |c| c.max(time)));
        if let Some(h) = horizon {
            self.stats.expired += group.expire(h) as u64;
        }
        if let (Some(lateness), Some(clock)) = (group_lateness, group.clock) {
            self.stats.expired += group.expire(minus(minus(clock, lateness), plan.span)) as u64;
        }
        while group.entries.len() > self.config.max_entries.max(1) {
            group.entries.pop_front();
            self.stats.entries_dropped += 1;
        }
        // Windows ending at this match, and at the newest one when this match came late.
        let mut ends = vec![time];
        if let Some(newest) = group.newest()
            && newest > time
            && newest <= plus(time, plan.span)
        {
            ends.push(newest);
        }
        for end in ends {
            let range = group.window(end, plan.span);
            if range.is_empty() {
                continue;
            }
            let in_episode = group
                .last_held
                .is_some_and(|h| end <= plus(h, plan.span) && end >= minus(h, plan.span));
            if in_episode {
                // Only whether it still holds matters: the episode goes on.
                if plan.aggregate.holds_over(&group.entries, range) {
                    group.last_held = group.last_held.map(|h| h.max(end));
                    self.stats.suppressed += 1;
                }
                continue;
            }
            let Some(value) = plan.aggregate.compute(group.entries.range(range.clone())) else {
                continue;
            };
            if !plan.aggregate.holds(value) {
                continue;
            }
            group.last_held = Some(group.last_held.map_or(end, |h| h.max(end)));
            self.stats.hits += 1;
            let window: Vec<&Entry> = group.entries.range(range).collect();
            let mut events: Vec<EventRef> = Vec::new();
            let mut total = 0usize;
            for e in &window {
                for r in &e.events {
                    total += 1;
                    if events.len() < self.config.max_hit_events {
                        events.push(r.clone());
                    }
                }
            }
            return Some(CorrelationHit {
                rule: plan.rule,
                reference: plan.reference.clone(),
                title: plan.title.clone(),
                kind: plan.aggregate.kind,
                group: plan.group_by.iter().cloned().zip(key).collect(),
                first_seen: window.first().map_or(end, |e| e.time),
                last_seen: end,
                value,
                matches: window.len(),
                events_omitted: total - events.len(),
                events,
                reported: self.reported.get(plan.rule).copied().unwrap_or(true),
            });
        }
        None
    }

    fn maybe_sweep(&mut self, plan: usize) {
        let (Some(w), Some(state)) = (self.watermark, self.states.get(plan)) else {
            return;
        };
        if state.next_sweep.is_none_or(|next| w >= next) {
            self.sweep(plan);
        }
    }

    /// Expires old matches and idle groups of one correlation.
    fn sweep(&mut self, plan_index: usize) {
        let Some(plan) = self.plans.get(plan_index) else {
            return;
        };
        let horizon = self.horizon(plan);
        let span = plan.span;
        let Some(state) = self.states.get_mut(plan_index) else {
            return;
        };
        self.stats.expired += sweep_groups(state, horizon, span);
        let step = span.max(TimeDelta::seconds(60));
        state.next_sweep = self.watermark.map(|w| plus(w, step));
    }

    /// The whole state (windows, episodes, clock and counters) as versioned JSON bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        let snapshot = SnapshotRef {
            format: STATE_FORMAT,
            version: STATE_VERSION,
            watermark: self.watermark,
            stats: &self.stats,
            correlations: self
                .plans
                .iter()
                .zip(&self.states)
                .filter(|(_, s)| !s.groups.is_empty())
                .map(|(p, s)| {
                    let mut groups: Vec<(&GroupKey, &Group)> = s.groups.iter().collect();
                    groups.sort_by(|a, b| a.0.cmp(b.0));
                    SavedCorrelationRef {
                        reference: &p.reference,
                        fingerprint: &p.fingerprint,
                        groups,
                    }
                })
                .collect(),
        };
        serde_json::to_vec(&snapshot).unwrap_or_default()
    }

    /// Replaces the state with one saved by [`Correlator::snapshot`] (possibly by another
    /// process with another rule set): correlations are matched by reference, and the saved
    /// state of a correlation that is no longer loaded or whose definition changed is
    /// dropped. On error the state is left as it was.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<RestoreReport, StateError> {
        #[derive(Deserialize)]
        struct Header {
            format: String,
            version: u32,
        }
        let header: Header = serde_json::from_slice(bytes)?;
        if header.format != STATE_FORMAT {
            return Err(StateError::WrongFormat {
                found: header.format,
            });
        }
        if header.version != STATE_VERSION {
            return Err(StateError::UnsupportedVersion {
                found: header.version,
            });
        }
        let snapshot: Snapshot = serde_json::from_slice(bytes)?;
        let mut states = vec![PlanState::default(); self.plans.len()];
        let mut report = RestoreReport::default();
        for saved in snapshot.correlations {
            let Some(index) = self
                .plans
                .iter()
                .position(|p| p.reference == saved.reference && p.fingerprint == saved.fingerprint)
            else {
                report.dropped.push(saved.reference);
                continue;
            };
            report.restored += 1;
            let slots = self.plans[index].aggregate.distinct_slots as u32;
            for (key, mut group) in saved.groups {
                if key.len() != self.plans[index].group_by.len() {
                    continue;
                }
                // Keep the invariants whatever the bytes say: sorted, known slots.
                group.entries.retain(|e| e.slot < slots);
                group.entries.make_contiguous().sort_by_key(|e| e.time);
                report.groups += 1;
                states[index].groups.insert(key, group);
            }
        }
        self.states = states;
        self.watermark = snapshot.watermark;
        self.stats = snapshot.stats;
        for plan in 0..self.plans.len() {
            self.sweep(plan);
        }
        Ok(report)
    }
}

/// Expires matches older than `horizon` in every group and removes groups that are empty
/// and past their episode. Returns the matches expired.
fn sweep_groups(state: &mut PlanState, horizon: Option<DateTime<Utc>>, span: TimeDelta) -> u64 {
    let Some(horizon) = horizon else {
        return 0;
    };
    let mut expired = 0u64;
    state.groups.retain(|_, g| {
        expired += g.expire(horizon) as u64;
        !g.entries.is_empty() || g.last_held.is_some_and(|h| plus(h, span) >= horizon)
    });
    expired
}

/// Evicts the least recently fed groups (then those with the oldest matches) until a
/// sixteenth of the cap is free. Returns how many.
fn evict_stalest(state: &mut PlanState, max_groups: usize) -> u64 {
    let target = max_groups - (max_groups / 16).max(1).min(max_groups);
    if state.groups.len() <= target {
        return 0;
    }
    let mut ages: Vec<(u64, Option<DateTime<Utc>>, GroupKey)> = state
        .groups
        .iter()
        .map(|(k, g)| (g.touched, g.newest().or(g.last_held), k.clone()))
        .collect();
    ages.sort();
    let evict = state.groups.len() - target;
    for (_, _, key) in ages.into_iter().take(evict) {
        state.groups.remove(&key);
    }
    evict as u64
}
