//! From events to incidents through the CLI: detection, correlation, grouping, and an
//! analyst's workflow (users, assign, status, notes, audit).

use std::io::Write;
use std::path::Path;

use serde_json::Value;

use crate::support::{json_output, shared_dir, siren};

fn incidents(dir: &Path, db: &str) -> Vec<Value> {
    let (code, list) = json_output(siren(dir).args([
        "--db",
        db,
        "incidents",
        "list",
        "--limit",
        "1000",
        "--format",
        "json",
    ]));
    assert_eq!(code, 0);
    list.as_array().unwrap().clone()
}

fn has(incident: &Value, key: &str, value: &str) -> bool {
    incident[key].as_array().is_some_and(|a| {
        a.iter()
            .any(|v| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(value)))
    })
}

/// Incidents that a correlation rule opened for `ip` on `host`.
fn correlation_incidents<'a>(list: &'a [Value], ip: &str, host: &str) -> Vec<&'a Value> {
    list.iter()
        .filter(|i| {
            has(i, "ips", ip)
                && has(i, "hosts", host)
                && i["title"].as_str().unwrap_or("").contains('=')
        })
        .collect()
}

/// The JSON Lines rendering of an EVTX file, by the `evtx` crate.
fn render_jsonl(evtx: &Path) -> Vec<String> {
    let mut parser = evtx::EvtxParser::from_path(evtx).unwrap();
    parser
        .records_json_value()
        .map(|r| r.unwrap().data.to_string())
        .collect()
}

