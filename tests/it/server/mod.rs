//! The server end to end: a real `siren-server` on 127.0.0.1:0 (in process, and the real binary
//! for the crash test), against SQLite and PostgreSQL: login, sessions and CSRF, event ingest
//! with hostile input, incidents and their actions, the live stream, tokens, metrics, the
//! OpenAPI document, TLS.

mod accounts;
mod backup;
mod cluster;
mod disk;
mod ingest;
mod operations;
mod replicas;
mod restart;
mod session;
mod stream;

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use siren_core::TenantId;
use siren_core::store::NewToken;
use siren_core::store::Store;
use siren_core::user::{Actor, Role};
use siren_server::{AppState, ServerConfig};

/// The password every test user has.
pub const PASSWORD: &str = "correct horse battery";

/// A server running in this process on 127.0.0.1:0.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The store it serves.
    pub store: Arc<dyn Store>,
    /// Its database URL.
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// `base` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// The backends to run against: SQLite always, PostgreSQL when configured.
pub async fn backends() -> Vec<(String, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let mut urls = vec![(
        format!("sqlite://{}", dir.path().join("siren.db").display()),
        Some(dir),
    )];
    if let Some(url) = crate::support::fresh_postgres_database().await {
        urls.push((url, None));
    }
    urls
}

/// Starts a server on `url` with the built-in rules.
pub async fn start(url: &str, dir: Option<tempfile::TempDir>, config: ServerConfig) -> TestServer {
    start_with(url, dir, config, |state| state).await
}

/// [`start`], with the application state adjusted by `adjust` before serving.
pub async fn start_with(
    url: &str,
    dir: Option<tempfile::TempDir>,
    config: ServerConfig,
    adjust: impl FnOnce(AppState) -> AppState,
) -> TestServer {
    crate::support::log_to_test_output();
    let store = siren_core::store::open(url).await.unwrap();
    let rules = Arc::new(siren_server::load_rules(&[], None, &[]).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = adjust(AppState::new(store.clone(), Some(rules), config));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(siren_server::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    TestServer {
        base,
        store,
        url: url.to_owned(),
        stop: Some(stop),
        task: Some(task),
        _dir: dir,
    }
}

/// A test configuration: fast stream polling, generous login limits unless a test lowers them.
pub fn config() -> ServerConfig {
    ServerConfig {
        stream_poll_ms: 200,
        login_failures_per_ip: 1000,
        login_failures_per_user: 1000,
        ..ServerConfig::default()
    }
}

fn actor() -> Actor {
    Actor {
        name: "test".into(),
        origin: "test".into(),
    }
}

/// Adds a user with [`PASSWORD`].
pub async fn add_user(store: &Arc<dyn Store>, tenant: &str, name: &str, role: Role) {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = HASH.get_or_init(|| siren_core::user::hash_password(PASSWORD).unwrap());
    let tenant = TenantId::parse(tenant).unwrap();
    store
        .add_user(&tenant, name, role, hash, &actor())
        .await
        .unwrap();
}

/// Creates a token and returns its secret.
pub async fn add_token(store: &Arc<dyn Store>, tenant: &str, role: Role, global: bool) -> String {
    let secret = siren_server::auth::new_token_secret().unwrap();
    let hash = siren_server::auth::token_hash(&secret);
    let tenant = TenantId::parse(tenant).unwrap();
    store
        .create_token(
            &NewToken {
                tenant: &tenant,
                name: &format!("{} token", role.as_str()),
                role,
                global,
                secret_hash: &hash,
                expires_at: None,
            },
            &actor(),
        )
        .await
        .unwrap();
    secret
}

/// A logged-in browser: its cookie jar and CSRF token.
pub struct Browser {
    /// The client (with the session cookie).
    pub client: reqwest::Client,
    /// The session's CSRF token.
    pub csrf: String,
}

/// Logs in through the API.
pub async fn login(server: &TestServer, tenant: &str, name: &str) -> Browser {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let response = client
        .post(server.at("/api/v1/auth/login"))
        .json(&json!({"username": name, "password": PASSWORD, "tenant": tenant}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "login of {name}@{tenant}");
    let cookie = response
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/"),
        "{cookie}"
    );
    let body: Value = response.json().await.unwrap();
    Browser {
        client,
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    }
}

/// A Security-log-cleared event (the built-in pack opens a high incident for it).
pub fn log_cleared(host: &str, record: i64) -> Value {
    json!({
        "EventID": 1102, "Channel": "Security", "Provider_Name": "Microsoft-Windows-Eventlog",
        "Computer": host, "EventRecordID": record, "SubjectUserName": "mallory",
        "TimeCreated": chrono::Utc::now().to_rfc3339(),
    })
}

/// A harmless event.
pub fn logon(host: &str, record: i64) -> Value {
    json!({
        "EventID": 4624, "Channel": "Security", "Provider_Name": "Microsoft-Windows-Security-Auditing",
        "Computer": host, "EventRecordID": record, "TargetUserName": "bob",
        "TimeCreated": "2026-11-20T10:00:00Z",
    })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

async fn events_stored(store: &Arc<dyn Store>, tenant: &str) -> u64 {
    store
        .count_events(&TenantId::parse(tenant).unwrap())
        .await
        .unwrap()
}

/// The (host, record id) of every event the default tenant holds from `hosts`.
pub async fn stored_records(
    store: &Arc<dyn Store>,
    hosts: impl IntoIterator<Item = String>,
) -> std::collections::HashSet<(String, i64)> {
    let tenant = TenantId::parse("default").unwrap();
    let mut stored = std::collections::HashSet::new();
    for host in hosts {
        let query = siren_core::store::EventQuery {
            host: Some(host),
            limit: 10_000_000,
            ..Default::default()
        };
        let events = store.list_events(&tenant, &query).await.unwrap();
        stored.extend(
            events
                .iter()
                .map(|e| (e.host.clone().unwrap(), e.record_id.unwrap())),
        );
    }
    stored
}
