//! Archives, on both backends and on a real S3-compatible server: events past retention go
//! to the archive before they are deleted; restoring a day gives back the same events
//! (fields and keys), held against the next purge and never archived twice; `siren hunt`
//! over the archive finds what it finds over the logs the events came from.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use siren_core::TenantId;
use siren_core::archive::{Archive, ArchiveConfig};
use siren_core::incident::IncidentFilter;
use siren_core::retention::{self, PurgeRequest, RetentionConfig};
use siren_core::store::{self, EventQuery, Store};
use siren_core::user::Actor;

use crate::support::{fresh_postgres_database, json_output, siren, workspace_root};

/// Events over three days of March 2024: the sample (which raises alerts) on two hosts,
/// and 150 quiet ones.
fn events() -> String {
    let sample =
        std::fs::read_to_string(workspace_root().join("tests/fixtures/inputs/sample.jsonl"))
            .unwrap();
    let mut text = sample.clone();
    text.push_str(
        &sample
            .replace("WS042", "WS043")
            .replace("2024-03-04", "2024-03-05"),
    );
    for n in 0..150 {
        text.push_str(&format!(
            "{{\"EventID\": 1000, \"Channel\": \"Application\", \"Computer\": \"quiet\", \
             \"EventRecordID\": {n}, \"TimeCreated\": \"2024-03-0{}T12:{:02}:00Z\"}}\n",
            4 + n % 3,
            n % 60
        ));
    }
    text
}

fn actor() -> Actor {
    Actor {
        name: "archive-test".to_owned(),
        origin: "test".to_owned(),
    }
}

/// Detections of `siren hunt` with the project's rules, without the file they came from.
fn hunt(dir: &Path, config: &Path, args: &[&str]) -> BTreeSet<String> {
    let rules = workspace_root().join("rules");
    let output = siren(dir)
        .arg("--config")
        .arg(config)
        .args(["hunt", "--format", "jsonl", "--no-correlations", "--rules"])
        .arg(&rules)
        .args(args)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
            value.as_object_mut().unwrap().remove("file");
            canonical(&value)
        })
        .collect()
}

/// `value` with its objects' keys sorted (PostgreSQL keeps fields in its own order).
fn canonical(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let sorted: std::collections::BTreeMap<&String, String> =
                map.iter().map(|(k, v)| (k, canonical(v))).collect();
            let members: Vec<String> = sorted
                .into_iter()
                .map(|(k, v)| format!("{}:{v}", serde_json::Value::from(k.as_str())))
                .collect();
            format!("{{{}}}", members.join(","))
        }
        serde_json::Value::Array(items) => {
            format!(
                "[{}]",
                items.iter().map(canonical).collect::<Vec<_>>().join(",")
            )
        }
        other => other.to_string(),
    }
}

/// Closes every incident, so that their evidence may go too.
async fn close_all(store: &dyn Store, dir: &Path, url: &str, tenant: &TenantId) {
    let filter = IncidentFilter {
        limit: 100,
        ..Default::default()
    };
    let incidents = store
        .list_incidents(tenant, &filter)
        .await
        .unwrap()
        .incidents;
    assert!(!incidents.is_empty(), "the sample raises incidents");
    for incident in incidents {
        let id = incident.id.to_string();
        for status in [
            vec!["resolved", "--resolution", "false_positive"],
            vec!["closed"],
        ] {
            let mut args = vec!["--db", url, "incidents", "status", &id];
            args.extend(status);
            siren(dir).args(&args).assert().success();
        }
    }
}

