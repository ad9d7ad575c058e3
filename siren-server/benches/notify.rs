//! Event-to-notification latency through the server: the real server (SQLite, the built-in
//! rules, a notification dispatcher with one webhook channel) on loopback; each sample POSTs a
//! batch to `/api/v1/events` whose log clearing opens a new high incident, and ends when the
//! webhook receiver on loopback has that incident's message. Baselines in the same run: the
//! `POST /api/v1/events` round trip alone, and a bare POST to the same receiver.
//!
//! `cargo bench -p siren-server --bench notify -- [SAMPLES]` (default 200).
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
use siren_core::notify::{Dispatcher, NotifyConfig, SystemClock, rule_tags_of};
use siren_core::user::{Actor, Role};
use tokio::sync::mpsc;

/// A harmless logon and a Security log clearing on `host` (the built-in pack opens a high
/// incident per host for the latter).
fn batch(host: &str, record: i64) -> Value {
    let now = chrono::Utc::now().to_rfc3339();
    json!([
        {"EventID": 4624, "Channel": "Security", "Provider_Name": "Microsoft-Windows-Security-Auditing",
         "Computer": host, "EventRecordID": record, "TargetUserName": "bob", "TimeCreated": now},
        {"EventID": 1102, "Channel": "Security", "Provider_Name": "Microsoft-Windows-Eventlog",
         "Computer": host, "EventRecordID": record + 1, "SubjectUserName": "mallory",
         "TimeCreated": now},
    ])
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn describe(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<46} n={:<4} p50 {:>8.2} ms  p90 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms",
        samples.len(),
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.9)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().unwrap())
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let samples: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let dir = std::env::temp_dir().join(format!("siren-notify-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // The receiver: each message's incident id (generic JSON preset), with its arrival time.
    let (tx, mut rx) = mpsc::unbounded_channel::<(Vec<i64>, Instant)>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let tx = tx.clone();
            async move {
                let at = Instant::now();
                let value: Value = serde_json::from_str(&body).unwrap_or_default();
                let ids = value["incidents"]
                    .as_array()
                    .map(|list| list.iter().filter_map(|i| i["id"].as_i64()).collect())
                    .unwrap_or_default();
                let _ = tx.send((ids, at));
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let hook = format!("http://127.0.0.1:{port}/hook");

    // The server, with a dispatcher.
    let store = siren_core::store::open(&format!("sqlite://{}", dir.join("bench.db").display()))
        .await
        .unwrap();
    let tenant = TenantId::default();
    let actor = Actor {
        name: "bench".into(),
        origin: "bench".into(),
    };
    let secret = siren_server::auth::new_token_secret().unwrap();
    store
        .create_token(
            &siren_core::store::NewToken {
                tenant: &tenant,
                name: "bench agent",
                role: Role::Agent,
                global: false,
                secret_hash: &siren_server::auth::token_hash(&secret),
                expires_at: None,
            },
            &actor,
        )
        .await
        .unwrap();
    let rules = Arc::new(siren_server::load_rules(&[], None, &[]).unwrap());
    let config: NotifyConfig = serde_yaml::from_str(&format!(
        "channels:\n  - {{ name: hook, type: webhook, url: \"{hook}\", secret: \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\" }}\npolicies:\n  - {{ channels: [hook], min_severity: high }}\n"
    ))
    .unwrap();
    let dispatcher = Dispatcher::new(store.clone(), config, Arc::new(SystemClock))
        .unwrap()
        .with_rule_tags(rule_tags_of(&rules));
    let state =
        siren_server::AppState::new(store, Some(rules), siren_server::ServerConfig::default())
            .with_dispatcher(dispatcher);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(siren_server::serve(listener, state, async move {
        let _ = stop_rx.await;
    }));

    let http = reqwest::Client::new();
    let post_events = |body: Value| {
        http.post(format!("{base}/api/v1/events"))
            .bearer_auth(&secret)
            .json(&body)
            .send()
    };

    // Event to notification: each batch opens incident n + 1.
    let mut to_notification = Vec::with_capacity(samples);
    let mut round_trip = Vec::with_capacity(samples);
    for n in 0..samples {
        let started = Instant::now();
        let response = post_events(batch(&format!("ws{n:04}"), 10)).await.unwrap();
        assert_eq!(response.status(), 200);
        let outcome: Value = response.json().await.unwrap();
        assert_eq!(outcome["incidents_created"], 1, "{outcome}");
        round_trip.push(started.elapsed());
        let (ids, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("the notification arrives within 10 s")
            .unwrap();
        assert_eq!(ids, [n as i64 + 1], "one message per incident, in order");
        to_notification.push(at - started);
    }

    // Baseline: a bare POST of a message of the same size to the same receiver.
    let body = json!({"incidents": [{"id": 0}], "padding": "x".repeat(1500)}).to_string();
    let mut bare = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        http.post(&hook).body(body.clone()).send().await.unwrap();
        let (_, at) = rx.recv().await.unwrap();
        bare.push(at - started);
    }

    let _ = stop_tx.send(());
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&dir);
    describe("events POSTed → webhook received", to_notification);
    describe("baseline: POST /api/v1/events round trip", round_trip);
    describe("baseline: bare POST to the receiver", bare);
}
