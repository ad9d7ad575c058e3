//! Purging half of a large store while events keep arriving: N events (half of them older
//! than the cutoff) are stored, then batches of 500 events are written at 5,000 events/s,
//! first alone for a baseline, then while `retention::purge` removes the old half in its
//! batches. Reports the write latency (p50, p99, max) of both phases and their ratio, the
//! purge rate, and the database's size before, after the purge, and after VACUUM.
//!
//! `cargo bench -p siren-core --bench purge -- [EVENTS] [sqlite|postgres|both]` (default
//! 10,000,000 events, both backends; PostgreSQL from `SIREN_BENCH_POSTGRES_URL`, a server
//! where the bench may create and drop the database `siren_bench_purge`).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use siren_core::retention::{self, Kind, PurgeRequest, RetentionConfig};
use siren_core::store::{self, EventRow, Store};
use siren_core::user::Actor;
use siren_core::{Event, TenantId};

/// Events written per batch while measuring, and batches per second (5,000 events/s).
const BATCH: usize = 500;
const BATCHES_PER_SECOND: u64 = 10;
/// Events per write while filling.
const FILL_BATCH: usize = 5_000;

fn event(n: u64, at: DateTime<Utc>) -> EventRow {
    let fields = serde_json::json!({
        "EventID": 4624 + (n % 8), "Channel": "Security", "Computer": format!("host{}", n % 500),
        "EventRecordID": n, "TargetUserName": format!("user{}", n % 3000), "LogonType": 3,
        "IpAddress": format!("10.{}.{}.{}", n % 200, (n / 200) % 250, n % 250),
        "TimeCreated": at.to_rfc3339(),
        "ProcessName": "C:\\Windows\\System32\\svchost.exe",
    });
    let serde_json::Value::Object(fields) = fields else {
        unreachable!()
    };
    EventRow::from_event(&Event::from_fields(
        fields.into_iter().collect(),
        TenantId::parse("bench").unwrap(),
    ))
}

/// The time of stored event `n` of `total`: the first half in 2020, the rest in 2026.
fn time_of(n: u64, total: u64) -> DateTime<Utc> {
    let year = if n < total / 2 { 2020 } else { 2026 };
    Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::milliseconds(n as i64)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// p50, p99 and max in milliseconds.
fn summary(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().unwrap()),
    )
}

/// Writes batches at 5,000 events/s until `until` says stop, and returns each batch's time.
async fn write_steadily(
    store: Arc<dyn Store>,
    mut next: u64,
    until: impl Fn(Duration) -> bool,
) -> (Vec<Duration>, u64) {
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / BATCHES_PER_SECOND));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    while !until(started.elapsed()) {
        tick.tick().await;
        let now = Utc::now();
        let rows: Vec<EventRow> = (next..next + BATCH as u64).map(|n| event(n, now)).collect();
        next += BATCH as u64;
        let at = Instant::now();
        store.insert_events(&rows).await.expect("write a batch");
        latencies.push(at.elapsed());
    }
    (latencies, next)
}

