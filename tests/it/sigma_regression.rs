//! The Sigma engine against reality: SigmaHQ's regression cases, the load rate over SigmaHQ's
//! rule folders, and the detection count over the EVTX corpus.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use siren_core::normalize::{self, Diagnostic, EventSink, Input, ReadOptions};
use siren_core::rules::{LoadOptions, RuleKind, RuleSet};
use siren_core::{Event, Fields, TenantId};

use crate::support::shared_dir;

#[derive(Default)]
struct Collect {
    events: Vec<Event>,
    diagnostics: Vec<Diagnostic>,
}

impl EventSink for Collect {
    fn event(&mut self, event: Event) -> ControlFlow<()> {
        self.events.push(event);
        ControlFlow::Continue(())
    }
    fn diagnostic(&mut self, diagnostic: Diagnostic) -> ControlFlow<()> {
        self.diagnostics.push(diagnostic);
        ControlFlow::Continue(())
    }
}

fn read_events(path: &Path) -> Vec<Event> {
    let mut sink = Collect::default();
    normalize::read_input(
        &Input::File(path.to_owned()),
        &ReadOptions::default(),
        &mut sink,
    );
    assert!(
        sink.diagnostics.is_empty(),
        "{}: {:?}",
        path.display(),
        sink.diagnostics
    );
    sink.events
}

/// Raw text logs (one event per line): the line is the event's `Message`.
fn read_raw_lines(path: &Path) -> Vec<Event> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut fields = Fields::default();
            fields.insert("Message".into(), line.into());
            Event::from_fields(fields, TenantId::default())
        })
        .collect()
}

fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == ext) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Rule id → rule file, over every rule folder of the corpus.
fn rule_index(sigma: &Path) -> HashMap<String, PathBuf> {
    let mut index = HashMap::new();
    for file in files_with_ext(sigma, "yml") {
        if file.starts_with(sigma.join("regression")) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for line in text.lines() {
            if let Some(id) = line.strip_prefix("id: ") {
                index
                    .entry(id.trim().trim_matches(['\'', '"']).to_owned())
                    .or_insert_with(|| file.clone());
            }
        }
    }
    index
}

struct Case {
    folder: PathBuf,
    rule_id: String,
    match_count: usize,
}

fn parse_case(info: &Path) -> Case {
    let text = std::fs::read_to_string(info).unwrap();
    let mut rule_id = String::new();
    let mut match_count = 1;
    let mut in_metadata = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') {
            continue;
        }
        if line.starts_with("rule_metadata:") {
            in_metadata = true;
        } else if !line.starts_with(' ') {
            in_metadata = false;
        }
        if in_metadata
            && rule_id.is_empty()
            && let Some(id) = trimmed.strip_prefix("- id: ")
        {
            rule_id = id.trim().to_owned();
        }
        if let Some(n) = trimmed.strip_prefix("match_count: ") {
            match_count = n.trim().parse().unwrap();
        }
    }
    Case {
        folder: info.parent().unwrap().to_owned(),
        rule_id,
        match_count,
    }
}

/// The rule file for a case: by id, else by the case's folder path mirrored in the rules.
fn rule_file(sigma: &Path, index: &HashMap<String, PathBuf>, case: &Case) -> Option<PathBuf> {
    if let Some(file) = index.get(&case.rule_id) {
        return Some(file.clone());
    }
    let relative = case
        .folder
        .strip_prefix(sigma.join("regression"))
        .ok()?
        .to_owned();
    let candidate = sigma.join(relative).with_extension("yml");
    candidate.is_file().then_some(candidate)
}

fn count_matches(set: &RuleSet, rule: usize, events: &[Event]) -> usize {
    events.iter().filter(|e| set.rule_matches(rule, e)).count()
}

