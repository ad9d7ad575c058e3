//! Load benchmark of the server on SQLite, with a Rust load generator (reqwest):
//!
//! 1. sustained `POST /api/v1/events` in batches of 500 from 4 concurrent senders until the
//!    store holds `SIREN_BENCH_EVENTS` events (default 1,000,000), against the baseline of the
//!    same events in the same batches through `siren_core::ingest::Pipeline` directly, into a
//!    store of the same kind: the server's entry point (`ingest_flattened`, each event
//!    flattened from its JSON text) from 4 concurrent callers, fed by a load-generator thread,
//!    without HTTP. Both runs must store every event; the ratio of their rates and of their CPU
//!    per event is the cost of HTTP, authentication and splitting the body. An unmeasured
//!    pass through the pipeline first warms the process up (its first run is slower, whichever
//!    it is);
//! 2. event-to-incident latency: from sending a batch with an attack to its incident arriving
//!    on `/api/v1/stream`;
//! 3. with those events stored, 20 concurrent dashboard users calling the dashboard's API
//!    (incident list, incident detail, stats, events, me): p50 / p99 per call, against
//!    `/healthz` under the same load as the baseline; and the dashboard's first load (the page,
//!    its assets, and its first API calls).
//!
//! `cargo bench -p siren-server --bench load` (set `SIREN_BENCH_EVENTS` for a smaller run).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use siren_core::TenantId;
use siren_core::normalize::flatten::flatten_json_slice;
use siren_core::user::{Actor, Role};

/// The server binaries' allocator (`siren-server`, `siren serve`), so the in-process server
/// allocates as they do.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 500;
const SENDERS: usize = 4;
const USERS: usize = 20;
const PASSWORD: &str = "benchmark password";

/// A realistic mix: logons, process creations, failed logons, and one log clearing per batch
/// (an incident per host, over 500 hosts).
fn batch(n: usize) -> Vec<Value> {
    let base = chrono::DateTime::parse_from_rfc3339("2026-11-20T00:00:00Z").unwrap();
    (0..BATCH)
        .map(|i| {
            let seq = (n * BATCH + i) as i64;
            let host = format!("ws{:04}.corp.example", seq % 500);
            let time = (base + chrono::Duration::milliseconds(seq * 10)).to_rfc3339();
            match i % 50 {
                0 => json!({"Event": {"System": {"EventID": 1102, "Channel": "Security",
                    "Provider": {"#attributes": {"Name": "Microsoft-Windows-Eventlog"}},
                    "Computer": host, "EventRecordID": seq, "TimeCreated": {"#attributes": {"SystemTime": time}}},
                    "UserData": {"LogFileCleared": {"SubjectUserName": "mallory", "SubjectDomainName": "CORP"}}}}),
                1..=10 => json!({"Event": {"System": {"EventID": 4688, "Channel": "Security",
                    "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
                    "Computer": host, "EventRecordID": seq, "TimeCreated": {"#attributes": {"SystemTime": time}}},
                    "EventData": {"NewProcessName": "C:\\Windows\\System32\\svchost.exe",
                    "CommandLine": format!("svchost.exe -k netsvcs -p -s Schedule {seq}"),
                    "ParentProcessName": "C:\\Windows\\System32\\services.exe", "SubjectUserName": "SYSTEM"}}}),
                _ => json!({"Event": {"System": {"EventID": 4624, "Channel": "Security",
                    "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
                    "Computer": host, "EventRecordID": seq, "TimeCreated": {"#attributes": {"SystemTime": time}}},
                    "EventData": {"TargetUserName": format!("user{}", seq % 300), "TargetDomainName": "CORP",
                    "LogonType": 3, "IpAddress": format!("10.0.{}.{}", seq % 200, seq % 250),
                    "WorkstationName": "WS", "LogonProcessName": "NtLmSsp"}}}),
            }
        })
        .collect()
}

/// The load generator's threads' name (the main thread drives it too); every other thread's
/// CPU time is the server's.
const LOAD_THREADS: &str = "load-generator";

