//! Helpers shared by the end-to-end tests: where the corpus is, and how to run `siren`.

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_owned()
}

/// The shared corpus folder, or `None` (after printing a notice) when it is absent.
///
/// Panics when it is absent but `SIREN_REQUIRE_CORPUS` is set, so CI cannot pass by skipping.
pub fn shared_dir(what: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("SIREN_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("../shared"),
    };
    if dir.join("corpus").is_dir() {
        return Some(dir);
    }
    if std::env::var_os("SIREN_REQUIRE_CORPUS").is_some() {
        panic!(
            "the shared corpus is required but {} has no corpus/",
            dir.display()
        );
    }
    eprintln!(
        "notice: skipping {what}: no corpus at {} (set SIREN_SHARED)",
        dir.display()
    );
    None
}

/// A new, empty PostgreSQL database on the server `SIREN_TEST_POSTGRES_URL` names, or `None`
/// (after a notice) when it is unset. Panics when unset but the corpus is required (CI).
pub async fn fresh_postgres_database() -> Option<String> {
    let Ok(admin_url) = std::env::var("SIREN_TEST_POSTGRES_URL") else {
        if std::env::var_os("SIREN_REQUIRE_CORPUS").is_some() {
            panic!("SIREN_TEST_POSTGRES_URL must be set where the full suite is required");
        }
        eprintln!("notice: skipping the PostgreSQL backend: SIREN_TEST_POSTGRES_URL is not set");
        return None;
    };
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connect to the PostgreSQL test server");
    let name = format!(
        "siren_test_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    // Databases left by earlier test runs (another process id) are dropped first.
    let stale: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'siren_test_%'")
            .fetch_all(&mut admin)
            .await
            .expect("list test databases");
    let ours = format!("siren_test_{}_", std::process::id());
    for old in stale.iter().filter(|n| !n.starts_with(&ours)) {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{old}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await;
    }
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(base, _)| base);
    Some(format!("{base}/{name}"))
}

/// The folder of the workspace's binaries (`siren`, `siren-server`, `siren-agent`), built once
/// per test process with the same profile as the tests.
///
/// One `cargo build --workspace --bins --tests` builds all three: it selects the same targets as
/// `cargo test --workspace`, so cargo resolves the same features and reuses the dependencies the
/// tests were built with (building one package alone would resolve other features and rebuild
/// them).
fn bin_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        // target/<profile>/deps/it-… → target/<profile>
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("target/<profile>")
            .to_owned();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = std::process::Command::new(cargo);
        build
            .args(["build", "--quiet", "--workspace", "--bins", "--tests"])
            .current_dir(workspace_root());
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "building the workspace's binaries failed");
        profile_dir
    })
}

/// The path of the workspace binary `name`, built once per test process.
fn workspace_bin(name: &str) -> PathBuf {
    bin_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// The `siren` binary.
pub fn siren_bin() -> PathBuf {
    workspace_bin("siren")
}

/// The `siren-server` binary.
pub fn server_bin() -> PathBuf {
    workspace_bin("siren-server")
}

/// The `siren-agent` binary.
pub fn agent_bin() -> PathBuf {
    workspace_bin("siren-agent")
}

/// A `siren` command with a clean environment, working in `dir`, on the database `dir/siren.db`,
/// its rule cache in `dir/rule-cache`.
pub fn siren(dir: &std::path::Path) -> assert_cmd::Command {
    assert_cmd::Command::from_std(siren_process(dir))
}

/// [`siren`] as a `std::process::Command`, for a test that spawns it (and kills it).
pub fn siren_process(dir: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(siren_bin());
    cmd.current_dir(dir)
        .env("SIREN_RULE_CACHE", dir.join("rule-cache"))
        .env_remove("SIREN_DATABASE_URL")
        .env_remove("SIREN_CONFIG")
        .env_remove("SIREN_TENANT")
        .env_remove("SIREN_FORMAT")
        .env("NO_COLOR", "1");
    cmd
}

/// Runs a command that must succeed (exit 0, else the test fails with its stderr) and returns
/// its stdout.
pub fn stdout_of_success(cmd: &mut assert_cmd::Command) -> String {
    let output = cmd.output().expect("run siren");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// Runs a command and parses its stdout as one JSON document.
pub fn json_output(cmd: &mut assert_cmd::Command) -> (i32, serde_json::Value) {
    let output = cmd.output().expect("run siren");
    let code = output.status.code().unwrap_or(-1);
    let value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}), exit {code}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (code, value)
}

/// Sends the server's and library's logs (warnings and errors, or `RUST_LOG`) to the test's
/// captured output, so a failing test shows why a request failed.
pub fn log_to_test_output() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Another test of this binary may have installed it already.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// The paths where two JSON documents differ, each with both values (at most `limit`), so a
/// failed comparison of large documents names what differs instead of printing both whole.
pub fn json_differences(
    left: &serde_json::Value,
    right: &serde_json::Value,
    limit: usize,
) -> Vec<String> {
    use serde_json::Value;
    fn walk(path: &str, left: &Value, right: &Value, out: &mut Vec<String>, limit: usize) {
        if out.len() >= limit || left == right {
            return;
        }
        match (left, right) {
            (Value::Object(l), Value::Object(r)) => {
                let mut keys: Vec<&String> = l.keys().chain(r.keys()).collect();
                keys.sort();
                keys.dedup();
                for key in keys {
                    let (a, b) = (
                        l.get(key).unwrap_or(&Value::Null),
                        r.get(key).unwrap_or(&Value::Null),
                    );
                    walk(&format!("{path}.{key}"), a, b, out, limit);
                }
            }
            (Value::Array(l), Value::Array(r)) if l.len() == r.len() => {
                for (i, (a, b)) in l.iter().zip(r).enumerate() {
                    walk(&format!("{path}[{i}]"), a, b, out, limit);
                }
            }
            _ => {
                let short = |v: &Value| {
                    let text = v.to_string();
                    match text.char_indices().nth(300) {
                        Some((cut, _)) => format!("{}…", &text[..cut]),
                        None => text,
                    }
                };
                out.push(format!("{path}: {} ≠ {}", short(left), short(right)));
            }
        }
    }
    let mut out = Vec::new();
    walk("$", left, right, &mut out, limit);
    out
}
