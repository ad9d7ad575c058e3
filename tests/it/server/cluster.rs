//! The distributed mode end to end with real processes on loopback: PostgreSQL, NATS
//! JetStream, three front-ends and two workers (`siren-server --bus`). Batches posted
//! round-robin across the front-ends raise exactly the alerts and incidents that one
//! single-node server raises from the same batches, and a brute force whose attempts are
//! spread over the three front-ends opens exactly one incident.

use std::process::{Child, Command, Stdio};

use sqlx::{Connection, Row};

use super::operations::{free_port, spawn_server_binary, wait_healthy};
use super::*;
use crate::support::shared_dir;

/// The NATS server the tests use (`SIREN_TEST_NATS_URL`), when one answers; a notice
/// otherwise, or a failure where the full suite is required.
fn nats_url() -> Option<String> {
    let url = std::env::var("SIREN_TEST_NATS_URL").ok();
    let reachable = url.as_deref().is_some_and(|url| {
        let address = url.trim_start_matches("nats://");
        std::net::TcpStream::connect(address).is_ok()
    });
    if reachable {
        return url;
    }
    assert!(
        std::env::var_os("SIREN_REQUIRE_CORPUS").is_none(),
        "SIREN_TEST_NATS_URL must name a running NATS server where the full suite is required"
    );
    eprintln!("notice: skipping the distributed mode: no NATS server (set SIREN_TEST_NATS_URL)");
    None
}

/// One `siren-server` process of a cluster.
struct Node {
    child: Child,
    base: String,
    args: Vec<String>,
}

impl Node {
    fn spawn(db: &str, bus: &str, cluster: &str, role: &str, id: &str) -> Self {
        let port = free_port();
        let args: Vec<String> = [
            "--db",
            db,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--bus",
            bus,
            "--cluster",
            cluster,
            "--role",
            role,
            "--node-id",
            id,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let child = Self::start(&args);
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            args,
        }
    }

