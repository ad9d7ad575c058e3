//! Notifications end to end: real mail to a real SMTP server process (Python's aiosmtpd),
//! webhooks to a real HTTP server on loopback with the Standard Webhooks signature checked by
//! the reference Python implementation, Slack and Teams payload shapes, policies under an
//! injected clock, the outbox surviving endpoints that are down and a restart, and two
//! dispatchers sharing one database.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_reaches_a_real_smtp_server_with_both_bodies_and_the_incident_link() {
    if !python_has("aiosmtpd") {
        return;
    }
    let smtp = SmtpServer::start(free_port(), Some(("siren", "s3cret-smtp")));
    let (store, _dir) = sqlite().await;
    let clock = Arc::new(ManualClock::new(start_time()));
    let config = config(&format!(
        r#"
public_url: https://siren.example.org/
channels:
  - {{ name: soc-mail, type: email, smtp: "smtp://127.0.0.1:{}", tls: none, username: siren, password: s3cret-smtp,
      from: "SIREN <siren@example.org>", to: [soc@example.org, "Lead <lead@example.org>"] }}
policies:
  - {{ channels: [soc-mail], min_severity: high }}
"#,
        smtp.port
    ));
    open(
        &store,
        &clock,
        &[alert("brute-force", "dc01", Severity::High, start_time())],
    )
    .await;
    let dispatcher = Dispatcher::new(store.clone(), config, clock.clone()).unwrap();
    let report = dispatcher.tick(None).await.unwrap();
    assert_eq!(report.sent, 1, "{report:?}");

    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    let raw = &messages[0];
    let text = String::from_utf8_lossy(raw);
    assert!(
        text.contains("X-Test-Auth-User: siren"),
        "authenticated: {text}"
    );
    assert!(
        text.contains("X-Test-Rcpt-To: soc@example.org, lead@example.org"),
        "{text}"
    );
    let mail = mail_parser::MessageParser::default().parse(raw).unwrap();
    assert_eq!(
        mail.subject().unwrap(),
        "[SIREN] New high incident: Rule brute-force — dc01 (#1)"
    );
    let to: Vec<&str> = mail
        .to()
        .unwrap()
        .iter()
        .filter_map(|a| a.address())
        .collect();
    assert_eq!(to, ["soc@example.org", "lead@example.org"]);
    assert_eq!(
        mail.from().unwrap().first().unwrap().address(),
        Some("siren@example.org")
    );
    assert!(mail.message_id().unwrap().ends_with("@example.org"));
    assert_eq!(mail.text_body_count(), 1);
    assert_eq!(mail.html_body_count(), 1);
    let plain = mail.body_text(0).unwrap();
    let html = mail.body_html(0).unwrap();
    assert!(
        plain.contains("https://siren.example.org/#/incidents/1"),
        "{plain}"
    );
    assert!(plain.contains("Hosts:       dc01"), "{plain}");
    assert!(
        html.contains(r#"<a href="https://siren.example.org/#/incidents/1""#),
        "{html}"
    );
    assert!(html.contains("<b>high</b>"), "{html}");

    // The incident's timeline tells it.
    let timeline = store
        .incident_timeline(&acme(), IncidentId(1))
        .await
        .unwrap();
    let sent: Vec<_> = timeline
        .iter()
        .filter(|e| e.kind == "notification_sent")
        .collect();
    assert_eq!(sent.len(), 1, "{timeline:?}");
    assert!(sent[0].detail.contains("soc-mail"), "{sent:?}");

    // A wrong password is refused by the server: a failure the outbox keeps (and tells).
    let wrong = config_with_password(smtp.port, "wrong");
    open(
        &store,
        &clock,
        &[alert("brute-force", "dc02", Severity::High, start_time())],
    )
    .await;
    let dispatcher = Dispatcher::new(store.clone(), wrong, clock.clone()).unwrap();
    let report = dispatcher.tick(None).await.unwrap();
    assert_eq!(
        report.sent + report.retried + report.failed,
        1,
        "{report:?}"
    );
    assert_eq!(report.sent, 0);
    let failed = store
        .list_deliveries(
            &acme(),
            &DeliveryFilter {
                incident: Some(IncidentId(2)),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        failed[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("SMTP"),
        "{failed:?}"
    );
    let timeline = store
        .incident_timeline(&acme(), IncidentId(2))
        .await
        .unwrap();
    assert!(
        timeline.iter().any(|e| e.kind == "notification_failed"),
        "{timeline:?}"
    );
    assert_eq!(smtp.messages().len(), 1);
}

fn config_with_password(port: u16, password: &str) -> NotifyConfig {
    config(&format!(
        r#"
channels:
  - {{ name: soc-mail, type: email, smtp: "smtp://127.0.0.1:{port}", tls: none, username: siren, password: {password},
      from: siren@example.org, to: [soc@example.org] }}
policies:
  - {{ channels: [soc-mail], min_severity: high }}
"#
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_per_standard_webhooks() {
    if !python_has("standardwebhooks") {
        return;
    }
    let receiver = Receiver::start().await;
    let (store, _dir) = sqlite().await;
    let clock = Arc::new(ManualClock::new(start_time()));
    let config = config(&format!(
        r#"
public_url: https://siren.example.org
channels:
  - {{ name: hook, type: webhook, url: "{}", secret: "{SECRET}", headers: {{ X-Team: soc }} }}
policies:
  - {{ channels: [hook] }}
"#,
        receiver.url("hook")
    ));
    open(
        &store,
        &clock,
        &[alert(
            "lsass-access",
            "ws7",
            Severity::Critical,
            start_time(),
        )],
    )
    .await;
    let report = Dispatcher::new(store.clone(), config, clock.clone())
        .unwrap()
        .tick(None)
        .await
        .unwrap();
    assert_eq!(report.sent, 1);
    let hooks = receiver.hooks();
    assert_eq!(hooks.len(), 1);
    let hook = &hooks[0];
    assert_eq!(hook.headers["content-type"], "application/json");
    assert_eq!(hook.headers["x-team"], "soc");
    assert!(hook.headers["webhook-signature"].starts_with("v1,"));
    assert!(hook.headers["webhook-id"].starts_with("msg_"));
    python_verifies(SECRET, hook).expect("the reference implementation accepts the signature");

    // The verifier is real: a changed body, or another secret, fails.
    let mut tampered = hook.clone();
    tampered.body = tampered.body.replace("critical", "low");
    assert!(python_verifies(SECRET, &tampered).is_err());
    assert!(python_verifies("whsec_c2VjcmV0LWJ1dC1ub3QtdGhlLW9uZQ==", hook).is_err());

    let body = hook.json();
    assert_eq!(body["type"], "incident.new");
    assert_eq!(body["tenant"], "acme");
    assert_eq!(body["incident"]["id"], 1);
    assert_eq!(body["incident"]["severity"], "critical");
    assert_eq!(
        body["incident"]["url"],
        "https://siren.example.org/#/incidents/1"
    );
    assert_eq!(body["incidents"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_and_teams_payloads_have_the_documented_shape() {
    let receiver = Receiver::start().await;
    let (store, _dir) = sqlite().await;
    let clock = Arc::new(ManualClock::new(start_time()));
    let config = config(&format!(
        r#"
public_url: https://siren.example.org
channels:
  - {{ name: slack, type: webhook, preset: slack, url: "{}" }}
  - {{ name: teams, type: webhook, preset: teams, url: "{}" }}
policies:
  - {{ channels: [slack, teams], min_severity: medium }}
"#,
        receiver.url("slack"),
        receiver.url("teams")
    ));
    let mut a = alert("rule<&>", "dc01", Severity::High, start_time());
    a.rule_title = "Escape <me> & *bold*".to_owned();
    open(&store, &clock, &[a]).await;
    let report = Dispatcher::new(store.clone(), config, clock.clone())
        .unwrap()
        .tick(None)
        .await
        .unwrap();
    assert_eq!(report.sent, 2, "{report:?}");

    // Slack incoming webhooks: `text` (the notification fallback) and Block Kit `blocks`.
    let slack = receiver.on("slack")[0].json();
    let text = slack["text"].as_str().unwrap();
    assert!(text.starts_with("New high incident: "), "{text}");
    let blocks = slack["blocks"].as_array().unwrap();
    assert!(blocks.len() <= 50);
    for block in blocks {
        let kind = block["type"].as_str().unwrap();
        assert!(
            ["header", "section", "actions", "context", "divider"].contains(&kind),
            "{kind}"
        );
    }
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert!(blocks[0]["text"]["text"].as_str().unwrap().chars().count() <= 150);
    let section = &blocks[1];
    assert_eq!(section["text"]["type"], "mrkdwn");
    let mrkdwn = section["text"]["text"].as_str().unwrap();
    assert!(
        mrkdwn.contains("Escape &lt;me&gt; &amp; *bold*"),
        "{mrkdwn}"
    );
    assert!(
        mrkdwn.contains("<https://siren.example.org/#/incidents/1|#1 "),
        "{mrkdwn}"
    );
    let fields = section["fields"].as_array().unwrap();
    assert!(fields.len() <= 10);
    assert!(
        fields
            .iter()
            .all(|f| f["type"] == "mrkdwn" && f["text"].as_str().unwrap().len() <= 2000)
    );
    let actions = blocks.iter().find(|b| b["type"] == "actions").unwrap();
    assert_eq!(actions["elements"][0]["type"], "button");
    assert_eq!(
        actions["elements"][0]["url"],
        "https://siren.example.org/#/incidents/1"
    );

    // Teams Workflows: a `message` whose attachment is an Adaptive Card.
    let teams = receiver.on("teams")[0].json();
    assert_eq!(teams["type"], "message");
    let attachment = &teams["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &attachment["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(
        card["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    assert!(card["version"].as_str().unwrap().starts_with("1."));
    for element in card["body"].as_array().unwrap() {
        let kind = element["type"].as_str().unwrap();
        assert!(["TextBlock", "FactSet"].contains(&kind), "{kind}");
        if kind == "FactSet" {
            for fact in element["facts"].as_array().unwrap() {
                assert!(
                    fact["title"].is_string() && fact["value"].is_string(),
                    "{fact}"
                );
            }
        }
    }
    assert!(
        card["body"][1]["text"]
            .as_str()
            .unwrap()
            .contains("Escape <me> & *bold*")
    );
    assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
    assert_eq!(
        card["actions"][0]["url"],
        "https://siren.example.org/#/incidents/1"
    );
}

// ---------------------------------------------------------------------------------------------
// Policies, with an injected clock
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn severity_filter_and_dedup_of_a_growing_incident() {
    for (backend, store, _guard) in backends().await {
        let receiver = Receiver::start().await;
        let clock = Arc::new(ManualClock::new(start_time()));
        let config = config(&format!(
            r#"
channels:
  - {{ name: chat, type: webhook, url: "{}" }}
policies:
  - {{ channels: [chat], min_severity: high, renotify_after: 10m }}
"#,
            receiver.url("chat")
        ));
        let dispatcher = Dispatcher::new(store.clone(), config, clock.clone()).unwrap();
        let t = start_time();

        // Severity filter: a medium incident goes nowhere, a high one goes out.
        open(
            &store,
            &clock,
            &[alert("r-medium", "h1", Severity::Medium, t)],
        )
        .await;
        open(&store, &clock, &[alert("r-high", "h1", Severity::High, t)]).await;
        dispatcher.tick(None).await.unwrap();
        let hooks = receiver.hooks();
        assert_eq!(hooks.len(), 1, "{backend}");
        assert_eq!(
            hooks[0].json()["incident"]["title"],
            "Rule r-high — h1",
            "{backend}"
        );
        let high = hooks[0].json()["incident"]["id"].as_i64().unwrap();

        // It grows five times within the interval: nothing more.
        for n in 1..=5 {
            clock.advance(Duration::from_secs(60));
            open(
                &store,
                &clock,
                &[alert(
                    "r-high",
                    "h1",
                    Severity::High,
                    t + chrono::Duration::minutes(n),
                )],
            )
            .await;
            dispatcher.tick(None).await.unwrap();
        }
        assert_eq!(receiver.hooks().len(), 1, "{backend}: still one message");

        // Ten minutes after the first message: one update with the new count.
        clock.advance(Duration::from_secs(5 * 60));
        dispatcher.tick(None).await.unwrap();
        let hooks = receiver.hooks();
        assert_eq!(hooks.len(), 2, "{backend}");
        let update = hooks[1].json();
        assert_eq!(update["type"], "incident.update", "{backend}");
        assert_eq!(update["incident"]["id"], high, "{backend}");
        assert_eq!(update["incident"]["alert_count"], 6, "{backend}");
        assert!(
            update["headline"].as_str().unwrap().contains("6 alerts"),
            "{backend}"
        );

        // No growth, no message, however long we wait.
        clock.advance(Duration::from_secs(3600));
        dispatcher.tick(None).await.unwrap();
        assert_eq!(receiver.hooks().len(), 2, "{backend}");

        // The medium incident has no delivery at all.
        let all = store
            .list_deliveries(
                &acme(),
                &DeliveryFilter {
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(
            all.iter().all(|d| d.incident_id == Some(IncidentId(high))),
            "{backend}: {all:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_holds_back_and_sends_a_digest() {
    for (backend, store, _guard) in backends().await {
        let receiver = Receiver::start().await;
        let clock = Arc::new(ManualClock::new(start_time()));
        let config = config(&format!(
            r#"
channels:
  - {{ name: chat, type: webhook, url: "{}", throttle: {{ max: 2, per: 1h }} }}
policies:
  - {{ channels: [chat], min_severity: high }}
"#,
            receiver.url("chat")
        ));
        let dispatcher = Dispatcher::new(store.clone(), config, clock.clone()).unwrap();
        let alerts: Vec<Alert> = (1..=5)
            .map(|n| alert("burst", &format!("host{n}"), Severity::High, start_time()))
            .collect();
        open(&store, &clock, &alerts).await;
        let report = dispatcher.tick(None).await.unwrap();
        assert_eq!((report.sent, report.held), (2, 3), "{backend}: {report:?}");
        assert_eq!(receiver.hooks().len(), 2, "{backend}");

        // Within the window nothing more goes out.
        clock.advance(Duration::from_secs(30 * 60));
        dispatcher.tick(None).await.unwrap();
        assert_eq!(receiver.hooks().len(), 2, "{backend}");

        // Once the window allows: one digest of the three held back.
        clock.advance(Duration::from_secs(31 * 60));
        let report = dispatcher.tick(None).await.unwrap();
        assert_eq!(
            (report.digests, report.sent),
            (1, 1),
            "{backend}: {report:?}"
        );
        let hooks = receiver.hooks();
        assert_eq!(hooks.len(), 3, "{backend}");
        let digest = hooks[2].json();
        assert_eq!(digest["type"], "incident.digest", "{backend}");
        assert!(
            digest["headline"]
                .as_str()
                .unwrap()
                .contains("3 incidents held back"),
            "{backend}"
        );
        let mut first_two = ids(&hooks[..2]);
        let mut held = ids(&hooks[2..]);
        assert_eq!(held.len(), 3, "{backend}");
        first_two.append(&mut held);
        first_two.sort_unstable();
        assert_eq!(
            first_two,
            [1, 2, 3, 4, 5],
            "{backend}: every incident told exactly once"
        );
        let digested = store
            .list_deliveries(
                &acme(),
                &DeliveryFilter {
                    state: Some(DeliveryState::Digested),
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(digested.len(), 3, "{backend}");
        // The digest is in each held incident's timeline.
        let timeline = store
            .incident_timeline(&acme(), IncidentId(held_first(&hooks[2])))
            .await
            .unwrap();
        assert!(
            timeline
                .iter()
                .any(|e| e.kind == "notification_sent" && e.detail.contains("digest")),
            "{backend}: {timeline:?}"
        );
    }
}

fn held_first(hook: &Hook) -> i64 {
    hook.json()["incidents"][0]["id"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_after_the_acknowledgement_timeout() {
    for (backend, store, _guard) in backends().await {
        let receiver = Receiver::start().await;
        let clock = Arc::new(ManualClock::new(start_time()));
        let config = config(&format!(
            r#"
channels:
  - {{ name: chat, type: webhook, url: "{}" }}
  - {{ name: pager, type: webhook, url: "{}" }}
policies:
  - {{ channels: [chat], min_severity: high, escalate_after: 15m, escalate_to: [pager] }}
"#,
            receiver.url("chat"),
            receiver.url("pager")
        ));
        let dispatcher = Dispatcher::new(store.clone(), config, clock.clone()).unwrap();
        open(
            &store,
            &clock,
            &[
                alert("r", "ignored-host", Severity::High, start_time()),
                alert("r", "acked-host", Severity::High, start_time()),
            ],
        )
        .await;
        dispatcher.tick(None).await.unwrap();
        assert_eq!(receiver.on("chat").len(), 2, "{backend}");
        assert!(receiver.on("pager").is_empty(), "{backend}");

        // An analyst acknowledges one of them.
        let acked = ids(&receiver.on("chat"))
            .into_iter()
            .find(|id| {
                receiver.on("chat").iter().any(|h| {
                    h.json()["incident"]["id"] == *id
                        && h.json()["incident"]["hosts"][0] == "acked-host"
                })
            })
            .unwrap();
        let actor = Actor {
            name: "alice".to_owned(),
            origin: "test".to_owned(),
        };
        store
            .change_status(
                &acme(),
                IncidentId(acked),
                Status::Acknowledged,
                None,
                None,
                &actor,
            )
            .await
            .unwrap();

        clock.advance(Duration::from_secs(14 * 60));
        dispatcher.tick(None).await.unwrap();
        assert!(receiver.on("pager").is_empty(), "{backend}: not yet");

        clock.advance(Duration::from_secs(2 * 60));
        dispatcher.tick(None).await.unwrap();
        let pages = receiver.on("pager");
        assert_eq!(pages.len(), 1, "{backend}: only the unacknowledged one");
        let page = pages[0].json();
        assert_eq!(page["type"], "incident.escalation", "{backend}");
        assert_eq!(page["incident"]["hosts"][0], "ignored-host", "{backend}");
        assert!(
            page["headline"]
                .as_str()
                .unwrap()
                .contains("not acknowledged after 15m"),
            "{backend}"
        );
        let cancelled = store
            .list_deliveries(
                &acme(),
                &DeliveryFilter {
                    state: Some(DeliveryState::Cancelled),
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(cancelled.len(), 1, "{backend}");
        assert_eq!(
            cancelled[0].incident_id,
            Some(IncidentId(acked)),
            "{backend}"
        );

        // Later rounds add nothing.
        clock.advance(Duration::from_secs(3600));
        dispatcher.tick(None).await.unwrap();
        assert_eq!(receiver.hooks().len(), 3, "{backend}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dispatchers_sharing_a_database_send_each_delivery_once() {
    for (backend, store, _guard) in backends().await {
        let receiver = Receiver::start().await;
        let clock = Arc::new(ManualClock::new(start_time()));
        let yaml = format!(
            "channels:\n  - {{ name: chat, type: webhook, url: \"{}\" }}\npolicies:\n  - {{ channels: [chat] }}\n",
            receiver.url("chat")
        );
        let alerts: Vec<Alert> = (0..40)
            .map(|n| alert("spread", &format!("host{n}"), Severity::High, start_time()))
            .collect();
        open(&store, &clock, &alerts).await;
        let a = Dispatcher::new(store.clone(), config(&yaml), clock.clone())
            .unwrap()
            .with_owner("replica-a");
        let b = Dispatcher::new(store.clone(), config(&yaml), clock.clone())
            .unwrap()
            .with_owner("replica-b");
        let (ra, rb) = tokio::join!(a.tick(None), b.tick(None));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        // Whatever one of them had not claimed yet, a second round picks up.
        let (rc, rd) = tokio::join!(a.tick(None), b.tick(None));
        let sent = ra.sent + rb.sent + rc.unwrap().sent + rd.unwrap().sent;
        assert_eq!(sent, 40, "{backend}");
        let got = ids(&receiver.hooks());
        assert_eq!(
            got,
            (1..=40).collect::<Vec<_>>(),
            "{backend}: each incident exactly once"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Through the CLI: the outbox survives endpoints that are down and a restart
// ---------------------------------------------------------------------------------------------

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

/// The server delivers too: an agent's batch that opens a high incident is announced at once
/// (the dispatcher is woken by the ingest, not only by its one-second poll), exactly once.
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
        .unwrap();
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
}
