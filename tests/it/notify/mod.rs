//! Notifications end to end: real mail to a real SMTP server process (Python's aiosmtpd),
//! webhooks to a real HTTP server on loopback with the Standard Webhooks signature checked by
//! the reference Python implementation, Slack and Teams payload shapes, policies under an
//! injected clock, the outbox surviving endpoints that are down and a restart, and two
//! dispatchers sharing one database.

mod delivery;
mod email;
mod policy;
mod webhooks;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use siren_core::TenantId;
use siren_core::incident::{Alert, IncidentId, Severity, Status};
use siren_core::notify::{Dispatcher, ManualClock, NotifyConfig};
use siren_core::store::{self, DeliveryFilter, DeliveryState, Store};
use siren_core::user::Actor;

use crate::support::{json_output, siren, workspace_root};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

// ---------------------------------------------------------------------------------------------
// Real endpoints
// ---------------------------------------------------------------------------------------------

/// Whether `python3` can import `module`; without it (outside CI) the test is skipped with a
/// notice, and in CI (which installs it through .ci/run) that is a failure.
fn python_has(module: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var_os("SIREN_REQUIRE_CORPUS").is_some() {
            panic!("python3 with {module} is required (pip install {module}; .ci/run does)");
        }
        eprintln!("notice: skipping: python3 cannot import {module} (pip install {module})");
    }
    ok
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn fixture(name: &str) -> PathBuf {
    workspace_root().join("tests/fixtures/notify").join(name)
}

/// A real SMTP server process writing every message it receives to a folder.
struct SmtpServer {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl SmtpServer {
    fn start(port: u16, auth: Option<(&str, &str)>) -> Self {
        Self::start_with(port, auth, None)
    }

    /// With `tls`: the certificate and key files, and whether TLS starts with the first byte
    /// (else the server requires STARTTLS before anything else, authentication included).
    fn start_with(
        port: u16,
        auth: Option<(&str, &str)>,
        tls: Option<(&Path, &Path, bool)>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new("python3");
        command
            .arg(fixture("smtp_server.py"))
            .arg(port.to_string())
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some((user, password)) = auth {
            command.args(["--user", user, "--password", password]);
        }
        if let Some((cert, key, implicit)) = tls {
            command.arg("--cert").arg(cert).arg("--key").arg(key);
            if implicit {
                command.arg("--implicit-tls");
            }
        }
        let mut child = command.spawn().expect("start the SMTP server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP server did not start");
        Self { child, dir, port }
    }

    /// The messages received so far, in order, parsed.
    fn messages(&self) -> Vec<Vec<u8>> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        files.sort();
        files.iter().map(|f| std::fs::read(f).unwrap()).collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request a webhook receiver got.
#[derive(Debug, Clone)]
struct Hook {
    path: String,
    headers: BTreeMap<String, String>,
    body: String,
}

impl Hook {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// A real HTTP server on loopback recording every POST.
#[derive(Clone)]
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Hook>>>,
    status: Arc<AtomicU16>,
}

impl Receiver {
    async fn start() -> Self {
        Self::start_on(0).await
    }

    async fn start_on(port: u16) -> Self {
        use axum::routing::post;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let receiver = Self {
            port: listener.local_addr().unwrap().port(),
            got: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
        };
        let state = receiver.clone();
        let app = axum::Router::new()
            .route(
                "/{*path}",
                post(
                    |axum::extract::State(state): axum::extract::State<Receiver>,
                     uri: axum::http::Uri,
                     headers: axum::http::HeaderMap,
                     body: String| async move {
                        let headers = headers
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                            })
                            .collect();
                        state.got.lock().unwrap().push(Hook {
                            path: uri.path().to_owned(),
                            headers,
                            body,
                        });
                        axum::http::StatusCode::from_u16(state.status.load(Ordering::SeqCst))
                            .unwrap()
                    },
                ),
            )
            .with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    fn hooks(&self) -> Vec<Hook> {
        self.got.lock().unwrap().clone()
    }

    fn on(&self, path: &str) -> Vec<Hook> {
        self.hooks()
            .into_iter()
            .filter(|h| h.path == format!("/{path}"))
            .collect()
    }
}

/// Checks a request's Standard Webhooks signature with the reference Python library.
fn python_verifies(secret: &str, hook: &Hook) -> Result<(), String> {
    let mut child = Command::new("python3")
        .arg(fixture("verify_webhook.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let request = json!({"secret": secret, "headers": hook.headers, "body": hook.body});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if output.status.success() && text == "valid" {
        Ok(())
    } else {
        Err(text)
    }
}

// ---------------------------------------------------------------------------------------------
// Stores, alerts, dispatchers
// ---------------------------------------------------------------------------------------------

async fn backends() -> Vec<(String, Arc<dyn Store>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("notify.db").display());
    let mut list = vec![(
        "sqlite".to_owned(),
        store::open(&url).await.unwrap(),
        Some(dir),
    )];
    if let Some(pg) = crate::support::fresh_postgres_database().await {
        list.push(("postgres".to_owned(), store::open(&pg).await.unwrap(), None));
    }
    list
}

async fn sqlite() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("notify.db").display());
    (store::open(&url).await.unwrap(), dir)
}

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn alert(rule: &str, host: &str, severity: Severity, at: chrono::DateTime<chrono::Utc>) -> Alert {
    Alert {
        rule_id: rule.to_owned(),
        rule_title: format!("Rule {rule}"),
        severity,
        correlation: false,
        group_key: host.to_owned(),
        techniques: vec!["T1110.003".to_owned()],
        investigation: vec!["Look at the logons.".to_owned()],
        time: at,
        hosts: vec![host.to_owned()],
        users: vec!["bob".to_owned()],
        ips: vec!["10.0.0.5".to_owned()],
        event_count: 1,
        event_key: None,
        detail: json!({}),
    }
}

/// Records alerts as ingest does, at the clock's time. Returns the incident's id.
async fn open(store: &Arc<dyn Store>, clock: &ManualClock, alerts: &[Alert]) {
    use siren_core::notify::Clock;
    store
        .record_alerts(&acme(), alerts, chrono::Duration::hours(24), clock.now())
        .await
        .unwrap();
}

fn config(yaml: &str) -> NotifyConfig {
    let mut config: NotifyConfig = serde_yaml::from_str(yaml).unwrap();
    config.resolve_secrets(|s| Ok(s.to_owned())).unwrap();
    config
}

fn start_time() -> chrono::DateTime<chrono::Utc> {
    "2026-11-20T10:00:00Z".parse().unwrap()
}

fn ids(hooks: &[Hook]) -> Vec<i64> {
    let mut ids: Vec<i64> = hooks
        .iter()
        .flat_map(|h| {
            h.json()["incidents"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_i64().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    ids.sort_unstable();
    ids
}

// ---------------------------------------------------------------------------------------------
// Channels
// ---------------------------------------------------------------------------------------------