/// CPU seconds (user + system) used so far: by the whole process, and by the load generator.
fn cpu_seconds() -> (f64, f64) {
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    fn ticks(stat: &str) -> f64 {
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (field(11) + field(12)) / 100.0
    }
    let read = |path: &std::path::Path| std::fs::read_to_string(path).unwrap_or_default();
    let total = ticks(&read(std::path::Path::new("/proc/self/stat")));
    let pid = std::process::id().to_string();
    let mut load = 0.0;
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = read(&task.path().join("comm"));
        if comm.trim_end() == LOAD_THREADS || task.file_name().to_string_lossy() == pid {
            load += ticks(&read(&task.path().join("stat")));
        }
    }
    (total, load)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize)
        .saturating_sub(1)
        .min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let target: usize = std::env::var("SIREN_BENCH_EVENTS").map_or(1_000_000, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("SIREN_BENCH_EVENTS={v:?} is not a number of events"))
    });
    assert!(target > 0, "SIREN_BENCH_EVENTS is at least 1");
    let dir = tempfile_dir();
    let url = format!("sqlite://{}", dir.join("bench.db").display());
    let baseline_url = format!("sqlite://{}", dir.join("baseline.db").display());

    // The server runs on its own runtime (2 worker threads, like a 2-core box), the load
    // generator on another.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("siren-server")
        .enable_all()
        .build()
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(LOAD_THREADS)
        .enable_all()
        .build()
        .unwrap();
    // Each run loads its own rules: regexes and automata are built on first use, and a run
    // must not find them built by the other.
    let load_rules = || Arc::new(siren_server::load_rules(&[], None, &[]).unwrap());

    // The process's first run pays for warming it up (the allocator's memory, the blocking
    // threads): an unmeasured pass through the pipeline into a store of its own takes that,
    // so that neither of the runs compared does.
    let batches = target.div_ceil(BATCH);
    let warm_up_url = format!("sqlite://{}", dir.join("warm-up.db").display());
    let warm_up = pipeline_baseline(&server_rt, &warm_up_url, load_rules(), batches);
    // Baseline: the same batches through the library pipeline, no HTTP.
    let baseline = pipeline_baseline(&server_rt, &baseline_url, load_rules(), batches);
    let rules = load_rules();

    let (base, token) = server_rt.block_on(async {
        let store = siren_core::store::open(&url).await.unwrap();
        let tenant = TenantId::default();
        let actor = Actor {
            name: "bench".into(),
            origin: "bench".into(),
        };
        let hash = siren_core::user::hash_password(PASSWORD).unwrap();
        for i in 0..USERS {
            store
                .add_user(
                    &tenant,
                    &format!("analyst{i}"),
                    Role::Analyst,
                    &hash,
                    &actor,
                )
                .await
                .unwrap();
        }
        let secret = siren_server::auth::new_token_secret().unwrap();
        let token_hash = siren_server::auth::token_hash(&secret);
        store
            .create_token(
                &siren_core::store::NewToken {
                    tenant: &tenant,
                    name: "bench agent",
                    role: Role::Agent,
                    global: false,
                    secret_hash: &token_hash,
                    expires_at: None,
                },
                &actor,
            )
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = siren_server::ServerConfig {
            login_failures_per_ip: 10_000,
            ..siren_server::ServerConfig::default()
        };
        let state = siren_server::AppState::new(store, Some(rules.clone()), config);
        tokio::spawn(siren_server::serve(listener, state, std::future::pending()));
        (base, secret)
    });

    client_rt.block_on(async move {
        let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
        // 1. Sustained ingest.
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let cpu_before = cpu_seconds();
        let started = Instant::now();
        let mut senders = Vec::new();
        for _ in 0..SENDERS {
            let (http, base, token, next) = (http.clone(), base.clone(), token.clone(), next.clone());
            senders.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut stored = 0;
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= batches {
                        return (latencies, stored);
                    }
                    let body = serde_json::to_vec(&batch(n)).unwrap();
                    let sent = Instant::now();
                    loop {
                        let response = http
                            .post(format!("{base}/api/v1/events"))
                            .bearer_auth(&token)
                            .header("Content-Type", "application/json")
                            .body(body.clone())
                            .send()
                            .await
                            .unwrap();
                        if response.status() == 503 {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
                        let outcome: Value = response.json().await.unwrap();
                        stored += outcome["stored"].as_u64().unwrap();
                        break;
                    }
                    latencies.push(sent.elapsed());
                    if n % 200 == 0 && n > 0 {
                        eprintln!("  {} events sent", n * BATCH);
                    }
                }
            }));
        }
        let mut batch_latencies = Vec::new();
        let mut stored = 0;
        for sender in senders {
            let (latencies, n) = sender.await.unwrap();
            batch_latencies.extend(latencies);
            stored += n;
        }
        let elapsed = started.elapsed();
        let cpu_after = cpu_seconds();
        let load_cpu = cpu_after.1 - cpu_before.1;
        let server_cpu = (cpu_after.0 - cpu_before.0) - load_cpu;
        let events = batches * BATCH;
        assert_eq!(stored, events as u64, "the server stored every event sent");
        let rate = events as f64 / elapsed.as_secs_f64();
        let per_event = server_cpu * 1e6 / events as f64;
        batch_latencies.sort();
        println!("## SIREN server load benchmark (SQLite, {events} events, batches of {BATCH}, {SENDERS} senders)");
        println!("warm-up pass through the pipeline (not compared): {:.0} events/s", warm_up.rate());
        println!("baseline, the same {} events through siren_core's Pipeline (no HTTP, {SENDERS} concurrent callers): {:.0} events/s ({:.1} s)",
            baseline.events, baseline.rate(), baseline.elapsed.as_secs_f64());
        println!("  CPU: pipeline {:.1} s ({:.1} µs per event), load generator {:.1} s",
            baseline.server_cpu, baseline.cpu_per_event(), baseline.load_cpu);
        println!("ingest via POST /api/v1/events: {rate:.0} events/s ({:.1} s); batch latency p50 {} p99 {}",
            elapsed.as_secs_f64(), ms(percentile(&batch_latencies, 0.5)), ms(percentile(&batch_latencies, 0.99)));
        println!("  CPU: server {server_cpu:.1} s ({per_event:.1} µs per event, {:.0} events per server CPU second), load generator {load_cpu:.1} s",
            events as f64 / server_cpu.max(0.01));
        println!("HTTP / baseline, {events} events each: rate {:.0}%, server CPU per event {:.2}x (on a busy machine, compare the CPU)",
            100.0 * rate / baseline.rate(), per_event / baseline.cpu_per_event());

        // Log in the dashboard users.
        let mut users = Vec::new();
        for i in 0..USERS {
            let client = reqwest::Client::builder().cookie_store(true).build().unwrap();
            let me: Value = client
                .post(format!("{base}/api/v1/auth/login"))
                .json(&json!({"username": format!("analyst{i}"), "password": PASSWORD}))
                .send().await.unwrap().json().await.unwrap();
            assert!(me["csrf_token"].is_string(), "{me}");
            users.push(client);
        }

        // 2. Event-to-incident latency over the live stream.
        let mut stream = users[0].get(format!("{base}/api/v1/stream")).send().await.unwrap();
        let mut buffer = String::new();
        let mut latencies = Vec::new();
        for i in 0..20 {
            let host = format!("latency{i}.corp.example");
            let event = json!([{"EventID": 1102, "Channel": "Security", "Provider_Name": "Microsoft-Windows-Eventlog",
                "Computer": host, "EventRecordID": i, "TimeCreated": chrono::Utc::now().to_rfc3339()}]);
            let sent = Instant::now();
            let response = http.post(format!("{base}/api/v1/events")).bearer_auth(&token).json(&event).send().await.unwrap();
            assert_eq!(response.status(), 200);
            loop {
                let chunk = tokio::time::timeout(Duration::from_secs(5), stream.chunk()).await.unwrap().unwrap().unwrap();
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                if buffer.contains(&host) {
                    latencies.push(sent.elapsed());
                    buffer.clear();
                    break;
                }
            }
        }
        drop(stream);
        latencies.sort();
        println!("event-to-incident (POST sent → incident on /stream): p50 {} max {}",
            ms(percentile(&latencies, 0.5)), ms(*latencies.last().unwrap()));

        // 3. 20 concurrent dashboard users.
        let page: Value = users[0].get(format!("{base}/api/v1/incidents?limit=50")).send().await.unwrap().json().await.unwrap();
        let ids: Vec<i64> = page["incidents"].as_array().unwrap().iter().filter_map(|i| i["id"].as_i64()).collect();
        let calls: Vec<(&str, String)> = vec![
            ("incidents", "/api/v1/incidents?limit=50".to_owned()),
            ("incidents?status=new", "/api/v1/incidents?status=new&limit=50".to_owned()),
            ("incident detail", String::new()),
            ("stats", "/api/v1/stats".to_owned()),
            ("events", "/api/v1/events?limit=50".to_owned()),
            ("me", "/api/v1/auth/me".to_owned()),
        ];
        let run_for = Duration::from_secs(20);
        let measure = |paths: Vec<(&'static str, String)>| {
            let users = users.clone();
            let base = base.clone();
            let ids = ids.clone();
            async move {
                let mut tasks = Vec::new();
                for (u, client) in users.into_iter().enumerate() {
                    let (paths, base, ids) = (paths.clone(), base.clone(), ids.clone());
                    tasks.push(tokio::spawn(async move {
                        let mut seen: Vec<(&'static str, Duration)> = Vec::new();
                        let until = Instant::now() + run_for;
                        let mut k = u;
                        while Instant::now() < until {
                            for (name, path) in &paths {
                                let path = if path.is_empty() { format!("/api/v1/incidents/{}", ids[k % ids.len()]) } else { path.clone() };
                                k += 1;
                                let sent = Instant::now();
                                let response = client.get(format!("{base}{path}")).send().await.unwrap();
                                assert_eq!(response.status(), 200, "{path}");
                                response.bytes().await.unwrap();
                                seen.push((name, sent.elapsed()));
                            }
                        }
                        seen
                    }));
                }
                let mut all = Vec::new();
                for task in tasks {
                    all.extend(task.await.unwrap());
                }
                all
            }
        };
        let healthz = measure(vec![("healthz", "/healthz".to_owned())]).await;
        let mut healthz: Vec<Duration> = healthz.into_iter().map(|(_, d)| d).collect();
        healthz.sort();
        let named: Vec<(&'static str, String)> = calls.iter().map(|(n, p)| (*n, p.clone())).collect();
        let cpu_before = cpu_seconds();
        let seen = measure(named).await;
        let cpu_after = cpu_seconds();
        let load_cpu = cpu_after.1 - cpu_before.1;
        let server_cpu = (cpu_after.0 - cpu_before.0) - load_cpu;
        println!("{USERS} concurrent dashboard users, {} events stored, {} s each:", batches * BATCH + 20, run_for.as_secs());
        println!("  baseline GET /healthz: p50 {} p99 {} ({} calls)", ms(percentile(&healthz, 0.5)), ms(percentile(&healthz, 0.99)), healthz.len());
        let mut all: Vec<Duration> = seen.iter().map(|(_, d)| *d).collect();
        all.sort();
        for (name, _) in &calls {
            let mut mine: Vec<Duration> = seen.iter().filter(|(n, _)| n == name).map(|(_, d)| *d).collect();
            mine.sort();
            println!("  {name}: p50 {} p99 {} ({} calls)", ms(percentile(&mine, 0.5)), ms(percentile(&mine, 0.99)), mine.len());
        }
        println!("  all API calls: p50 {} p99 {} ({} calls, {:.0} calls/s)", ms(percentile(&all, 0.5)), ms(percentile(&all, 0.99)), all.len(),
            all.len() as f64 / run_for.as_secs_f64());
        println!("  CPU: server {server_cpu:.1} s ({:.0} µs per call), load generator {load_cpu:.1} s",
            server_cpu * 1e6 / all.len().max(1) as f64);

        // Dashboard first load: the page, its assets, and the API calls it makes first, by a
        // fresh browser-like client (no cache), while the 20 users keep working.
        let background = {
            let named: Vec<(&'static str, String)> = calls.iter().map(|(n, p)| (*n, p.clone())).collect();
            tokio::spawn(measure(named))
        };
        let mut loads = Vec::new();
        for _ in 0..10 {
            let fresh = reqwest::Client::builder().cookie_store(true).build().unwrap();
            let started = Instant::now();
            let index = fresh.get(format!("{base}/")).send().await.unwrap().text().await.unwrap();
            let assets: Vec<String> = index
                .split(['"', '\''])
                .filter(|s| (s.starts_with("/assets/") || s.starts_with("assets/") || s.ends_with(".js") || s.ends_with(".css")) && !s.contains(' '))
                .map(|s| if s.starts_with('/') { s.to_owned() } else { format!("/{s}") })
                .collect();
            let fetches = assets.iter().map(|a| fresh.get(format!("{base}{a}")).send());
            for response in futures_util::future::join_all(fetches).await {
                response.unwrap().bytes().await.unwrap();
            }
            fresh.post(format!("{base}/api/v1/auth/login")).json(&json!({"username": "analyst0", "password": PASSWORD})).send().await.unwrap();
            let api = ["/api/v1/auth/me", "/api/v1/stats", "/api/v1/incidents?limit=50"].map(|p| fresh.get(format!("{base}{p}")).send());
            for response in futures_util::future::join_all(api).await {
                response.unwrap().bytes().await.unwrap();
            }
            loads.push((started.elapsed(), assets.len()));
        }
        let _ = background.await;
        let mut times: Vec<Duration> = loads.iter().map(|(d, _)| *d).collect();
        times.sort();
        println!("dashboard first load (page + {} assets + login + me/stats/incidents), under the same load: p50 {} max {}",
            loads[0].1, ms(percentile(&times, 0.5)), ms(*times.last().unwrap()));
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the baseline measured.
struct Baseline {
    events: usize,
    elapsed: Duration,
    /// CPU seconds of every thread but the load generator's.
    server_cpu: f64,
    load_cpu: f64,
}

impl Baseline {
    fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }

    fn cpu_per_event(&self) -> f64 {
        self.server_cpu * 1e6 / self.events as f64
    }
}

/// `batches` batches through a [`siren_core::ingest::Pipeline`] on a new store at `url`, as
/// `POST /api/v1/events` hands them over (`ingest_flattened`, each event flattened from its
/// text), from [`SENDERS`] concurrent callers on `runtime`; a load-generator thread serialises
/// the batches as the senders of the HTTP run do.
fn pipeline_baseline(
    runtime: &tokio::runtime::Runtime,
    url: &str,
    rules: Arc<siren_core::rules::RuleSet>,
    batches: usize,
) -> Baseline {
    runtime.block_on(async {
        let store = siren_core::store::open(url).await.unwrap();
        let pipeline = Arc::new(siren_core::ingest::Pipeline::new(
            store,
            Some(rules),
            Default::default(),
        ));
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Vec<u8>>>(SENDERS * 2);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let cpu_before = cpu_seconds();
        let started = Instant::now();
        // The generator waits for the CPU reading before it ends: the time of a thread that
        // has ended is the process's, no longer its own.
        let (measured, wait_for_measure) = std::sync::mpsc::channel::<()>();
        let generator = std::thread::Builder::new()
            .name(LOAD_THREADS.to_owned())
            .spawn(move || {
                for n in 0..batches {
                    let texts = batch(n)
                        .iter()
                        .map(|event| serde_json::to_vec(event).unwrap())
                        .collect();
                    tx.blocking_send(texts).unwrap();
                }
                drop(tx);
                let _ = wait_for_measure.recv();
            })
            .unwrap();
        let mut callers = Vec::new();
        for _ in 0..SENDERS {
            let (pipeline, rx) = (pipeline.clone(), rx.clone());
            callers.push(tokio::spawn(async move {
                let tenant = TenantId::default();
                let mut stored = 0;
                loop {
                    let Some(texts) = rx.lock().await.recv().await else {
                        return stored;
                    };
                    let outcome = pipeline
                        .ingest_flattened(&tenant, move || {
                            texts.iter().map(|text| flatten_json_slice(text)).collect()
                        })
                        .await
                        .unwrap();
                    stored += outcome.stored;
                }
            }));
        }
        let mut stored = 0;
        for caller in callers {
            stored += caller.await.unwrap();
        }
        let elapsed = started.elapsed();
        let cpu_after = cpu_seconds();
        measured.send(()).unwrap();
        generator.join().unwrap();
        let events = batches * BATCH;
        assert_eq!(stored, events as u64, "the baseline stored every event");
        let load_cpu = cpu_after.1 - cpu_before.1;
        Baseline {
            events,
            elapsed,
            server_cpu: (cpu_after.0 - cpu_before.0) - load_cpu,
            load_cpu,
        }
    })
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("siren-load-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