/// Archive → purge → restore a day → purge again, against `archive`, on the store `url`.
async fn round_trip(dir: &Path, url: &str, archive_yaml: &str, archive: &ArchiveConfig) {
    let backend = url.split(':').next().unwrap().to_owned();
    let config = dir.join(format!("{backend}.yaml"));
    std::fs::write(
        &config,
        format!(
            "retention:\n  events: 30d\n  incidents: 30d\n  archive: true\narchive:\n{archive_yaml}"
        ),
    )
    .unwrap();
    let rules = workspace_root().join("rules");
    siren(dir)
        .arg("--config")
        .arg(&config)
        .args(["--db", url, "ingest", "--rules"])
        .arg(&rules)
        .arg("events.jsonl")
        .assert()
        .success();
    let store = store::open(url).await.unwrap();
    let tenant = TenantId::parse("default").unwrap();
    close_all(&*store, dir, url, &tenant).await;
    let stored = store.count_events(&tenant).await.unwrap();
    assert!(stored > 150, "{backend}: {stored}");
    let day = |d: u32| NaiveDate::from_ymd_opt(2024, 3, d).unwrap();
    let day_query = |d: u32| EventQuery {
        since: Some(Utc.from_utc_datetime(&day(d).and_hms_opt(0, 0, 0).unwrap())),
        until: Some(Utc.from_utc_datetime(&day(d + 1).and_hms_opt(0, 0, 0).unwrap())),
        limit: 10_000,
        ..Default::default()
    };
    let mut before = store.list_events(&tenant, &day_query(5)).await.unwrap();
    assert!(before.len() > 50, "{backend}: {}", before.len());

    // The clock a year on: everything is due, incidents (closed) included.
    let policy: RetentionConfig =
        serde_yaml::from_str("events: 30d\nincidents: 30d\narchive: true\n").unwrap();
    let opened = Archive::open(archive).unwrap();
    let request = PurgeRequest {
        now: Utc::now() + Duration::days(365),
        before: None,
        kinds: Vec::new(),
        tenant: None,
        dry_run: false,
        archive: Some(opened.clone()),
    };
    let report = retention::purge(&*store, &policy, &request, &actor())
        .await
        .unwrap();
    assert_eq!(report.total.events, stored, "{backend}");
    assert_eq!(
        report.archived.events, stored,
        "{backend}: every event archived first"
    );
    assert_eq!(store.count_events(&tenant).await.unwrap(), 0, "{backend}");
    let (code, listed) = json_output(siren(dir).arg("--config").arg(&config).args([
        "--db", url, "archive", "list", "--verify", "--format", "json",
    ]));
    assert_eq!(code, 0, "{backend}: {listed}");
    let parts = listed.as_array().unwrap();
    let days: BTreeSet<&str> = parts.iter().map(|p| p["day"].as_str().unwrap()).collect();
    assert_eq!(
        days,
        BTreeSet::from(["2024-03-04", "2024-03-05", "2024-03-06"])
    );
    let archived: u64 = parts.iter().map(|p| p["events"].as_u64().unwrap()).sum();
    assert_eq!(archived, stored, "{backend}");
    assert!(parts.iter().all(|p| p["verified"] == true), "{listed}");

    // The archive can be listed like the store.
    let (code, quiet) = json_output(siren(dir).arg("--config").arg(&config).args([
        "events",
        "list",
        "--archive",
        "--event-id",
        "1000",
        "--since",
        "2024-03-05",
        "--limit",
        "1000",
        "--format",
        "json",
    ]));
    assert_eq!(code, 0, "{quiet}");
    assert_eq!(
        quiet.as_array().unwrap().len(),
        100,
        "{backend}: days 5 and 6"
    );

    // Hunting the archive finds what hunting the logs finds.
    let from_logs = hunt(dir, &config, &["events.jsonl"]);
    assert!(!from_logs.is_empty());
    let from_archive = hunt(
        dir,
        &config,
        &["--archive", "--from", "2024-03-01", "--to", "2024-03-31"],
    );
    assert_eq!(from_archive, from_logs, "{backend}");

    // Restoring a day gives back the same events, with their keys: restoring it again
    // stores nothing new.
    let restore = |extra: &[&str]| {
        let mut command = siren(dir);
        command
            .arg("--config")
            .arg(&config)
            .args([
                "--db",
                url,
                "archive",
                "restore",
                "--from",
                "2024-03-05",
                "--keep",
                "500d",
                "--format",
                "json",
            ])
            .args(extra);
        json_output(&mut command)
    };
    let (code, restored) = restore(&[]);
    assert_eq!(code, 0, "{backend}: {restored}");
    assert_eq!(restored["tenants"][0]["new"], before.len(), "{restored}");
    let mut after = store.list_events(&tenant, &day_query(5)).await.unwrap();
    before.sort_by_key(|e| (e.timestamp, e.record_id, e.host.clone()));
    after.sort_by_key(|e| (e.timestamp, e.record_id, e.host.clone()));
    // As JSON text, field order included: the fields come back byte for byte as stored.
    let events = |list: &[store::StoredEvent]| {
        list.iter()
            .map(|e| serde_json::to_string(&e.event).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        events(&after),
        events(&before),
        "{backend}: the same events"
    );
    let (code, again) = restore(&[]);
    assert_eq!(code, 0, "{again}");
    assert_eq!(
        again["tenants"][0]["new"], 0,
        "{backend}: de-duplicated by key"
    );
    assert_eq!(again["tenants"][0]["events"], before.len(), "{again}");

    // The restored day is held (500 days): the next purge, a year on, neither removes nor archives it again.
    let report = retention::purge(&*store, &policy, &request, &actor())
        .await
        .unwrap();
    assert_eq!(report.total.events, 0, "{backend}: held");
    assert_eq!(report.archived.events, 0, "{backend}");
    // When the hold ends it goes, without a second copy in the archive.
    let later = PurgeRequest {
        now: Utc::now() + Duration::days(600),
        ..request.clone()
    };
    let report = retention::purge(&*store, &policy, &later, &actor())
        .await
        .unwrap();
    assert_eq!(report.total.events, before.len() as u64, "{backend}");
    assert_eq!(report.archived.events, 0, "{backend}: never archived twice");
    let parts_now = opened.list(None, None, None).await.unwrap();
    assert_eq!(parts_now.len(), parts.len(), "{backend}");
    let audit = store.audit_log(&tenant, 10_000).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.action == "archive.restore")
            .count(),
        2,
        "{backend}"
    );
}

