//! A real `siren-server` process for the agent to ship to: a SQLite database in the test's
//! folder, an agent token made the way an admin makes one (`siren tokens create --role agent`),
//! a configuration file with the test's `server:` settings, restartable on its port; and what
//! it stored (read from the database) and counted (read from `/metrics`).

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{json_output, server_bin, siren};

/// An event's identity in the store: host, channel, record id, time in microseconds.
pub type Identity = (String, String, i64, i64);
/// The same, as read back from the events table.
type StoredIdentity = (Option<String>, Option<String>, Option<i64>, Option<i64>);

/// A `siren-server` process on a SQLite database, restartable on its port.
pub struct RealServer {
    dir: PathBuf,
    db: String,
    config: PathBuf,
    port: u16,
    tls: bool,
    /// The test's own client (health, metrics). It trusts any certificate: whether the
    /// server's is trusted is the agent's business, tested on its own.
    client: reqwest::blocking::Client,
    child: Option<Child>,
    /// The secret of an agent token of tenant `default`.
    pub token: String,
}

impl RealServer {
    /// Prepares the database (schema, an agent token) and the configuration file in `dir`, with
    /// `settings` (YAML) in its `server:` section, on a free port; does not start the server.
    /// `/metrics` is public, so tests read the server's counters without another token.
    pub fn new(dir: &Path, settings: &str) -> Self {
        let db = format!("sqlite://{}", dir.join("siren.db").display());
        let (code, created) = json_output(siren(dir).args([
            "--db",
            &db,
            "--format",
            "json",
            "tokens",
            "create",
            "--role",
            "agent",
            "--name",
            "agent under test",
        ]));
        assert_eq!(code, 0, "siren tokens create: {created}");
        let token = created[0]["secret"].as_str().unwrap().to_owned();
        let mut server: serde_yaml::Mapping = serde_yaml::from_str(settings).unwrap_or_default();
        server.insert("metrics_public".into(), true.into());
        let tls = server.contains_key("tls_cert");
        let config = dir.join("siren.yaml");
        let mut file = serde_yaml::Mapping::new();
        file.insert("server".into(), server.into());
        std::fs::write(&config, serde_yaml::to_string(&file).unwrap()).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = reqwest::blocking::Client::builder()
            .danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Self {
            dir: dir.to_owned(),
            db,
            config,
            port,
            tls,
            client,
            child: None,
            token,
        }
    }

    /// [`RealServer::new`], started.
    pub fn start(dir: &Path, settings: &str) -> Self {
        let mut server = Self::new(dir, settings);
        server.restart();
        server
    }

    /// The server's URL (with TLS: `https://localhost:PORT`, the name its certificate carries).
    pub fn url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.port)
        } else {
            format!("http://127.0.0.1:{}", self.port)
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// (Re)starts the process and waits until it answers `/healthz`. Its log goes to
    /// `server.log` in the test's folder.
    pub fn restart(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .unwrap();
        let child = Command::new(server_bin())
            .args(["--db", &self.db, "--listen"])
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--config")
            .arg(&self.config)
            .env_remove("SIREN_CONFIG")
            .env_remove("SIREN_DATABASE_URL")
            .env_remove("SIREN_LISTEN")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let url = format!("{}/healthz", self.url());
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if self
                .client
                .get(&url)
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            if let Some(exit) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("siren-server exited ({exit}): {}", self.log());
            }
            assert!(Instant::now() < until, "siren-server did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// The sum of the samples of `name` in `/metrics` whose labels include every one of
    /// `labels` (`key="value"`).
    pub fn metric(&self, name: &str, labels: &[&str]) -> u64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.url()))
            .send()
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.text())
            .unwrap();
        text.lines()
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (sample, label_text) = series.split_once('{').unwrap_or((series, ""));
                (sample == name && labels.iter().all(|l| label_text.contains(l)))
                    .then(|| value.parse::<f64>().ok())?
            })
            .sum::<f64>() as u64
    }

    /// Answers of `POST /api/v1/events` with `status`, counted by the server.
    pub fn event_posts(&self, status: u16) -> u64 {
        self.metric(
            "siren_http_request_duration_seconds_count",
            &[
                r#"method="POST""#,
                r#"route="/api/v1/events""#,
                &format!(r#"status="{status}""#),
            ],
        )
    }

    fn query<T>(&self, run: impl AsyncFnOnce(&mut sqlx::SqliteConnection) -> T) -> T {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            use sqlx::Connection;
            let mut db = sqlx::SqliteConnection::connect(&self.db).await.unwrap();
            run(&mut db).await
        })
    }

    /// The stored events' fields.
    pub fn events(&self) -> Vec<Value> {
        self.query(async |db| {
            let rows: Vec<String> = sqlx::query_scalar("SELECT fields FROM events")
                .fetch_all(db)
                .await
                .unwrap();
            rows.iter()
                .map(|f| serde_json::from_str(f).unwrap())
                .collect()
        })
    }

    /// The stored events' identities, their number, and the number of incidents.
    pub fn stored(&self) -> (usize, HashSet<Identity>, i64) {
        self.query(async |db| {
            let rows: Vec<StoredIdentity> =
                sqlx::query_as("SELECT host, source, record_id, ts FROM events")
                    .fetch_all(&mut *db)
                    .await
                    .unwrap();
            let incidents: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM incidents")
                .fetch_one(&mut *db)
                .await
                .unwrap();
            let n = rows.len();
            let keys = rows
                .into_iter()
                .map(|(h, s, r, t)| {
                    (
                        h.unwrap_or_default().to_lowercase(),
                        s.unwrap_or_default().to_lowercase(),
                        r.unwrap_or(-1),
                        t.unwrap_or(i64::MIN),
                    )
                })
                .collect();
            (n, keys, incidents)
        })
    }

    /// The agents that sent a heartbeat: id and the queue depth they reported last.
    pub fn agents(&self) -> Vec<(String, i64)> {
        self.query(async |db| {
            sqlx::query_as("SELECT agent, queue_depth FROM agents")
                .fetch_all(db)
                .await
                .unwrap()
        })
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        self.kill();
    }
}
