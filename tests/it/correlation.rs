//! Sigma correlation over the real EVTX corpus: Hayabusa's three correlation rules, loaded
//! unchanged, fire once for the groups Hayabusa reports, in one pass and split over two runs.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::Path;

use siren_core::Event;
use siren_core::correlation::{CorrelationHit, Correlator, CorrelatorConfig};
use siren_core::normalize::{self, Diagnostic, EventSink, ReadOptions};
use siren_core::rules::{LoadOptions, RuleSet};

use crate::support::shared_dir;

/// One detection: the rule, the event and the caller's key for it (file and record).
struct Detection {
    rule: usize,
    event: Event,
    key: String,
}

/// Matches every event of the corpus, keeping the detections.
struct MatchSink<'r> {
    rules: &'r RuleSet,
    file: String,
    detections: Vec<Detection>,
    events: u64,
}

impl EventSink for MatchSink<'_> {
    fn event(&mut self, event: Event) -> ControlFlow<()> {
        self.events += 1;
        let mut matched = Vec::new();
        self.rules.for_each_match(&event, |rule| matched.push(rule));
        for rule in matched {
            let key = format!("{}#{}", self.file, event.record_id.unwrap_or(-1));
            self.detections.push(Detection {
                rule,
                event: event.clone(),
                key,
            });
        }
        ControlFlow::Continue(())
    }
    fn diagnostic(&mut self, _diagnostic: Diagnostic) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
}

/// The detections of `rules` over the EVTX corpus, sorted by event time (as a pipeline
/// feeds a correlator), and the number of events read.
fn detections_sorted(rules: &RuleSet, evtx: &Path) -> (Vec<Detection>, u64) {
    let (inputs, _) = normalize::expand_inputs(&[evtx]);
    let mut sink = MatchSink {
        rules,
        file: String::new(),
        detections: Vec::new(),
        events: 0,
    };
    for input in &inputs {
        let name = input.name();
        sink.file = Path::new(&name)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or(name);
        normalize::read_input(input, &ReadOptions::default(), &mut sink);
    }
    let mut detections = sink.detections;
    detections.sort_by_key(|d| d.event.timestamp);
    (detections, sink.events)
}

/// The same detections in the order the files were read (archives of different years one
/// after the other), each file in its own order.
fn detections_in_file_order(rules: &RuleSet, evtx: &Path) -> Vec<Detection> {
    let (mut detections, _) = detections_sorted(rules, evtx);
    detections.sort_by(|a, b| {
        let file = |d: &Detection| d.key.split('#').next().unwrap_or("").to_owned();
        file(a)
            .cmp(&file(b))
            .then(a.event.record_id.cmp(&b.event.record_id))
    });
    detections
}

fn feed(correlator: &mut Correlator, detections: &[Detection]) -> Vec<CorrelationHit> {
    let mut hits = Vec::new();
    for d in detections {
        hits.extend(correlator.observe_keyed(d.rule, &d.event, Some(&d.key)));
    }
    hits
}

/// Hits counted by correlation title and group.
fn by_group(hits: &[CorrelationHit]) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for hit in hits {
        let group = hit
            .group
            .iter()
            .map(|(f, v)| format!("{f}={}", v.as_deref().unwrap_or("∅")))
            .collect::<Vec<_>>()
            .join(" ");
        *counts.entry((hit.title.clone(), group)).or_insert(0) += 1;
    }
    counts
}

fn hits_for<'h>(
    hits: &'h [CorrelationHit],
    title: &str,
    group: &[(&str, &str)],
) -> Vec<&'h CorrelationHit> {
    hits.iter()
        .filter(|h| {
            h.title == title
                && group
                    .iter()
                    .all(|(field, value)| h.group_value(field) == Some(value))
        })
        .collect()
}

