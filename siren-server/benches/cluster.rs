//! Benchmark of the distributed mode against the single-node server, in one run, with real
//! processes (the release `siren-server` binary) on PostgreSQL and NATS JetStream:
//!
//! 1. single node: one `siren-server` without a bus;
//! 2. one front-end and one worker;
//! 3. two front-ends and two workers.
//!
//! Each setup gets a fresh database and cluster name, and `SIREN_BENCH_EVENTS` events
//! (default 200,000: logons, failed logons that complete brute-force correlations, process
//! creations, a cleared log per batch) in batches of 500 from 4 concurrent senders, spread
//! round-robin over the front-ends. Measured: events/s until every batch is acknowledged
//! *and* every correlation hit is stored (the workers run behind the front-ends), and the
//! CPU time of all SIREN processes per event (from `/proc`); and, under that load, the
//! event-to-incident latency of probe batches (a log clearing on a host of its own, sent
//! every 250 ms) until their incident is in the database, p50 / p99.
//!
//! Needs `SIREN_BENCH_POSTGRES_URL` (an admin URL, e.g. postgres://postgres@127.0.0.1/postgres)
//! and `SIREN_BENCH_NATS_URL` (nats://127.0.0.1:4222).
//! `cargo bench -p siren-server --bench cluster`.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use siren_core::TenantId;
use siren_core::store::NewToken;
use siren_core::user::{Actor, Role};
use sqlx::Connection;

const BATCH: usize = 500;
const SENDERS: usize = 4;

/// Batch `n`: logons, process creations, refused logons (six a minute per user and host, so
/// the brute-force correlation fires) and one cleared log.
fn batch(n: usize) -> Value {
    let base = chrono::DateTime::parse_from_rfc3339("2026-11-20T00:00:00Z").unwrap();
    let events: Vec<Value> = (0..BATCH)
        .map(|i| {
            let seq = (n * BATCH + i) as i64;
            let host = format!("ws{:04}", seq % 200);
            let time = (base + chrono::Duration::milliseconds(seq * 20)).to_rfc3339();
            match i % 50 {
                0 => json!({"EventID": 1102, "Channel": "Security",
                    "Provider_Name": "Microsoft-Windows-Eventlog", "Computer": host,
                    "EventRecordID": seq, "TimeCreated": time, "SubjectUserName": "mallory"}),
                1..=10 => json!({"EventID": 4688, "Channel": "Security",
                    "Provider_Name": "Microsoft-Windows-Security-Auditing", "Computer": host,
                    "EventRecordID": seq, "TimeCreated": time,
                    "NewProcessName": "C:\\Windows\\System32\\svchost.exe",
                    "CommandLine": format!("svchost.exe -k netsvcs {seq}")}),
                11..=30 => json!({"EventID": 4625, "Channel": "Security",
                    "Provider_Name": "Microsoft-Windows-Security-Auditing", "Computer": host,
                    "EventRecordID": seq, "TimeCreated": time,
                    "TargetUserName": format!("user{}", seq % 40), "TargetDomainName": "CORP",
                    "IpAddress": format!("10.0.0.{}", seq % 250), "LogonType": 3,
                    "Status": "0xc000006d", "SubStatus": "0xc000006a"}),
                _ => json!({"EventID": 4624, "Channel": "Security",
                    "Provider_Name": "Microsoft-Windows-Security-Auditing", "Computer": host,
                    "EventRecordID": seq, "TimeCreated": time,
                    "TargetUserName": format!("user{}", seq % 300), "LogonType": 3,
                    "IpAddress": format!("10.0.{}.{}", seq % 200, seq % 250)}),
            }
        })
        .collect();
    Value::Array(events)
}