async fn run(backend: &str, url: &str, total: u64) {
    let store = store::open(url).await.expect("open the store");
    let filling = Instant::now();
    for start in (0..total).step_by(FILL_BATCH) {
        let rows: Vec<EventRow> = (start..(start + FILL_BATCH as u64).min(total))
            .map(|n| event(n, time_of(n, total)))
            .collect();
        store.insert_events(&rows).await.expect("fill");
    }
    let fill_seconds = filling.elapsed().as_secs_f64();
    let size_before = store.database_bytes().await.unwrap();
    println!(
        "{backend}: stored {total} events in {fill_seconds:.0} s ({:.0}/s), {:.1} MiB",
        total as f64 / fill_seconds,
        size_before as f64 / 1048576.0
    );

    // Baseline: the same writes, nothing else running.
    let (baseline, next) = write_steadily(store.clone(), total, |elapsed| {
        elapsed >= Duration::from_secs(15)
    })
    .await;

    let config = RetentionConfig::default();
    let request = PurgeRequest {
        now: Utc::now(),
        before: Some(Utc.with_ymd_and_hms(2021, 1, 1, 0, 0, 0).unwrap()),
        kinds: vec![Kind::Events],
        tenant: Some(TenantId::parse("bench").unwrap()),
        dry_run: false,
        archive: None,
    };
    let done = Arc::new(AtomicBool::new(false));
    let purging = {
        let store = store.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let actor = Actor {
                name: "bench".to_owned(),
                origin: "bench".to_owned(),
            };
            let report = retention::purge(&*store, &config, &request, &actor)
                .await
                .expect("purge");
            done.store(true, Ordering::SeqCst);
            (report.total.events, started.elapsed())
        })
    };
    let flag = done.clone();
    let (during, _) =
        write_steadily(store.clone(), next, move |_| flag.load(Ordering::SeqCst)).await;
    let (purged, purge_time) = purging.await.unwrap();
    let size_after = store.database_bytes().await.unwrap();

    let (b50, b99, bmax) = summary(baseline);
    let (d50, d99, dmax) = summary(during);
    println!(
        "{backend}: writes of {BATCH} events at 5,000/s  alone: p50 {b50:.1} ms  p99 {b99:.1} ms  max {bmax:.1} ms"
    );
    println!(
        "{backend}: while purging:                     p50 {d50:.1} ms  p99 {d99:.1} ms  max {dmax:.1} ms  (p99 {:.2}x alone)",
        d99 / b99
    );
    println!(
        "{backend}: purged {purged} events in {:.0} s ({:.0} events/s)",
        purge_time.as_secs_f64(),
        purged as f64 / purge_time.as_secs_f64()
    );
    drop(store);
    let size_vacuumed = vacuum(backend, url).await;
    println!(
        "{backend}: database {:.1} MiB before, {:.1} MiB after the purge, {:.1} MiB after VACUUM{}",
        size_before as f64 / 1048576.0,
        size_after as f64 / 1048576.0,
        size_vacuumed as f64 / 1048576.0,
        if backend == "postgres" { " FULL" } else { "" }
    );
}

/// Compacts the database and returns its size.
async fn vacuum(backend: &str, url: &str) -> u64 {
    use sqlx::Connection;
    if backend == "postgres" {
        let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query("VACUUM FULL")
            .execute(&mut connection)
            .await
            .unwrap();
        let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
            .fetch_one(&mut connection)
            .await
            .unwrap();
        return bytes as u64;
    }
    let mut connection = sqlx::SqliteConnection::connect(url).await.unwrap();
    sqlx::query("VACUUM")
        .execute(&mut connection)
        .await
        .unwrap();
    let bytes: i64 = sqlx::query_scalar(
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
    )
    .fetch_one(&mut connection)
    .await
    .unwrap();
    bytes as u64
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let total: u64 = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let which = args.get(1).map_or("both", String::as_str);
    if which != "postgres" {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("purge.db").display());
        run("sqlite", &url, total).await;
    }
    if which != "sqlite" {
        let Ok(admin) = std::env::var("SIREN_BENCH_POSTGRES_URL") else {
            eprintln!("postgres: skipped (SIREN_BENCH_POSTGRES_URL is not set)");
            return;
        };
        use sqlx::Connection;
        let mut connection = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query("DROP DATABASE IF EXISTS siren_bench_purge")
            .execute(&mut connection)
            .await
            .unwrap();
        sqlx::query("CREATE DATABASE siren_bench_purge")
            .execute(&mut connection)
            .await
            .unwrap();
        let (base, _) = admin.rsplit_once('/').unwrap();
        let url = format!("{base}/siren_bench_purge");
        run("postgres", &url, total).await;
        sqlx::query("DROP DATABASE siren_bench_purge WITH (FORCE)")
            .execute(&mut connection)
            .await
            .unwrap();
    }
}
