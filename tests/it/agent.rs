//! `siren-agent` end to end: the real binary ships to a receiver implementing the events API
//! contract (a real HTTP(S) server on 127.0.0.1:0), through faults: bad configuration, an
//! unreachable server, a wrong token, an untrusted certificate, a full spool, a followed file
//! that is appended to and rotated, and restarts.

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

#[test]
fn check_config_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_config(dir.path(), "https://siren.example.org", "t", "");
    let (code, out, err) = run_agent(agent(&good).arg("check-config"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("valid"), "{out}");

    let cases = [
        ("spool:\n  max_byte: 1MiB\n", "unknown field `max_byte`"),
        (
            "sources:\n  - {type: jsonl, name: a, path: /x, follow: yes}\n",
            "unknown field `follow`",
        ),
        ("spool:\n  max_bytes: 1KiB\n", "spool.max_bytes"),
        (
            "sources:\n  - {type: jsonl, name: a, path: /x, filter: {levels: [loud]}}\n",
            "sources[0].filter.levels",
        ),
        (
            "sources:\n  - {type: syslog, name: a}\n",
            "unknown variant `syslog`",
        ),
    ];
    for (extra, expected) in cases {
        let config = write_config(dir.path(), "https://siren.example.org", "t", extra);
        let (code, out, err) = run_agent(agent(&config).arg("check-config"));
        assert_eq!(code, 78, "{extra}: {out}{err}");
        assert!(
            err.contains(expected),
            "{extra}: expected {expected:?} in {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let config = write_config(dir.path(), "not a url", "t", "");
    let (code, _, err) = run_agent(agent(&config).arg("check-config"));
    assert_eq!(code, 78);
    assert!(err.contains("server.url"), "{err}");
    let (code, _, err) = run_agent(agent(&dir.path().join("missing.yaml")).arg("check-config"));
    assert_eq!(code, 78);
    assert!(err.contains("missing.yaml"), "{err}");
}

#[test]
fn once_ships_json_lines_and_reports_rejected_items() {
    let receiver = Receiver::start("secret");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &receiver.url, "secret", "");
    let file = dir.path().join("events.jsonl");
    lines_file(&file, 0..2500, "a");
    // A JSON value that is not an object: the server rejects that one item.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(b"42\n")
        .unwrap();
    let (code, out, err) = run_agent(agent(&config).arg("once").arg("--json").arg(&file));
    assert_eq!(code, 65, "one rejected item is bad input data: {err}");
    assert!(err.contains("rejected"), "{err}");
    assert_each_seq_once(&receiver.events(), 2500);
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["shipped"], 2500, "{status:#}");
    assert_eq!(status["rejected"], 1, "{status:#}");
    assert_eq!(status["spool"]["depth"], 0, "{status:#}");
    assert!(
        receiver.seen.lock().unwrap().requests >= 3,
        "batches of at most 1000"
    );

    // Shipped again with the same state: positions say it is all done.
    let (code, _, err) = run_agent(agent(&config).arg("once").arg(&file));
    assert_eq!(code, 0, "{err}");
    assert_each_seq_once(&receiver.events(), 2500);
}

#[test]
fn unreachable_server_keeps_everything_in_the_spool_until_it_is_back() {
    // A port with nothing listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &url, "secret", "");
    let file = dir.path().join("events.jsonl");
    lines_file(&file, 0..300, "a");
    let (code, _, err) = run_agent(agent(&config).args(["once", "--timeout", "2s"]).arg(&file));
    assert_eq!(code, 75, "{err}");
    assert!(err.contains("300 events wait in the spool"), "{err}");
    assert!(err.contains(&url), "the message names the server: {err}");
    assert!(!err.contains("panicked"), "{err}");

    let (code, out, _) = run_agent(agent(&config).args(["status", "--json"]));
    assert_eq!(code, 69, "not running");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["spool"]["depth"], 300);
    assert!(status["last_error"].as_str().unwrap().contains(&url));

    // The server comes back on that port; more lines were written meanwhile.
    let receiver = Receiver::start_on(
        "secret",
        Some(format!("127.0.0.1:{port}").parse().unwrap()),
        None,
    );
    receiver.fail.store(3, Ordering::SeqCst); // busy at first: 503, retried
    lines_file(&file, 300..400, "a");
    let (code, _, err) = run_agent(agent(&config).arg("once").arg(&file));
    assert_eq!(code, 0, "{err}");
    assert_each_seq_once(&receiver.events(), 400);
}

