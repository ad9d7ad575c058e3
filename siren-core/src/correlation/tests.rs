//! Unit tests of the correlator: every correlation type and condition, episodes, lateness,
//! caps, chains and saved state.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use super::*;
use crate::event::{Event, TenantId};
use crate::rules::{CorrelationType, LoadOptions, RuleSet};

mod properties;
mod routing;
mod snapshot;

const DETECTIONS: &str = r#"
title: Failed logon
id: 00000000-0000-0000-0000-000000004625
name: failed
logsource: {product: windows, service: security}
detection:
  selection: {EventID: 4625}
  condition: selection
---
title: Successful logon
name: success
logsource: {product: windows, service: security}
detection:
  selection: {EventID: 4624}
  condition: selection
---
title: Process
name: process
logsource: {product: windows, service: security}
detection:
  selection: {EventID: 4688}
  condition: selection
---
title: Bytes sent
name: sent
logsource: {product: windows, service: security}
detection:
  selection: {EventID: 5156}
  condition: selection
"#;

fn rules(correlations: &str) -> RuleSet {
    let text = format!("{DETECTIONS}---\n{correlations}");
    let (set, problems) = RuleSet::from_yaml("t.yml", &text, &LoadOptions::default());
    assert!(problems.is_empty(), "{problems:#?}");
    set
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap()
}

fn event(id: i64, seconds: i64, extra: serde_json::Value) -> Event {
    let mut fields = json!({"EventID": id, "Channel": "Security", "Computer": "dc01",
        "EventRecordID": seconds, "TimeCreated": at(seconds).to_rfc3339()});
    if let (Some(f), Some(e)) = (fields.as_object_mut(), extra.as_object()) {
        f.extend(e.clone());
    }
    Event::from_fields(
        fields.as_object().unwrap().clone().into_iter().collect(),
        TenantId::default(),
    )
}

/// Feeds events through the rule set's matcher and the correlator; returns the hits.
fn run(set: &RuleSet, correlator: &mut Correlator, events: &[Event]) -> Vec<CorrelationHit> {
    let mut hits = Vec::new();
    for e in events {
        set.for_each_match(e, |rule| hits.extend(correlator.observe(rule, e)));
    }
    hits
}

fn failures(user: &str, from: i64, count: i64, every: i64) -> Vec<Event> {
    (0..count)
        .map(|i| event(4625, from + i * every, json!({"TargetUserName": user})))
        .collect()
}

const BRUTE_FORCE: &str = "title: Brute force\nid: bf\ncorrelation:\n  type: event_count\n  rules: [failed]\n  group-by: [TargetUserName]\n  timespan: 2m\n  condition: {gte: 5}\n";

#[test]
fn event_count_fires_once_per_episode() {
    let set = rules(BRUTE_FORCE);
    let mut c = Correlator::new(&set);
    assert!(c.problems().is_empty());
    let hits = run(&set, &mut c, &failures("bob", 0, 50, 1));
    assert_eq!(hits.len(), 1, "{hits:#?}");
    let hit = &hits[0];
    assert_eq!(hit.reference, "bf");
    assert_eq!(hit.value, 5.0);
    assert_eq!(hit.matches, 5);
    assert_eq!(
        hit.group,
        vec![("TargetUserName".into(), Some("bob".into()))]
    );
    assert_eq!(hit.first_seen, at(0));
    assert_eq!(hit.last_seen, at(4));
    assert_eq!(hit.events.len(), 5);
    assert_eq!(hit.events[0].record_id, Some(0));
    assert_eq!(hit.events[0].host.as_deref(), Some("dc01"));
    assert!(hit.reported);
    assert!(!c.is_reported(set.find("failed").unwrap()));
    assert_eq!(c.stats().hits, 1);
    assert_eq!(c.stats().suppressed, 45);
}

