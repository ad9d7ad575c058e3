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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::correlation::CorrelatorConfig;
    use crate::event::TenantId;
    use crate::rules::{LoadOptions, RuleSet};

    const RULES: &str = r#"
title: Failed logon
name: failed
logsource: {product: windows, service: security}
detection:
  selection: {EventID: 4625}
  condition: selection
---
title: Guessing
correlation:
  type: event_count
  rules: [failed]
  group-by: [TargetUserName]
  timespan: 1m
  condition: {gte: 3}
"#;

    fn event(record: i64, second: u32) -> Event {
        let fields = serde_json::json!({"EventID": 4625, "Channel": "Security",
            "Computer": "dc01", "EventRecordID": record, "TargetUserName": "bob",
            "IpAddress": "10.0.0.1", "TimeCreated": format!("2024-01-01T10:00:{second:02}Z")});
        let fields = fields.as_object().unwrap().clone().into_iter().collect();
        Event::from_fields(fields, TenantId::default())
    }

    /// Kept matches of the `files`' events, each `(file, [(record, second)])`, in that order.
    fn kept(
        rules: &RuleSet,
        correlator: &Correlator,
        files: &[(&str, &[(i64, u32)])],
    ) -> Vec<Kept> {
        let feeds = Feeds::new(correlator, rules.len());
        let mut kept = Vec::new();
        for (file, events) in files {
            let file: Arc<str> = Arc::from(*file);
            for (index, (record, second)) in events.iter().enumerate() {
                let event = event(*record, *second);
                let mut matched = Vec::new();
                rules.for_each_match(&event, |r| matched.push(r));
                assert!(matched.iter().all(|&r| feeds.is_fed(r)));
                kept.push(feeds.keep(&event, matched, &file, index as u64 + 1));
            }
        }
        kept
    }

    fn hits(files: &[(&str, &[(i64, u32)])]) -> Vec<HuntCorrelation> {
        let (rules, problems) = RuleSet::from_yaml("rules.yml", RULES, &LoadOptions::default());
        assert!(problems.is_empty(), "{problems:?}");
        let mut correlator = Correlator::with_config(&rules, CorrelatorConfig::for_files());
        let kept = kept(&rules, &correlator, files);
        let mut hits = Vec::new();
        correlate(&mut correlator, kept, |h| hits.push(h));
        hits
    }

    #[test]
    fn kept_events_hold_only_the_fields_correlations_read() {
        let (rules, _) = RuleSet::from_yaml("rules.yml", RULES, &LoadOptions::default());
        let correlator = Correlator::new(&rules);
        let kept = kept(&rules, &correlator, &[("a", &[(1, 0)])]);
        let fields: Vec<&String> = kept[0].event.fields.keys().collect();
        assert_eq!(fields, ["TargetUserName"]);
        assert_eq!(kept[0].event.record_id, Some(1));
    }

    #[test]
    fn hits_do_not_depend_on_the_order_of_the_inputs_and_count_a_record_once() {
        let a: &[(i64, u32)] = &[(1, 0), (4, 30)];
        let b: &[(i64, u32)] = &[(2, 10), (3, 20)];
        let forward = hits(&[("a", a), ("b", b)]);
        assert_eq!(forward.len(), 1);
        let hit = &forward[0];
        assert_eq!((hit.hit.value, hit.hit.matches), (3.0, 3));
        let at: Vec<(&str, Option<i64>, u64)> = hit
            .records
            .iter()
            .map(|r| (&*r.file, r.record_id, r.index))
            .collect();
        assert_eq!(
            at,
            [("a", Some(1), 1), ("b", Some(2), 1), ("b", Some(3), 2)]
        );
        assert_eq!(hits(&[("b", b), ("a", a)]), forward);
        // `b` read twice (a copy named `c`): its records count once, named by the first file.
        assert_eq!(hits(&[("c", b), ("a", a), ("b", b)])[0].hit.matches, 3);
    }
}