#[tokio::test]
async fn an_archived_day_restores_to_the_same_events_and_hunts_the_same_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("events.jsonl"), events()).unwrap();
    let mut urls = vec![format!(
        "sqlite://{}",
        dir.path().join("archive.db").display()
    )];
    urls.extend(fresh_postgres_database().await);
    for url in urls {
        let backend = url.split(':').next().unwrap().to_owned();
        let folder = dir.path().join(format!("archive-{backend}"));
        let config = ArchiveConfig::folder(&folder);
        round_trip(
            dir.path(),
            &url,
            &format!("  url: {}\n", folder.display()),
            &config,
        )
        .await;
        // A part whose bytes changed is refused by name, and the others still verify.
        let part = first_file(&folder.join("events"));
        let mut bytes = std::fs::read(&part).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&part, bytes).unwrap();
        let output = siren(dir.path())
            .args(["archive", "list", "--verify", "--archive-url"])
            .arg(&folder)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(65), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("SHA-256"), "{stderr}");
    }
}

/// The first file under `folder`, depth first.
fn first_file(folder: &Path) -> std::path::PathBuf {
    let mut entries: Vec<_> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let first = entries.remove(0);
    if first.is_dir() {
        first_file(&first)
    } else {
        first
    }
}

/// A real S3-compatible server (moto's, from PyPI) on a free loopback port, stopped on drop.
struct S3Server {
    child: std::process::Child,
    endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the S3 server, or says why it cannot (moto is not installed).
fn start_s3() -> Option<S3Server> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(error) => {
            let message = format!(
                "notice: skipping the S3 archive test: cannot run moto_server ({error}); \
                 pip install 'moto[server]'"
            );
            assert!(
                std::env::var_os("SIREN_REQUIRE_CORPUS").is_none(),
                "{message}"
            );
            eprintln!("{message}");
            return None;
        }
    };
    let server = S3Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(server);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("moto_server did not listen on port {port} within 30 s");
}

#[tokio::test]
async fn an_archive_in_an_s3_bucket_round_trips_the_same() {
    let Some(server) = tokio::task::spawn_blocking(start_s3).await.unwrap() else {
        return;
    };
    let endpoint = server.endpoint.clone();
    let bucket = format!("{endpoint}/siren-archive");
    let created = tokio::task::spawn_blocking(move || {
        reqwest::blocking::Client::new()
            .put(&bucket)
            .send()
            .map(|r| r.status())
    })
    .await
    .unwrap()
    .unwrap();
    assert!(created.is_success(), "creating the bucket: {created}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("events.jsonl"), events()).unwrap();
    std::fs::write(dir.path().join("s3-secret"), "testing\n").unwrap();
    let secret = format!("file:{}", dir.path().join("s3-secret").display());
    let yaml = format!(
        "  url: s3://siren-archive/prod\n  endpoint: {endpoint}\n  allow_http: true\n  \
         access_key_id: testing\n  secret_access_key: {secret}\n"
    );
    let mut config: ArchiveConfig = serde_yaml::from_str(
        &yaml
            .lines()
            .map(|l| format!("{}\n", l.trim()))
            .collect::<String>(),
    )
    .unwrap();
    config.resolve_secrets(|_| None).unwrap();
    let url = format!("sqlite://{}", dir.path().join("s3.db").display());
    round_trip(dir.path(), &url, &yaml, &config).await;
    // The parts are in the bucket, under the prefix.
    let listing = reqwest::get(format!(
        "{endpoint}/siren-archive?prefix=prod/events/default/"
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(
        listing.contains("prod/events/default/2024-03-05/"),
        "{listing}"
    );
    drop(server);
}