#[test]
fn event_count_below_threshold_and_outside_window_is_silent() {
    let set = rules(BRUTE_FORCE);
    let mut c = Correlator::new(&set);
    // Four within the window, then one every 61 s: never five within 2 minutes.
    assert!(run(&set, &mut c, &failures("bob", 0, 4, 1)).is_empty());
    assert!(run(&set, &mut c, &failures("bob", 1000, 10, 61)).is_empty());
}

#[test]
fn groups_are_separate_and_missing_fields_form_their_own_group() {
    let set = rules(BRUTE_FORCE);
    let mut c = Correlator::new(&set);
    let mut events = failures("bob", 0, 3, 1);
    events.extend(failures("alice", 0, 3, 1));
    assert!(run(&set, &mut c, &events).is_empty());
    let nobody: Vec<Event> = (0..5).map(|i| event(4625, 10 + i, json!({}))).collect();
    let hits = run(&set, &mut c, &nobody);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].group, vec![("TargetUserName".into(), None)]);
    assert_eq!(hits[0].group_value("TargetUserName"), None);
}

#[test]
fn episode_rearms_after_a_quiet_timespan() {
    let set = rules(BRUTE_FORCE);
    let mut c = Correlator::new(&set);
    // A burst, a pause shorter than the timespan, another burst: one episode.
    let mut events = failures("bob", 0, 5, 1);
    events.extend(failures("bob", 100, 5, 1));
    assert_eq!(run(&set, &mut c, &events).len(), 1);
    // A burst after more than a timespan without the condition holding: a new episode.
    let hits = run(&set, &mut c, &failures("bob", 300, 5, 1));
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].first_seen, at(300));
}

#[test]
fn conditions_and_ranges() {
    for (condition, fires_at) in [
        ("{gt: 3}", Some(4.0)),
        ("{gte: 3}", Some(3.0)),
        ("{eq: 2}", Some(2.0)),
        ("{neq: 1}", Some(2.0)),
        ("{lt: 2}", Some(1.0)),
        ("{lte: 1}", Some(1.0)),
        ("{gte: 3, lt: 4}", Some(3.0)),
        ("{gt: 10}", None),
        ("{gt: 3, lt: 3}", None),
    ] {
        let set = rules(&format!(
            "title: c\ncorrelation:\n  type: event_count\n  rules: [failed]\n  group-by: [TargetUserName]\n  timespan: 1m\n  condition: {condition}\n"
        ));
        let mut c = Correlator::new(&set);
        let hits = run(&set, &mut c, &failures("bob", 0, 5, 1));
        assert_eq!(hits.first().map(|h| h.value), fires_at, "{condition}");
        assert!(hits.len() <= 1, "{condition}");
    }
}

#[test]
fn value_count_counts_distinct_values() {
    let set = rules(
        "title: Spray\ncorrelation:\n  type: value_count\n  rules: [failed]\n  group-by: [IpAddress]\n  timespan: 5m\n  condition: {gte: 3, field: TargetUserName}\n",
    );
    let mut c = Correlator::new(&set);
    let events: Vec<Event> = ["a", "a", "b", "a", "c", "d", "e"]
        .iter()
        .enumerate()
        .map(|(i, u)| {
            event(
                4625,
                i as i64,
                json!({"TargetUserName": u, "IpAddress": "10.0.0.9"}),
            )
        })
        .collect();
    let hits = run(&set, &mut c, &events);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].value, 3.0);
    assert_eq!(hits[0].matches, 5);
    assert_eq!(hits[0].group_value("IpAddress"), Some("10.0.0.9"));
}

#[test]
fn temporal_needs_every_rule_in_any_order() {
    let set = rules(
        "title: Both\ncorrelation:\n  type: temporal\n  rules: [success, failed]\n  group-by: [TargetUserName]\n  timespan: 1m\n",
    );
    let mut c = Correlator::new(&set);
    let u = json!({"TargetUserName": "bob"});
    assert!(run(&set, &mut c, &[event(4624, 0, u.clone())]).is_empty());
    // Too late for the first.
    assert!(run(&set, &mut c, &[event(4625, 100, u.clone())]).is_empty());
    let hits = run(&set, &mut c, &[event(4624, 120, u.clone())]);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].value, 2.0);
    assert_eq!(hits[0].first_seen, at(100));
}

