//! `siren hunt` with Sigma correlation rules end to end: hits as timeline lines in every
//! format, building-block rules silent unless `generate: true`, the same hits whatever the
//! order of the inputs, `--no-correlations`, and Hayabusa's rules over the corpus agreeing
//! with `siren ingest`.

use std::path::Path;

use serde_json::Value;

use crate::support::{json_output, shared_dir, siren, stdout_of_success};

/// Two detection rules (failed and successful logons) and two correlations over them: an
/// `event_count` (three failures of one account within a minute) and a `temporal` one
/// (failures and a success of one account within two minutes). `GENERATE` is replaced by the
/// temporal correlation's `generate` value.
const RULES: &str = r#"
title: Failed logon
id: 6f1c0e52-0c1a-4a53-9a0e-6f0d1c2b3a01
name: failed_logon
level: low
logsource: {product: windows, service: security}
detection:
  selection: {EventID: 4625}
  condition: selection
---
title: Successful logon
id: 6f1c0e52-0c1a-4a53-9a0e-6f0d1c2b3a02
name: successful_logon
level: informational
logsource: {product: windows, service: security}
detection:
  selection: {EventID: 4624}
  condition: selection
---
title: Brute force
id: 6f1c0e52-0c1a-4a53-9a0e-6f0d1c2b3a03
level: high
tags: [attack.credential-access]
correlation:
  type: event_count
  rules: [failed_logon]
  group-by: [TargetUserName]
  timespan: 1m
  condition: {gte: 3}
---
title: Logon after failures
id: 6f1c0e52-0c1a-4a53-9a0e-6f0d1c2b3a04
level: critical
correlation:
  type: temporal
  rules: [failed_logon, successful_logon]
  group-by: [TargetUserName]
  timespan: 2m
  generate: GENERATE
"#;

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir.join(name).parent().unwrap()).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
}

/// One Security event in the `evtx` crate's JSON shape.
fn event(record: u32, id: u32, user: &str, time: &str) -> String {
    format!(
        r##"{{"Event":{{"System":{{"EventID":{id},"Channel":"Security","Computer":"dc01","EventRecordID":{record},"TimeCreated":{{"#attributes":{{"SystemTime":"2024-05-01T{time}Z"}}}}}},"EventData":{{"TargetUserName":"{user}"}}}}}}"##
    )
}

/// Bob's three failures and his success are spread over two files; Alice fails once and
/// logs on only five minutes later.
fn fixture(dir: &Path, generate: bool) {
    write(
        dir,
        "rules/logons.yml",
        &RULES.replace("GENERATE", if generate { "true" } else { "false" }),
    );
    let a = [
        event(1, 4625, "bob", "10:00:00"),
        event(2, 4625, "alice", "10:00:05"),
        event(5, 4624, "bob", "10:00:40"),
    ];
    let b = [
        event(3, 4625, "bob", "10:00:10"),
        event(4, 4625, "bob", "10:00:20"),
        event(6, 4624, "alice", "10:05:00"),
    ];
    write(dir, "events/a.jsonl", &a.join("\n"));
    write(dir, "events/b.jsonl", &b.join("\n"));
}

/// Runs `siren hunt --rules rules` with `args`, in `dir`; returns stdout.
fn hunt(dir: &Path, args: &[&str]) -> String {
    stdout_of_success(siren(dir).args(["hunt", "--rules", "rules"]).args(args))
}

const BRUTE_FORCE: &str = concat!(
    r#"{"timestamp":"2024-05-01T10:00:20Z","rule_id":"6f1c0e52-0c1a-4a53-9a0e-6f0d1c2b3a03","#,
    r#""rule_title":"Brute force","level":"high","tags":["attack.credential-access"],"#,
    r#""host":"dc01","file":null,"correlation":{"type":"event_count","#,
    r#""group":{"TargetUserName":"bob"},"timespan":"1m","first_seen":"2024-05-01T10:00:00Z","#,
    r#""last_seen":"2024-05-01T10:00:20Z","value":3,"matches":3,"events":["#,
    r#"{"file":"events/a.jsonl","record_id":1,"index":1,"timestamp":"2024-05-01T10:00:00Z","host":"dc01"},"#,
    r#"{"file":"events/b.jsonl","record_id":3,"index":1,"timestamp":"2024-05-01T10:00:10Z","host":"dc01"},"#,
    r#"{"file":"events/b.jsonl","record_id":4,"index":2,"timestamp":"2024-05-01T10:00:20Z","host":"dc01"}"#,
    r#"],"events_omitted":0}}"#
);

