//! `siren hunt` and `siren rules …` end to end.

use std::path::Path;

use serde_json::Value;

use crate::support::{json_output, shared_dir, siren};

const FAILED_LOGON_RULE: &str = r#"
title: Failed logon for a watched account
id: 0b4a7c2e-5d1f-4e55-9d8e-2f6c1a0b9e01
status: experimental
level: high
tags: [attack.credential-access, attack.t1110]
logsource: {product: windows, service: security}
detection:
  selection:
    EventID: 4625
    TargetUserName|startswith: adm
  condition: selection
siren:
  tests:
    match:
      - {EventID: 4625, Channel: Security, TargetUserName: admin}
    no_match:
      - {EventID: 4624, Channel: Security, TargetUserName: admin}
"#;

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir.join(name).parent().unwrap()).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
}

fn events_jsonl(dir: &Path) -> std::path::PathBuf {
    let line = |rid: u32, id: u32, user: &str, time: &str| {
        format!(
            r##"{{"Event":{{"System":{{"EventID":{id},"Channel":"Security","Computer":"dc01","EventRecordID":{rid},"TimeCreated":{{"#attributes":{{"SystemTime":"{time}"}}}}}},"EventData":{{"TargetUserName":"{user}"}}}}}}"##
        )
    };
    let text = [
        line(3, 4625, "administrator", "2024-05-01T10:00:03Z"),
        line(1, 4625, "admin", "2024-05-01T10:00:01Z"),
        line(2, 4624, "admin", "2024-05-01T10:00:02Z"),
        line(4, 4625, "bob", "2024-05-01T10:00:04Z"),
    ]
    .join("\n");
    write(dir, "events/logons.jsonl", &text);
    dir.join("events")
}

/// Sets a file's modification time an hour back, so that the rule cache keeps it.
fn settle(path: &Path) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    file.set_modified(past).unwrap();
}

#[test]
fn the_rule_cache_gives_the_same_timeline_and_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rules/failed.yml", FAILED_LOGON_RULE);
    settle(&dir.path().join("rules/failed.yml"));
    let events = events_jsonl(dir.path());
    let hunt = |extra: &[&str]| {
        let output = siren(dir.path())
            .args(["hunt", "--rules", "rules", "--format", "jsonl"])
            .args(extra)
            .arg(&events)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let cache = dir.path().join("rule-cache");
    let parsed = hunt(&["--no-rule-cache"]);
    assert!(!cache.exists(), "--no-rule-cache writes no cache");
    assert_eq!(parsed.lines().count(), 2, "{parsed}");
    assert_eq!(hunt(&[]), parsed, "the run that fills the cache");
    let files: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert_eq!(files.len(), 1, "one cache file");
    assert_eq!(hunt(&[]), parsed, "the run that reads the cache");
}

#[test]
fn hunt_reports_a_sorted_timeline_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rules/failed.yml", FAILED_LOGON_RULE);
    let events = events_jsonl(dir.path());
    let output = siren(dir.path())
        .args(["hunt", "--rules", "rules", "--format", "jsonl"])
        .arg(&events)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let records: Vec<_> = lines
        .iter()
        .map(|d| d["record_id"].as_i64().unwrap())
        .collect();
    assert_eq!(records, [1, 3], "sorted by time, only 4625 for adm*");
    let first = &lines[0];
    for key in [
        "rule_id",
        "rule_title",
        "level",
        "tags",
        "timestamp",
        "host",
        "channel",
        "event_id",
        "file",
        "fields",
    ] {
        assert!(
            first.get(key).is_some_and(|v| !v.is_null()),
            "{key} in {first:#}"
        );
    }
    assert_eq!(first["fields"]["TargetUserName"], "admin");
    assert_eq!(first["level"], "high");

    // CSV parses back with one row per detection; -o writes a file; --min-level filters.
    siren(dir.path())
        .args([
            "hunt", "--rules", "rules", "--format", "csv", "-o", "out.csv",
        ])
        .arg(&events)
        .assert()
        .success();
    let mut reader = csv::Reader::from_path(dir.path().join("out.csv")).unwrap();
    assert_eq!(reader.records().count(), 2);
    let critical_only = siren(dir.path())
        .args([
            "hunt",
            "--rules",
            "rules",
            "--format",
            "jsonl",
            "--min-level",
            "critical",
        ])
        .arg(&events)
        .output()
        .unwrap();
    assert!(critical_only.stdout.is_empty());
    let bad_level = siren(dir.path())
        .args(["hunt", "--rules", "rules", "--min-level", "severe"])
        .arg(&events)
        .output()
        .unwrap();
    assert_eq!(bad_level.status.code(), Some(2));
}

#[test]
fn rules_validate_lists_what_did_not_load_and_test_runs_embedded_cases() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rules/failed.yml", FAILED_LOGON_RULE);
    write(
        dir.path(),
        "rules/broken.yml",
        "title: broken\nlogsource: {product: windows}\ndetection:\n  sel:\n    Image|nosuchmodifier: x\n  condition: sel\n",
    );
    write(dir.path(), "rules/not-yaml.yml", "title: [unclosed\n");
    let (code, report) =
        json_output(siren(dir.path()).args(["rules", "validate", "rules", "--format", "json"]));
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["loaded"], 1);
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{report:#}");
    let text = serde_json::to_string(problems).unwrap();
    assert!(text.contains("nosuchmodifier"), "{text}");
    assert!(text.contains("line"), "YAML errors give a line: {text}");

    // Embedded tests pass; a rule whose test is wrong fails with exit 1.
    siren(dir.path())
        .args(["rules", "test", "rules/failed.yml"])
        .assert()
        .success();
    let wrong = FAILED_LOGON_RULE.replace(
        "TargetUserName: admin}\n    no_match",
        "TargetUserName: bob}\n    no_match",
    );
    write(dir.path(), "wrong/rule.yml", &wrong);
    let output = siren(dir.path())
        .args(["rules", "test", "wrong", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    // Matches per rule over events.
    let events = events_jsonl(dir.path());
    let (code, rows) = json_output(
        siren(dir.path())
            .args([
                "rules",
                "test",
                "rules/failed.yml",
                "--format",
                "json",
                "--events",
            ])
            .arg(&events),
    );
    assert_eq!(code, 0);
    assert_eq!(rows[0]["matches"], 2, "{rows:#}");
}

/// SigmaHQ's Windows rules over the EVTX corpus, through the CLI.
#[test]
fn hunt_over_the_corpus_with_sigmahq_rules() {
    let Some(shared) = shared_dir("hunt_over_the_corpus_with_sigmahq_rules") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let output = siren(dir.path())
        .args(["hunt", "--format", "jsonl", "--rules"])
        .arg(shared.join("corpus/sigma/rules/windows"))
        .arg(shared.join("corpus/evtx"))
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let mut previous = None;
    let mut count = 0;
    for line in stdout.lines() {
        let detection: Value = serde_json::from_str(line).unwrap();
        let time = detection["timestamp"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        assert!(
            time >= previous,
            "timeline out of order: {previous:?} then {time:?}"
        );
        previous = time;
        count += 1;
    }
    eprintln!(
        "hunt over the corpus: {count} detections; {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    assert!(count > 4000, "{count} detections");
}
