//! The server end to end: a real `siren-server` on 127.0.0.1:0 (in process, and the real binary
//! for the crash test), against SQLite and PostgreSQL: login, sessions and CSRF, event ingest
//! with hostile input, incidents and their actions, the live stream, tokens, metrics, the
//! OpenAPI document, TLS.

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
    let rules = Arc::new(siren_server::load_rules(&[], None).unwrap());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_session_csrf_and_incident_work() {
    for (url, dir) in backends().await {
        let server = start(&url, dir, config()).await;
        add_user(&server.store, "default", "alice", Role::Analyst).await;
        add_user(&server.store, "default", "bob", Role::Viewer).await;
        let agent = add_token(&server.store, "default", Role::Agent, false).await;
        let http = reqwest::Client::new();

        // Wrong password and unknown user: the same 401.
        for (user, password) in [("alice", "wrong password!"), ("nobody", PASSWORD)] {
            let response = http
                .post(server.at("/api/v1/auth/login"))
                .json(&json!({"username": user, "password": password}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 401);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "invalid user name or password");
        }

        // An agent sends events; one opens an incident.
        let batch = json!([logon("ws01", 1), log_cleared("ws01", 2)]);
        let response = http
            .post(server.at("/api/v1/events"))
            .bearer_auth(&agent)
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let outcome: Value = response.json().await.unwrap();
        assert_eq!(outcome["stored"], 2, "{outcome}");
        assert_eq!(outcome["incidents_created"], 1, "{outcome}");

        let alice = login(&server, "default", "alice").await;
        let me: Value = alice
            .client
            .get(server.at("/api/v1/auth/me"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["user"]["name"], "alice");
        assert_eq!(me["user"]["role"], "analyst");
        assert_eq!(me["csrf_token"], alice.csrf.as_str());

        let list: Value = alice
            .client
            .get(server.at("/api/v1/incidents?status=new"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let incidents = list["incidents"].as_array().unwrap();
        assert_eq!(incidents.len(), 1, "{list}");
        let id = incidents[0]["id"].as_i64().unwrap();
        assert_eq!(incidents[0]["severity"], "high");

        let detail: Value = alice
            .client
            .get(server.at(&format!("/api/v1/incidents/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(detail["incident"]["id"], id);
        assert_eq!(detail["events"].as_array().unwrap().len(), 1, "{detail}");
        assert_eq!(detail["events"][0]["fields"]["SubjectUserName"], "mallory");
        assert_eq!(detail["alerts"].as_array().unwrap().len(), 1);
        assert_eq!(detail["timeline"][0]["kind"], "created");
        assert_eq!(detail["timeline_total"], 2, "{detail}");
        assert!(detail["timeline_before"].is_null(), "{detail}");
        assert!(
            detail["alerts_after"].is_null() && detail["events_after"].is_null(),
            "{detail}"
        );
        for (part, key) in [("alerts", "alerts"), ("events", "events")] {
            let page: Value = alice
                .client
                .get(server.at(&format!("/api/v1/incidents/{id}/{part}")))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(page[key], detail[key], "{page}");
            assert!(page["after"].is_null(), "{page}");
        }

        // Without the CSRF token the session cannot change anything.
        let refused = alice
            .client
            .post(server.at(&format!("/api/v1/incidents/{id}/assign")))
            .json(&json!({"assignee": "alice"}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403);
        let forged = alice
            .client
            .post(server.at(&format!("/api/v1/incidents/{id}/assign")))
            .header("X-CSRF-Token", "0".repeat(64))
            .json(&json!({"assignee": "alice"}))
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 403);

        let post = |path: String, body: Value| {
            alice
                .client
                .post(server.at(&path))
                .header("X-CSRF-Token", &alice.csrf)
                .json(&body)
                .send()
        };
        let assigned: Value = post(
            format!("/api/v1/incidents/{id}/assign"),
            json!({"assignee": "alice"}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(assigned["assignee"], "alice");
        let moved = post(
            format!("/api/v1/incidents/{id}/status"),
            json!({"status": "closed"}),
        )
        .await
        .unwrap();
        assert_eq!(moved.status(), 422, "new → closed is not a lifecycle move");
        let moved: Value = post(
            format!("/api/v1/incidents/{id}/status"),
            json!({"status": "acknowledged", "note": "on it"}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(moved["status"], "acknowledged");
        let noted = post(
            format!("/api/v1/incidents/{id}/notes"),
            json!({"text": "<script>alert(1)</script>"}),
        )
        .await
        .unwrap();
        assert_eq!(noted.status(), 200);
        let detail: Value = alice
            .client
            .get(server.at(&format!("/api/v1/incidents/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let kinds: Vec<&str> = detail["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "created",
                "alert_added",
                "assigned",
                "status_changed",
                "note",
                "note"
            ],
            "{detail}"
        );
        let actors: Vec<&str> = detail["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["actor"].as_str().unwrap())
            .collect();
        assert_eq!(actors[2], "alice");
        assert_eq!(detail["notes"].as_array().unwrap().len(), 2, "{detail}");
        assert_eq!(detail["notes_total"], 2, "{detail}");

        // The timeline page by page: the newest entries first, then the older ones.
        let newest: Value = alice
            .client
            .get(server.at(&format!("/api/v1/incidents/{id}/timeline?limit=2")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(newest["total"], 6, "{newest}");
        let kinds = |page: &Value| -> Vec<String> {
            page["timeline"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["kind"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(kinds(&newest), ["note", "note"], "{newest}");
        let before = newest["before"].as_str().unwrap();
        let older: Value = alice
            .client
            .get(server.at(&format!(
                "/api/v1/incidents/{id}/timeline?before={before}&limit=10"
            )))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            kinds(&older),
            ["created", "alert_added", "assigned", "status_changed"],
            "{older}"
        );
        assert!(older["before"].is_null(), "{older}");
        let invalid = alice
            .client
            .get(server.at(&format!("/api/v1/incidents/{id}/timeline?before=nonsense")))
            .send()
            .await
            .unwrap();
        assert_eq!(invalid.status(), 422);

        // A viewer reads but cannot work the incident, CSRF token or not.
        let bob = login(&server, "default", "bob").await;
        let read = bob
            .client
            .get(server.at(&format!("/api/v1/incidents/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), 200);
        let work = bob
            .client
            .post(server.at(&format!("/api/v1/incidents/{id}/notes")))
            .header("X-CSRF-Token", &bob.csrf)
            .json(&json!({"text": "hi"}))
            .send()
            .await
            .unwrap();
        assert_eq!(work.status(), 403);

        // Stats, search, rules.
        let stats: Value = alice
            .client
            .get(server.at("/api/v1/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(stats["events_total"], 2, "{stats}");
        assert_eq!(stats["open_by_severity"]["high"], 1, "{stats}");
        assert_eq!(stats["events_per_minute"].as_array().unwrap().len(), 60);
        assert_eq!(
            stats["events_per_minute"]
                .as_array()
                .unwrap()
                .last()
                .unwrap()["count"],
            2
        );
        assert_eq!(stats["top_hosts"][0]["host"], "ws01");
        let events: Value = alice
            .client
            .get(server.at("/api/v1/events?event_id=4624&host=WS01"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(events["events"].as_array().unwrap().len(), 1, "{events}");
        let rules: Value = alice
            .client
            .get(server.at("/api/v1/rules"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            rules["rules"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["title"] == "Security Audit Log Cleared")
        );
        let search: Value = alice
            .client
            .get(server.at("/api/v1/incidents?q=WS01"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(search["incidents"].as_array().unwrap().len(), 1);
        let search: Value = alice
            .client
            .get(server.at("/api/v1/incidents?q=nothing-like-it"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(search["incidents"].as_array().unwrap().len(), 0);

        // Logging out ends the session server-side: the old cookie no longer works.
        let out = alice
            .client
            .post(server.at("/api/v1/auth/logout"))
            .header("X-CSRF-Token", &alice.csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(out.status(), 204);
        let after = alice
            .client
            .get(server.at("/api/v1/auth/me"))
            .send()
            .await
            .unwrap();
        assert_eq!(after.status(), 401);

        // Disabling a user ends their sessions at once.
        let tenant = TenantId::parse("default").unwrap();
        server
            .store
            .set_user_disabled(&tenant, "bob", true, &actor())
            .await
            .unwrap();
        let after = bob
            .client
            .get(server.at("/api/v1/incidents"))
            .send()
            .await
            .unwrap();
        assert_eq!(after.status(), 401);
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_event_batches_get_clear_errors_and_lose_nothing() {
    for (url, dir) in backends().await {
        let server = start(
            &url,
            dir,
            ServerConfig {
                body_limit: 64 * 1024,
                decompressed_limit: 256 * 1024,
                max_batch: 1000,
                ..config()
            },
        )
        .await;
        let token = add_token(&server.store, "default", Role::Agent, false).await;
        let http = reqwest::Client::new();
        let send = |body: Vec<u8>, content_type: &'static str, gzip: bool| {
            let mut request = http
                .post(server.at("/api/v1/events"))
                .bearer_auth(&token)
                .header("Content-Type", content_type)
                .body(body);
            if gzip {
                request = request.header("Content-Encoding", "gzip");
            }
            request.send()
        };
        let json = "application/json";
        let ndjson = "application/x-ndjson";

        // A good batch first: it must survive everything below.
        let good: Vec<Value> = (0..50).map(|i| logon("ws02", i)).collect();
        let response = send(serde_json::to_vec(&good).unwrap(), json, false)
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(events_stored(&server.store, "default").await, 50);

        // Per-item errors carry their index; the rest is stored.
        let mixed = json!([logon("ws03", 1), 42, "text", logon("ws03", 2), [1, 2], null]);
        let outcome: Value = send(serde_json::to_vec(&mixed).unwrap(), json, false)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(outcome["received"], 6);
        assert_eq!(outcome["stored"], 2);
        let indexes: Vec<i64> = outcome["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["index"].as_i64().unwrap())
            .collect();
        assert_eq!(indexes, [1, 2, 4, 5], "{outcome}");
        assert!(
            outcome["rejected"][0]["error"]
                .as_str()
                .unwrap()
                .contains("expected a JSON object")
        );

        // NDJSON with a broken line and a line of invalid UTF-8: those lines are rejected.
        let mut body = Vec::new();
        body.extend_from_slice(serde_json::to_string(&logon("ws04", 1)).unwrap().as_bytes());
        body.extend_from_slice(b"\n{\"EventID\": 4624, \"Computer\": \"ws04\"\n");
        body.extend_from_slice(b"{\"EventID\": 4624, \"Computer\": \"ws\xff\xfe04\"}\n\n");
        body.extend_from_slice(serde_json::to_string(&logon("ws04", 2)).unwrap().as_bytes());
        let outcome: Value = send(body, ndjson, false)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(outcome["stored"], 2, "{outcome}");
        let indexes: Vec<i64> = outcome["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["index"].as_i64().unwrap())
            .collect();
        assert_eq!(indexes, [1, 2], "{outcome}");

        // Whole bodies that are not JSON at all, bad gzip, deep nesting, invalid UTF-8 in an array.
        let mut deep = String::new();
        for _ in 0..10_000 {
            deep.push_str("{\"a\":");
        }
        deep.push('1');
        for _ in 0..10_000 {
            deep.push('}');
        }
        let cases: Vec<(Vec<u8>, &str, bool, u16)> = vec![
            (b"this is not json".to_vec(), json, false, 400),
            (b"[{\"EventID\": 1},".to_vec(), json, false, 400),
            (b"".to_vec(), json, false, 400),
            (b"\x1f\x8b\x08\x00garbage".to_vec(), json, true, 400),
            (b"not gzip at all".to_vec(), json, true, 400),
            (format!("[{deep}]").into_bytes(), json, false, 400),
            (b"[{\"Computer\": \"\xff\xfe\"}]".to_vec(), json, false, 400),
            (b"<xml/>".to_vec(), "application/xml", false, 415),
            (vec![b' '; 100 * 1024], json, false, 413),
            // A small gzip that unpacks past the decompressed limit.
            (gzip(&vec![b' '; 1024 * 1024]), json, true, 413),
        ];
        for (i, (body, content_type, gzipped, expected)) in cases.into_iter().enumerate() {
            let response = send(body, content_type, gzipped).await.unwrap();
            assert_eq!(response.status().as_u16(), expected, "case {i}");
            let body: Value = response.json().await.unwrap();
            assert!(
                body["error"].as_str().is_some_and(|e| !e.is_empty()),
                "case {i}: {body}"
            );
        }
        // NDJSON in which a line nests too deep: that line is rejected, the others stored.
        let body = format!(
            "{}\n{deep}\n",
            serde_json::to_string(&logon("ws05", 1)).unwrap()
        );
        let outcome: Value = send(body.into_bytes(), ndjson, false)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(outcome["stored"], 1, "{outcome}");
        assert_eq!(outcome["rejected"][0]["index"], 1);
        // Too many items.
        let many: Vec<Value> = (0..1001).map(|_| json!({})).collect();
        let response = send(serde_json::to_vec(&many).unwrap(), json, false)
            .await
            .unwrap();
        assert_eq!(response.status(), 413);

        // gzip + NDJSON works, and a resend is all duplicates.
        let lines: String = (0..100)
            .map(|i| serde_json::to_string(&logon("ws06", i)).unwrap() + "\n")
            .collect();
        let outcome: Value = send(gzip(lines.as_bytes()), ndjson, true)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(outcome["stored"], 100, "{outcome}");
        let outcome: Value = send(gzip(lines.as_bytes()), ndjson, true)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            (outcome["stored"].as_u64(), outcome["duplicates"].as_u64()),
            (Some(0), Some(100))
        );

        // Nothing accepted was lost along the way.
        assert_eq!(
            events_stored(&server.store, "default").await,
            50 + 2 + 2 + 1 + 100
        );
        // The server is still healthy.
        let health = http.get(server.at("/healthz")).send().await.unwrap();
        assert_eq!(health.text().await.unwrap(), "ok");
        server.stop().await;
    }
}

/// Reads server-sent events until one satisfies `want` or `timeout` passes.
async fn wait_for_event(
    response: &mut reqwest::Response,
    timeout: Duration,
    want: impl Fn(&Value) -> bool,
) -> Option<Value> {
    let deadline = Instant::now() + timeout;
    let mut buffer = String::new();
    while Instant::now() < deadline {
        let chunk = tokio::time::timeout(deadline - Instant::now(), response.chunk()).await;
        let Ok(Ok(Some(chunk))) = chunk else {
            return None;
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let message: String = buffer.drain(..end + 2).collect();
            let data: String = message
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .collect();
            if message.lines().any(|l| l.trim() == "event: incident") {
                let value: Value = serde_json::from_str(&data).unwrap();
                if want(&value) {
                    return Some(value);
                }
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_stream_shows_new_incidents_from_this_server_and_other_processes() {
    for (url, dir) in backends().await {
        let server = start(&url, dir, config()).await;
        add_user(&server.store, "default", "vera", Role::Viewer).await;
        add_user(&server.store, "other", "olga", Role::Viewer).await;
        let agent = add_token(&server.store, "default", Role::Agent, false).await;
        let vera = login(&server, "default", "vera").await;
        let olga = login(&server, "other", "olga").await;
        let mut stream = vera
            .client
            .get(server.at("/api/v1/stream"))
            .send()
            .await
            .unwrap();
        assert_eq!(stream.status(), 200);
        assert!(
            stream.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let mut other_stream = olga
            .client
            .get(server.at("/api/v1/stream"))
            .send()
            .await
            .unwrap();

        let posted = Instant::now();
        let response = reqwest::Client::new()
            .post(server.at("/api/v1/events"))
            .bearer_auth(&agent)
            .json(&json!([log_cleared("dc09", 7)]))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let event = wait_for_event(&mut stream, Duration::from_secs(5), |v| {
            v["incident"]["hosts"][0] == "dc09"
        })
        .await
        .expect("the new incident on the stream");
        assert_eq!(event["kind"], "created");
        assert!(
            posted.elapsed() < Duration::from_secs(2),
            "{:?}",
            posted.elapsed()
        );

        // A change made by another process (here: the library on the same database, as
        // `siren ingest` from cron would) reaches the stream too.
        let other_process = siren_core::store::open(&server.url).await.unwrap();
        let pipeline = siren_core::ingest::Pipeline::new(
            other_process.clone(),
            Some(Arc::new(siren_server::load_rules(&[], None).unwrap())),
            siren_core::ingest::PipelineOptions::default(),
        );
        let tenant = TenantId::parse("default").unwrap();
        pipeline
            .ingest_json(&tenant, vec![Ok(log_cleared("dc10", 8))])
            .await
            .unwrap();
        let event = wait_for_event(&mut stream, Duration::from_secs(5), |v| {
            v["incident"]["hosts"][0] == "dc10"
        })
        .await
        .expect("another process's incident on the stream");
        assert_eq!(event["kind"], "created");

        // The other tenant saw none of it.
        let leaked = wait_for_event(&mut other_stream, Duration::from_millis(800), |_| true).await;
        assert!(leaked.is_none(), "{leaked:?}");
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_rate_limited_per_user() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("siren.db").display());
    let server = start(
        &url,
        Some(dir),
        ServerConfig {
            login_failures_per_user: 3,
            login_failures_per_ip: 1000,
            ..config()
        },
    )
    .await;
    add_user(&server.store, "default", "carol", Role::Analyst).await;
    let http = reqwest::Client::new();
    let attempt = |password: &'static str| {
        http.post(server.at("/api/v1/auth/login"))
            .json(&json!({"username": "carol", "password": password}))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(attempt("guess guess guess").await.unwrap().status(), 401);
    }
    // Even the right password is refused now, with a Retry-After.
    let limited = attempt(PASSWORD).await.unwrap();
    assert_eq!(limited.status(), 429);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0 && wait <= 300, "{wait}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_shown_once_stored_hashed_and_revocable() {
    for (url, dir) in backends().await {
        let server = start(&url, dir, config()).await;
        let admin = add_token(&server.store, "default", Role::Admin, false).await;
        let http = reqwest::Client::new();
        let created: Value = http
            .post(server.at("/api/v1/tokens"))
            .bearer_auth(&admin)
            .json(&json!({"name": "agent ws01", "role": "agent", "expires_in_days": 30}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let secret = created["secret"].as_str().unwrap().to_owned();
        assert!(
            secret.starts_with("siren_") && secret.len() > 40,
            "{created}"
        );
        let id = created["token"]["id"].as_i64().unwrap();
        let listed: Value = http
            .get(server.at("/api/v1/tokens"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            !listed.to_string().contains(&secret),
            "the list never shows a secret"
        );
        // The agent token sends events and heartbeats, and nothing else.
        let events = http
            .post(server.at("/api/v1/events"))
            .bearer_auth(&secret)
            .json(&json!([logon("a", 1)]))
            .send()
            .await
            .unwrap();
        assert_eq!(events.status(), 200);
        let beat = http
            .post(server.at("/api/v1/agents/heartbeat"))
            .bearer_auth(&secret)
            .json(&json!({"agent": "ws01-agent", "hostname": "ws01", "version": "0.1.0", "queue_depth": 3}))
            .send()
            .await
            .unwrap();
        assert_eq!(beat.status(), 204);
        let agents: Value = http
            .get(server.at("/api/v1/agents"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(agents["agents"][0]["agent"], "ws01-agent");
        assert_eq!(agents["agents"][0]["queue_depth"], 3);
        let read = http
            .get(server.at("/api/v1/incidents"))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), 403);
        // The database holds no secret.
        let tokens = server
            .store
            .list_tokens(&TenantId::parse("default").unwrap())
            .await
            .unwrap();
        assert!(tokens.iter().all(|t| !format!("{t:?}").contains(&secret)));
        // Revoked: it stops at once.
        let revoked = http
            .delete(server.at(&format!("/api/v1/tokens/{id}")))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), 200);
        let after = http
            .post(server.at("/api/v1/events"))
            .bearer_auth(&secret)
            .json(&json!([logon("a", 2)]))
            .send()
            .await
            .unwrap();
        assert_eq!(after.status(), 401);
        // An expired token does not work either.
        let hash = siren_server::auth::token_hash("siren_expired");
        let tenant = TenantId::parse("default").unwrap();
        server
            .store
            .create_token(
                &NewToken {
                    tenant: &tenant,
                    name: "old",
                    role: Role::Admin,
                    global: false,
                    secret_hash: &hash,
                    expires_at: Some(chrono::Utc::now() - chrono::Duration::seconds(1)),
                },
                &actor(),
            )
            .await
            .unwrap();
        let expired = http
            .get(server.at("/api/v1/incidents"))
            .bearer_auth("siren_expired")
            .send()
            .await
            .unwrap();
        assert_eq!(expired.status(), 401);
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_openapi() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("siren.db").display());
    let server = start(&url, Some(dir), config()).await;
    let local_admin = add_token(&server.store, "default", Role::Admin, false).await;
    let global_admin = add_token(&server.store, "default", Role::Admin, true).await;
    let agent = add_token(&server.store, "default", Role::Agent, false).await;
    let http = reqwest::Client::new();
    http.post(server.at("/api/v1/events"))
        .bearer_auth(&agent)
        .json(&json!([log_cleared("m1", 1), 5]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        http.get(server.at("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        http.get(server.at("/metrics"))
            .bearer_auth(&local_admin)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    let text = http
        .get(server.at("/metrics"))
        .bearer_auth(&global_admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        "siren_events_received_total 2",
        "siren_events_stored_total 1",
        "siren_events_rejected_total 1",
        "siren_incidents{status=\"new\"} 1",
        "siren_http_request_duration_seconds_bucket{",
        "route=\"/api/v1/events\"",
    ] {
        assert!(text.contains(expected), "{expected} missing from\n{text}");
    }

    // The OpenAPI document is valid JSON, documents every route the server has, and every
    // path it documents is served (not 404 for a missing route).
    let doc: Value = http
        .get(server.at("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    for (method, path) in crate::authz::ROUTES.iter().map(|r| (r.method, r.path)) {
        assert!(
            documented.iter().any(|(m, p)| m == method && p == path),
            "{method} {path} is not in openapi.json"
        );
    }
    for (method, path) in &documented {
        assert!(
            crate::authz::ROUTES
                .iter()
                .any(|r| r.method == method && r.path == path),
            "{method} {path} is documented but not in the route table the tests check"
        );
        let concrete = path.replace("{id}", "1").replace("{name}", "nobody");
        let request = http
            .request(method.parse().unwrap(), server.at(&concrete))
            .bearer_auth(&global_admin);
        let status = request.send().await.unwrap().status().as_u16();
        assert!(
            status != 405 && !(status == 404 && concrete == *path),
            "{method} {path}: {status}"
        );
    }
    server.stop().await;
}

fn spawn_server_binary(url: &str, port: u16) -> std::process::Child {
    std::process::Command::new(crate::support::server_bin())
        .args(["--db", url, "--listen", &format!("127.0.0.1:{port}")])
        .env_remove("SIREN_CONFIG")
        .env("SIREN_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_healthy(base: &str) {
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(response) = http.get(format!("{base}/healthz")).send().await
            && response.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server at {base} did not come up");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_no_acknowledged_event() {
    for (url, dir) in backends().await {
        // The schema and a token first (the binary migrates too; this only prepares).
        let store = siren_core::store::open(&url).await.unwrap();
        let token = add_token(&store, "default", Role::Agent, false).await;
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut child = spawn_server_binary(&url, port);
        wait_healthy(&base).await;

        // Four senders stream batches until the server dies under them.
        let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<(String, i64)>::new()));
        let mut senders = Vec::new();
        for sender in 0..4 {
            let (base, token, acknowledged) = (base.clone(), token.clone(), acknowledged.clone());
            senders.push(tokio::spawn(async move {
                let http = reqwest::Client::new();
                for batch in 0..10_000i64 {
                    let host = format!("kill-{sender}");
                    let events: Vec<Value> =
                        (0..100).map(|i| logon(&host, batch * 100 + i)).collect();
                    match http
                        .post(format!("{base}/api/v1/events"))
                        .bearer_auth(&token)
                        .json(&events)
                        .send()
                        .await
                    {
                        Ok(response) if response.status().is_success() => {
                            let body: Value = response.json().await.unwrap_or(Value::Null);
                            if body["stored"].is_null() {
                                return; // the answer was cut off: not acknowledged
                            }
                            let mut acknowledged = acknowledged.lock().unwrap();
                            acknowledged.extend((0..100).map(|i| (host.clone(), batch * 100 + i)));
                        }
                        _ => return,
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        for sender in senders {
            sender.await.unwrap();
        }
        let acknowledged = acknowledged.lock().unwrap().clone();
        assert!(
            acknowledged.len() >= 100,
            "some batches were answered before the kill"
        );

        // Restart on the same database: every acknowledged event is there.
        let mut child = spawn_server_binary(&url, port);
        wait_healthy(&base).await;
        let store = siren_core::store::open(&url).await.unwrap();
        let tenant = TenantId::parse("default").unwrap();
        let mut stored = std::collections::HashSet::new();
        for sender in 0..4 {
            let events = store
                .list_events(
                    &tenant,
                    &siren_core::store::EventQuery {
                        host: Some(format!("kill-{sender}")),
                        limit: 10_000_000,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            stored.extend(
                events
                    .iter()
                    .map(|e| (e.host.clone().unwrap(), e.record_id.unwrap())),
            );
        }
        let missing: Vec<_> = acknowledged
            .iter()
            .filter(|e| !stored.contains(*e))
            .collect();
        assert!(
            missing.is_empty(),
            "{} acknowledged events lost, e.g. {:?}",
            missing.len(),
            missing.first()
        );
        eprintln!(
            "{url}: {} events acknowledged before SIGKILL, all stored",
            acknowledged.len()
        );
        child.kill().unwrap();
        child.wait().unwrap();
        drop(dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_rustls_when_a_certificate_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let url = format!("sqlite://{}", dir.path().join("siren.db").display());
    let server = start(
        &url,
        None,
        ServerConfig {
            tls_cert: Some(cert_path),
            tls_key: Some(key_path),
            ..config()
        },
    )
    .await;
    add_user(&server.store, "default", "tess", Role::Viewer).await;
    let port = server.base.rsplit(':').next().unwrap().to_owned();
    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(root)
        .resolve("localhost", format!("127.0.0.1:{port}").parse().unwrap())
        .build()
        .unwrap();
    let base = format!("https://localhost:{port}");
    let health = https.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");
    let login = https
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "tess", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("Secure"), "{cookie}");
    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
    server.stop().await;
    drop(dir);
}