#[test]
fn brute_force_and_spraying_each_open_one_incident() {
    let Some(shared) = shared_dir("brute_force_and_spraying_each_open_one_incident") else {
        return;
    };
    let spray = shared.join("corpus/evtx/DeepBlueCLI/password-spray.evtx");
    let guessing = shared.join("corpus/evtx/DeepBlueCLI/smb-password-guessing-security.evtx");
    let dir = tempfile::tempdir().unwrap();
    for file in [&spray, &guessing] {
        let (code, first) = json_output(
            siren(dir.path())
                .args(["--db", "one.db", "ingest", "--format", "json"])
                .arg(file),
        );
        assert_eq!(code, 0, "{first:#}");
        assert!(
            first["incidents_created"].as_u64().unwrap() >= 1,
            "{first:#}"
        );
    }
    let list = incidents(dir.path(), "one.db");
    let sprays = correlation_incidents(&list, "172.16.144.128", "DESKTOP-JR78RLP");
    assert_eq!(sprays.len(), 1, "one spraying incident: {list:#?}");
    let guesses = correlation_incidents(&list, "192.168.198.149", "DESKTOP-M5SN04R");
    assert!(
        guesses.iter().any(|i| has(i, "users", "Administrator")),
        "{guesses:#?}"
    );
    assert_eq!(
        guesses
            .iter()
            .filter(|i| has(i, "users", "Administrator"))
            .count(),
        1,
        "one brute-force incident: {guesses:#?}"
    );

    // Both files in one run (read in parallel, years apart): the same incidents.
    let (code, both) = json_output(
        siren(dir.path())
            .args(["--db", "both.db", "ingest", "--format", "json"])
            .arg(&guessing)
            .arg(&spray),
    );
    assert_eq!(code, 0, "{both:#}");
    let together = incidents(dir.path(), "both.db");
    assert_eq!(
        correlation_incidents(&together, "172.16.144.128", "DESKTOP-JR78RLP").len(),
        1,
        "{together:#?}"
    );
    assert_eq!(
        correlation_incidents(&together, "192.168.198.149", "DESKTOP-M5SN04R").len(),
        1,
        "{together:#?}"
    );

    // The same files again: nothing new.
    let (_, again) = json_output(
        siren(dir.path())
            .args(["--db", "one.db", "ingest", "--format", "json"])
            .arg(&spray)
            .arg(&guessing),
    );
    assert_eq!(
        (
            again["stored"].as_u64(),
            again["alerts"].as_u64(),
            again["incidents_created"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{again:#}"
    );

    // Each file split in two runs (as cron would see it) gives the same incidents.
    for (n, file) in [&spray, &guessing].iter().enumerate() {
        let lines = render_jsonl(file);
        let (a, b) = lines.split_at(lines.len() / 2);
        for (part, chunk) in [a, b].iter().enumerate() {
            let path = dir.path().join(format!("part{n}-{part}.jsonl"));
            let mut out = std::fs::File::create(&path).unwrap();
            for line in chunk.iter() {
                writeln!(out, "{line}").unwrap();
            }
            let (code, summary) = json_output(
                siren(dir.path())
                    .args(["--db", "split.db", "ingest", "--format", "json"])
                    .arg(&path),
            );
            assert_eq!(code, 0, "{summary:#}");
        }
    }
    let split = incidents(dir.path(), "split.db");
    let key = |list: &[Value]| -> Vec<(String, u64)> {
        let mut keys: Vec<_> = list
            .iter()
            .map(|i| {
                (
                    i["title"].as_str().unwrap().to_owned(),
                    i["alert_count"].as_u64().unwrap(),
                )
            })
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(
        key(&split),
        key(&list),
        "split ingest gives the same incidents"
    );
}

#[test]
fn analysts_work_incidents_from_the_cli() {
    let fixtures = crate::support::workspace_root().join("tests/fixtures/inputs");
    let dir = tempfile::tempdir().unwrap();
    let rule = r#"
title: Process started by an office suite
id: 5a8b6a52-4a55-4b8e-9a1f-0c7e2b9d3e10
level: high
tags: [attack.execution, attack.t1204.002]
logsource: {product: windows, category: process_creation}
detection:
  selection:
    Image|endswith: '\powershell.exe'
  condition: selection
siren:
  investigation: ["Find the document that started PowerShell."]
"#;
    std::fs::write(dir.path().join("rule.yml"), rule).unwrap();
    let (code, summary) = json_output(
        siren(dir.path())
            .args(["ingest", "--rules", "rule.yml", "--format", "json"])
            .arg(fixtures.join("sample.jsonl")),
    );
    assert_eq!(code, 0, "{summary:#}");
    assert!(summary["alerts"].as_u64().unwrap() >= 1, "{summary:#}");
    let list = incidents(dir.path(), "siren.db");
    let incident = &list[0];
    for key in [
        "id",
        "title",
        "severity",
        "status",
        "assignee",
        "rule_ids",
        "techniques",
        "hosts",
        "users",
        "ips",
        "first_seen",
        "last_seen",
        "alert_count",
        "event_count",
        "tenant",
    ] {
        assert!(incident.get(key).is_some(), "{key} missing: {incident:#}");
    }
    assert_eq!(incident["techniques"][0], "T1204.002");
    let id = incident["id"].to_string();

    // Unknown user, invalid transition: one-line reasons, non-zero exit.
    let output = siren(dir.path())
        .args(["incidents", "assign", &id, "ghost"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown user 'ghost'") && stderr.trim().lines().count() == 1,
        "{stderr}"
    );
    let output = siren(dir.path())
        .args(["incidents", "status", &id, "closed"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("cannot move an incident from new to closed")
    );

    // A user (password from stdin, never argv), then the lifecycle.
    siren(dir.path())
        .args([
            "users",
            "add",
            "alice",
            "--role",
            "analyst",
            "--password-stdin",
        ])
        .write_stdin("a long enough password\n")
        .assert()
        .success();
    let short = siren(dir.path())
        .args([
            "users",
            "add",
            "bob",
            "--role",
            "analyst",
            "--password-stdin",
        ])
        .write_stdin("short\n")
        .output()
        .unwrap();
    assert_eq!(short.status.code(), Some(2));
    siren(dir.path())
        .args(["incidents", "assign", &id, "alice"])
        .env("SIREN_USER", "lead")
        .assert()
        .success();
    siren(dir.path())
        .args([
            "incidents",
            "status",
            &id,
            "in_progress",
            "--note",
            "looking",
        ])
        .env("SIREN_USER", "alice")
        .assert()
        .success();
    siren(dir.path())
        .args(["incidents", "note", &id, "the macro came by mail"])
        .env("SIREN_USER", "alice")
        .assert()
        .success();
    siren(dir.path())
        .args([
            "incidents",
            "status",
            &id,
            "resolved",
            "--resolution",
            "true_positive",
        ])
        .env("SIREN_USER", "alice")
        .assert()
        .success();
    let (code, shown) =
        json_output(siren(dir.path()).args(["incidents", "show", &id, "--format", "json"]));
    assert_eq!(code, 0);
    assert_eq!(shown["status"], "resolved");
    assert_eq!(shown["resolution"], "true_positive");
    let kinds: Vec<String> = shown["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{}:{}",
                t["kind"].as_str().unwrap(),
                t["actor"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "created:siren",
            "alert_added:siren",
            "assigned:lead",
            "status_changed:alice",
            "note:alice",
            "note:alice",
            "status_changed:alice"
        ]
    );
    assert!(
        !shown["events"].as_array().unwrap().is_empty(),
        "triggering events shown"
    );
    let table = siren(dir.path())
        .args(["incidents", "show", &id])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&table.stdout).contains("the macro came by mail"));
    let filtered = siren(dir.path())
        .args([
            "incidents",
            "list",
            "--status",
            "resolved",
            "--assignee",
            "alice",
            "--format",
            "csv",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&filtered.stdout).lines().count(),
        2,
        "header + one incident"
    );
}
