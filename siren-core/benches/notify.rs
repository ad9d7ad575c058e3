//! Event-to-notification latency: alerts recorded in a SQLite store (the transaction that opens
//! the incident also records the outbox change) until a webhook receiver on loopback has the
//! message, with the dispatcher running as a server runs it (`Dispatcher::run`, woken after
//! each batch, polling every second otherwise). Baseline: a bare HTTP POST to the same
//! receiver. A second pass measures the dispatcher left to its one-second poll (nobody wakes it).
//!
//! `cargo bench -p siren-core --bench notify -- [SAMPLES]` (default 200).

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use siren_core::TenantId;
use siren_core::incident::{Alert, Severity};
use siren_core::notify::{Dispatcher, NotifyConfig, SystemClock};
use tokio::sync::mpsc;

fn alert(n: usize) -> Alert {
    Alert {
        rule_id: "bench-rule".to_owned(),
        rule_title: "Benchmark rule".to_owned(),
        severity: Severity::High,
        correlation: false,
        group_key: format!("host{n}"),
        techniques: vec!["T1110".to_owned()],
        investigation: vec![],
        time: chrono::Utc::now(),
        hosts: vec![format!("host{n}")],
        users: vec!["bob".to_owned()],
        ips: vec![],
        event_count: 1,
        event_key: None,
        detail: serde_json::json!({}),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn describe(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<44} n={:<4} p50 {:>8.2} ms  p90 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms",
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

    // The receiver: every POST body's incident id, with the time it arrived.
    let (tx, mut rx) = mpsc::unbounded_channel::<(i64, Instant)>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let tx = tx.clone();
            async move {
                let at = Instant::now();
                let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                let id = value["incident"]["id"].as_i64().unwrap_or(-1);
                let _ = tx.send((id, at));
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("http://127.0.0.1:{port}/hook");

    // Baseline: the bare POST, same receiver, same body size.
    let client = reqwest::Client::new();
    let body = serde_json::json!({"incident": {"id": 0}, "padding": "x".repeat(1500)}).to_string();
    let mut bare = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        client.post(&url).body(body.clone()).send().await.unwrap();
        let (_, at) = rx.recv().await.unwrap();
        bare.push(at - started);
    }

    for woken in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let store = siren_core::store::open(&format!(
            "sqlite://{}",
            dir.path().join("bench.db").display()
        ))
        .await
        .unwrap();
        let config: NotifyConfig = serde_yaml::from_str(&format!(
            "channels:\n  - {{ name: hook, type: webhook, url: \"{url}\", secret: \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\" }}\npolicies:\n  - {{ channels: [hook], min_severity: high }}\n"
        ))
        .unwrap();
        let dispatcher = Dispatcher::new(store.clone(), config, Arc::new(SystemClock)).unwrap();
        let waker = dispatcher.waker();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(dispatcher.run(async move {
            let _ = stop_rx.await;
        }));
        let tenant = TenantId::default();
        let n = if woken { samples } else { samples.min(40) };
        let mut latencies = Vec::with_capacity(n);
        for i in 0..n {
            if !woken {
                // Land at a random point of the poll interval.
                tokio::time::sleep(Duration::from_millis((i as u64 * 37) % 1000)).await;
            }
            let started = Instant::now();
            store
                .record_alerts(
                    &tenant,
                    &[alert(i)],
                    chrono::Duration::hours(24),
                    chrono::Utc::now(),
                )
                .await
                .unwrap();
            if woken {
                waker.notify_one();
            }
            let (id, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("the notification arrives")
                .unwrap();
            assert_eq!(id, i as i64 + 1, "one message per incident, in order");
            latencies.push(at - started);
        }
        let _ = stop_tx.send(());
        let _ = running.await;
        let name = if woken {
            "alerts stored → webhook received (woken)"
        } else {
            "alerts stored → webhook received (1 s poll)"
        };
        describe(name, latencies);
    }
    describe("baseline: bare webhook POST", bare);
}