/// CPU seconds (user + system) of a process so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<f64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    (fields.get(11).unwrap_or(&0.0) + fields.get(12).unwrap_or(&0.0)) / 100.0
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Process {
    child: Child,
    base: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(db: &str, extra: &[String]) -> Process {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_siren-server"))
        .args(["--db", db, "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env_remove("SIREN_CONFIG")
        .env("SIREN_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Process {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

async fn wait_healthy(http: &reqwest::Client, base: &str) {
    for _ in 0..600 {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base} did not come up");
}

async fn fresh_database(admin: &str, name: &str) -> String {
    let mut db = sqlx::PgConnection::connect(admin).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut db)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    format!("{base}/{name}")
}

async fn count(db: &str, sql: &str) -> i64 {
    let mut db = sqlx::PgConnection::connect(db).await.unwrap();
    sqlx::query_scalar(sql).fetch_one(&mut db).await.unwrap()
}

struct Result {
    name: String,
    seconds: f64,
    events: usize,
    cpu: f64,
    /// CPU of the workers alone (the rest is the front-ends').
    worker_cpu: f64,
    hits: i64,
    latencies: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize)
        .saturating_sub(1)
        .min(sorted.len() - 1)]
}

async fn run(
    name: &str,
    admin: &str,
    bus: &str,
    front_ends: usize,
    workers: usize,
    total: usize,
    expected_hits: Option<i64>,
) -> Result {
    let db_name = format!("siren_bench_{}", name.replace(['+', ' '], "_"));
    let db = fresh_database(admin, &db_name).await;
    let store = siren_core::store::open(&db).await.unwrap();
    let secret = siren_server::auth::new_token_secret().unwrap();
    store
        .create_token(
            &NewToken {
                tenant: &TenantId::default(),
                name: "bench",
                role: Role::Agent,
                global: false,
                secret_hash: &siren_server::auth::token_hash(&secret),
                expires_at: None,
            },
            &Actor {
                name: "bench".to_owned(),
                origin: "bench".to_owned(),
            },
        )
        .await
        .unwrap();
    let cluster = format!(
        "bench{}{}",
        std::process::id(),
        db_name.len() + front_ends * 10 + workers
    );
    let mut processes = Vec::new();
    if workers == 0 {
        processes.push(spawn(&db, &[]));
    } else {
        for (role, n) in [("front-end", front_ends), ("worker", workers)] {
            for i in 0..n {
                let args: Vec<String> = [
                    "--bus",
                    bus,
                    "--cluster",
                    &cluster,
                    "--role",
                    role,
                    "--node-id",
                    &format!("{role}{i}"),
                ]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
                processes.push(spawn(&db, &args));
            }
        }
    }
    let http = reqwest::Client::new();
    for p in &processes {
        wait_healthy(&http, &p.base).await;
    }
    // Let the workers take their partitions.
    tokio::time::sleep(Duration::from_secs(if workers > 0 { 5 } else { 1 })).await;
    let bases: Arc<Vec<String>> = Arc::new(
        processes
            .iter()
            .take(front_ends.max(1))
            .map(|p| p.base.clone())
            .collect(),
    );
    let pids: Vec<u32> = processes.iter().map(|p| p.child.id()).collect();
    let worker_pids: Vec<u32> = pids.iter().skip(front_ends).copied().collect();
    let cpu_before: f64 = pids.iter().map(|&p| cpu_seconds(p)).sum();
    let worker_before: f64 = worker_pids.iter().map(|&p| cpu_seconds(p)).sum();
    let batches = total.div_ceil(BATCH);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (http, bases, next, secret) =
            (http.clone(), bases.clone(), next.clone(), secret.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= batches {
                    return;
                }
                let body = serde_json::to_vec(&batch(n)).unwrap();
                let mut attempt = 0;
                loop {
                    let base = &bases[(n + attempt) % bases.len()];
                    attempt += 1;
                    let r = http
                        .post(format!("{base}/api/v1/events"))
                        .bearer_auth(&secret)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    if r.is_ok_and(|r| r.status().is_success()) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }
    // Probes: a cleared log on a host of its own every 250 ms, until the load is sent.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = {
        let (http, bases, secret, db) = (http.clone(), bases.clone(), secret.clone(), db.clone());
        let done = done.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0;
            let mut conn = sqlx::PgConnection::connect(&db).await.unwrap();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let host = format!("probe{n}");
                let event = json!([{"EventID": 1102, "Channel": "Security",
                    "Provider_Name": "Microsoft-Windows-Eventlog", "Computer": host,
                    "EventRecordID": n, "TimeCreated": chrono::Utc::now().to_rfc3339(),
                    "SubjectUserName": "mallory"}]);
                let sent = Instant::now();
                let base = &bases[n % bases.len()];
                let ok = http
                    .post(format!("{base}/api/v1/events"))
                    .bearer_auth(&secret)
                    .json(&event)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    loop {
                        let found: i64 = sqlx::query_scalar(
                            "SELECT COUNT(*) FROM incidents WHERE title LIKE '% — ' || $1",
                        )
                        .bind(&host)
                        .fetch_one(&mut conn)
                        .await
                        .unwrap();
                        if found > 0 || sent.elapsed() > Duration::from_secs(30) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    latencies.push(sent.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            latencies
        })
    };
    for s in senders {
        s.await.unwrap();
    }
    // Wait for the correlation hits (the workers run behind).
    let hits_sql = "SELECT COUNT(*) FROM alerts WHERE rule_title LIKE 'Brute Force%'";
    let mut hits = count(&db, hits_sql).await;
    if let Some(expected) = expected_hits {
        let until = Instant::now() + Duration::from_secs(300);
        while hits < expected && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
            hits = count(&db, hits_sql).await;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_after: f64 = pids.iter().map(|&p| cpu_seconds(p)).sum();
    let worker_after: f64 = worker_pids.iter().map(|&p| cpu_seconds(p)).sum();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let latencies = probe.await.unwrap();
    let stored = count(
        &db,
        "SELECT COUNT(*) FROM events WHERE host NOT LIKE 'probe%'",
    )
    .await;
    assert_eq!(
        stored as usize,
        batches * BATCH,
        "{name}: every event stored"
    );
    drop(processes);
    Result {
        name: name.to_owned(),
        seconds,
        events: batches * BATCH,
        cpu: cpu_after - cpu_before,
        worker_cpu: worker_after - worker_before,
        hits,
        latencies,
    }
}

#[tokio::main]
async fn main() {
    let total: usize = std::env::var("SIREN_BENCH_EVENTS").map_or(200_000, |v| v.parse().unwrap());
    let (Ok(admin), Ok(bus)) = (
        std::env::var("SIREN_BENCH_POSTGRES_URL"),
        std::env::var("SIREN_BENCH_NATS_URL"),
    ) else {
        eprintln!("set SIREN_BENCH_POSTGRES_URL and SIREN_BENCH_NATS_URL");
        std::process::exit(2);
    };
    let single = run("single node", &admin, &bus, 1, 0, total, None).await;
    let mut results = vec![
        run("1+1", &admin, &bus, 1, 1, total, Some(single.hits)).await,
        run("2+2", &admin, &bus, 2, 2, total, Some(single.hits)).await,
    ];
    results.insert(0, single);
    println!(
        "{:<12} {:>9} {:>11} {:>9} {:>12} {:>13} {:>10} {:>10} {:>7}",
        "setup",
        "events",
        "events/s",
        "vs single",
        "CPU µs/event",
        "of it workers",
        "p50",
        "p99",
        "hits"
    );
    let base_rate = results[0].events as f64 / results[0].seconds;
    for r in &mut results {
        r.latencies.sort();
        let rate = r.events as f64 / r.seconds;
        println!(
            "{:<12} {:>9} {:>11.0} {:>8.2}x {:>12.1} {:>13.1} {:>8.1}ms {:>8.1}ms {:>7}",
            r.name,
            r.events,
            rate,
            rate / base_rate,
            r.cpu / r.events as f64 * 1e6,
            r.worker_cpu / r.events as f64 * 1e6,
            percentile(&r.latencies, 0.5).as_secs_f64() * 1000.0,
            percentile(&r.latencies, 0.99).as_secs_f64() * 1000.0,
            r.hits
        );
    }
}