#[test]
fn correlation_hayabusa_rules_fire_once_per_group_on_the_corpus() {
    let Some(shared) = shared_dir("correlation_hayabusa_rules_fire_once_per_group_on_the_corpus")
    else {
        return;
    };
    let (rules, diagnostics) = RuleSet::load(
        &[shared.join("corpus/hayabusa-correlation")],
        &LoadOptions::default(),
    );
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    let (detections, events) = detections_sorted(&rules, &shared.join("corpus/evtx"));
    let mut correlator = Correlator::new(&rules);
    assert!(
        correlator.problems().is_empty(),
        "{:?}",
        correlator.problems()
    );
    assert_eq!(correlator.len(), 3);
    let hits = feed(&mut correlator, &detections);
    let counts = by_group(&hits);
    eprintln!(
        "correlation: {events} events, {} detections, {} hits: {counts:#?}\n{:?}",
        detections.len(),
        hits.len(),
        correlator.stats()
    );

    // PW Guessing: Administrator from 192.168.198.149 on DESKTOP-M5SN04R.
    let guessing = hits_for(
        &hits,
        "PW Guessing",
        &[
            ("TargetUserName", "Administrator"),
            ("IpAddress", "192.168.198.149"),
        ],
    );
    assert_eq!(guessing.len(), 1, "{counts:#?}");
    let hit = guessing[0];
    assert!(hit.value >= 5.0);
    assert!(hit.reported);
    assert!(
        hit.events.iter().all(|e| {
            e.host.as_deref() == Some("DESKTOP-M5SN04R")
                && e.key
                    .as_deref()
                    .is_some_and(|k| k.starts_with("smb-password-guessing-security.evtx#"))
        }),
        "{:#?}",
        hit.events
    );

    // PW Spray: 172.16.144.128 on DESKTOP-JR78RLP.
    let spray = hits_for(
        &hits,
        "PW Spray",
        &[
            ("IpAddress", "172.16.144.128"),
            ("Computer", "DESKTOP-JR78RLP"),
        ],
    );
    assert_eq!(spray.len(), 1, "{counts:#?}");
    let hit = spray[0];
    assert!(hit.value >= 5.0);
    assert!(
        hit.events.iter().all(|e| e
            .key
            .as_deref()
            .is_some_and(|k| k.starts_with("password-spray.evtx#"))),
        "{:#?}",
        hit.events
    );

    // Fire once per episode: no group of any rule fires twice within one timespan.
    for (group, count) in &counts {
        let same: Vec<&CorrelationHit> = hits
            .iter()
            .filter(|h| by_group(std::slice::from_ref(h)).contains_key(group))
            .collect();
        for pair in same.windows(2) {
            assert!(
                pair[1].last_seen - pair[0].last_seen > chrono::TimeDelta::minutes(5),
                "{group:?} fired {count} times within one timespan"
            );
        }
    }
    // The referenced detection rules are building blocks (no `generate`).
    for (_, correlation) in rules.correlations() {
        for reference in &correlation.rules {
            let index = rules.find(reference).unwrap();
            assert!(!correlator.is_reported(index), "{reference}");
        }
    }
}

#[test]
fn correlation_state_split_over_two_runs_gives_the_same_hits() {
    let Some(shared) = shared_dir("correlation_state_split_over_two_runs_gives_the_same_hits")
    else {
        return;
    };
    let (rules, _) = RuleSet::load(
        &[shared.join("corpus/hayabusa-correlation")],
        &LoadOptions::default(),
    );
    let (detections, _) = detections_sorted(&rules, &shared.join("corpus/evtx"));
    let one_pass = feed(&mut Correlator::new(&rules), &detections);
    assert!(!one_pass.is_empty());

    // Split in the middle of the brute force itself, and at the half of all detections.
    let guessing = detections
        .iter()
        .position(|d| d.key.starts_with("smb-password-guessing-security.evtx#"))
        .unwrap();
    for split in [guessing + 2, detections.len() / 2] {
        let mut first = Correlator::new(&rules);
        let mut hits = feed(&mut first, &detections[..split]);
        let saved = first.snapshot();
        drop(first);
        let mut second = Correlator::new(&rules);
        let report = second.restore(&saved).unwrap();
        assert!(report.dropped.is_empty());
        hits.extend(feed(&mut second, &detections[split..]));
        assert_eq!(hits, one_pass, "split at {split} of {}", detections.len());
        eprintln!(
            "correlation split at {split}: state of {} bytes, {} hits",
            saved.len(),
            hits.len()
        );
        // Feeding the second half again (a re-run of the same file) fires nothing new.
        assert!(feed(&mut second, &detections[split..]).is_empty());
    }
}

#[test]
fn correlation_group_clocks_fire_the_same_groups_when_files_come_in_any_order() {
    let Some(shared) = shared_dir("correlation_group_clocks_fire_the_same_groups") else {
        return;
    };
    let (rules, _) = RuleSet::load(
        &[shared.join("corpus/hayabusa-correlation")],
        &LoadOptions::default(),
    );
    let detections = detections_in_file_order(&rules, &shared.join("corpus/evtx"));
    let config = CorrelatorConfig::default()
        .with_lateness(std::time::Duration::from_secs(10 * 365 * 86_400))
        .with_group_clock(std::time::Duration::from_secs(600));
    let mut correlator = Correlator::with_config(&rules, config);
    let hits = feed(&mut correlator, &detections);
    let counts = by_group(&hits);
    eprintln!(
        "correlation in file order: {counts:#?}\n{:?}",
        correlator.stats()
    );
    let (sorted, _) = detections_sorted(&rules, &shared.join("corpus/evtx"));
    let expected = by_group(&feed(&mut Correlator::new(&rules), &sorted));
    assert_eq!(counts, expected);
    assert_eq!(correlator.stats().late, 0);
}