#[test]
fn temporal_ordered_needs_the_order() {
    let set = rules(
        "title: Success after failures\ncorrelation:\n  type: temporal_ordered\n  rules: [failed, failed, success]\n  group-by: [TargetUserName]\n  timespan: 1m\n",
    );
    let mut c = Correlator::new(&set);
    let u = json!({"TargetUserName": "bob"});
    // Success first, then one failure: not in order.
    assert!(
        run(
            &set,
            &mut c,
            &[event(4624, 0, u.clone()), event(4625, 1, u.clone())]
        )
        .is_empty()
    );
    assert!(run(&set, &mut c, &[event(4625, 2, u.clone())]).is_empty());
    let hits = run(&set, &mut c, &[event(4624, 3, u.clone())]);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].value, 3.0);
    assert_eq!(hits[0].kind, CorrelationType::TemporalOrdered);
}

fn sent(seconds: i64, bytes: serde_json::Value) -> Event {
    event(
        5156,
        seconds,
        json!({"SourceAddress": "10.0.0.5", "Bytes": bytes}),
    )
}

fn value_rule(kind: &str, condition: &str) -> RuleSet {
    rules(&format!(
        "title: Volume\ncorrelation:\n  type: {kind}\n  rules: [sent]\n  group-by: [SourceAddress]\n  timespan: 10m\n  condition: {condition}\n"
    ))
}

fn values(set: &RuleSet, numbers: &[serde_json::Value]) -> Vec<CorrelationHit> {
    let mut c = Correlator::new(set);
    let events: Vec<Event> = numbers
        .iter()
        .enumerate()
        .map(|(i, n)| sent(i as i64, n.clone()))
        .collect();
    run(set, &mut c, &events)
}

#[test]
fn value_sum_avg_median_percentile() {
    let numbers = [
        json!(100),
        json!("250"),
        json!("n/a"),
        json!("0x100"),
        json!(1000),
    ];
    let hits = values(
        &value_rule("value_sum", "{gt: 600, field: Bytes}"),
        &numbers,
    );
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].value, 100.0 + 250.0 + 256.0); // "n/a" is ignored
    let hits = values(
        &value_rule("value_avg", "{gte: 200, field: Bytes}"),
        &numbers,
    );
    assert_eq!(hits[0].value, 606.0 / 3.0);
    let hits = values(
        &value_rule("value_median", "{gte: 250, field: Bytes}"),
        &numbers,
    );
    assert_eq!(hits[0].value, 250.0); // median of 100, 250, 256
    let hits = values(
        &value_rule(
            "value_percentile",
            "{gte: 800, field: Bytes, percentile: 95}",
        ),
        &numbers,
    );
    assert_eq!(hits.len(), 1);
    assert!(
        (hits[0].value - (256.0 + 0.85 * 744.0)).abs() < 1e-9,
        "{}",
        hits[0].value
    );
    // No numeric value at all: no value, no hit.
    assert!(
        values(
            &value_rule("value_avg", "{gte: 0, field: Bytes}"),
            &[json!("x")]
        )
        .is_empty()
    );
}

#[test]
fn percentiles_interpolate() {
    use super::window::percentile;
    assert_eq!(percentile(&mut [], 50.0), None);
    assert_eq!(percentile(&mut [7.0], 99.0), Some(7.0));
    assert_eq!(percentile(&mut [4.0, 1.0, 3.0, 2.0], 50.0), Some(2.5));
    assert_eq!(percentile(&mut [3.0, 2.0, 1.0], 100.0), Some(3.0));
    assert_eq!(percentile(&mut [3.0, 1.0, 2.0], 0.0), Some(1.0));
    assert_eq!(percentile(&mut [2.0, 3.0, 1.0], f64::NAN), Some(2.0));
    assert_eq!(
        percentile(&mut [10.0, 0.0, 5.0, 5.0, 20.0], 90.0),
        Some(16.0)
    );
}