const LOGON_AFTER_FAILURES: &str = concat!(
    r#"{"timestamp":"2024-05-01T10:00:40Z","rule_id":"6f1c0e52-0c1a-4a53-9a0e-6f0d1c2b3a04","#,
    r#""rule_title":"Logon after failures","level":"critical","tags":[],"#,
    r#""host":"dc01","file":null,"correlation":{"type":"temporal","#,
    r#""group":{"TargetUserName":"bob"},"timespan":"2m","first_seen":"2024-05-01T10:00:00Z","#,
    r#""last_seen":"2024-05-01T10:00:40Z","value":2,"matches":4,"events":["#,
    r#"{"file":"events/a.jsonl","record_id":1,"index":1,"timestamp":"2024-05-01T10:00:00Z","host":"dc01"},"#,
    r#"{"file":"events/b.jsonl","record_id":3,"index":1,"timestamp":"2024-05-01T10:00:10Z","host":"dc01"},"#,
    r#"{"file":"events/b.jsonl","record_id":4,"index":2,"timestamp":"2024-05-01T10:00:20Z","host":"dc01"},"#,
    r#"{"file":"events/a.jsonl","record_id":5,"index":3,"timestamp":"2024-05-01T10:00:40Z","host":"dc01"}"#,
    r#"],"events_omitted":0}}"#
);

#[test]
fn hunt_correlation_hits_are_timeline_lines_and_building_blocks_stay_silent() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path(), false);
    let both = ["--format", "jsonl", "events/a.jsonl", "events/b.jsonl"];
    let jsonl = hunt(dir.path(), &both);
    assert_eq!(jsonl, format!("{BRUTE_FORCE}\n{LOGON_AFTER_FAILURES}\n"));

    // JSON: the same objects in an array.
    let (code, array) = json_output(
        siren(dir.path()).args(["hunt", "--rules", "rules", "--format", "json", "events"]),
    );
    assert_eq!(code, 0);
    let expected: Vec<Value> = [BRUTE_FORCE, LOGON_AFTER_FAILURES]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(array, Value::Array(expected));

    // CSV: a `correlation` column with the group, the value and the records by file.
    let csv = hunt(dir.path(), &["--format", "csv", "events"]);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header.last().map(String::as_str), Some("correlation"));
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][2], "Brute force");
    assert_eq!(
        rows[0].last().unwrap(),
        "TargetUserName=bob; event_count 3 in 1m; 3 matches: events/a.jsonl #1, events/b.jsonl #3 #4"
    );
    assert_eq!(
        rows[1].last().unwrap(),
        "TargetUserName=bob; temporal 2 in 2m; 4 matches: events/a.jsonl #1, events/b.jsonl #3 #4, events/a.jsonl #5"
    );

    // The table: the same cell under a `correlation` header.
    let table = hunt(dir.path(), &["events"]);
    assert!(table.contains("correlation"), "{table}");
    assert!(table.contains("Logon after failures"), "{table}");
    assert!(table.contains("event_count 3 in 1m"), "{table}");
}

#[test]
fn hunt_correlations_do_not_depend_on_the_order_of_the_inputs() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path(), false);
    let forward = hunt(
        dir.path(),
        &["--format", "jsonl", "events/a.jsonl", "events/b.jsonl"],
    );
    for args in [
        &["--format", "jsonl", "events/b.jsonl", "events/a.jsonl"][..],
        &[
            "--format",
            "jsonl",
            "--threads",
            "1",
            "events/b.jsonl",
            "events/a.jsonl",
        ],
        &[
            "--format",
            "jsonl",
            "--threads",
            "2",
            "events/a.jsonl",
            "events/b.jsonl",
        ],
    ] {
        assert_eq!(hunt(dir.path(), args), forward, "{args:?}");
    }
    // A copy of a log read as well counts its records once.
    std::fs::create_dir_all(dir.path().join("copy")).unwrap();
    std::fs::copy(
        dir.path().join("events/a.jsonl"),
        dir.path().join("copy/a.jsonl"),
    )
    .unwrap();
    let with_copy = hunt(
        dir.path(),
        &[
            "--format",
            "jsonl",
            "copy/a.jsonl",
            "events/b.jsonl",
            "events/a.jsonl",
        ],
    );
    let values = |text: &str| -> Vec<(Value, Value)> {
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .map(|v| (v["rule_title"].clone(), v["correlation"]["value"].clone()))
            .collect()
    };
    assert_eq!(values(&with_copy), values(&forward));
    assert!(
        with_copy.contains("copy/a.jsonl"),
        "the first input by name is named: {with_copy}"
    );
}

