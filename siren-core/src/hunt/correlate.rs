//! Correlation in a hunt: the matches of the rules that correlation rules refer to are kept
//! (each event cut down to the fields the correlator reads), sorted by event time across all
//! inputs once every input has been read, and fed to one [`Correlator`].
//!
//! Sorting the whole hunt's matches first makes the hits independent of the order the inputs
//! were given or read in: matches are ordered by event time, then input name, then the
//! event's place in its input. A record read twice (the same host and channel, ignoring
//! case, record number and time, e.g. one log copied into two folders) is fed once, as
//! `siren ingest`, which stores it once, would.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::correlation::{CorrelationHit, Correlator};
use crate::event::{Event, Fields};

/// Per rule index: the fields its matches are kept with, `None` when no correlation refers
/// to the rule.
pub(super) struct Feeds {
    fields: Vec<Option<Vec<String>>>,
}

impl Feeds {
    /// What to keep of each rule's matches for `correlator`, over a set of `rules` rules.
    pub(super) fn new(correlator: &Correlator, rules: usize) -> Self {
        let fields = (0..rules)
            .map(|rule| {
                correlator.is_referenced(rule).then(|| {
                    correlator
                        .fields_read(rule)
                        .into_iter()
                        .map(str::to_owned)
                        .collect()
                })
            })
            .collect();
        Self { fields }
    }

    /// Whether a correlation refers to the rule at `rule`.
    pub(super) fn is_fed(&self, rule: usize) -> bool {
        self.fields.get(rule).is_some_and(Option::is_some)
    }

    /// The match to keep of `event`, the `index`-th event of `file`, matched by `rules`
    /// (each referred to by a correlation): the event with only the fields they read.
    pub(super) fn keep(
        &self,
        event: &Event,
        rules: Vec<usize>,
        file: &Arc<str>,
        index: u64,
    ) -> Kept {
        let mut fields = Fields::default();
        for name in rules
            .iter()
            .filter_map(|&r| self.fields.get(r).and_then(Option::as_ref))
            .flatten()
        {
            if !fields.contains_key(name)
                && let Some(value) = event.fields.get(name)
            {
                fields.insert(name.clone(), value.clone());
            }
        }
        let event = Event {
            timestamp: event.timestamp,
            host: event.host.clone(),
            source: event.source.clone(),
            event_id: event.event_id,
            record_id: event.record_id,
            severity: None,
            user: None,
            src_ip: None,
            dst_ip: None,
            process: None,
            command_line: None,
            parent_process: None,
            tenant: event.tenant.clone(),
            fields,
        };
        Kept {
            rules,
            event,
            file: file.clone(),
            index,
        }
    }
}

/// An event that rules referred to by correlations matched, kept until every input is read.
pub(super) struct Kept {
    /// The rules (referred to by correlations) that matched it, in rule order.
    rules: Vec<usize>,
    /// The event, with only the fields the correlations read.
    event: Event,
    file: Arc<str>,
    /// Its place among the events of its input (1-based).
    index: u64,
}

/// An event behind a correlation hit of a hunt: where it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HuntRecord {
    /// The input it was read from.
    pub file: Arc<str>,
    /// Its record number within its log (`EventRecordID`), when the log has them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_id: Option<i64>,
    /// Its place among the events read from `file` (1-based): what finds it in logs
    /// without record numbers.
    pub index: u64,
    /// Its time.
    pub timestamp: DateTime<Utc>,
    /// Its host, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// A correlation rule's hit in a hunt, with the events behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct HuntCorrelation {
    /// The hit.
    pub hit: CorrelationHit,
    /// The events behind it, oldest first: those of `hit.events` (at most
    /// [`CorrelatorConfig::max_hit_events`](crate::correlation::CorrelatorConfig::max_hit_events);
    /// `hit.events_omitted` tells how many more).
    pub records: Vec<HuntRecord>,
}

/// Sorts the kept matches by event time (then input and place in it), drops records read
/// twice, feeds them to `correlator` and calls `on_hit` with each hit that is an alert in
/// its own right, in order.
pub(super) fn correlate(
    correlator: &mut Correlator,
    mut kept: Vec<Kept>,
    mut on_hit: impl FnMut(HuntCorrelation),
) {
    kept.sort_by(|a, b| {
        (a.event.timestamp, &a.file, a.index).cmp(&(b.event.timestamp, &b.file, b.index))
    });
    let mut seen = HashSet::new();
    kept.retain(|k| {
        let e = &k.event;
        e.record_id.is_none()
            || seen.insert((
                e.timestamp,
                e.host.as_deref().map(str::to_lowercase),
                e.source.as_deref().map(str::to_lowercase),
                e.record_id,
            ))
    });
    drop(seen);
    for (at, one) in kept.iter().enumerate() {
        // The correlator names each event by its place in `kept`, read back below.
        let name = at.to_string();
        for &rule in &one.rules {
            for hit in correlator.observe_keyed(rule, &one.event, Some(&name)) {
                if !hit.reported {
                    continue;
                }
                let records = hit
                    .events
                    .iter()
                    .filter_map(|e| {
                        let k = kept.get(e.key.as_deref()?.parse::<usize>().ok()?)?;
                        Some(HuntRecord {
                            file: k.file.clone(),
                            record_id: k.event.record_id,
                            index: k.index,
                            timestamp: e.time,
                            host: k.event.host.clone(),
                        })
                    })
                    .collect();
                on_hit(HuntCorrelation { hit, records });
            }
        }
    }
}
