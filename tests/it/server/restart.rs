//! The server binary killed with SIGKILL while a sender streams batches, and started again
//! on the same database, three times: once the sender has had every batch acknowledged
//! (re-sending a batch whose answer it did not get, as the agent does), the store holds
//! exactly the alerts, correlation hits and incidents of a server that was never killed.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::operations::{free_port, spawn_server_binary, wait_healthy};
use super::*;
use crate::ingest_crash::{assert_same, correlation_titles, read_outcome};

const BATCHES: usize = 60;

/// Batch `b`: failed logons of five users on three hosts a second apart (brute forces fire
/// as they accumulate), a successful logon, and every tenth batch a cleared log.
fn batch(b: usize) -> Value {
    let start = chrono::Utc::now() - chrono::Duration::hours(2);
    let start = start - chrono::Duration::nanoseconds(start.timestamp_subsec_nanos().into());
    let events: Vec<Value> = (0..40)
        .map(|i| {
            let n = (b * 40 + i) as i64;
            let at = start + chrono::Duration::seconds(n);
            let (host, user) = (format!("h{}", n % 3), format!("u{}", (n / 7) % 5));
            match i {
                0 if b.is_multiple_of(10) => log_cleared(&host, n),
                39 => json!({
                    "EventID": 4624, "Channel": "Security",
                    "Provider_Name": "Microsoft-Windows-Security-Auditing", "Computer": host,
                    "EventRecordID": n, "TargetUserName": user, "IpAddress": "10.1.1.1",
                    "LogonType": 3, "TimeCreated": at.to_rfc3339(),
                }),
                _ => json!({
                    "EventID": 4625, "Channel": "Security",
                    "Provider_Name": "Microsoft-Windows-Security-Auditing", "Computer": host,
                    "EventRecordID": n, "TargetUserName": user, "IpAddress": "10.1.1.1",
                    "LogonType": 3, "Status": "0xc000006d", "SubStatus": "0xc000006a",
                    "TimeCreated": at.to_rfc3339(),
                }),
            }
        })
        .collect();
    Value::Array(events)
}

/// Sends the batches in order, each until the server acknowledges it; counts them in `done`.
async fn send_all(base: String, token: String, batches: Arc<Vec<Value>>, done: Arc<AtomicUsize>) {
    let http = reqwest::Client::new();
    for batch in batches.iter() {
        loop {
            let answer = http
                .post(format!("{base}/api/v1/events"))
                .bearer_auth(&token)
                .json(batch)
                .send()
                .await;
            if let Ok(response) = answer
                && response.status().is_success()
                && let Ok(body) = response.json::<Value>().await
                && !body["stored"].is_null()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        done.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_and_restarted_raises_exactly_what_an_uninterrupted_one_does() {
    let dir = tempfile::tempdir().unwrap();
    let batches = Arc::new((0..BATCHES).map(batch).collect::<Vec<_>>());
    let correlations = correlation_titles(&crate::support::workspace_root().join("rules"));
    let mut outcomes = Vec::new();
    for kills in [vec![], vec![12, 30, 45]] {
        let db = dir.path().join(format!("kills-{}.db", kills.len()));
        let url = format!("sqlite://{}", db.display());
        let store = siren_core::store::open(&url).await.unwrap();
        let token = add_token(&store, "default", Role::Agent, false).await;
        drop(store);
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut child = spawn_server_binary(&url, port);
        wait_healthy(&base).await;
        let done = Arc::new(AtomicUsize::new(0));
        let sender = tokio::spawn(send_all(base.clone(), token, batches.clone(), done.clone()));
        let mut landed = Vec::new();
        for at in &kills {
            while done.load(Ordering::SeqCst) < *at {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            // The sender is posting the next batch: kill the server under it.
            child.kill().unwrap();
            child.wait().unwrap();
            landed.push(done.load(Ordering::SeqCst));
            child = spawn_server_binary(&url, port);
            wait_healthy(&base).await;
        }
        sender.await.unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            landed.iter().all(|n| *n < BATCHES),
            "each kill landed before the last batch: {landed:?}"
        );
        let correlations = correlations.clone();
        let outcome = tokio::task::spawn_blocking(move || read_outcome(&db, &correlations));
        outcomes.push(outcome.await.unwrap());
    }
    let (expected, got) = (&outcomes[0], &outcomes[1]);
    assert_eq!(expected.events, (BATCHES * 40) as i64);
    assert!(expected.correlation_hits > 0, "{expected:?}");
    assert_eq!(got.events, expected.events);
    assert_eq!(got.correlation_hits, expected.correlation_hits);
    assert_same(got, expected);
}
