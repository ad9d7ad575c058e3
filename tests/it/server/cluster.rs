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

/// A NATS server with JetStream of the test's own, so that the test can kill and restart
/// it: on a free port, its store in a temporary directory. `None` (after a notice) where no
/// `nats-server` binary is found (`SIREN_NATS_SERVER`, the `PATH`, `/usr/sbin`); a failure
/// there where the full suite is required.
struct Nats {
    child: Child,
    binary: PathBuf,
    port: u16,
    store: tempfile::TempDir,
}

impl Nats {
    fn start() -> Option<Nats> {
        let binary = std::env::var_os("SIREN_NATS_SERVER")
            .map(PathBuf::from)
            .or_else(|| {
                let path = std::env::var_os("PATH").unwrap_or_default();
                std::env::split_paths(&path)
                    .chain([PathBuf::from("/usr/sbin")])
                    .map(|dir| dir.join("nats-server"))
                    .find(|candidate| candidate.is_file())
            });
        let Some(binary) = binary else {
            assert!(
                std::env::var_os("SIREN_REQUIRE_CORPUS").is_none(),
                "nats-server is required where the full suite is (apt-get install nats-server, \
                 or set SIREN_NATS_SERVER)"
            );
            eprintln!(
                "notice: skipping the distributed mode: no nats-server (apt-get install \
                 nats-server, or set SIREN_NATS_SERVER)"
            );
            return None;
        };
        let port = free_port();
        let store = tempfile::tempdir().unwrap();
        let child = Self::spawn(&binary, port, store.path());
        let nats = Nats {
            child,
            binary,
            port,
            store,
        };
        nats.wait_ready();
        Some(nats)
    }

    fn spawn(binary: &Path, port: u16, store: &Path) -> Child {
        Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server")
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn wait_ready(&self) {
        let until = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < until, "nats-server did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILLs the server (its stream stays on disk).
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port and store, and waits until it answers.
    fn restart(&mut self) {
        self.kill();
        self.child = Self::spawn(&self.binary, self.port, self.store.path());
        self.wait_ready();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
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
    let Some(mut nats) = Nats::start() else {
        return;
    };
    let bus = nats.url();
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
    // worker and a front-end are killed with SIGKILL and started again, and later the NATS
    // server.
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
        if i == batches.len() * 2 / 3 {
            // Without the bus a front-end refuses the batch (nothing is acknowledged that
            // the workers would not see); once NATS is back, the same batch goes through.
            nats.kill();
            let refused = http
                .post(format!("{}/api/v1/events", front_ends[i % 3].base))
                .bearer_auth(&token)
                .json(batch)
                .timeout(Duration::from_secs(60))
                .send()
                .await;
            if let Ok(response) = refused {
                assert_eq!(
                    response.status(),
                    503,
                    "a batch while the bus is down: {}",
                    response.text().await.unwrap_or_default()
                );
            }
            nats.restart();
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

    // One `siren ingest` of the same input (the brute force, then the corpus) on a third
    // database raises the same alerts and incidents.
    let Some(ingest_db) = crate::support::fresh_postgres_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let brute_force_file = dir.path().join("brute-force.jsonl");
    let lines: Vec<String> = (0..6)
        .map(|i| {
            failed_logon(
                "ws07",
                "carol",
                100 + i,
                start + chrono::Duration::seconds(i),
            )
            .to_string()
        })
        .collect();
    std::fs::write(&brute_force_file, lines.join("\n") + "\n").unwrap();
    for input in [brute_force_file, shared.join("corpus/evtx")] {
        let output = Command::new(crate::support::siren_bin())
            .args(["--db", &ingest_db, "ingest", "--quiet", "--format", "json"])
            .arg(&input)
            .env_remove("SIREN_CONFIG")
            .output()
            .unwrap();
        assert!(
            matches!(output.status.code(), Some(0 | 65)),
            "siren ingest {}: {}",
            input.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let ingested = outcome(&ingest_db).await;
    assert_equal("alerts of siren ingest", &ingested.0, &expected.0);
    assert_equal("incidents of siren ingest", &ingested.1, &expected.1);

    // The cluster page of the dashboard, for a global admin: every partition with its owner
    // and every member; on the single node it says there is no cluster.
    add_user(&cluster_store, "default", "root", Role::Admin).await;
    add_user(&single_store, "default", "root", Role::Admin).await;
    let default = siren_core::TenantId::parse("default").unwrap();
    for store in [&cluster_store, &single_store] {
        store
            .set_user_global(&default, "root", true, &actor())
            .await
            .unwrap();
    }
    if let Some((chromium, driver)) = crate::dashboard::chromium() {
        let browser = crate::dashboard::Browser::start(&chromium, &driver).await;
        let base = front_ends[0].base.clone();
        browser.sign_in_at(&base, "root", PASSWORD).await;
        browser
            .wait_js(
                "the Cluster link shows for a global admin",
                "!document.getElementById('nav-cluster').hidden",
            )
            .await;
        browser
            .c()
            .goto(&format!("{base}/#/cluster"))
            .await
            .unwrap();
        browser.wait_css("body[data-cluster='rendered']").await;
        // The page refreshes every 5 s; a partition just handed over between the workers
        // shows no owner for a moment.
        browser
            .wait_js(
                "every partition shows an owner",
                "document.querySelectorAll('#cluster-partitions tr').length === 16 && \
                 [...document.querySelectorAll('#cluster-partitions tr')].every(r => r.dataset.owner)",
            )
            .await;
        let owners = browser
            .js("return [...document.querySelectorAll('#cluster-partitions tr')].map(r => r.dataset.owner);")
            .await;
        let owners = owners.as_array().unwrap();
        assert_eq!(owners.len(), 16, "{owners:?}");
        assert!(owners.iter().all(|o| o == "w0" || o == "w1"), "{owners:?}");
        let members = browser
            .js("return [...document.querySelectorAll('#cluster-members tr')].map(r => r.dataset.member).sort();")
            .await;
        assert_eq!(members, json!(["fe0", "fe1", "fe2", "w0", "w1"]));
        browser.screenshot("cluster").await;
        browser.sign_in_at(&single_base, "root", PASSWORD).await;
        browser
            .c()
            .goto(&format!("{single_base}/#/cluster"))
            .await
            .unwrap();
        browser.wait_css("body[data-cluster='single']").await;
        browser.close().await;
    }

    single.kill();
    drop(front_ends);
    drop(workers);
}
