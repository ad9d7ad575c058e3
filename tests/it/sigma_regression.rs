//! The Sigma engine against reality: SigmaHQ's regression cases, the load rate over SigmaHQ's
//! rule folders, and the exact detections over the EVTX corpus — all through the production
//! matcher ([`RuleSet::for_each_match`], which `rule_matches` runs too).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use siren_core::hunt::{HuntOptions, hunt};
use siren_core::normalize::{self, Diagnostic, EventSink, Input, Quiet, ReadOptions};
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

/// The reviewed detections of SigmaHQ's Windows rules over the EVTX corpus: one
/// `rule id<TAB>file under corpus/evtx<TAB>record id` per line, sorted.
const EXPECTED_CORPUS_KEYS: &str = "tests/expected/sigma-windows-evtx.keys";

/// `siren hunt corpus/evtx --rules corpus/sigma/rules/windows` through the library call the CLI
/// makes (the production matcher: log-source buckets, prefilter, channel fallback), pinned to
/// the exact set of (rule, file, record) keys in [`EXPECTED_CORPUS_KEYS`]. A change shows as the
/// keys added and removed; `SIREN_BLESS=1` writes the new set, to be reviewed and explained in
/// the commit that changes it.
#[test]
fn sigma_windows_rules_over_the_evtx_corpus() {
    let Some(shared) = shared_dir("sigma_windows_rules_over_the_evtx_corpus") else {
        return;
    };
    let corpus = shared.join("corpus");
    let evtx = corpus.join("evtx");
    let (set, diagnostics) = RuleSet::load(
        &[corpus.join("sigma/rules/windows")],
        &LoadOptions::default(),
    );
    let (inputs, _) = normalize::expand_inputs(std::slice::from_ref(&evtx));
    let started = Instant::now();
    let mut keys = BTreeSet::new();
    let mut events_hit = HashSet::new();
    let summary = hunt(
        &inputs,
        &set,
        &HuntOptions::default(),
        &Quiet,
        |detection| {
            let rule = &set.rules()[detection.rule];
            let file = Path::new(&*detection.file)
                .strip_prefix(&evtx)
                .expect("a file of the corpus")
                .to_string_lossy()
                .replace('\\', "/");
            let record = detection.event.record_id.unwrap_or(-1);
            let id = rule
                .id
                .as_ref()
                .map_or(rule.title.as_str(), |id| id.as_str());
            events_hit.insert((file.clone(), record));
            keys.insert(format!("{id}\t{file}\t{record}"));
        },
        |_| {},
    );
    println!(
        "sigma hunt (rules/windows: {} loaded, {} not): {} detections on {} of {} events \
         (Chainsaw 2.16: 4,697 detections on 4,439 events) in {:.2?}",
        set.len(),
        diagnostics.len(),
        keys.len(),
        events_hit.len(),
        summary.events,
        started.elapsed(),
    );
    let expected_path = crate::support::workspace_root().join(EXPECTED_CORPUS_KEYS);
    if std::env::var_os("SIREN_BLESS").is_some() {
        let text: String = keys.iter().map(|key| format!("{key}\n")).collect();
        std::fs::write(&expected_path, text).unwrap();
        println!("wrote {} keys to {EXPECTED_CORPUS_KEYS}", keys.len());
        return;
    }
    let expected_text = std::fs::read_to_string(&expected_path)
        .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
    let expected: BTreeSet<String> = expected_text.lines().map(str::to_owned).collect();
    let added: Vec<&String> = keys.difference(&expected).collect();
    let removed: Vec<&String> = expected.difference(&keys).collect();
    let show = |keys: &[&String]| -> String {
        let mut text: String = keys.iter().take(40).map(|k| format!("\n    {k}")).collect();
        if keys.len() > 40 {
            text.push_str(&format!("\n    … and {} more", keys.len() - 40));
        }
        text
    };
    assert!(
        added.is_empty() && removed.is_empty(),
        "the corpus detections differ from {EXPECTED_CORPUS_KEYS} ({} expected, {} found):\n  \
         added {}:{}\n  removed {}:{}\nIf the change is intended, run the test with \
         SIREN_BLESS=1 and explain it in the commit.",
        expected.len(),
        keys.len(),
        added.len(),
        show(&added),
        removed.len(),
        show(&removed),
    );
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
