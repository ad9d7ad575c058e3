//! Operations: metrics, the OpenAPI document, a server killed mid-stream, HTTPS.

use super::*;

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

pub fn spawn_server_binary(url: &str, port: u16) -> std::process::Child {
    std::process::Command::new(crate::support::server_bin())
        .args(["--db", url, "--listen", &format!("127.0.0.1:{port}")])
        .env_remove("SIREN_CONFIG")
        .env("SIREN_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

pub async fn wait_healthy(base: &str) {
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

pub fn free_port() -> u16 {
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
                    // Each batch's first event raises an alert that opens or grows the
                    // host's incident; the rest are harmless logons.
                    let events: Vec<Value> = (0..100)
                        .map(|i| match i {
                            0 => log_cleared(&host, batch * 100),
                            _ => logon(&host, batch * 100 + i),
                        })
                        .collect();
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
        let stored = stored_records(&store, (0..4).map(|s| format!("kill-{s}"))).await;
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
        // Every acknowledged event that raised an alert is an event of an incident.
        let incidents = store
            .list_incidents(
                &tenant,
                &siren_core::incident::IncidentFilter {
                    limit: 1000,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let mut alerted = std::collections::HashSet::new();
        for incident in &incidents.incidents {
            for event in store
                .incident_events(&tenant, incident.id, 1_000_000)
                .await
                .unwrap()
            {
                alerted.insert((event.host.clone().unwrap(), event.record_id.unwrap()));
            }
        }
        let should_alert: Vec<_> = acknowledged
            .iter()
            .filter(|(_, record)| record % 100 == 0)
            .collect();
        let unalerted: Vec<_> = should_alert
            .iter()
            .filter(|e| !alerted.contains(**e))
            .collect();
        assert!(
            unalerted.is_empty(),
            "{} acknowledged alerting events have no alert, e.g. {:?}",
            unalerted.len(),
            unalerted.first()
        );
        let hosts: std::collections::HashSet<&str> =
            should_alert.iter().map(|(host, _)| host.as_str()).collect();
        for host in hosts {
            let of_host: Vec<_> = incidents
                .incidents
                .iter()
                .filter(|i| i.hosts.iter().any(|h| h == host))
                .collect();
            assert_eq!(
                of_host.len(),
                1,
                "{host}: one incident, grown by every batch"
            );
        }
        eprintln!(
            "{url}: {} events acknowledged before SIGKILL, all stored; {} alerts on {} incidents",
            acknowledged.len(),
            should_alert.len(),
            incidents.incidents.len()
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
