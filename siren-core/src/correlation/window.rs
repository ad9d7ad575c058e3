//! One group's sliding window over event time: its entries, and the aggregate a correlation
//! type computes over them.

use std::collections::{HashSet, VecDeque};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::EventRef;
use crate::rules::{CompareOp, CorrelationType};

/// One match of a referenced rule, kept in a group's window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// Event time.
    pub time: DateTime<Utc>,
    /// Which referenced rule matched: the first position of that rule in the correlation's
    /// `rules` list.
    pub slot: u32,
    /// The value of the aggregated field (value aggregations only), as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The value of the aggregated field as a number (the numeric aggregations only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<f64>,
    /// The events behind the match (one for a detection; a correlation hit's for a chain).
    pub events: Vec<EventRef>,
}

/// The state of one group of one correlation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Group {
    /// Matches, sorted by event time (arrival order among equal times).
    pub entries: VecDeque<Entry>,
    /// The latest window end at which the condition held, once the group has fired: the
    /// group stays in its episode (does not fire again) while the condition holds again
    /// within one timespan of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_held: Option<DateTime<Utc>>,
    /// The latest match time the group has seen (its own clock, for
    /// [`super::CorrelatorConfig::with_group_clock`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<DateTime<Utc>>,
    /// When the group was last fed, in matches observed by the correlator (for evicting the
    /// least recently fed groups first).
    #[serde(default)]
    pub touched: u64,
}

/// `time - span`, saturating at the earliest representable time.
pub(crate) fn minus(time: DateTime<Utc>, span: TimeDelta) -> DateTime<Utc> {
    time.checked_sub_signed(span)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `time + span`, saturating at the latest representable time.
pub(crate) fn plus(time: DateTime<Utc>, span: TimeDelta) -> DateTime<Utc> {
    time.checked_add_signed(span)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// What a correlation computes over a window.
#[derive(Debug, Clone)]
pub(crate) struct Aggregate {
    pub kind: CorrelationType,
    /// The rules' slots in their listed order (for `temporal_ordered`).
    pub sequence: Vec<u32>,
    /// Distinct slots (for `temporal`).
    pub distinct_slots: usize,
    /// `(op, threshold)`, all of which must hold.
    pub comparisons: Vec<(CompareOp, f64)>,
    /// The percentile, 0–100 (`value_percentile`; 50 for `value_median`).
    pub percentile: f64,
}

impl Aggregate {
    /// The aggregate over `window`, or `None` when it has no value (e.g. no numeric values
    /// to average).
    pub fn compute<'e>(&self, window: impl Iterator<Item = &'e Entry>) -> Option<f64> {
        let value = match self.kind {
            CorrelationType::EventCount => Some(window.count() as f64),
            CorrelationType::ValueCount => {
                let seen: HashSet<&str> = window.filter_map(|e| e.value.as_deref()).collect();
                Some(seen.len() as f64)
            }
            CorrelationType::Temporal => {
                let mut seen = vec![false; self.distinct_slots.max(1)];
                let mut present = 0usize;
                for e in window {
                    if let Some(s) = seen.get_mut(e.slot as usize)
                        && !*s
                    {
                        *s = true;
                        present += 1;
                    }
                }
                Some(present as f64)
            }
            CorrelationType::TemporalOrdered => {
                // Greedy: the earliest match of each rule after the previous one gives the
                // longest matched prefix of the sequence.
                let mut next = 0usize;
                for e in window {
                    match self.sequence.get(next) {
                        Some(&slot) if slot == e.slot => next += 1,
                        Some(_) => {}
                        None => break,
                    }
                }
                Some(next as f64)
            }
            CorrelationType::ValueSum => {
                let values = numbers(window);
                (!values.is_empty()).then(|| values.iter().sum())
            }
            CorrelationType::ValueAvg => {
                let values = numbers(window);
                (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
            }
            CorrelationType::ValuePercentile | CorrelationType::ValueMedian => {
                percentile(&mut numbers(window), self.percentile)
            }
            // A type added to the model later: never holds, rather than guessing.
            #[allow(unreachable_patterns)]
            _ => None,
        };
        // Sums of huge values overflow: no value rather than an infinite one.
        value.filter(|v| v.is_finite())
    }

    /// Whether `value` meets the condition (every comparison holds).
    pub fn holds(&self, value: f64) -> bool {
        self.comparisons.iter().all(|&(op, t)| op.holds(value, t))
    }

    /// Whether the condition holds over `window` (a range of `entries`), stopping early
    /// where it can: a distinct count with only lower bounds holds as soon as enough values
    /// were seen, whatever the rest of the window holds.
    pub fn holds_over(&self, entries: &VecDeque<Entry>, window: std::ops::Range<usize>) -> bool {
        let lower_bounds_only = self
            .comparisons
            .iter()
            .all(|(op, _)| matches!(op, CompareOp::Gt | CompareOp::Gte));
        if self.kind == CorrelationType::ValueCount && lower_bounds_only {
            let mut seen: HashSet<&str> = HashSet::new();
            for e in entries.range(window).rev() {
                if let Some(v) = e.value.as_deref()
                    && seen.insert(v)
                    && self.holds(seen.len() as f64)
                {
                    return true;
                }
            }
            return self.holds(seen.len() as f64);
        }
        self.compute(entries.range(window))
            .is_some_and(|v| self.holds(v))
    }
}

/// The numeric values among the window's aggregated values (others are ignored).
fn numbers<'e>(window: impl Iterator<Item = &'e Entry>) -> Vec<f64> {
    window
        .filter_map(|e| e.number.filter(|n| n.is_finite()))
        .collect()
}

/// A field value as a finite number: decimal, or hexadecimal with `0x` (as Windows writes
/// many counters).
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    let text = text.trim();
    let n = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok()? as f64,
        None => text.parse::<f64>().ok()?,
    };
    n.is_finite().then_some(n)
}

