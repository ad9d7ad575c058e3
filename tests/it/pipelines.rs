//! pySigma processing pipelines: SIREN with a rule set and `--pipeline` must match exactly the
//! events SIREN matches with the rules pySigma itself rewrote through the same pipelines.
//!
//! Needs `python3` with the `pysigma` package (`SIREN_PYTHON` names another interpreter); the
//! test is skipped with a notice without it, unless `SIREN_REQUIRE_PYSIGMA` is set (CI).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{siren, workspace_root};

fn fixtures() -> PathBuf {
    workspace_root().join("tests/fixtures/pipelines")
}

fn python() -> Option<String> {
    let python = std::env::var("SIREN_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import sigma.processing.pipeline, yaml"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    if std::env::var_os("SIREN_REQUIRE_PYSIGMA").is_some_and(|v| v == "1") {
        panic!("{python} cannot import pySigma (pip install pysigma; .ci/run does)");
    }
    eprintln!("notice: skipping the pySigma pipeline test: {python} cannot import pySigma");
    None
}

/// (rule title, record id) of every detection of a hunt over the fixture events.
fn hunt(dir: &Path, rules: &Path, pipelines: &[PathBuf]) -> Vec<(String, i64)> {
    let mut cmd = siren(dir);
    cmd.arg("--no-rule-cache")
        .arg("hunt")
        .arg(fixtures().join("events/events.jsonl"))
        .args(["--format", "jsonl", "--rules"])
        .arg(rules);
    for p in pipelines {
        cmd.arg("--pipeline").arg(p);
    }
    let output = cmd.output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("0 not loaded"), "{stderr}");
    let mut hits: Vec<(String, i64)> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let d: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                d["rule_title"].as_str().unwrap().to_owned(),
                d["record_id"].as_i64().unwrap(),
            )
        })
        .collect();
    hits.sort();
    hits
}

#[test]
fn siren_with_a_pipeline_matches_what_pysigma_rewrote() {
    let Some(python) = python() else {
        return;
    };
    let rules = fixtures().join("rules");
    let pipeline = |name: &str| fixtures().join(format!("pipelines/{name}.yml"));
    let cases: Vec<(&str, Vec<PathBuf>)> = vec![
        ("sysmon_to_4688", vec![pipeline("sysmon_to_4688")]),
        ("ecs_winlogbeat", vec![pipeline("ecs_winlogbeat")]),
        (
            "one_to_many_and_prefix",
            vec![pipeline("one_to_many_and_prefix")],
        ),
        ("device_paths", vec![pipeline("device_paths")]),
        // Given in the wrong order: priorities decide.
        (
            "priorities",
            vec![pipeline("priority_late"), pipeline("priority_early")],
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let plain = hunt(dir.path(), &rules, &[]);
    for (name, pipelines) in cases {
        let out = dir.path().join(name);
        let status = Command::new(&python)
            .arg(fixtures().join("apply_with_pysigma.py"))
            .arg(&out)
            .arg(&rules)
            .args(&pipelines)
            .status()
            .unwrap();
        assert!(status.success(), "{name}: pySigma failed");
        let with_pipeline = hunt(dir.path(), &rules, &pipelines);
        let rewritten = hunt(dir.path(), &out, &[]);
        eprintln!("{name}: {} detections", with_pipeline.len());
        assert!(!with_pipeline.is_empty(), "{name}: nothing matched");
        assert_ne!(with_pipeline, plain, "{name}: the pipeline changed nothing");
        assert_eq!(with_pipeline, rewritten, "{name}");
    }
}

#[test]
fn backend_only_transformations_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.yml"),
        "name: x\ntransformations:\n  - id: keyword_suffix\n    type: field_name_suffix\n    suffix: .keyword\n",
    )
    .unwrap();
    let output = siren(dir.path())
        .args(["rules", "validate", "--pipeline", "p.yml"])
        .arg(fixtures().join("rules"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("p.yml")
            && stderr.contains("keyword_suffix")
            && stderr.contains("field_name_suffix"),
        "{stderr}"
    );
}

/// Security 5156 (Windows Filtering Platform) stands for Sysmon's network connections: a
/// SigmaHQ `network_connection` rule fires on the corpus's 5156 events, with its `Image`
/// in device-path form and `DestinationPort` as `DestPort`.
#[test]
fn network_connection_rules_fire_on_security_5156() {
    let Some(shared) = crate::support::shared_dir("network_connection_rules_fire_on_security_5156")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let output =
        siren(dir.path())
            .arg("hunt")
            .arg(shared.join(
                "corpus/evtx/EVTX-ATTACK-SAMPLES/Command and Control/DE_RDP_Tunnel_5156.evtx",
            ))
            .args(["--format", "jsonl", "--rules"])
            .arg(shared.join("corpus/sigma/rules/windows/network_connection"))
            .output()
            .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let hits: Vec<(String, i64, i64)> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let d: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                d["rule_title"].as_str().unwrap().to_owned(),
                d["event_id"].as_i64().unwrap(),
                d["record_id"].as_i64().unwrap(),
            )
        })
        .collect();
    let title = "Outbound RDP Connections Over Non-Standard Tools";
    assert_eq!(
        hits,
        [
            (title.to_owned(), 5156, 227727),
            (title.to_owned(), 5156, 227741)
        ]
    );
}
