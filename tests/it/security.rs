//! The server's credentials and limits under attack: an open live stream ends when its
//! credential stops holding (revoked, expired, its user disabled, its role changed, by this
//! server or another process), a disabled user's sessions never come back, token expiry is
//! bounded, brute-force protection cannot lock the owner out, oversized bodies are 413s.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use siren_core::TenantId;
use siren_core::store::NewToken;
use siren_core::user::{Actor, Role};
use siren_server::ServerConfig;

use crate::server::{
    PASSWORD, TestServer, add_token, add_user, backends, config, log_cleared, login, start,
};

fn actor() -> Actor {
    Actor {
        name: "test".into(),
        origin: "test".into(),
    }
}

/// Opens the live stream with `request` and waits for its first message.
async fn open_stream(request: reqwest::RequestBuilder) -> reqwest::Response {
    let mut response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(5), response.chunk())
        .await
        .expect("the stream's first message")
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("connected"));
    response
}

/// Reads `stream` until it ends: `Ok(elapsed)`, or `Err` when it delivered an incident or was
/// still open after `timeout`.
async fn ends_without_delivering(
    stream: &mut reqwest::Response,
    timeout: Duration,
) -> Result<Duration, String> {
    let start = Instant::now();
    let deadline = start + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.chunk()).await {
            Err(_) => return Err(format!("the stream is still open after {timeout:?}")),
            Ok(Ok(None) | Err(_)) => return Ok(start.elapsed()),
            Ok(Ok(Some(chunk))) => {
                let text = String::from_utf8_lossy(&chunk);
                if text.contains("event: incident") {
                    return Err(format!("the stream delivered an incident: {text}"));
                }
            }
        }
    }
}

