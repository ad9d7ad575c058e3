//! Delivery across failures and restarts, `siren notify test`, and the server notifying.

use super::*;

fn events_file(dir: &Path) -> PathBuf {
    let path = dir.join("cleared.jsonl");
    let mut file = std::fs::File::create(&path).unwrap();
    for (n, host) in ["ws01", "ws02", "ws03"].iter().enumerate() {
        let event = json!({"EventID": 1102, "Channel": "Security", "Provider_Name": "Microsoft-Windows-Eventlog",
            "Computer": host, "EventRecordID": n + 1, "TimeCreated": format!("2026-11-20T10:0{n}:00Z"),
            "SubjectUserName": "mallory", "SubjectDomainName": "CORP"});
        writeln!(file, "{event}").unwrap();
    }
    path
}

fn write_config(dir: &Path, smtp_port: u16, hook_port: u16) -> PathBuf {
    let path = dir.join("siren.yaml");
    std::fs::write(
        &path,
        format!(
            r#"database: sqlite://siren.db
notify:
  public_url: https://siren.example.org
  channels:
    - {{ name: mail, type: email, smtp: "smtp://127.0.0.1:{smtp_port}", tls: none, from: siren@example.org, to: [soc@example.org], timeout: 2s }}
    - {{ name: hook, type: webhook, url: "http://127.0.0.1:{hook_port}/hook", secret: "env:SIREN_TEST_HOOK_SECRET", timeout: 2s }}
  policies:
    - {{ channels: [mail, hook], min_severity: high }}
"#
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_down_then_a_restart_deliver_each_incident_once_per_channel() {
    if !python_has("aiosmtpd") || !python_has("standardwebhooks") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (smtp_port, hook_port) = (free_port(), free_port());
    write_config(dir.path(), smtp_port, hook_port);
    let events = events_file(dir.path());

    // Both endpoints are down while three high incidents open.
    let (code, summary) = json_output(
        siren(dir.path())
            .env("SIREN_TEST_HOOK_SECRET", SECRET)
            .args(["ingest", "--format", "json", "--notify-timeout", "10s"])
            .arg(&events),
    );
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["incidents_created"], 3, "{summary}");
    let notified = &summary["notifications"];
    assert_eq!(notified["sent"], 0, "{summary}");
    assert_eq!(notified["retried"], 6, "{summary}");
    assert_eq!(notified["pending"], 6, "{summary}");

    let (code, status) =
        json_output(siren(dir.path()).args(["notify", "status", "--format", "json"]));
    assert_eq!(code, 0);
    let status = status.as_array().unwrap().clone();
    assert_eq!(status.len(), 6);
    for delivery in &status {
        assert_eq!(delivery["state"], "pending", "{delivery}");
        assert_eq!(delivery["attempts"], 1, "{delivery}");
        assert!(
            !delivery["last_error"].as_str().unwrap_or("").is_empty(),
            "{delivery}"
        );
    }

    // The endpoints come back; a new process (SIREN restarted) delivers from the outbox.
    let smtp = SmtpServer::start(smtp_port, None);
    let receiver = Receiver::start_on(hook_port).await;
    let (code, _) = json_output(siren(dir.path()).args(["notify", "retry", "--format", "json"]));
    assert_eq!(code, 0);
    let (code, report) = json_output(
        siren(dir.path())
            .env("SIREN_TEST_HOOK_SECRET", SECRET)
            .args(["notify", "deliver", "--format", "json"]),
    );
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["sent"], 6, "{report}");
    assert_eq!(report["pending"], 0, "{report}");

    // Another run (and another ingest of the same events) sends nothing more.
    let (code, report) = json_output(
        siren(dir.path())
            .env("SIREN_TEST_HOOK_SECRET", SECRET)
            .args(["notify", "deliver", "--format", "json"]),
    );
    assert_eq!((code, report["sent"].as_u64()), (0, Some(0)), "{report}");
    let (code, summary) = json_output(
        siren(dir.path())
            .env("SIREN_TEST_HOOK_SECRET", SECRET)
            .args(["ingest", "--format", "json"])
            .arg(&events),
    );
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["incidents_created"], 0);

    // Exactly once per incident per channel.
    let hooks = receiver.hooks();
    assert_eq!(ids(&hooks), [1, 2, 3]);
    for hook in &hooks {
        python_verifies(SECRET, hook).unwrap();
    }
    let mut subjects: Vec<String> = smtp
        .messages()
        .iter()
        .map(|raw| {
            mail_parser::MessageParser::default()
                .parse(raw)
                .unwrap()
                .subject()
                .unwrap()
                .to_owned()
        })
        .collect();
    subjects.sort();
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    for (n, subject) in subjects.iter().enumerate() {
        assert!(
            subject.starts_with("[SIREN] New high incident: Security Audit Log Cleared"),
            "{subject}"
        );
        assert!(subject.ends_with(&format!("(#{})", n + 1)), "{subject}");
    }

    // The status and the timeline say so.
    let (_, status) = json_output(
        siren(dir.path()).args(["notify", "status", "--state", "sent", "--format", "json"]),
    );
    assert_eq!(status.as_array().unwrap().len(), 6);
    let (_, shown) =
        json_output(siren(dir.path()).args(["incidents", "show", "1", "--format", "json"]));
    let kinds: Vec<&str> = shown["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"notification_failed"), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| **k == "notification_sent").count(),
        2,
        "{kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_test_reports_the_result_with_its_exit_code() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let closed = free_port();
    std::fs::write(
        dir.path().join("siren.yaml"),
        format!(
            "notify:\n  channels:\n    - {{ name: up, type: webhook, url: \"env:SIREN_TEST_HOOK_URL\" }}\n    - {{ name: down, type: webhook, url: \"http://127.0.0.1:{closed}/x\", timeout: 2s }}\n"
        ),
    )
    .unwrap();
    let (code, out) = json_output(
        siren(dir.path())
            .env("SIREN_TEST_HOOK_URL", receiver.url("up"))
            .args(["notify", "test", "up", "--format", "json"]),
    );
    assert_eq!((code, &out["sent"]), (0, &json!(true)), "{out}");
    let hooks = receiver.hooks();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].json()["type"], "incident.test");

    let (code, out) = json_output(
        siren(dir.path())
            .env("SIREN_TEST_HOOK_URL", receiver.url("up"))
            .args(["notify", "test", "down", "--format", "json"]),
    );
    assert_eq!(code, 69, "{out}");
    assert_eq!(out["sent"], false);
    assert!(!out["error"].as_str().unwrap().is_empty());

    // An unknown channel, or a secret that cannot be resolved, is a configuration error.
    let output = siren(dir.path())
        .env("SIREN_TEST_HOOK_URL", receiver.url("up"))
        .args(["notify", "test", "nope"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no channel named 'nope'"));
    let output = siren(dir.path())
        .env_remove("SIREN_TEST_HOOK_URL")
        .args(["notify", "test", "up"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SIREN_TEST_HOOK_URL"), "{stderr}");
}

/// The server delivers too: an agent's batch that opens a high incident is announced at once,
/// exactly once. The dispatcher's poll is set to a minute here, so only the wake-up by the
/// ingest can deliver within the half second each announcement is allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_notifies_as_soon_as_an_agent_batch_opens_an_incident() {
    use siren_core::user::Role;
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("siren.db").display());
    let config = config(&format!(
        r#"
public_url: https://siren.example.org
channels:
  - {{ name: hook, type: webhook, url: "{}", secret: "{SECRET}" }}
policies:
  - {{ channels: [hook], min_severity: high }}
"#,
        receiver.url("hook")
    ));
    let server = crate::server::start_with(&url, None, crate::server::config(), |state| {
        let dispatcher = Dispatcher::new(
            state.store().clone(),
            config,
            Arc::new(siren_core::notify::SystemClock),
        )
        .unwrap()
        .with_poll_interval(Duration::from_secs(60));
        state.with_dispatcher(dispatcher)
    })
    .await;
    let agent = crate::server::add_token(&server.store, "default", Role::Agent, false).await;
    let http = reqwest::Client::new();
    let mut latencies = Vec::new();
    for (n, host) in ["ws01", "ws02", "ws03"].iter().enumerate() {
        let sent = std::time::Instant::now();
        let batch = json!([
            crate::server::logon(host, 1),
            crate::server::log_cleared(host, 2)
        ]);
        let response = http
            .post(server.at("/api/v1/events"))
            .bearer_auth(&agent)
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let outcome: Value = response.json().await.unwrap();
        assert_eq!(outcome["incidents_created"], 1, "{outcome}");
        while receiver.on("hook").len() < n + 1 {
            assert!(
                sent.elapsed() < Duration::from_secs(10),
                "no webhook for incident {}",
                n + 1
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(sent.elapsed());
    }
    // A quiet second later: still one message per incident.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let hooks = receiver.on("hook");
    assert_eq!(ids(&hooks), [1, 2, 3]);
    eprintln!("event batch sent → webhook received: {latencies:?}");
    for latency in &latencies {
        assert!(
            *latency < Duration::from_millis(500),
            "announced {latency:?} after the batch was sent: {latencies:?}"
        );
    }
}
