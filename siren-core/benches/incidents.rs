//! Benchmark of incident listing on a large store: 1,000,000 events and 100,000 incidents,
//! then `list_incidents` with each filter an analyst uses, p50 and p99 over many calls, next
//! to the round trip of a trivial query (`count_events` on an empty tenant) in the same run.
//!
//! `cargo bench -p siren-core --bench incidents -- [sqlite|postgres URL] [EVENTS] [INCIDENTS]`
//! (defaults: a temporary SQLite file, 1,000,000 and 100,000; `SIREN_TEST_POSTGRES_URL` adds
//! a PostgreSQL run on a fresh database).

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use siren_core::incident::{Alert, IncidentFilter, Severity, Status};
use siren_core::store::{self, EventRow, Store};
use siren_core::user::{Actor, Role};
use siren_core::{Event, TenantId};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let events: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let incidents: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
    let mut targets = vec![("sqlite".to_owned(), sqlite)];
    if let Ok(admin) = std::env::var("SIREN_TEST_POSTGRES_URL") {
        targets.push(("postgres".to_owned(), fresh_postgres(&admin).await));
    }
    for (name, url) in targets {
        let store = store::open(&url).await.unwrap();
        run(&name, &*store, events, incidents).await;
    }
}

async fn fresh_postgres(admin: &str) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
    let name = format!("siren_bench_{}", std::process::id());
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    format!("{base}/{name}")
}

fn event(i: usize) -> Event {
    let host = format!("host{:04}", i % 5000);
    let event_id = [4624, 4625, 4688, 4672][i % 4];
    let fields = serde_json::json!({
        "EventID": event_id, "Channel": "Security", "Computer": host,
        "EventRecordID": i, "TimeCreated": format!("2024-05-{:02}T{:02}:{:02}:{:02}Z", 1 + (i / 86_400) % 28, (i / 3600) % 24, (i / 60) % 60, i % 60),
        "TargetUserName": format!("user{}", i % 2000), "IpAddress": format!("10.0.{}.{}", (i / 256) % 256, i % 256),
        "CommandLine": "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Schedule",
    });
    let serde_json::Value::Object(fields) = fields else {
        unreachable!()
    };
    Event::from_fields(fields.into_iter().collect(), TenantId::default())
}

async fn run(name: &str, store: &dyn Store, events: usize, incidents: usize) {
    let tenant = TenantId::default();
    let started = Instant::now();
    for chunk in (0..events).collect::<Vec<_>>().chunks(5000) {
        let rows: Vec<EventRow> = chunk
            .iter()
            .map(|&i| EventRow::from_event(&event(i)))
            .collect();
        store.insert_events(&rows).await.unwrap();
    }
    let load_events = started.elapsed();
    let started = Instant::now();
    let severities = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];
    for chunk in (0..incidents).collect::<Vec<_>>().chunks(2000) {
        let alerts: Vec<Alert> = chunk
            .iter()
            .map(|&i| Alert {
                rule_id: format!("rule-{}", i % 300),
                rule_title: format!("Rule {}", i % 300),
                severity: severities[i % 4],
                correlation: false,
                group_key: format!("host{i}"),
                techniques: vec!["T1110".to_owned()],
                investigation: vec![],
                time: event(i * 7 % events.max(1)).timestamp.unwrap(),
                hosts: vec![format!("host{i}")],
                users: vec![format!("user{}", i % 2000)],
                ips: vec![],
                event_count: 1,
                event_key: None,
                detail: serde_json::json!({}),
            })
            .collect();
        store
            .record_alerts(
                &tenant,
                &alerts,
                chrono::Duration::hours(24),
                chrono::Utc::now(),
            )
            .await
            .unwrap();
    }
    let load_incidents = started.elapsed();
    // Work a few hundred incidents so the status and assignee filters have something to find.
    let actor = Actor {
        name: "bench".to_owned(),
        origin: "bench".to_owned(),
    };
    store
        .add_user(&tenant, "alice", Role::Analyst, "$argon2id$unused", &actor)
        .await
        .unwrap();
    let page = store
        .list_incidents(
            &tenant,
            &IncidentFilter {
                limit: 300,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for incident in &page.incidents {
        store
            .assign_incident(&tenant, incident.id, "alice", &actor)
            .await
            .unwrap();
        store
            .change_status(
                &tenant,
                incident.id,
                Status::Acknowledged,
                None,
                None,
                &actor,
            )
            .await
            .unwrap();
    }
    println!(
        "{name}: loaded {events} events in {:.1} s, {incidents} incidents in {:.1} s",
        load_events.as_secs_f64(),
        load_incidents.as_secs_f64()
    );

    let empty = TenantId::parse("empty").unwrap();
    let baseline = measure(|| async {
        store.count_events(&empty).await.unwrap();
    })
    .await;
    println!(
        "{name}: baseline (count_events on an empty tenant): p50 {:.2} ms, p99 {:.2} ms",
        ms(baseline.0),
        ms(baseline.1)
    );
    let since = chrono::DateTime::parse_from_rfc3339("2024-05-10T00:00:00Z")
        .unwrap()
        .to_utc();
    let filters: Vec<(&str, IncidentFilter)> = vec![
        (
            "newest 50",
            IncidentFilter {
                limit: 50,
                ..Default::default()
            },
        ),
        (
            "status=new",
            IncidentFilter {
                status: Some(Status::New),
                limit: 50,
                ..Default::default()
            },
        ),
        (
            "status=acknowledged",
            IncidentFilter {
                status: Some(Status::Acknowledged),
                limit: 50,
                ..Default::default()
            },
        ),
        (
            "severity=critical",
            IncidentFilter {
                severity: Some(Severity::Critical),
                limit: 50,
                ..Default::default()
            },
        ),
        (
            "assignee=alice",
            IncidentFilter {
                assignee: Some("alice".into()),
                limit: 50,
                ..Default::default()
            },
        ),
        (
            "since 2024-05-10",
            IncidentFilter {
                since: Some(since),
                limit: 50,
                ..Default::default()
            },
        ),
    ];
    for (label, filter) in filters {
        let found = store
            .list_incidents(&tenant, &filter)
            .await
            .unwrap()
            .incidents
            .len();
        let (p50, p99) = measure(|| async {
            store.list_incidents(&tenant, &filter).await.unwrap();
        })
        .await;
        println!(
            "{name}: incidents list {label:<22} {found:>3} rows  p50 {:>6.2} ms  p99 {:>6.2} ms  ({:.1}× baseline p99)",
            ms(p50),
            ms(p99),
            p99.as_secs_f64() / baseline.1.as_secs_f64().max(1e-9)
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// p50 and p99 of 300 calls (after 20 warm-up calls).
async fn measure<F, Fut>(mut f: F) -> (Duration, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..20 {
        f().await;
    }
    let mut times = Vec::with_capacity(300);
    for _ in 0..300 {
        let started = Instant::now();
        f().await;
        times.push(started.elapsed());
    }
    times.sort();
    (times[150], times[296])
}
