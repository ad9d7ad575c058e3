//! CSV formula injection: event values that a spreadsheet would run as formulas (a host named
//! `+SUM(1+1)*cmd|' /C calc'!A0`, a user `@SUM(1+9)`) reach every CSV output — `siren report
//! export`, `siren incidents list`, `siren events list`, `siren hunt` and the server's CSV
//! reports — as quoted text with a leading `'`, never as a cell that starts a formula.

use std::path::Path;

use serde_json::json;
use siren_core::user::Role;

use crate::server::{add_token, config, start};
use crate::support::{siren, workspace_root};

const HOST: &str = "+SUM(1+1)*cmd|' /C calc'!A0";
const USER: &str = "@SUM(1+9)";
const SUBJECT: &str = "-2+3+cmd|' /C calc'!A0";

/// Writes an audit-log-cleared event (the built-in rules open an incident for it) whose host
/// and users are formulas.
fn hostile_events(dir: &Path) -> std::path::PathBuf {
    let event = json!({
        "EventID": 1102, "Channel": "Security", "Provider_Name": "Microsoft-Windows-Eventlog",
        "Computer": HOST, "EventRecordID": 7, "TargetUserName": USER,
        "SubjectUserName": SUBJECT, "CommandLine": "=cmd|' /C calc'!A0",
        "TimeCreated": chrono::Utc::now().to_rfc3339(),
    });
    let path = dir.join("events.jsonl");
    std::fs::write(&path, format!("{event}\n")).unwrap();
    path
}

/// Every cell of `bytes` (CSV) — none may start a formula; `expected` values must be there,
/// neutralised (`'` first) and quoted where they fill a cell.
fn assert_neutralised(what: &str, bytes: &[u8], expected: &[&str]) {
    let text = String::from_utf8_lossy(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let cells: Vec<String> = reader
        .records()
        .flat_map(|r| {
            r.unwrap_or_else(|e| panic!("{what}: not CSV ({e}):\n{text}"))
                .iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(cells.len() > 1, "{what}: no rows:\n{text}");
    for cell in &cells {
        assert!(
            !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
            "{what}: the cell {cell:?} starts a formula:\n{text}"
        );
    }
    for value in expected {
        assert!(
            cells.iter().any(|c| c.contains(value)),
            "{what}: {value:?} is missing:\n{text}"
        );
        let whole = format!("'{value}");
        if cells.contains(&whole) {
            assert!(
                text.contains(&format!("\"{whole}\"")),
                "{what}: the cell {whole:?} is not quoted:\n{text}"
            );
        }
    }
}

fn run(dir: &Path, args: &[&str]) -> Vec<u8> {
    let output = siren(dir).args(args).output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "siren {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[tokio::test]
async fn csv_formula_injection_is_neutralised_in_every_csv_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let events = hostile_events(d);
    let events = events.to_str().unwrap();
    run(d, &["ingest", "--quiet", events]);

    let report = run(d, &["report", "export", "--format", "csv", "-o", "-"]);
    assert_neutralised("report export", &report, &[HOST, USER]);
    assert!(
        String::from_utf8_lossy(&report).contains(&format!("\"'{HOST}\"")),
        "the report's hosts cell is the neutralised host, quoted"
    );
    let incidents = run(d, &["incidents", "list", "--format", "csv"]);
    assert_neutralised("incidents list", &incidents, &[HOST, USER]);
    let listed = run(d, &["events", "list", "--format", "csv"]);
    assert_neutralised("events list", &listed, &[HOST, USER]);
    let rules = workspace_root().join("rules");
    let rules = rules.to_str().unwrap();
    let hunt = run(d, &["hunt", "--rules", rules, "--format", "csv", events]);
    assert_neutralised("hunt", &hunt, &[HOST]);
    run(
        d,
        &[
            "hunt", "--rules", rules, "--format", "csv", "-o", "hunt.csv", events,
        ],
    );
    assert_neutralised(
        "hunt -o",
        &std::fs::read(d.join("hunt.csv")).unwrap(),
        &[HOST],
    );

    // The server's CSV reports, for a viewer.
    let url = format!("sqlite://{}", d.join("siren.db").display());
    let server = start(&url, None, config()).await;
    let token = add_token(&server.store, "default", Role::Viewer, false).await;
    let client = reqwest::Client::new();
    let get = |path: String| {
        let request = client.get(server.at(&path)).bearer_auth(&token);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.bytes().await.unwrap().to_vec()
        }
    };
    let summary = get("/api/v1/reports/summary?format=csv".to_owned()).await;
    assert_neutralised("GET /reports/summary", &summary, &[HOST, USER]);
    let mut reader = csv::Reader::from_reader(summary.as_slice());
    let id = reader.records().next().unwrap().unwrap()[0].to_owned();
    let incident = get(format!("/api/v1/reports/incidents/{id}?format=csv")).await;
    assert_neutralised("GET /reports/incidents/{id}", &incident, &[HOST, USER]);
    server.stop().await;
}