/// Posts an event that opens a new incident on `host`, and returns once the server's change
/// feed has broadcast it (seen by `watcher`'s own stream), so a stream opened afterwards cannot
/// receive it late.
async fn new_incident(server: &TestServer, agent: &str, watcher: &str, host: &str) {
    let http = reqwest::Client::new();
    let mut watch = open_stream(http.get(server.at("/api/v1/stream")).bearer_auth(watcher)).await;
    let response = http
        .post(server.at("/api/v1/events"))
        .bearer_auth(agent)
        .json(&json!([log_cleared(host, 1)]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = String::new();
    while !seen.contains(&format!("\"{host}\"")) {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, watch.chunk())
            .await
            .unwrap_or_else(|_| panic!("the incident on {host} was never broadcast"))
            .unwrap()
            .expect("the watcher's stream ended");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

async fn token_id(server: &TestServer, tenant: &str) -> i64 {
    let tenant = TenantId::parse(tenant).unwrap();
    server
        .store
        .list_tokens(&tenant)
        .await
        .unwrap()
        .last()
        .unwrap()
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_token_ends_open_stream() {
    for (url, dir) in backends().await {
        let server = start(&url, dir, config()).await;
        let admin = add_token(&server.store, "default", Role::Admin, false).await;
        let agent = add_token(&server.store, "default", Role::Agent, false).await;
        let http = reqwest::Client::new();

        // Revoked through the API of this server.
        let viewer = add_token(&server.store, "default", Role::Viewer, false).await;
        let id = token_id(&server, "default").await;
        let mut stream =
            open_stream(http.get(server.at("/api/v1/stream")).bearer_auth(&viewer)).await;
        let revoked = http
            .delete(server.at(&format!("/api/v1/tokens/{id}")))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), 200);
        new_incident(&server, &agent, &admin, "dc-revoked").await;
        let ended = ends_without_delivering(&mut stream, Duration::from_secs(5)).await;
        assert!(ended.is_ok(), "{url}: {ended:?}");

        // Revoked by another process on the same database (the CLI, another replica).
        let viewer = add_token(&server.store, "default", Role::Viewer, false).await;
        let id = token_id(&server, "default").await;
        let mut stream =
            open_stream(http.get(server.at("/api/v1/stream")).bearer_auth(&viewer)).await;
        let other_process = siren_core::store::open(&server.url).await.unwrap();
        other_process
            .revoke_token(&TenantId::parse("default").unwrap(), id, &actor())
            .await
            .unwrap();
        let ended = ends_without_delivering(&mut stream, Duration::from_secs(5)).await;
        assert!(ended.is_ok(), "{url}, revoked elsewhere: {ended:?}");
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_user_session_ends_open_stream() {
    for (url, dir) in backends().await {
        let server = start(&url, dir, config()).await;
        let admin = add_token(&server.store, "default", Role::Admin, false).await;
        let agent = add_token(&server.store, "default", Role::Agent, false).await;
        add_user(&server.store, "default", "vera", Role::Viewer).await;
        add_user(&server.store, "default", "wanda", Role::Viewer).await;

        // Disabled through the API of this server: nothing more is delivered.
        let vera = login(&server, "default", "vera").await;
        let mut stream = open_stream(vera.client.get(server.at("/api/v1/stream"))).await;
        let disabled = reqwest::Client::new()
            .post(server.at("/api/v1/users/vera/disable"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(disabled.status(), 200);
        new_incident(&server, &agent, &admin, "dc-disabled").await;
        let ended = ends_without_delivering(&mut stream, Duration::from_secs(5)).await;
        assert!(ended.is_ok(), "{url}: {ended:?}");

        // Disabled by another process (`siren users disable`).
        let wanda = login(&server, "default", "wanda").await;
        let mut stream = open_stream(wanda.client.get(server.at("/api/v1/stream"))).await;
        let other_process = siren_core::store::open(&server.url).await.unwrap();
        other_process
            .set_user_disabled(
                &TenantId::parse("default").unwrap(),
                "wanda",
                true,
                &actor(),
            )
            .await
            .unwrap();
        let ended = ends_without_delivering(&mut stream, Duration::from_secs(5)).await;
        assert!(ended.is_ok(), "{url}, disabled elsewhere: {ended:?}");
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_change_ends_open_stream() {
    for (url, dir) in backends().await {
        let server = start(&url, dir, config()).await;
        let tenant = TenantId::parse("acme").unwrap();
        add_user(&server.store, "acme", "root", Role::Admin).await;
        server
            .store
            .set_user_global(&tenant, "root", true, &actor())
            .await
            .unwrap();
        let root = login(&server, "acme", "root").await;
        // A global admin follows another tenant's stream…
        let mut stream = open_stream(
            root.client
                .get(server.at("/api/v1/stream"))
                .header("X-Siren-Tenant", "globex"),
        )
        .await;
        // …until it is a global admin no more.
        server
            .store
            .set_user_global(&tenant, "root", false, &actor())
            .await
            .unwrap();
        let ended = ends_without_delivering(&mut stream, Duration::from_secs(5)).await;
        assert!(ended.is_ok(), "{url}: {ended:?}");
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_credentials_end_open_streams() {
    for (url, dir) in backends().await {
        let server = start(&url, dir, config()).await;
        let tenant = TenantId::parse("default").unwrap();
        let lifetime = chrono::TimeDelta::seconds(2);

        // A token that expires while its stream is open.
        let secret = siren_server::auth::new_token_secret().unwrap();
        server
            .store
            .create_token(
                &NewToken {
                    tenant: &tenant,
                    name: "short-lived",
                    role: Role::Viewer,
                    global: false,
                    secret_hash: &siren_server::auth::token_hash(&secret),
                    expires_at: Some(chrono::Utc::now() + lifetime),
                },
                &actor(),
            )
            .await
            .unwrap();
        let http = reqwest::Client::new();
        let mut stream =
            open_stream(http.get(server.at("/api/v1/stream")).bearer_auth(&secret)).await;
        let ended = ends_without_delivering(&mut stream, Duration::from_secs(7)).await;
        assert!(ended.is_ok(), "{url}, token: {ended:?}");

        // A session that reaches the end of its lifetime while streaming.
        add_user(&server.store, "default", "vera", Role::Viewer).await;
        let session = siren_server::auth::new_secret().unwrap();
        server
            .store
            .create_session(
                &siren_server::auth::session_hash(&session),
                &tenant,
                "vera",
                chrono::Utc::now() + lifetime,
            )
            .await
            .unwrap();
        let mut stream = open_stream(
            http.get(server.at("/api/v1/stream"))
                .header("Cookie", format!("siren_session={session}")),
        )
        .await;
        let ended = ends_without_delivering(&mut stream, Duration::from_secs(7)).await;
        assert!(ended.is_ok(), "{url}, session: {ended:?}");
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_user_old_session_stays_ended_after_enable() {
    for (url, dir) in backends().await {
        let server = start(&url, dir, config()).await;
        let admin = add_token(&server.store, "default", Role::Admin, false).await;
        add_user(&server.store, "default", "bob", Role::Analyst).await;
        let bob = login(&server, "default", "bob").await;
        let me = bob
            .client
            .get(server.at("/api/v1/auth/me"))
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 200);
        let http = reqwest::Client::new();
        for action in ["disable", "enable"] {
            let response = http
                .post(server.at(&format!("/api/v1/users/bob/{action}")))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{action}");
        }
        let me = bob
            .client
            .get(server.at("/api/v1/auth/me"))
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 401, "{url}: the old session came back");
        // Logging in again works.
        let again = login(&server, "default", "bob").await;
        let me = again
            .client
            .get(server.at("/api/v1/auth/me"))
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 200);
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiry_out_of_range_is_a_400() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("siren.db").display());
    let server = start(&url, Some(dir), config()).await;
    let admin = add_token(&server.store, "default", Role::Admin, false).await;
    let http = reqwest::Client::new();
    let create = |body: Value| {
        http.post(server.at("/api/v1/tokens"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    for (body, reason) in [
        (
            json!({"name": "x", "role": "viewer", "expires_in_days": 4_294_967_295u64}),
            "expires_in_days must be 1 to",
        ),
        (
            json!({"name": "x", "role": "viewer", "expires_in_days": 0}),
            "expires_in_days must be 1 to",
        ),
        (
            json!({"name": "x", "role": "viewer", "expires_in_days": 4_294_967_296u64}),
            "expires_in_days",
        ),
        (
            json!({"name": "x", "role": "viewer", "expires_in_days": -1}),
            "expires_in_days",
        ),
        (
            json!({"name": "x", "role": "viewer", "expires_at": "2020-01-01T00:00:00Z"}),
            "in the past",
        ),
        (
            json!({"name": "x", "role": "viewer", "expires_at": "9999-12-31T23:59:59Z", "expires_in_days": 3}),
            "not both",
        ),
    ] {
        let response = create(body.clone()).await.unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert!(
            error["error"].as_str().unwrap().contains(reason),
            "{body}: {error}"
        );
    }
    let made = create(json!({"name": "x", "role": "viewer", "expires_in_days": 36500}))
        .await
        .unwrap();
    assert_eq!(made.status(), 200);
    // The server is still up.
    let health = http.get(server.at("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    server.stop().await;
}

/// A client whose connections come from `ip` (any 127.x address reaches the loopback).
fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(ip))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_lockout_is_not_a_denial_of_service() {
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
    add_user(&server.store, "default", "root", Role::Admin).await;
    let attempt = |client: &reqwest::Client, password: &str| {
        client
            .post(server.at("/api/v1/auth/login"))
            .json(&json!({"username": "root", "password": password}))
            .send()
    };
    // The owner logs in from their usual address once.
    let usual = client_from([127, 0, 0, 4]);
    assert_eq!(attempt(&usual, PASSWORD).await.unwrap().status(), 200);
    // An attacker fails from one address until that address is refused…
    let attacker = client_from([127, 0, 0, 2]);
    for _ in 0..3 {
        assert_eq!(
            attempt(&attacker, "guess guess guess")
                .await
                .unwrap()
                .status(),
            401
        );
    }
    let refused = attempt(&attacker, PASSWORD).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    // …and from more addresses, past the user's ceiling.
    for last in 10..12 {
        let other = client_from([127, 0, 0, last]);
        assert_eq!(
            attempt(&other, "guess guess guess").await.unwrap().status(),
            401
        );
    }
    // The owner still gets in: from the usual address, and (slowed) from a new one.
    assert_eq!(attempt(&usual, PASSWORD).await.unwrap().status(), 200);
    let elsewhere = client_from([127, 0, 0, 3]);
    assert_eq!(attempt(&elsewhere, PASSWORD).await.unwrap().status(), 200);
    // The lockout and the slowdown are in the audit log.
    let audit = server
        .store
        .audit_log(&TenantId::parse("default").unwrap(), 100)
        .await
        .unwrap();
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .map(|e| (e.action.as_str(), e.object.as_str()))
        .collect();
    assert!(
        actions.contains(&("login.lockout", "user:root")),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("login.slowdown", "user:root")),
        "{actions:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_note_is_a_413() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("siren.db").display());
    let server = start(&url, Some(dir), config()).await;
    let analyst = add_token(&server.store, "default", Role::Analyst, false).await;
    let agent = add_token(&server.store, "default", Role::Agent, false).await;
    new_incident(&server, &agent, &analyst, "dc-note").await;
    let incident = server
        .store
        .list_incidents(
            &TenantId::parse("default").unwrap(),
            &siren_core::incident::IncidentFilter {
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .incidents[0]
        .id
        .0;
    let http = reqwest::Client::new();
    let big = "a".repeat(2 * 1024 * 1024 + 10);
    let note = http
        .post(server.at(&format!("/api/v1/incidents/{incident}/notes")))
        .bearer_auth(&analyst)
        .json(&json!({"text": big}))
        .send()
        .await
        .unwrap();
    assert_eq!(note.status(), 413);
    let error: Value = note.json().await.unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("limit"),
        "{error}"
    );
    // Every JSON body of the API: over the limit is a 413, not a 400.
    let login = http
        .post(server.at("/api/v1/auth/login"))
        .json(&json!({"username": "x", "password": big}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 413);
    // A note too long but within the body limit is still a 400 with the reason.
    let long = http
        .post(server.at(&format!("/api/v1/incidents/{incident}/notes")))
        .bearer_auth(&analyst)
        .json(&json!({"text": "a".repeat(20_001)}))
        .send()
        .await
        .unwrap();
    assert_eq!(long.status(), 400);
    server.stop().await;
}