#[test]
fn aliases_rename_group_fields_per_rule() {
    let set = rules(
        "title: Logon then process\ncorrelation:\n  type: temporal_ordered\n  rules: [success, process]\n  group-by: [account]\n  timespan: 1m\n  aliases:\n    account:\n      success: TargetUserName\n      process: SubjectUserName\n",
    );
    let mut c = Correlator::new(&set);
    let hits = run(
        &set,
        &mut c,
        &[
            event(4624, 0, json!({"TargetUserName": "bob"})),
            event(4688, 1, json!({"SubjectUserName": "eve"})),
            event(4688, 2, json!({"SubjectUserName": "bob"})),
        ],
    );
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].group_value("account"), Some("bob"));
}

#[test]
fn generate_keeps_referenced_rules_reported() {
    let set = rules(&BRUTE_FORCE.replace("timespan: 2m", "timespan: 2m\n  generate: true"));
    let c = Correlator::new(&set);
    assert!(c.is_reported(set.find("failed").unwrap()));
    assert!(c.is_reported(set.find("success").unwrap()));
    assert!(c.is_referenced(set.find("failed").unwrap()));
    assert!(!c.is_referenced(set.find("success").unwrap()));
}

#[test]
fn correlations_of_correlations() {
    let set = rules(&format!(
        "{BRUTE_FORCE}---\ntitle: Brute force then success\nid: bfs\ncorrelation:\n  type: temporal_ordered\n  rules: [bf, success]\n  group-by: [TargetUserName]\n  timespan: 5m\n"
    ));
    let mut c = Correlator::new(&set);
    let mut events = failures("bob", 0, 6, 1);
    events.push(event(4624, 30, json!({"TargetUserName": "bob"})));
    events.push(event(4624, 31, json!({"TargetUserName": "alice"})));
    let hits = run(&set, &mut c, &events);
    let refs: Vec<&str> = hits.iter().map(|h| h.reference.as_str()).collect();
    assert_eq!(refs, ["bf", "bfs"]);
    assert!(!hits[0].reported, "bf is only a building block of bfs");
    assert!(hits[1].reported);
    assert_eq!(hits[1].group_value("TargetUserName"), Some("bob"));
    // The chained hit links to the failed logons and the success.
    assert_eq!(hits[1].events.len(), 6);
    assert_eq!(hits[1].events[5].record_id, Some(30));
}

#[test]
fn unknown_references_are_problems_not_panics() {
    // The loader reports the broken reference itself; whatever it keeps, nothing panics and
    // nothing unresolved is evaluated.
    let text = format!(
        "{DETECTIONS}---\ntitle: Broken\ncorrelation:\n  type: event_count\n  rules: [nothing]\n  timespan: 1m\n  condition: {{gte: 1}}\n"
    );
    let (set, _) = RuleSet::from_yaml("t.yml", &text, &LoadOptions::default());
    let mut c = Correlator::new(&set);
    assert!(c.is_empty());
    assert!(c.problems().len() <= 1);
    if let Some(problem) = c.problems().first() {
        assert!(problem.to_string().contains("'nothing'"));
    }
    let e = event(4625, 0, json!({}));
    set.for_each_match(&e, |rule| assert!(c.observe(rule, &e).is_empty()));
}

#[test]
fn out_of_order_within_lateness_is_placed_and_late_is_dropped() {
    let set = rules(BRUTE_FORCE);
    let mut c = Correlator::with_config(
        &set,
        CorrelatorConfig::default().with_lateness(Duration::from_secs(60)),
    );
    let mut events = failures("bob", 0, 5, 10);
    events.reverse(); // 40, 30, 20, 10, 0: all within the lateness of 40.
    let hits = run(&set, &mut c, &events);
    assert_eq!(hits.len(), 1);
    assert_eq!((hits[0].first_seen, hits[0].last_seen), (at(0), at(40)));
    // 500 s later, an event from 2 minutes before the clock is too late.
    run(&set, &mut c, &failures("alice", 500, 1, 1));
    assert!(run(&set, &mut c, &failures("carol", 380, 5, 1)).is_empty());
    assert_eq!(c.stats().late, 5);
}