/// The `p`-th percentile (0–100) of `values`, interpolating linearly between ranks. Reorders
/// `values` (a selection, not a sort: linear time).
pub(crate) fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    let last = values.len().checked_sub(1)?;
    let p = if p.is_finite() {
        p.clamp(0.0, 100.0)
    } else {
        50.0
    };
    let rank = p / 100.0 * last as f64;
    let lo = (rank.floor() as usize).min(last);
    let (_, &mut a, above) = values.select_nth_unstable_by(lo, f64::total_cmp);
    // The next rank up is the least of the values above.
    let b = if rank > lo as f64 {
        above.iter().copied().min_by(f64::total_cmp).unwrap_or(a)
    } else {
        a
    };
    Some(a + (b - a) * (rank - lo as f64))
}

impl Group {
    /// Inserts `entry` in time order (after entries of the same time). Returns `false`, and
    /// leaves the window as it was, when the same match is already there (a replay: same
    /// rule, time and events, where the events are identified by a record id or a key).
    pub fn insert(&mut self, entry: Entry) -> bool {
        let at = self.entries.partition_point(|e| e.time <= entry.time);
        let identified = entry
            .events
            .iter()
            .all(|r| r.record_id.is_some() || r.key.is_some());
        let same_time = self.entries.partition_point(|e| e.time < entry.time);
        if identified
            && !entry.events.is_empty()
            && self
                .entries
                .range(same_time..at)
                .any(|e| e.slot == entry.slot && e.events == entry.events)
        {
            return false;
        }
        self.entries.insert(at, entry);
        true
    }

    /// Drops entries older than `horizon`; returns how many.
    pub fn expire(&mut self, horizon: DateTime<Utc>) -> usize {
        let old = self.entries.partition_point(|e| e.time < horizon);
        self.entries.drain(..old);
        old
    }

    /// The entries of the window `[end - span, end]`, as an index range.
    pub fn window(&self, end: DateTime<Utc>, span: TimeDelta) -> std::ops::Range<usize> {
        let start = minus(end, span);
        let lo = self.entries.partition_point(|e| e.time < start);
        let hi = self.entries.partition_point(|e| e.time <= end);
        lo..hi.max(lo)
    }

    /// The time of the newest entry.
    pub fn newest(&self) -> Option<DateTime<Utc>> {
        self.entries.back().map(|e| e.time)
    }
}