#[test]
fn hunt_generate_true_and_no_correlations_print_the_detections() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path(), false);
    let titles = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .map(|v| v["rule_title"].as_str().unwrap().to_owned())
            .collect()
    };
    // --no-correlations: every detection, no hit, no correlation column.
    let plain = hunt(
        dir.path(),
        &["--format", "jsonl", "--no-correlations", "events"],
    );
    assert_eq!(
        titles(&plain),
        [
            "Failed logon",
            "Failed logon",
            "Failed logon",
            "Failed logon",
            "Successful logon",
            "Successful logon"
        ]
    );
    assert!(plain.lines().all(|l| !l.contains("\"correlation\"")));
    let csv = hunt(
        dir.path(),
        &["--format", "csv", "--no-correlations", "events"],
    );
    assert!(csv.starts_with("\"timestamp\""), "{csv}");
    assert!(
        !csv.lines().next().unwrap().contains("correlation"),
        "{csv}"
    );

    // generate: true on the temporal correlation keeps both its rules' detections.
    fixture(dir.path(), true);
    let generated = hunt(dir.path(), &["--format", "jsonl", "events"]);
    let got = titles(&generated);
    assert_eq!(
        got,
        [
            "Failed logon",
            "Failed logon",
            "Failed logon",
            "Failed logon",
            "Brute force",
            "Successful logon",
            "Logon after failures",
            "Successful logon"
        ],
        "{generated}"
    );
    assert_eq!(
        plain.lines().collect::<Vec<_>>(),
        generated
            .lines()
            .filter(|l| !l.contains("\"correlation\""))
            .collect::<Vec<_>>()
    );

    // --min-level applies to the hits too.
    let critical = hunt(
        dir.path(),
        &["--format", "jsonl", "--min-level", "critical", "events"],
    );
    assert_eq!(titles(&critical), ["Logon after failures"]);
}

/// Every EVTX file under `dir`, sorted.
fn evtx_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(evtx_files(&path));
        } else if path.extension().is_some_and(|e| e == "evtx") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Hayabusa's correlation rules over the corpus: the hunt raises PW Guessing and PW Spray for
/// the groups `siren ingest` raises, whatever the order of the files.
#[test]
fn hunt_hayabusa_correlations_over_the_corpus_match_ingest() {
    let Some(shared) = shared_dir("hunt_hayabusa_correlations_over_the_corpus_match_ingest") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rules = shared.join("corpus/hayabusa-correlation");
    let files = evtx_files(&shared.join("corpus/evtx"));
    assert!(files.len() > 100, "{} files", files.len());
    let run = |files: &[std::path::PathBuf]| -> String {
        stdout_of_success(
            siren(dir.path())
                .args(["hunt", "--format", "jsonl", "--rules"])
                .arg(&rules)
                .args(files),
        )
    };
    let timeline = run(&files);
    let hits: Vec<Value> = timeline
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    eprintln!("hunt with Hayabusa's correlations: {timeline}");
    // Every line is a hit: the failed logons are building blocks (`generate: false`).
    assert!(hits.iter().all(|h| h.get("correlation").is_some()));
    let group_of = |title: &str| -> Vec<&Value> {
        hits.iter()
            .filter(|h| h["rule_title"] == title)
            .map(|h| &h["correlation"]["group"])
            .collect()
    };
    let guessing = group_of("PW Guessing");
    assert_eq!(guessing.len(), 1, "{timeline}");
    assert_eq!(guessing[0]["TargetUserName"], "Administrator");
    assert_eq!(guessing[0]["IpAddress"], "192.168.198.149");
    let spray = group_of("PW Spray");
    assert_eq!(spray.len(), 1, "{timeline}");
    assert_eq!(spray[0]["IpAddress"], "172.16.144.128");
    for hit in &hits {
        let detail = &hit["correlation"];
        assert!(detail["value"].as_u64().unwrap() >= 5, "{hit}");
        let events = detail["events"].as_array().unwrap();
        assert_eq!(events.len(), detail["matches"].as_u64().unwrap() as usize);
        assert!(events.iter().all(|e| e["record_id"].is_i64()), "{hit}");
    }

    // Both halves in one run, in either order or reversed file by file: the same timeline.
    let (first, second) = files.split_at(files.len() / 2);
    let swapped: Vec<_> = second.iter().chain(first).cloned().collect();
    assert_eq!(run(&swapped), timeline, "halves swapped");
    let reversed: Vec<_> = files.iter().rev().cloned().collect();
    assert_eq!(run(&reversed), timeline, "files reversed");

    // `siren ingest` with the same rules opens one incident per hit, on the same groups and
    // at the same times.
    let ingest = siren(dir.path())
        .args(["ingest", "--format", "json", "--rules"])
        .arg(&rules)
        .args(&files)
        .output()
        .unwrap();
    assert_eq!(ingest.status.code(), Some(0), "{ingest:?}");
    let (code, incidents) =
        json_output(siren(dir.path()).args(["incidents", "list", "--format", "json"]));
    assert_eq!(code, 0);
    let mut from_ingest: Vec<(String, String)> = incidents
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let rule = i["title"].as_str().unwrap().split(" — ").next().unwrap();
            (rule.to_owned(), i["group_key"].as_str().unwrap().to_owned())
        })
        .collect();
    let mut from_hunt: Vec<(String, String)> = hits
        .iter()
        .map(|h| {
            let group = h["correlation"]["group"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(f, v)| format!("{f}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(", ");
            (h["rule_title"].as_str().unwrap().to_owned(), group)
        })
        .collect();
    from_ingest.sort();
    from_hunt.sort();
    assert_eq!(from_hunt, from_ingest);
}