#[test]
fn replays_are_ignored() {
    let set = rules(BRUTE_FORCE);
    let mut c = Correlator::new(&set);
    let events = failures("bob", 0, 3, 1);
    run(&set, &mut c, &events);
    assert!(run(&set, &mut c, &events).is_empty());
    assert_eq!(c.stats().replays, 3);
    assert_eq!(c.entry_count(), 3);
}

#[test]
fn state_is_bounded() {
    let set = rules(BRUTE_FORCE);
    let mut c = Correlator::with_config(
        &set,
        CorrelatorConfig::default()
            .with_max_groups(32)
            .with_max_entries(4)
            .with_lateness(Duration::ZERO),
    );
    // Many users at once: the stalest groups go.
    let events: Vec<Event> = (0..100)
        .map(|i| event(4625, i, json!({"TargetUserName": format!("u{i}")})))
        .collect();
    run(&set, &mut c, &events);
    assert!(c.group_count() <= 32);
    assert!(c.stats().groups_evicted > 0);
    // A long burst: the group keeps four matches, too few for the condition.
    let c2 = &mut Correlator::with_config(&set, CorrelatorConfig::default().with_max_entries(4));
    assert!(run(&set, c2, &failures("bob", 0, 10, 1)).is_empty());
    assert_eq!(c2.stats().entries_dropped, 6);
    // Time passing expires everything.
    c.advance_to(at(10_000));
    assert_eq!(c.entry_count(), 0);
    assert_eq!(c.group_count(), 0);
}

#[test]
fn untimed_events_take_the_clock() {
    let set = rules(BRUTE_FORCE);
    let mut c = Correlator::new(&set);
    let untimed = |_: i64| {
        Event::from_fields(
            json!({"EventID": 4625, "Channel": "Security", "TargetUserName": "bob"})
                .as_object()
                .unwrap()
                .clone()
                .into_iter()
                .collect(),
            TenantId::default(),
        )
    };
    assert!(run(&set, &mut c, &[untimed(0)]).is_empty());
    assert_eq!(c.stats().untimed, 1);
    run(&set, &mut c, &failures("bob", 0, 1, 1));
    // Without record ids they cannot be told apart from replays, so all count.
    let hits = run(&set, &mut c, &(0..4).map(untimed).collect::<Vec<_>>());
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].last_seen, at(0));
    assert_eq!(c.stats().replays, 0);
}

#[test]
fn keys_identify_replays_of_events_without_record_ids() {
    let set = rules(BRUTE_FORCE);
    let mut c = Correlator::new(&set);
    let mut e = event(4625, 0, json!({"TargetUserName": "bob"}));
    e.record_id = None;
    let rule = set.find("failed").unwrap();
    for _ in 0..5 {
        assert!(c.observe_keyed(rule, &e, Some("line 1")).is_empty());
    }
    assert_eq!(c.stats().replays, 4);
    for line in 2..5 {
        assert!(
            c.observe_keyed(rule, &e, Some(&format!("line {line}")))
                .is_empty()
        );
    }
    assert_eq!(c.observe_keyed(rule, &e, Some("line 5")).len(), 1);
}

#[test]
fn unknown_rule_indices_are_ignored() {
    let set = rules(BRUTE_FORCE);
    let mut c = Correlator::new(&set);
    let e = event(4625, 0, json!({}));
    assert!(c.observe(usize::MAX, &e).is_empty());
    assert!(c.is_reported(usize::MAX));
}

