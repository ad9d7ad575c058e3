//! The dashboard end to end: `siren demo` serves it on 127.0.0.1 with SQLite, and headless
//! Chromium (driven through chromedriver with fantoccini) signs in through the real form,
//! works an incident, sees a new incident arrive live, and shows hostile event fields as text.
//!
//! Without Chromium and chromedriver the tests print a notice and pass; with
//! `SIREN_REQUIRE_BROWSER=1` or `SIREN_REQUIRE_CORPUS=1` (CI) their absence is a failure.
//! Screenshots go to `target/dashboard-screenshots/` (the path is printed).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::support;

/// How long any one thing may take to show up in the page.
const WAIT: Duration = Duration::from_secs(15);

/// A running `siren demo`, stopped when dropped.
struct Demo {
    child: Child,
    url: String,
    user: String,
    password: String,
    _dir: tempfile::TempDir,
}

impl Demo {
    fn start() -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(support::siren_bin())
            .args([
                "--format",
                "jsonl",
                "demo",
                "--listen",
                "127.0.0.1:0",
                "--dir",
            ])
            .arg(dir.path())
            .env_remove("SIREN_DATABASE_URL")
            .env_remove("SIREN_CONFIG")
            .env_remove("SIREN_TENANT")
            .env("SIREN_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start siren demo");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the demo's summary");
        let summary: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the demo printed {line:?}, not its JSON summary: {e}"));
        assert!(
            summary["incidents"].as_u64().unwrap() >= 5,
            "the sample opens incidents: {summary}"
        );
        Demo {
            child,
            url: summary["url"]
                .as_str()
                .unwrap()
                .trim_end_matches('/')
                .to_owned(),
            user: summary["user"].as_str().unwrap().to_owned(),
            password: summary["password"].as_str().unwrap().to_owned(),
            _dir: dir,
        }
    }

    /// Signs in over the API; returns the session cookie and the CSRF token.
    async fn api_login(&self, http: &reqwest::Client) -> (String, String) {
        let response = http
            .post(format!("{}/api/v1/auth/login", self.url))
            .json(&json!({"username": self.user, "password": self.password}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let cookie = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("siren_session="))
            .and_then(|v| v.split(';').next())
            .expect("a session cookie")
            .to_owned();
        let body: Value = response.json().await.unwrap();
        (cookie, body["csrf_token"].as_str().unwrap().to_owned())
    }

    /// A bearer token with the `agent` role, made through the admin API.
    async fn agent_token(&self, http: &reqwest::Client) -> String {
        let (cookie, csrf) = self.api_login(http).await;
        let response = http
            .post(format!("{}/api/v1/tokens", self.url))
            .header("cookie", cookie)
            .header("x-csrf-token", csrf)
            .json(&json!({"name": "browser-test", "role": "agent"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["secret"].as_str().unwrap().to_owned()
    }

    /// Posts events with a bearer token; returns the server's answer.
    async fn post_events(&self, http: &reqwest::Client, token: &str, events: &Value) -> Value {
        let response = http
            .post(format!("{}/api/v1/events", self.url))
            .bearer_auth(token)
            .json(events)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Headless Chromium behind a chromedriver of our own, closed when dropped.
pub(crate) struct Browser {
    client: Option<Client>,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where Chromium and chromedriver are, or `None` (after a notice) when absent.
pub(crate) fn chromium() -> Option<(PathBuf, PathBuf)> {
    let find = |var: &str, names: &[&str]| -> Option<PathBuf> {
        if let Some(path) = std::env::var_os(var) {
            return Some(PathBuf::from(path));
        }
        names
            .iter()
            .map(|n| Path::new("/usr/bin").join(n))
            .find(|p| p.is_file())
    };
    let browser = find(
        "SIREN_CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let driver = find("SIREN_CHROMEDRIVER", &["chromedriver"]);
    match (browser, driver) {
        (Some(b), Some(d)) => Some((b, d)),
        _ => {
            let required = ["SIREN_REQUIRE_BROWSER", "SIREN_REQUIRE_CORPUS"]
                .iter()
                .any(|v| std::env::var_os(v).is_some());
            assert!(
                !required,
                "headless Chromium is required but chromium or chromedriver is missing \
                 (apt-get install chromium chromium-driver)"
            );
            eprintln!(
                "notice: skipping the dashboard browser tests: chromium or chromedriver not found \
                 (apt-get install chromium chromium-driver)"
            );
            None
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    pub(crate) async fn start(chromium: &Path, chromedriver: &Path) -> Browser {
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Browser {
            client: None,
            driver,
            _profile: profile,
        };
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1440,900", "--hide-scrollbars", "--no-first-run",
                    format!("--user-data-dir={}", browser._profile.path().display()),
                ],
            }),
        );
        let started = Instant::now();
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => break client,
                Err(_) if started.elapsed() < Duration::from_secs(20) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("cannot start a Chromium session through chromedriver: {e}"),
            }
        };
        browser.client = Some(client);
        browser
    }

    pub(crate) fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    pub(crate) async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }

    pub(crate) async fn wait_css(&self, css: &str) -> fantoccini::elements::Element {
        self.c()
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css} did not appear: {e}"))
    }

    /// Waits until the JavaScript expression is true.
    pub(crate) async fn wait_js(&self, what: &str, expression: &str) {
        let started = Instant::now();
        loop {
            let value = self
                .c()
                .execute(&format!("return !!({expression});"), vec![])
                .await
                .unwrap();
            if value == json!(true) {
                return;
            }
            assert!(started.elapsed() < WAIT, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn js(&self, script: &str) -> Value {
        self.c().execute(script, vec![]).await.unwrap()
    }

    /// Clicks the element; found again if a live update redrew it meanwhile.
    async fn click(&self, css: &str) {
        for attempt in 0.. {
            match self.wait_css(css).await.click().await {
                Ok(()) => return,
                Err(_) if attempt < 3 => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("cannot click {css}: {e}"),
            }
        }
    }

    /// Types into the field; found again if a live update redrew it meanwhile.
    async fn type_into(&self, css: &str, text: &str) {
        for attempt in 0.. {
            let field = self.wait_css(css).await;
            let typed = async {
                field.clear().await?;
                field.send_keys(text).await
            };
            match typed.await {
                Ok(()) => return,
                Err(_) if attempt < 3 => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("cannot type into {css}: {e}"),
            }
        }
    }

    pub(crate) async fn screenshot(&self, name: &str) {
        let png = self.c().screenshot().await.unwrap();
        let dir = screenshot_dir();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn sign_in(&self, demo: &Demo) {
        self.sign_in_at(&demo.url, &demo.user, &demo.password).await;
    }

    /// Signs in at the dashboard of the server at `url` and waits for the overview.
    pub(crate) async fn sign_in_at(&self, url: &str, user: &str, password: &str) {
        self.c().goto(&format!("{url}/")).await.unwrap();
        self.wait_js(
            "the login form shows",
            "!document.getElementById('login-view').hidden",
        )
        .await;
        self.type_into("#login-username", user).await;
        self.type_into("#login-password", password).await;
        self.click("#login-submit").await;
        self.wait_css("body[data-overview='rendered']").await;
    }
}

/// `target/dashboard-screenshots`, created once and printed.
fn screenshot_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        // target/<profile>/deps/it-… → target/dashboard-screenshots
        let exe = std::env::current_exe().unwrap();
        let target = exe
            .ancestors()
            .nth(3)
            .map_or_else(std::env::temp_dir, Path::to_owned);
        let dir = target.join("dashboard-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        eprintln!("dashboard screenshots: {}", dir.display());
        dir
    })
    .clone()
}

/// A service install on `host` that the built-in pack reports (System 7045), as `evtx_dump`
/// writes it; `text` fills every string field.
fn service_install(host: &str, record: u64, text: &str) -> Value {
    json!({"Event": {
        "System": {
            "Provider": {"#attributes": {"Name": "Service Control Manager"}},
            "EventID": 7045,
            "TimeCreated": {"#attributes": {"SystemTime": chrono::Utc::now().to_rfc3339()}},
            "EventRecordID": record,
            "Channel": "System",
            "Computer": host,
        },
        "EventData": {
            "ServiceName": text,
            "ImagePath": text,
            "ServiceType": text,
            "StartType": text,
            "AccountName": text,
        }
    }})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyst_signs_in_works_an_incident_and_sees_a_new_one_live() {
    let Some((chromium, chromedriver)) = chromium() else {
        return;
    };
    let demo = Demo::start();
    let browser = Browser::start(&chromium, &chromedriver).await;

    // A cold first load (empty cache) of the login page, then sign in through the form.
    browser.c().goto(&format!("{}/", demo.url)).await.unwrap();
    browser
        .wait_js(
            "the login page has loaded",
            "performance.getEntriesByType('navigation')[0].loadEventEnd > 0",
        )
        .await;
    let cold = browser
        .js("return performance.getEntriesByType('navigation')[0].loadEventEnd;")
        .await;
    browser.screenshot("01-login").await;
    browser.sign_in(&demo).await;
    // The overview has its charts.
    browser
        .wait_css("canvas[data-chart='events-per-minute']")
        .await;
    browser.wait_css("canvas[data-chart='severity']").await;
    browser.wait_css("canvas[data-chart='top-rules']").await;
    browser.wait_css("canvas[data-chart='top-hosts']").await;
    let kpis = browser.wait_css("#kpis").await.text().await.unwrap();
    assert!(kpis.contains("Open incidents"), "{kpis}");
    // The admin sees what is kept: the demo's policy, its storage and the next purge.
    browser.wait_css("body[data-retention='rendered']").await;
    let keep = browser
        .js("return [...document.querySelectorAll('#retention-card tr[data-kind]')].map((r) => r.dataset.kind + '=' + r.querySelector('.retention-keep').textContent).join(' ');")
        .await;
    assert_eq!(
        keep,
        "events=90d incidents=400d outbox=30d sessions=7d correlation=30d"
    );
    let bytes = browser
        .wait_css("#retention-bytes")
        .await
        .text()
        .await
        .unwrap();
    assert!(bytes.ends_with("KiB") || bytes.ends_with("MiB"), "{bytes}");
    // The demo archives events past its policy in its folder; nothing is there yet.
    let archive = browser
        .wait_css("#retention-archive")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        archive.contains("archive") && archive.contains("0 parts"),
        "{archive}"
    );
    let oldest = browser
        .wait_css("#retention-oldest")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !oldest.contains("none"),
        "the demo's events are stored: {oldest}"
    );
    browser.screenshot("02-overview").await;

    // A signed-in load of the overview: time until it is drawn with the server's data.
    browser.c().refresh().await.unwrap();
    browser.wait_css("body[data-overview='rendered']").await;
    let warm = browser
        .js("return performance.getEntriesByName('siren-overview-rendered')[0].startTime;")
        .await;
    eprintln!(
        "dashboard first load: login page {:.0} ms (cold cache), overview rendered with data {:.0} ms (signed in)",
        cold.as_f64().unwrap(),
        warm.as_f64().unwrap()
    );

    // The incident list shows the demo's incidents.
    browser.click("a[data-nav='incidents']").await;
    browser.wait_css("#incident-rows tr[data-id]").await;
    let rows = browser
        .js("return document.querySelectorAll('#incident-rows tr[data-id]').length;")
        .await;
    assert!(rows.as_u64().unwrap() >= 5, "{rows}");
    let list = browser
        .wait_css("#incident-rows")
        .await
        .text()
        .await
        .unwrap();
    assert!(list.contains("Brute Force"), "{list}");
    browser.screenshot("03-incidents").await;

    // Filters narrow it down without a reload.
    browser
        .wait_css("#filter-severity")
        .await
        .select_by_value("critical")
        .await
        .unwrap();
    browser
        .wait_js(
            "only critical incidents are listed",
            "document.querySelectorAll('#incident-rows tr[data-id]').length > 0 && \
             [...document.querySelectorAll('#incident-rows tr[data-id] .sev')].every(e => e.textContent === 'critical')",
        )
        .await;

    // Open the successful-logon-after-brute-force incident.
    browser
        .js(
            "[...document.querySelectorAll('#incident-rows a.incident-link')]\
             .find(a => a.textContent.includes('After Brute Force')).click(); return null;",
        )
        .await;
    browser.wait_css("#incident-title").await;
    browser.wait_css(".events-table").await;
    let title = browser
        .wait_css("#incident-title")
        .await
        .text()
        .await
        .unwrap();
    let page = browser.wait_css("#incident").await.text().await.unwrap();
    for part in [
        "Summary",
        "Affected assets",
        "ATT&CK techniques",
        "Suggested investigation steps",
        "Timeline",
        "Triggering events",
    ] {
        assert!(page.contains(part), "the incident page lacks {part}");
    }
    assert!(page.contains("T1110"), "techniques shown: {page}");
    browser.screenshot("04-incident").await;

    // The page's report link downloads this incident's PDF with the session.
    let download = browser
        .c()
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             const a = document.querySelector('#incident-report a[data-format=\"pdf\"]');\
             fetch(a.href).then(r => r.arrayBuffer().then(b => done({status: r.status,\
               type: r.headers.get('content-type'),\
               magic: String.fromCharCode(...new Uint8Array(b.slice(0, 5)))})))\
             .catch(e => done({error: String(e)}));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        download,
        json!({"status": 200, "type": "application/pdf", "magic": "%PDF-"})
    );

    // Acknowledge, assign, change the status, add a note: each through the page's controls.
    browser.click("#action-ack").await;
    browser
        .wait_css("#incident[data-status='acknowledged']")
        .await;
    browser.type_into("#assign-input", &demo.user).await;
    browser.click("#action-assign").await;
    browser
        .wait_css(&format!("#incident[data-assignee='{}']", demo.user))
        .await;
    browser.click("#action-status").await;
    browser
        .wait_css("#status-select")
        .await
        .select_by_value("in_progress")
        .await
        .unwrap();
    browser.type_into("#status-note", "looking at DC01").await;
    browser.click("#status-save").await;
    browser
        .wait_css("#incident[data-status='in_progress']")
        .await;
    let note = "Reset the administrator password; blocked 203.0.113.45 at the firewall.";
    browser.type_into("#note-text", note).await;
    browser.click("#note-add").await;
    browser
        .wait_js(
            "the note shows",
            &format!(
                "document.getElementById('notes').textContent.includes({})",
                json!(note)
            ),
        )
        .await;
    browser.click("#action-status").await;
    browser
        .wait_css("#status-select")
        .await
        .select_by_value("resolved")
        .await
        .unwrap();
    browser
        .wait_css("#status-resolution")
        .await
        .select_by_value("true_positive")
        .await
        .unwrap();
    browser.click("#status-save").await;
    browser.wait_css("#incident[data-status='resolved']").await;
    let timeline = browser.wait_css(".timeline").await.text().await.unwrap();
    for kind in ["assigned", "status changed", "note"] {
        assert!(timeline.contains(kind), "timeline lacks {kind}: {timeline}");
    }
    browser.screenshot("05-incident-worked").await;

    // The server agrees.
    let http = reqwest::Client::new();
    let id = browser
        .js("return location.hash.split('/').pop();")
        .await
        .as_str()
        .unwrap()
        .to_owned();
    let (cookie, _) = demo.api_login(&http).await;
    let detail: Value = http
        .get(format!("{}/api/v1/incidents/{id}", demo.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["incident"]["status"], "resolved", "{title}");
    assert_eq!(detail["incident"]["resolution"], "true_positive");
    assert_eq!(detail["incident"]["assignee"], demo.user.as_str());

    // A new incident appears in the open list, live, while the page stays loaded.
    browser
        .c()
        .goto(&format!("{}/#/incidents", demo.url))
        .await
        .unwrap();
    browser.wait_css("#incident-rows tr[data-id]").await;
    browser
        .wait_js(
            "the live stream is connected",
            "document.getElementById('live-status').classList.contains('live-on')",
        )
        .await;
    browser
        .js("window.__sirenSamePage = true; return null;")
        .await;
    let token = demo.agent_token(&http).await;
    let answer = demo
        .post_events(
            &http,
            &token,
            &json!([service_install("WS777.acme.local", 9001, "LiveUpdater")]),
        )
        .await;
    assert_eq!(answer["stored"], 1, "{answer}");
    browser
        .wait_js(
            "the new incident is listed",
            "[...document.querySelectorAll('#incident-rows tr[data-id]')].some(r => r.textContent.includes('WS777.acme.local'))",
        )
        .await;
    assert_eq!(
        browser.js("return window.__sirenSamePage === true;").await,
        json!(true)
    );
    browser.wait_css(".toast").await;
    browser.screenshot("06-live-incident").await;

    // The demo's admin administers the whole installation: the Cluster page says it is one
    // node.
    browser.click("#nav-cluster").await;
    browser.wait_css("body[data-cluster='single']").await;
    browser.wait_css("#cluster-single").await;
    browser.close().await;

    // A signed-in first load with an empty cache: a fresh browser profile given a session.
    let (cookie, _) = demo.api_login(&http).await;
    let (name, value) = cookie.split_once('=').unwrap();
    let fresh = Browser::start(&chromium, &chromedriver).await;
    fresh
        .c()
        .goto(&format!("{}/healthz", demo.url))
        .await
        .unwrap();
    // Set from the page: WebDriver's cookie command refuses a host that is an IP address. The
    // server reads the cookie whoever set it.
    fresh
        .c()
        .execute(
            "document.cookie = arguments[0] + '=' + arguments[1] + '; path=/; SameSite=Strict';",
            vec![json!(name), json!(value)],
        )
        .await
        .unwrap();
    fresh.c().goto(&format!("{}/", demo.url)).await.unwrap();
    fresh.wait_css("body[data-overview='rendered']").await;
    let cold_overview = fresh
        .js("return performance.getEntriesByName('siren-overview-rendered')[0].startTime;")
        .await;
    let transferred = fresh
        .js("return performance.getEntriesByType('resource').reduce((n, r) => n + r.transferSize, 0) \
             + performance.getEntriesByType('navigation')[0].transferSize;")
        .await;
    eprintln!(
        "dashboard first load, signed in, empty cache: overview rendered with data after {:.0} ms, {:.0} KiB transferred",
        cold_overview.as_f64().unwrap(),
        transferred.as_f64().unwrap() / 1024.0
    );
    fresh.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_in_event_fields_and_notes_is_shown_as_text() {
    let Some((chromium, chromedriver)) = chromium() else {
        return;
    };
    let demo = Demo::start();
    let http = reqwest::Client::new();

    // The dashboard is served under a strict policy.
    let page = http.get(format!("{}/", demo.url)).send().await.unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");

    let payload =
        "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\"><b>bold</b>";
    let host = "<img src=x onerror=\"window.__pwned=3\">WS666";
    let token = demo.agent_token(&http).await;
    let answer = demo
        .post_events(
            &http,
            &token,
            &json!([service_install(host, 31337, payload)]),
        )
        .await;
    assert_eq!(answer["stored"], 1, "{answer}");
    assert!(
        answer["incidents_created"].as_u64().unwrap() >= 1,
        "{answer}"
    );

    let browser = Browser::start(&chromium, &chromedriver).await;
    browser.sign_in(&demo).await;
    browser
        .c()
        .goto(&format!("{}/#/incidents?q=WS666", demo.url))
        .await
        .unwrap();
    browser.wait_css("#incident-rows tr[data-id]").await;
    browser
        .click("#incident-rows tr[data-id] a.incident-link")
        .await;
    browser.wait_css(".events-table").await;
    browser.click(".event-row").await;
    let note =
        "<script>window.__pwned=4</script><iframe src=\"javascript:window.__pwned=5\"></iframe>";
    browser.type_into("#note-text", note).await;
    browser.click("#note-add").await;
    browser
        .wait_js(
            "the note shows",
            &format!(
                "document.getElementById('notes').textContent.includes({})",
                json!(note)
            ),
        )
        .await;
    // Give any injected handler (an <img onerror>) time to run before looking.
    tokio::time::sleep(Duration::from_millis(500)).await;
    browser.screenshot("07-hostile-fields").await;

    let injected = browser
        .js("return document.querySelectorAll('#main img, #main script, #main iframe, #main b, #toasts img, #toasts script').length;")
        .await;
    assert_eq!(injected, json!(0), "markup from data became elements");
    assert_eq!(
        browser.js("return window.__pwned === undefined;").await,
        json!(true)
    );
    let text = browser
        .js("return document.getElementById('main').textContent;")
        .await;
    let text = text.as_str().unwrap();
    assert!(text.contains(payload), "the payload is shown as text");
    assert!(text.contains(host), "the host is shown as text");
    assert!(text.contains(note), "the note is shown as text");
    browser.close().await;
}