    fn start(args: &[String]) -> Child {
        Command::new(crate::support::server_bin())
            .args(args)
            .env_remove("SIREN_CONFIG")
            .env("SIREN_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap()
    }

    /// SIGKILLs the process.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again with the same arguments.
    fn restart(&mut self) {
        self.kill();
        self.child = Self::start(&self.args);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A refused logon of `user` on `host` at `at`.
fn failed_logon(host: &str, user: &str, record: i64, at: chrono::DateTime<chrono::Utc>) -> Value {
    json!({
        "EventID": 4625, "Channel": "Security", "Provider_Name": "Microsoft-Windows-Security-Auditing",
        "Computer": host, "EventRecordID": record, "TargetUserName": user,
        "TargetDomainName": "CORP", "IpAddress": "10.9.8.7", "LogonType": 3,
        "Status": "0xc000006d", "SubStatus": "0xc000006a", "TimeCreated": at.to_rfc3339(),
    })
}

/// Posts `batch` to `base` until it is acknowledged (as the agent does), up to 2 minutes.
async fn post_until_acknowledged(
    http: &reqwest::Client,
    bases: &[&str],
    token: &str,
    batch: &Value,
) {
    let until = Instant::now() + Duration::from_secs(120);
    let mut attempt = 0;
    loop {
        let base = bases[attempt % bases.len()];
        attempt += 1;
        let response = http
            .post(format!("{base}/api/v1/events"))
            .bearer_auth(token)
            .json(batch)
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        if let Ok(response) = response
            && response.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < until, "a batch was never acknowledged");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What a PostgreSQL store holds, to compare field by field: every alert and every incident
/// as text (row ids and times of writing left out).
async fn outcome(url: &str) -> (Vec<String>, Vec<String>) {
    let mut db = sqlx::PgConnection::connect(url).await.unwrap();
    let text = |rows: Vec<sqlx::postgres::PgRow>| {
        let mut out: Vec<String> = rows
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| row.get::<Option<String>, _>(i).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        out.sort();
        out
    };
    let alerts = sqlx::query(
        "SELECT a.rule_id::text, a.rule_title::text, a.severity::text, \
         encode(a.event_key, 'hex'), a.ts::text, a.host::text, a.user_name::text, \
         a.src_ip::text, a.detail::text, i.group_key::text FROM alerts a \
         JOIN incidents i ON i.id = a.incident_id",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    let incidents = sqlx::query(
        "SELECT group_key::text, rule_id::text, title::text, severity::text, rule_ids::text, \
         techniques::text, hosts::text, users::text, ips::text, first_seen::text, \
         last_seen::text, alert_count::text, event_count::text, status::text FROM incidents",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    (text(alerts), text(incidents))
}

/// Waits until the cluster's outcome equals `expected` (the workers correlate behind the
/// front-ends), up to 90 s; returns the last outcome read.
async fn settled(url: &str, expected: &(Vec<String>, Vec<String>)) -> (Vec<String>, Vec<String>) {
    let until = Instant::now() + Duration::from_secs(90);
    loop {
        let got = outcome(url).await;
        if &got == expected || Instant::now() > until {
            // A little longer: nothing more may arrive (a doubled alert would).
            tokio::time::sleep(Duration::from_secs(3)).await;
            return outcome(url).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn assert_equal(what: &str, got: &[String], expected: &[String]) {
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
        "{what}: {} in the cluster, {} on one node; missing {missing:#?}, extra {extra:#?}",
        got.len(),
        expected.len()
    );
}

/// The corpus's records as the agent ships them (evtx_dump JSON), file by file in name
/// order, in batches of `size`.
fn corpus_batches(evtx: &Path, size: usize) -> Vec<Value> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut stack = vec![evtx.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "evtx") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut records = Vec::new();
    for file in files {
        let Ok(mut parser) = evtx::EvtxParser::from_path(&file) else {
            continue;
        };
        records.extend(
            parser
                .records_json_value()
                .filter_map(|r| r.ok())
                .map(|r| r.data),
        );
    }
    records
        .chunks(size)
        .map(|chunk| Value::Array(chunk.to_vec()))
        .collect()
}

use std::path::{Path, PathBuf};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_front_ends_and_two_workers_raise_what_one_node_raises() {
    let Some(bus) = nats_url() else {
        return;
    };
    let (Some(cluster_db), Some(single_db)) = (
        crate::support::fresh_postgres_database().await,
        crate::support::fresh_postgres_database().await,
    ) else {
        return;
    };
    // Migrate and add a token on both databases before the processes start.
    let cluster_store = siren_core::store::open(&cluster_db).await.unwrap();
    let single_store = siren_core::store::open(&single_db).await.unwrap();
    let token = add_token(&cluster_store, "default", Role::Agent, false).await;
    let single_token = add_token(&single_store, "default", Role::Agent, false).await;
    let name = format!(
        "test{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    let mut front_ends: Vec<Node> = (0..3)
        .map(|i| Node::spawn(&cluster_db, &bus, &name, "front-end", &format!("fe{i}")))
        .collect();
    let mut workers: Vec<Node> = (0..2)
        .map(|i| Node::spawn(&cluster_db, &bus, &name, "worker", &format!("w{i}")))
        .collect();
    let port = free_port();
    let single_base = format!("http://127.0.0.1:{port}");
    let mut single = Node {
        child: spawn_server_binary(&single_db, port),
        base: format!("http://127.0.0.1:{port}"),
        args: Vec::new(),
    };
    for node in front_ends.iter().chain(&workers) {
        wait_healthy(&node.base).await;
    }
    wait_healthy(&single_base).await;
    let http = reqwest::Client::new();

    // Six refused logons for one account within six seconds, one per request, to the three
    // front-ends in turn: one brute-force incident, as on one node. They are dated within the
    // corpus's years (2013 to 2023): a correlator drops matches more than ten years older than
    // the newest it has seen, so after events of today one node would drop the corpus's
    // oldest, where a partition that saw none of today's would not.
    let start: chrono::DateTime<chrono::Utc> = "2022-06-01T12:00:00Z".parse().unwrap();
    for i in 0..6 {
        let at = start + chrono::Duration::seconds(i);
        let batch = json!([failed_logon("ws07", "carol", 100 + i, at)]);
        let base = front_ends[i as usize % 3].base.clone();
        post_until_acknowledged(&http, &[&base], &token, &batch).await;
        post_until_acknowledged(&http, &[&single_base], &single_token, &batch).await;
    }
    let expected = outcome(&single_db).await;
    let brute_force = expected
        .1
        .iter()
        .filter(|i| i.contains("Brute Force Against One Account"))
        .count();
    assert_eq!(brute_force, 1, "one node: {:#?}", expected.1);
    let got = settled(&cluster_db, &expected).await;
    assert_equal("brute force alerts", &got.0, &expected.0);
    assert_equal("brute force incidents", &got.1, &expected.1);

    // The EVTX corpus, batch by batch round-robin over the front-ends; while it streams, a
    // worker and a front-end are killed with SIGKILL and started again.
    let Some(shared) = shared_dir("the distributed mode over the EVTX corpus") else {
        return;
    };
    let batches = corpus_batches(&shared.join("corpus/evtx"), 250);
    assert!(batches.len() > 40, "{} batches", batches.len());
    for (i, batch) in batches.iter().enumerate() {
        if i == batches.len() / 3 {
            workers[0].kill();
            front_ends[1].kill();
        }
        if i == batches.len() / 2 {
            workers[0].restart();
            front_ends[1].restart();
            wait_healthy(&front_ends[1].base).await;
        }
        let bases: Vec<&str> = (0..3)
            .map(|k| front_ends[(i + k) % 3].base.as_str())
            .collect();
        post_until_acknowledged(&http, &bases, &token, batch).await;
        post_until_acknowledged(&http, &[&single_base], &single_token, batch).await;
    }
    let expected = outcome(&single_db).await;
    assert!(
        expected.0.len() > 100,
        "the corpus raises alerts on one node: {}",
        expected.0.len()
    );
    let got = settled(&cluster_db, &expected).await;
    assert_equal("alerts", &got.0, &expected.0);
    assert_equal("incidents", &got.1, &expected.1);
    // Every event stored once.
    let count = |url: String| async move {
        let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM events")
            .fetch_one(&mut db)
            .await
            .unwrap()
    };
    assert_eq!(
        count(cluster_db.clone()).await,
        count(single_db.clone()).await
    );

    // `siren cluster status` names the two workers as the owners of every partition.
    let output = Command::new(crate::support::siren_bin())
        .args([
            "--format",
            "json",
            "cluster",
            "status",
            "--bus",
            &bus,
            "--cluster",
            &name,
        ])
        .env_remove("SIREN_CONFIG")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let status: Value = serde_json::from_slice(&output.stdout).unwrap();
    let owners: std::collections::BTreeSet<&str> = status["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["owner"].as_str())
        .collect();
    assert_eq!(
        status["partitions"].as_array().unwrap().len(),
        16,
        "{status}"
    );
    assert!(
        owners.iter().all(|o| ["w0", "w1"].contains(o)) && !owners.is_empty(),
        "{status}"
    );
    single.kill();
    drop(front_ends);
    drop(workers);
}
