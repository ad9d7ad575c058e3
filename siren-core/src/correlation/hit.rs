//! What a correlator reports: [`CorrelationHit`]s, the [`EventRef`]s behind them, and its
//! counters ([`CorrelatorStats`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::rules::CorrelationType;

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
    /// The correlation rule's index in [`RuleSet::rules`](crate::rules::RuleSet::rules).
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
    /// The contributing events, oldest first, at most
    /// [`CorrelatorConfig::max_hit_events`](super::CorrelatorConfig::max_hit_events).
    pub events: Vec<EventRef>,
    /// How many contributing events were left out of `events`.
    pub events_omitted: usize,
    /// Whether this hit is an alert in its own right (see
    /// [`Correlator::is_reported`](super::Correlator::is_reported)).
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
    /// Matches dropped because a group reached
    /// [`CorrelatorConfig::max_entries`](super::CorrelatorConfig::max_entries).
    pub entries_dropped: u64,
    /// Groups evicted because a correlation reached
    /// [`CorrelatorConfig::max_groups`](super::CorrelatorConfig::max_groups).
    pub groups_evicted: u64,
    /// Hits emitted.
    pub hits: u64,
    /// Times the condition held again inside an episode that had already fired.
    pub suppressed: u64,
    /// Chained matches not followed because
    /// [`CorrelatorConfig::max_chain_depth`](super::CorrelatorConfig::max_chain_depth) was reached.
    pub chain_depth_exceeded: u64,
}
