//! Regressions `.ci/api-fuzz` (schemathesis against the OpenAPI document) found: malformed
//! requests get the answers the document describes (the status axum gives each kind of
//! rejection — 400, 405, 413, 415, 422 — listed for the operation, with the `{"error": "…"}`
//! body), and an admin token named like a user is not that user.

use serde_json::{Value, json};
use siren_core::user::Role;

use crate::server::{add_token, add_user, config, log_cleared, login, start};

/// A request, the operation of the document it is for, and the status it must get.
struct Case {
    method: &'static str,
    /// The concrete path and query.
    target: &'static str,
    /// The operation's path in the document.
    operation: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
}

fn case(
    method: &'static str,
    target: &'static str,
    operation: &'static str,
    content_type: Option<&'static str>,
    body: impl Into<Vec<u8>>,
    status: u16,
) -> Case {
    Case {
        method,
        target,
        operation,
        content_type,
        body: body.into(),
        status,
    }
}

const JSON: Option<&str> = Some("application/json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_documented_error_answers() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("siren.db").display());
    let server = start(&url, Some(dir), config()).await;
    let admin = add_token(&server.store, "default", Role::Admin, false).await;
    let http = reqwest::Client::new();
    let stored = http
        .post(server.at("/api/v1/events"))
        .bearer_auth(&admin)
        .json(&json!([log_cleared("dc01", 1)]))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 200);
    let doc: Value = serde_json::from_str(siren_server::openapi::OPENAPI).unwrap();

    let note = json!({"text": "x".repeat(3 * 1024 * 1024)}).to_string();
    let cases = [
        // A JSON body sent without a JSON content type.
        case(
            "POST",
            "/api/v1/incidents/1/assign",
            "/api/v1/incidents/{id}/assign",
            None,
            r#"{"assignee": "admin"}"#,
            415,
        ),
        case(
            "POST",
            "/api/v1/tokens",
            "/api/v1/tokens",
            Some("text/plain"),
            r#"{"name": "t", "role": "viewer"}"#,
            415,
        ),
        // JSON that does not parse.
        case("POST", "/api/v1/tokens", "/api/v1/tokens", JSON, "{", 400),
        case(
            "POST",
            "/api/v1/auth/login",
            "/api/v1/auth/login",
            JSON,
            "nul",
            400,
        ),
        // JSON of the wrong shape.
        case(
            "POST",
            "/api/v1/incidents/1/notes",
            "/api/v1/incidents/{id}/notes",
            JSON,
            "{}",
            422,
        ),
        case(
            "POST",
            "/api/v1/users",
            "/api/v1/users",
            JSON,
            r#"{"name": 1, "role": "viewer", "password": "a long enough password"}"#,
            422,
        ),
        case(
            "POST",
            "/api/v1/agents/heartbeat",
            "/api/v1/agents/heartbeat",
            JSON,
            r#"{"agent": 5}"#,
            422,
        ),
        case(
            "POST",
            "/api/v1/auth/login",
            "/api/v1/auth/login",
            JSON,
            "[]",
            422,
        ),
        // Malformed query parameters, and a cursor that is none.
        case(
            "GET",
            "/api/v1/incidents?limit=-1",
            "/api/v1/incidents",
            None,
            "",
            400,
        ),
        case(
            "GET",
            "/api/v1/incidents/1/timeline?notes=maybe",
            "/api/v1/incidents/{id}/timeline",
            None,
            "",
            400,
        ),
        case(
            "GET",
            "/api/v1/events?event_id=four",
            "/api/v1/events",
            None,
            "",
            400,
        ),
        case(
            "GET",
            "/api/v1/reports/summary?format=json&since=2026-02-30",
            "/api/v1/reports/summary",
            None,
            "",
            400,
        ),
        case(
            "GET",
            "/api/v1/incidents?cursor=garbage",
            "/api/v1/incidents",
            None,
            "",
            422,
        ),
        // A body over the JSON routes' limit (last: the server answers before reading it all
        // and closes the connection).
        case(
            "POST",
            "/api/v1/incidents/1/notes",
            "/api/v1/incidents/{id}/notes",
            JSON,
            note,
            413,
        ),
    ];
    for case in cases {
        let label = format!("{} {}", case.method, case.target);
        let mut request = http
            .request(case.method.parse().unwrap(), server.at(case.target))
            .bearer_auth(&admin)
            .body(case.body);
        if let Some(content_type) = case.content_type {
            request = request.header("Content-Type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), case.status, "{label}");
        let documented = &doc["paths"][case.operation][case.method.to_lowercase()]["responses"]
            [case.status.to_string()];
        assert!(
            documented["content"]["application/json"].is_object(),
            "{label}: {} is not documented with a JSON body",
            case.status
        );
        assert_error_body(&label, response).await;
    }

    // A method the route does not take: 405 with the routes's methods in Allow.
    let response = reqwest::Client::new()
        .put(server.at("/api/v1/incidents"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let allow = response.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET"), "Allow: {allow}");
    assert_error_body("PUT /api/v1/incidents", response).await;
    server.stop().await;
}

async fn assert_error_body(label: &str, response: reqwest::Response) {
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/json", "{label}");
    let body: Value = response.json().await.unwrap();
    let message = body["error"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{label}: {body}");
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(1),
        "{label}: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_named_like_a_user_may_disable_that_user() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("siren.db").display());
    let server = start(&url, Some(dir), config()).await;
    // An admin token named "ops", and a user "ops" who is someone else.
    let secret = siren_server::auth::new_token_secret().unwrap();
    let tenant = siren_core::TenantId::parse("default").unwrap();
    let actor = siren_core::user::Actor {
        name: "test".into(),
        origin: "test".into(),
    };
    server
        .store
        .create_token(
            &siren_core::store::NewToken {
                tenant: &tenant,
                name: "ops",
                role: Role::Admin,
                global: false,
                secret_hash: &siren_server::auth::token_hash(&secret),
                expires_at: None,
            },
            &actor,
        )
        .await
        .unwrap();
    add_user(&server.store, "default", "ops", Role::Viewer).await;
    let response = reqwest::Client::new()
        .post(server.at("/api/v1/users/ops/disable"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["disabled"], true, "{body}");
    // A user in their own session still may not lock themselves out.
    add_user(&server.store, "default", "boss", Role::Admin).await;
    let browser = login(&server, "default", "boss").await;
    let response = browser
        .client
        .post(server.at("/api/v1/users/boss/disable"))
        .header("X-CSRF-Token", &browser.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    server.stop().await;
}
