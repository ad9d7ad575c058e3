//! `siren-agent` end to end: the real binary ships to a receiver implementing the events API
//! contract (a real HTTP(S) server on 127.0.0.1:0), through faults: bad configuration, an
//! unreachable server, a wrong token, an untrusted certificate, a full spool, a followed file
//! that is appended to and rotated, and restarts.

mod corpus;
mod shipping;

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

use crate::support::{agent_bin, server_bin, shared_dir};

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    /// Every event received, duplicates included.
    events: Vec<Value>,
    requests: usize,
    heartbeats: Vec<Value>,
}

#[derive(Clone)]
struct ReceiverState {
    token: String,
    seen: Arc<Mutex<Seen>>,
    /// Answer 503 to this many requests first.
    fail: Arc<AtomicUsize>,
}

/// A real HTTP(S) server implementing the agent's side of the API contract: bearer token,
/// gzip, NDJSON or a JSON array, per-item rejections of non-objects, 503 on demand.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Seen>>,
    fail: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

async fn events(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, axum::Json<Value>) {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {}", state.token))
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid or missing token"})),
        );
    }
    if state
        .fail
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"error": "busy"})),
        );
    }
    let mut text = String::new();
    let gz = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    let read = if gz {
        flate2::read::GzDecoder::new(&body[..]).read_to_string(&mut text)
    } else {
        (&body[..]).read_to_string(&mut text)
    };
    if read.is_err() {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "not gzip"})),
        );
    }
    let mut rejected = Vec::new();
    let mut accepted = Vec::new();
    for (index, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        match serde_json::from_str::<Value>(line) {
            Ok(v @ Value::Object(_)) => accepted.push(v),
            Ok(_) => rejected.push(json!({"index": index, "error": "not an object"})),
            Err(e) => rejected.push(json!({"index": index, "error": e.to_string()})),
        }
    }
    let n = accepted.len();
    let mut seen = state.seen.lock().unwrap();
    seen.requests += 1;
    seen.events.extend(accepted);
    (
        StatusCode::OK,
        axum::Json(
            json!({"received": n + rejected.len(), "stored": n, "duplicates": 0,
            "rejected": rejected, "incidents_created": 0, "incidents_updated": 0}),
        ),
    )
}

async fn heartbeat(
    State(state): State<ReceiverState>,
    axum::Json(body): axum::Json<Value>,
) -> StatusCode {
    state.seen.lock().unwrap().heartbeats.push(body);
    StatusCode::NO_CONTENT
}

impl Receiver {
    fn start(token: &str) -> Self {
        Self::start_on(token, None, None)
    }

    /// Starts on `addr` (or a free port), with TLS when a certificate and key are given.
    fn start_on(token: &str, addr: Option<SocketAddr>, tls: Option<(String, String)>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let state = ReceiverState {
            token: token.to_owned(),
            seen: Default::default(),
            fail: Default::default(),
        };
        let app = Router::new()
            .route("/api/v1/events", post(events))
            .route("/api/v1/agents/heartbeat", post(heartbeat))
            .with_state(state.clone());
        let listener =
            std::net::TcpListener::bind(addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap()))
                .unwrap();
        listener.set_nonblocking(true).unwrap();
        let local = listener.local_addr().unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        match tls {
            None => {
                runtime.spawn(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    axum::serve(listener, app).await.unwrap();
                });
            }
            Some((cert, key)) => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                runtime.spawn(async move {
                    let config = axum_server::tls_rustls::RustlsConfig::from_pem(
                        cert.into_bytes(),
                        key.into_bytes(),
                    )
                    .await
                    .unwrap();
                    axum_server::from_tcp_rustls(listener, config)
                        .serve(app.into_make_service())
                        .await
                        .unwrap();
                });
            }
        }
        Self {
            url: format!("{scheme}://{local}"),
            seen: state.seen,
            fail: state.fail,
            _runtime: runtime,
        }
    }

    fn events(&self) -> Vec<Value> {
        self.seen.lock().unwrap().events.clone()
    }
}

/// Writes an agent configuration: test defaults with `extra` (YAML) merged over them, section
/// by section.
fn write_config(dir: &Path, url: &str, token: &str, extra: &str) -> PathBuf {
    let path = dir.join("agent.yaml");
    let defaults = format!(
        "server:\n  url: {url}\n  token: {token}\n  heartbeat: 1s\nstate_dir: {}\nbatch:\n  max_wait: 200ms\nretry:\n  initial: 100ms\n  max: 1s\n",
        dir.join("state").display()
    );
    let mut config: serde_yaml::Mapping = serde_yaml::from_str(&defaults).unwrap();
    let extra: Option<serde_yaml::Mapping> = serde_yaml::from_str(extra).unwrap();
    for (key, value) in extra.unwrap_or_default() {
        match (config.get_mut(&key), value) {
            (Some(serde_yaml::Value::Mapping(section)), serde_yaml::Value::Mapping(over)) => {
                section.extend(over);
            }
            (_, value) => {
                config.insert(key, value);
            }
        }
    }
    std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).unwrap();
    path
}

fn agent(config: &Path) -> Command {
    let mut cmd = Command::new(agent_bin());
    cmd.arg("--config")
        .arg(config)
        .env_remove("SIREN_AGENT_CONFIG")
        .env("RUST_LOG", "info");
    cmd
}

/// Runs the agent to completion: exit code, stdout, stderr.
fn run_agent(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn spool_bytes(state: &Path) -> u64 {
    std::fs::read_dir(state.join("spool")).map_or(0, |entries| {
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
            .map(|e| e.metadata().map_or(0, |m| m.len()))
            .sum()
    })
}

fn sigterm(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

fn lines_file(path: &Path, range: std::ops::Range<usize>, tag: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in range {
        writeln!(
            f,
            "{}",
            json!({"seq": i, "tag": tag, "message": format!("line {i}")})
        )
        .unwrap();
    }
    f.sync_all().unwrap();
}

/// Counts received events by their `seq` field: every one of `0..n` exactly once.
fn assert_each_seq_once(events: &[Value], n: usize) {
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for e in events {
        *counts.entry(e["seq"].as_u64().unwrap()).or_default() += 1;
    }
    let missing: Vec<usize> = (0..n)
        .filter(|i| !counts.contains_key(&(*i as u64)))
        .collect();
    let repeated: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        missing.is_empty() && repeated.is_empty() && counts.len() == n,
        "missing {missing:?}, repeated {repeated:?}, distinct {} of {n}",
        counts.len()
    );
}
