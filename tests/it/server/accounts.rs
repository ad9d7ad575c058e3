//! Logins rate-limited per user; API tokens shown once, stored hashed, revocable.

use super::*;

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