#[test]
fn sigma_regression_cases_all_pass() {
    let Some(shared) = shared_dir("sigma_regression_cases_all_pass") else {
        return;
    };
    let sigma = shared.join("corpus/sigma");
    let index = rule_index(&sigma);
    let cases: Vec<Case> = files_with_ext(&sigma.join("regression"), "yml")
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "info.yml"))
        .map(|p| parse_case(p))
        .collect();
    assert!(cases.len() >= 120, "only {} cases", cases.len());
    let options = LoadOptions::default();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.folder.display().to_string();
        let Some(file) = rule_file(&sigma, &index, case) else {
            failures.push(format!("{name}: rule {} not found", case.rule_id));
            continue;
        };
        let (set, diagnostics) = RuleSet::load(&[&file], &options);
        if !diagnostics.is_empty() {
            failures.push(format!("{name}: rule not loaded: {}", diagnostics[0]));
            continue;
        }
        let Some(rule) = set.find(&case.rule_id) else {
            failures.push(format!("{name}: rule {} not in its file", case.rule_id));
            continue;
        };
        let evtx = files_with_ext(&case.folder, "evtx");
        if evtx.is_empty() {
            // Raw text cases (one log line per line).
            let raw = files_with_ext(&case.folder, "raw");
            let hits: usize = raw
                .iter()
                .map(|f| count_matches(&set, rule, &read_raw_lines(f)))
                .sum();
            if raw.is_empty() || hits < case.match_count {
                failures.push(format!(
                    "{name}: {hits} matches in raw lines, expected {}",
                    case.match_count
                ));
            }
            continue;
        }
        let evtx_hits: usize = evtx
            .iter()
            .map(|f| count_matches(&set, rule, &read_events(f)))
            .sum();
        if evtx_hits < case.match_count {
            failures.push(format!(
                "{name}: {evtx_hits} matches in the EVTX, expected at least {}",
                case.match_count
            ));
            continue;
        }
        let json_hits: usize = files_with_ext(&case.folder, "json")
            .iter()
            .map(|f| count_matches(&set, rule, &read_events(f)))
            .sum();
        if json_hits != evtx_hits {
            failures.push(format!(
                "{name}: {json_hits} matches in the JSON rendering, {evtx_hits} in the EVTX"
            ));
        }
    }
    let passed = cases.len() - failures.len();
    println!(
        "sigma regression: {passed}/{} cases pass ({:.1}%)",
        cases.len(),
        100.0 * passed as f64 / cases.len() as f64
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn sigma_rule_folders_load() {
    let Some(shared) = shared_dir("sigma_rule_folders_load") else {
        return;
    };
    let sigma = shared.join("corpus/sigma");
    let folders = [
        sigma.join("rules"),
        sigma.join("rules-emerging-threats"),
        sigma.join("rules-threat-hunting"),
    ];
    let started = Instant::now();
    let (set, diagnostics) = RuleSet::load(&folders, &LoadOptions::default());
    let elapsed = started.elapsed();
    let total = set.len() + diagnostics.len();
    let rate = set.len() as f64 / total as f64;
    println!(
        "sigma load: {} of {total} rules loaded ({:.2}%) in {:.2?}",
        set.len(),
        100.0 * rate,
        elapsed
    );
    for d in &diagnostics {
        println!("  not loaded: {d}");
        // Every reason names the rule or file and the construct.
        assert!(!d.error.to_string().is_empty());
    }
    assert!(set.len() > 3000, "only {} rules", set.len());
    assert!(rate >= 0.995, "load rate {:.2}% below 99.5%", 100.0 * rate);
}

#[test]
fn sigma_windows_rules_over_the_evtx_corpus() {
    let Some(shared) = shared_dir("sigma_windows_rules_over_the_evtx_corpus") else {
        return;
    };
    let corpus = shared.join("corpus");
    let (set, diagnostics) = RuleSet::load(
        &[corpus.join("sigma/rules/windows")],
        &LoadOptions::default(),
    );
    let (inputs, _) = normalize::expand_inputs(&[corpus.join("evtx")]);
    let started = Instant::now();
    let mut all = Vec::new();
    for input in inputs
        .iter()
        .filter(|i| matches!(i, Input::File(p) if p.extension().is_some_and(|e| e == "evtx")))
    {
        let mut sink = Collect::default();
        normalize::read_input(input, &ReadOptions::default(), &mut sink);
        all.extend(sink.events);
    }
    let parse = started.elapsed();
    let started = Instant::now();
    let mut detections = 0usize;
    let mut events_hit = 0usize;
    for event in &all {
        let before = detections;
        set.for_each_match(event, |_| detections += 1);
        if detections > before {
            events_hit += 1;
        }
    }
    let matching = started.elapsed();
    println!(
        "sigma hunt (rules/windows: {} loaded, {} not): {detections} detections on {events_hit} \
         of {} events (Chainsaw 2.16: 4,697 detections on 4,439 events); reading {parse:.2?}, \
         matching {matching:.2?} ({:.0} events/s)",
        set.len(),
        diagnostics.len(),
        all.len(),
        all.len() as f64 / matching.as_secs_f64()
    );
    assert!(detections > 0);
}

#[test]
fn sigma_hayabusa_correlation_rules_load() {
    let Some(shared) = shared_dir("sigma_hayabusa_correlation_rules_load") else {
        return;
    };
    let (set, diagnostics) = RuleSet::load(
        &[shared.join("corpus/hayabusa-correlation")],
        &LoadOptions::default(),
    );
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    let correlations: Vec<_> = set.correlations().collect();
    assert!(correlations.len() >= 3, "{}", correlations.len());
    for (rule, correlation) in correlations {
        for reference in &correlation.rules {
            let target = set.find(reference).expect("referenced rule loaded");
            assert!(
                matches!(set.rules()[target].kind, RuleKind::Detection),
                "{}: {reference}",
                rule.title
            );
        }
        assert!(correlation.timespan.as_secs() > 0);
    }
}