#[test]
fn wrong_token_is_a_clear_error_and_nothing_is_lost() {
    let receiver = Receiver::start("right");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &receiver.url, "wrong", "");
    let file = dir.path().join("events.jsonl");
    lines_file(&file, 0..50, "a");
    let (code, _, err) = run_agent(agent(&config).args(["once", "--timeout", "2s"]).arg(&file));
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("401") && err.contains("server.token"), "{err}");
    assert!(err.contains("50 events wait in the spool"), "{err}");
    assert!(receiver.events().is_empty());
    // Fixed token (from a file): the spooled events go.
    std::fs::write(dir.path().join("token"), "right\n").unwrap();
    let config = write_config(
        dir.path(),
        &receiver.url,
        &format!("file:{}", dir.path().join("token").display()),
        "",
    );
    let (code, _, err) = run_agent(agent(&config).arg("once").arg(&file));
    assert_eq!(code, 0, "{err}");
    assert_each_seq_once(&receiver.events(), 50);
}

#[test]
fn untrusted_certificate_fails_with_a_tls_message_and_a_ca_file_fixes_it() {
    // A private CA and a server certificate it issued.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "SIREN test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    let receiver = Receiver::start_on(
        "secret",
        None,
        Some((server_cert.pem(), server_key.serialize_pem())),
    );
    let url = receiver.url.replace("127.0.0.1", "localhost");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    lines_file(&file, 0..20, "a");
    let config = write_config(dir.path(), &url, "secret", "");
    let (code, _, err) = run_agent(agent(&config).args(["once", "--timeout", "2s"]).arg(&file));
    assert_eq!(code, 75, "{err}");
    assert!(
        err.contains("TLS failure") && err.contains("server.ca_file"),
        "{err}"
    );
    assert!(receiver.events().is_empty());

    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let config = write_config(dir.path(), &url, "secret", "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "  heartbeat: 1s\n",
        &format!("  heartbeat: 1s\n  ca_file: {}\n", ca_file.display()),
    );
    std::fs::write(&config, text).unwrap();
    let (code, _, err) = run_agent(agent(&config).arg("once").arg(&file));
    assert_eq!(code, 0, "{err}");
    assert_each_seq_once(&receiver.events(), 20);
}

#[test]
fn full_spool_drops_the_oldest_counts_them_and_stays_within_its_bound() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!("http://127.0.0.1:{port}"),
        "secret",
        "spool:\n  max_bytes: 64KiB\n  segment_bytes: 8KiB\n",
    );
    let file = dir.path().join("events.jsonl");
    lines_file(&file, 0..3000, "a");
    let (code, out, err) = run_agent(
        agent(&config)
            .args(["once", "--json", "--timeout", "3s"])
            .arg(&file),
    );
    assert_eq!(code, 75, "{err}");
    assert!(err.contains("spool full"), "the drop is logged: {err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    let depth = status["spool"]["depth"].as_u64().unwrap();
    let dropped = status["spool"]["dropped"].as_u64().unwrap();
    assert!(dropped > 0, "{status:#}");
    // Markers aside, every line is either dropped (counted) or waiting.
    assert!(depth + dropped >= 3000, "{status:#}");
    assert!(spool_bytes(&dir.path().join("state")) <= 64 << 10);
    assert!(status["spool"]["bytes"].as_u64().unwrap() <= 64 << 10);

    // The newest lines wait and are delivered once the server is there.
    let receiver = Receiver::start_on(
        "secret",
        Some(format!("127.0.0.1:{port}").parse().unwrap()),
        None,
    );
    let (code, _, err) = run_agent(agent(&config).arg("once").arg(&file));
    assert_eq!(code, 0, "{err}");
    let seqs: HashSet<u64> = receiver
        .events()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs.len() as u64, 3000 - dropped);
    assert!(seqs.contains(&2999));
}

