//! `siren ingest` killed with SIGKILL part-way, again and again, then run to the end: the
//! store holds exactly the events, alerts, correlation hits and incidents of one
//! uninterrupted run of the same command.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, Row};

use crate::support::{shared_dir, siren_process};

/// What a run leaves in the store, in a form to compare field by field (times of writing
/// and row ids left out).
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub events: i64,
    pub alerts: Vec<String>,
    pub incidents: Vec<String>,
    /// Alerts of the correlation rules.
    pub correlation_hits: usize,
}

/// Runs `future` to its end on a runtime of its own (the caller is not async).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// The URL that opens the SQLite database `db` read-only.
fn read_only(db: &Path) -> String {
    format!("sqlite://{}?mode=ro", db.display())
}

/// What the SQLite database `db` holds; `correlations` are the correlation rules' titles.
pub fn read_outcome(db: &Path, correlations: &BTreeSet<String>) -> Outcome {
    block_on(async {
        let url = read_only(db);
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&mut db)
            .await
            .unwrap();
        let rows = sqlx::query(
            "SELECT a.rule_id, a.rule_title, a.severity, hex(a.event_key), a.ts, a.host, \
             a.user_name, a.src_ip, a.detail, i.group_key FROM alerts a \
             JOIN incidents i ON i.id = a.incident_id",
        )
        .fetch_all(&mut db)
        .await
        .unwrap();
        let mut alerts: Vec<String> = rows.iter().map(row_text).collect();
        alerts.sort();
        let correlation_hits = rows
            .iter()
            .filter(|row| correlations.contains(&row.get::<String, _>(1)))
            .count();
        let rows = sqlx::query(
            "SELECT group_key, rule_id, title, severity, rule_ids, techniques, hosts, users, \
             ips, first_seen, last_seen, alert_count, event_count, status FROM incidents",
        )
        .fetch_all(&mut db)
        .await
        .unwrap();
        let mut incidents: Vec<String> = rows.iter().map(row_text).collect();
        incidents.sort();
        Outcome {
            events,
            alerts,
            incidents,
            correlation_hits,
        }
    })
}

/// A row's columns as text, `|`-separated.
fn row_text(row: &sqlx::sqlite::SqliteRow) -> String {
    (0..row.len())
        .map(|i| {
            row.try_get::<Option<String>, _>(i)
                .map(|v| v.unwrap_or_default())
                .or_else(|_| row.try_get::<Option<i64>, _>(i).map(|v| format!("{v:?}")))
                .unwrap()
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// How far a run has come: events stored, and the correlation journal's head (the batches
/// that fed the correlator, committed).
fn progress(db: &Path) -> (i64, i64) {
    block_on(async {
        let url = read_only(db);
        let Ok(mut db) = sqlx::SqliteConnection::connect(&url).await else {
            return (0, 0);
        };
        let events = sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&mut db)
            .await
            .unwrap_or(0);
        let head = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM correlation_heads")
            .fetch_one(&mut db)
            .await
            .unwrap_or(0);
        (events, head)
    })
}

/// The titles of the correlation rules in the YAML files under `dir`.
pub fn correlation_titles(dir: &Path) -> BTreeSet<String> {
    let mut titles = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            titles.extend(correlation_titles(&path));
            continue;
        }
        if path.extension().is_none_or(|e| e != "yml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for document in text.split("\n---") {
            let value: serde_yaml::Value = serde_yaml::from_str(document).unwrap();
            if value.get("correlation").is_some() {
                titles.insert(value["title"].as_str().unwrap().to_owned());
            }
        }
    }
    titles
}

/// `siren ingest` of `evtx` with `rules` into `db`, working in `dir` (its rule cache there),
/// with one reader thread (so that every run reads the records in the same order).
fn ingest(dir: &Path, db: &Path, evtx: &Path, rules: &[PathBuf]) -> Command {
    let mut cmd = siren_process(dir);
    cmd.arg("--db")
        .arg(format!("sqlite://{}", db.display()))
        .args(["ingest", "--threads", "1", "--format", "json"])
        .arg(evtx);
    for dir in rules {
        cmd.arg("--rules").arg(dir);
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}

/// Runs `cmd` to its end; it must succeed.
fn run_to_end(mut cmd: Command) {
    let output = cmd.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn ingest_killed_at_several_points_and_run_again_raises_exactly_one_runs_alerts() {
    let Some(shared) = shared_dir("ingest killed and run again") else {
        return;
    };
    let corpus = shared.join("corpus");
    let evtx = corpus.join("evtx");
    let hayabusa = corpus.join("hayabusa-correlation");
    let rules = [corpus.join("sigma/rules/windows"), hayabusa.clone()];
    let correlations = correlation_titles(&hayabusa);
    let dir = tempfile::tempdir().unwrap();

    let reference = dir.path().join("reference.db");
    run_to_end(ingest(dir.path(), &reference, &evtx, &rules));
    let expected = read_outcome(&reference, &correlations);
    assert!(expected.events > 10_000, "{} events", expected.events);
    assert!(
        expected.correlation_hits > 0,
        "the corpus raises correlation hits"
    );

    // One store, killed three times, each run starting from what the ones before committed.
    // Each kill comes once the run has committed one more batch that fed the correlator,
    // so the correlation groups' matches are split over four runs (the first such batch
    // also writes a checkpoint; the later ones only their journal entries).
    let crashed = dir.path().join("crashed.db");
    let mut at_kill = Vec::new();
    for kill in 1..=3 {
        let mut child = ingest(dir.path(), &crashed, &evtx, &rules).spawn().unwrap();
        let until = Instant::now() + Duration::from_secs(600);
        loop {
            assert!(
                child.try_wait().unwrap().is_none(),
                "kill {kill}: the run finished first"
            );
            assert!(Instant::now() < until, "kill {kill}: no progress");
            if progress(&crashed).1 >= kill {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        at_kill.push(progress(&crashed));
    }
    assert!(
        at_kill.windows(2).all(|w| w[0] < w[1]) && at_kill[2].0 < expected.events,
        "each kill landed part-way, later than the one before: {at_kill:?} of {} events",
        expected.events
    );
    run_to_end(ingest(dir.path(), &crashed, &evtx, &rules));
    let got = read_outcome(&crashed, &correlations);
    assert_eq!(got.events, expected.events);
    assert_eq!(got.correlation_hits, expected.correlation_hits);
    assert_same(&got, &expected);
}

/// Asserts that two outcomes are equal, naming a few of the differences.
pub fn assert_same(got: &Outcome, expected: &Outcome) {
    for (what, got, expected) in [
        ("alert", &got.alerts, &expected.alerts),
        ("incident", &got.incidents, &expected.incidents),
    ] {
        let missing: Vec<_> = expected
            .iter()
            .filter(|a| !got.contains(a))
            .take(5)
            .collect();
        let extra: Vec<_> = got
            .iter()
            .filter(|a| !expected.contains(a))
            .take(5)
            .collect();
        assert!(
            got == expected,
            "{what}s: {} after the kills, {} in one run; missing {missing:#?}, extra {extra:#?}",
            got.len(),
            expected.len()
        );
    }
}