#[test]
fn batches_are_sorted_before_they_are_fed() {
    let set = rules(BRUTE_FORCE);
    let rule = set.find("failed").unwrap();
    let mut events = failures("bob", 0, 5, 200); // one every 200 s: never 5 in 2 minutes
    events.extend(failures("bob", 1000, 5, 1));
    events.reverse();
    // Fed as they come, newest first and no lateness allowed: all but the first are late.
    let mut c = Correlator::with_config(
        &set,
        CorrelatorConfig::default().with_lateness(Duration::ZERO),
    );
    let plain: Vec<CorrelationHit> = events.iter().flat_map(|e| c.observe(rule, e)).collect();
    assert!(plain.is_empty());
    let mut c = Correlator::with_config(
        &set,
        CorrelatorConfig::default().with_lateness(Duration::ZERO),
    );
    let hits = c.observe_sorted(events.iter().map(|e| (rule, e)));
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].first_seen, at(1000));
    let keys: Vec<String> = (0..events.len()).map(|i| format!("k{i}")).collect();
    let mut c = Correlator::with_config(
        &set,
        CorrelatorConfig::default().with_lateness(Duration::ZERO),
    );
    let hits = c.observe_sorted_keyed(
        events
            .iter()
            .zip(&keys)
            .map(|(e, k)| (rule, e, Some(k.as_str()))),
    );
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].events[0].key.as_deref(), Some("k4"));
}

#[test]
fn group_clocks_handle_sources_years_apart() {
    let set = rules(BRUTE_FORCE);
    let rule = set.find("failed").unwrap();
    let year = 365 * 86_400;
    // Two archives read side by side, a year apart, each in order.
    let old = failures("bob", 0, 30, 10);
    let new = failures("alice", year, 30, 10);
    let interleaved: Vec<&Event> = old.iter().zip(&new).flat_map(|(a, b)| [b, a]).collect();
    let config = CorrelatorConfig::default()
        .with_lateness(Duration::from_secs(10 * year as u64))
        .with_group_clock(Duration::from_secs(60));
    let mut c = Correlator::with_config(&set, config.clone());
    let hits: Vec<CorrelationHit> = interleaved
        .iter()
        .flat_map(|e| c.observe(rule, e))
        .collect();
    let users: Vec<Option<&str>> = hits
        .iter()
        .map(|h| h.group_value("TargetUserName"))
        .collect();
    assert_eq!(users, [Some("alice"), Some("bob")]);
    // Each group keeps only its window: a timespan plus the group lateness.
    assert!(c.entry_count() <= 2 * 19, "{}", c.entry_count());
    // Late within one group is still late.
    assert!(c.observe(rule, &failures("bob", 0, 1, 1)[0]).is_empty());
    assert_eq!(c.stats().late, 1);
    // And it all survives a snapshot, given the same configuration.
    let mut d = Correlator::with_config(&set, config);
    d.restore(&c.snapshot()).unwrap();
    assert_eq!(d.entry_count(), c.entry_count());
}

#[test]
fn the_least_recently_fed_groups_are_evicted() {
    let set = rules(BRUTE_FORCE);
    let rule = set.find("failed").unwrap();
    let config = CorrelatorConfig::default()
        .with_max_groups(16)
        .with_lateness(Duration::from_secs(10 * 365 * 86_400))
        .with_group_clock(Duration::from_secs(60));
    let mut c = Correlator::with_config(&set, config);
    // An old archive's brute force, fed alongside many newer, one-off users.
    let mut hits = Vec::new();
    for i in 0..40 {
        let newer = event(
            4625,
            1_000_000 + i,
            json!({"TargetUserName": format!("u{i}")}),
        );
        hits.extend(c.observe(rule, &newer));
        let old = event(4625, i, json!({"TargetUserName": "bob"}));
        hits.extend(c.observe(rule, &old));
    }
    assert!(c.stats().groups_evicted > 0);
    assert_eq!(hits.len(), 1, "bob's group is fed all along and is kept");
    assert_eq!(hits[0].group_value("TargetUserName"), Some("bob"));
}