#[test]
fn followed_file_appended_to_and_rotated_arrives_line_for_line() {
    let receiver = Receiver::start("secret");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.jsonl");
    let config = write_config(
        dir.path(),
        &receiver.url,
        "secret",
        &format!(
            "sources:\n  - type: jsonl\n    name: app\n    path: {}\n    start_at: oldest\n",
            file.display()
        ),
    );
    lines_file(&file, 0..100, "a");
    let mut child = agent(&config)
        .arg("run")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let got = |n: usize| receiver.events().len() >= n;
    wait_until("the first lines", Duration::from_secs(30), || got(100));
    // Appended in pieces, including a line written in two halves.
    lines_file(&file, 100..200, "a");
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        f.write_all(br#"{"seq": 200, "tag": "split"#).unwrap();
        f.sync_all().unwrap();
        std::thread::sleep(Duration::from_millis(600));
        f.write_all(b"\"}\n").unwrap();
    }
    wait_until("the appended lines", Duration::from_secs(30), || got(201));
    // Rotation: renamed away after a last line without a newline; a new file takes the name.
    lines_file(&file, 201..300, "a");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(br#"{"seq": 300, "tag": "unterminated"}"#)
        .unwrap();
    std::fs::rename(&file, dir.path().join("app.jsonl.1")).unwrap();
    lines_file(&file, 301..400, "b");
    wait_until("the rotated lines", Duration::from_secs(30), || got(400));

    // Stopped and restarted: resumes where it was; rotated again while it was stopped.
    sigterm(&child);
    assert!(child.wait().unwrap().success());
    lines_file(&file, 400..450, "b");
    std::fs::rename(&file, dir.path().join("app.jsonl.2")).unwrap();
    lines_file(&file, 450..500, "c");
    let mut child = agent(&config)
        .arg("run")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        "lines written while stopped",
        Duration::from_secs(30),
        || got(500),
    );
    // Truncated in place: read from the top again.
    std::fs::write(&file, "").unwrap();
    std::thread::sleep(Duration::from_millis(800));
    lines_file(&file, 500..510, "d");
    wait_until("lines after truncation", Duration::from_secs(30), || {
        got(510)
    });
    std::thread::sleep(Duration::from_secs(1));

    let (code, out, _) = run_agent(agent(&config).args(["status", "--json"]));
    assert_eq!(code, 0, "running: {out}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["alive"], true);
    assert_eq!(status["spool"]["depth"], 0, "{status:#}");
    assert!(
        !receiver.seen.lock().unwrap().heartbeats.is_empty(),
        "heartbeats sent"
    );
    sigterm(&child);
    assert!(child.wait().unwrap().success());
    assert_each_seq_once(&receiver.events(), 510);
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walkdir(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A real `siren-server` process on a SQLite database, restartable on its port.
struct RealServer {
    db: String,
    port: u16,
    child: Option<Child>,
}

impl RealServer {
    /// Prepares the database (schema, an agent token) and starts the server.
    fn start(dir: &Path) -> (Self, String) {
        let db = format!("sqlite://{}", dir.join("siren.db").display());
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let token = runtime.block_on(async {
            let store = siren_core::store::open(&db).await.unwrap();
            crate::server::add_token(&store, "default", siren_core::user::Role::Agent, false).await
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self {
            db,
            port,
            child: None,
        };
        server.restart();
        (server, token)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let child = Command::new(server_bin())
            .args([
                "--db",
                &self.db,
                "--listen",
                &format!("127.0.0.1:{}", self.port),
            ])
            .env_remove("SIREN_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let healthy = std::net::TcpStream::connect(("127.0.0.1", self.port))
                .and_then(|mut s| {
                    s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n")?;
                    let mut answer = String::new();
                    s.read_to_string(&mut answer)?;
                    Ok(answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"))
                })
                .unwrap_or(false);
            if healthy {
                return;
            }
            assert!(Instant::now() < until, "siren-server did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// The stored events' identities: host, channel, record id, time in microseconds.
    fn stored(&self) -> (usize, HashSet<Identity>, i64) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            use sqlx::Connection;
            let mut db = sqlx::SqliteConnection::connect(&self.db).await.unwrap();
            let rows: Vec<StoredIdentity> =
                sqlx::query_as("SELECT host, source, record_id, ts FROM events")
                    .fetch_all(&mut db)
                    .await
                    .unwrap();
            let incidents: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM incidents")
                .fetch_one(&mut db)
                .await
                .unwrap();
            let n = rows.len();
            let keys = rows
                .into_iter()
                .map(|(h, s, r, t)| {
                    (
                        h.unwrap_or_default().to_lowercase(),
                        s.unwrap_or_default().to_lowercase(),
                        r.unwrap_or(-1),
                        t.unwrap_or(i64::MIN),
                    )
                })
                .collect();
            (n, keys, incidents)
        })
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An event's identity in the store: host, channel, record id, time in microseconds.
type Identity = (String, String, i64, i64);
/// The same, as read back from the events table.
type StoredIdentity = (Option<String>, Option<String>, Option<i64>, Option<i64>);

/// The corpus's distinct records as the store identifies them (host, channel, record id,
/// time), computed with the `evtx` crate alone; and the number of records read.
fn corpus_identities(evtx_dir: &Path) -> (usize, HashSet<Identity>) {
    let mut total = 0;
    let mut keys = HashSet::new();
    for file in walkdir(evtx_dir) {
        if file.extension().is_none_or(|e| e != "evtx") {
            continue;
        }
        let mut parser = evtx::EvtxParser::from_path(&file).unwrap();
        for record in parser.records_json_value() {
            total += 1;
            let data = record.unwrap().data;
            let system = &data["Event"]["System"];
            let time = system["TimeCreated"]["#attributes"]["SystemTime"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map_or(i64::MIN, |t| t.timestamp_micros());
            keys.insert((
                system["Computer"]
                    .as_str()
                    .unwrap_or_default()
                    .to_lowercase(),
                system["Channel"]
                    .as_str()
                    .unwrap_or_default()
                    .to_lowercase(),
                system["EventRecordID"].as_i64().unwrap_or(-1),
                time,
            ));
        }
    }
    (total, keys)
}

#[test]
fn once_ships_the_corpus_to_the_real_server_exactly_once_and_opens_incidents() {
    let Some(shared) = shared_dir("once_ships_the_corpus_to_the_real_server") else {
        return;
    };
    let evtx_dir = shared.join("corpus/evtx");
    let (total, distinct) = corpus_identities(&evtx_dir);
    let dir = tempfile::tempdir().unwrap();
    let (server, token) = RealServer::start(dir.path());
    let config = write_config(dir.path(), &server.url(), &token, "");
    let (code, out, err) = run_agent(agent(&config).args(["once", "--json"]).arg(&evtx_dir));
    assert_eq!(code, 0, "{err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["shipped"], total as u64, "{status:#}");
    assert_eq!(
        status["duplicates"],
        (total - distinct.len()) as u64,
        "{status:#}"
    );
    let (stored, keys, incidents) = server.stored();
    assert_eq!(stored, distinct.len(), "each distinct record stored once");
    assert_eq!(keys, distinct);
    assert!(
        incidents > 0,
        "the built-in rules open incidents on the corpus"
    );
}

#[test]
fn server_killed_and_agent_restarted_mid_shipping_lose_nothing() {
    let Some(shared) = shared_dir("server_killed_and_agent_restarted") else {
        return;
    };
    let evtx_dir = shared.join("corpus/evtx");
    let (_, distinct) = corpus_identities(&evtx_dir);
    let dir = tempfile::tempdir().unwrap();
    let (mut server, token) = RealServer::start(dir.path());
    let bound: u64 = 2 << 20;
    let config = write_config(
        dir.path(),
        &server.url(),
        &token,
        "spool:\n  max_bytes: 2MiB\n  segment_bytes: 256KiB\n  when_full: block\nbatch:\n  max_events: 300\n",
    );
    let state = dir.path().join("state");
    let spawn = || {
        agent(&config)
            .arg("once")
            .arg(&evtx_dir)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut child = spawn();
    let mut max_spool = 0;
    let mut watch = |ms: u64, child: &mut Child| {
        let until = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < until {
            max_spool = max_spool.max(spool_bytes(&state));
            if child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    for round in 0..4 {
        watch(1500, &mut child);
        server.kill();
        watch(1000, &mut child);
        if round == 1 {
            // The agent too, in the middle of it.
            child.kill().unwrap();
            child.wait().unwrap();
            child = spawn();
        }
        server.restart();
    }
    let until = Instant::now() + Duration::from_secs(600);
    let exit = loop {
        max_spool = max_spool.max(spool_bytes(&state));
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < until, "the agent did not finish");
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(exit.success(), "{err}");
    assert!(max_spool <= bound, "the spool reached {max_spool} bytes");
    let (stored, keys, incidents) = server.stored();
    assert_eq!(stored, distinct.len(), "every record exactly once");
    assert_eq!(keys, distinct);
    assert!(incidents > 0);
}
