//! Files readable by their owner only: under a permissive umask (`000`), every file and folder
//! that `siren` (ingest, hunt and its rule cache, users, report, serve with the SQLite WAL and
//! shared-memory files) and `siren-agent` (state folder, spool, status) create is `0600` /
//! `0700`; earlier, looser files are tightened; and a configuration file holding a literal
//! secret that others can read draws a warning.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::agent_bin;
use crate::support::{siren_bin, workspace_root};

/// `bin` run in `dir` with the umask `000`, with a clean SIREN environment and the rule cache
/// in its default place under `XDG_CACHE_HOME` (`dir/xdg`, not there yet).
fn permissive(bin: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("umask 000 && exec \"$@\"")
        .arg("sh")
        .arg(bin)
        .current_dir(dir)
        .env("XDG_CACHE_HOME", dir.join("xdg"))
        .env("RUST_LOG", "warn")
        .env_remove("SIREN_RULE_CACHE")
        .env_remove("SIREN_DATABASE_URL")
        .env_remove("SIREN_CONFIG")
        .env_remove("SIREN_TENANT")
        .env_remove("SIREN_AGENT_CONFIG");
    cmd
}

fn succeeds(cmd: &mut Command, codes: &[i32]) -> String {
    let output = cmd.output().unwrap();
    let code = output.status.code().unwrap_or(-1);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(codes.contains(&code), "{cmd:?} exited {code}: {stderr}");
    stderr
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// Every file and folder under `dir` (not `dir` itself) but `inputs`, with its mode.
fn walk(dir: &Path, inputs: &[&str]) -> Vec<(PathBuf, u32)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            let name = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if inputs.contains(&name.as_str()) {
                continue;
            }
            if path.is_dir() {
                stack.push(path.clone());
            }
            let mode = mode(&path);
            found.push((PathBuf::from(name), mode));
        }
    }
    found.sort();
    found
}

fn assert_owner_only(what: &str, found: &[(PathBuf, u32)]) {
    let open: Vec<String> = found
        .iter()
        .filter(|(_, mode)| mode & 0o077 != 0)
        .map(|(path, mode)| format!("{} {mode:o}", path.display()))
        .collect();
    assert!(
        open.is_empty(),
        "{what}: readable by others: {open:?} (all: {found:?})"
    );
}

fn has(found: &[(PathBuf, u32)], test: impl Fn(&str) -> bool, what: &str) {
    assert!(
        found.iter().any(|(p, _)| test(&p.to_string_lossy())),
        "{what} was not created: {found:?}"
    );
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn events(dir: &Path) -> PathBuf {
    let path = dir.join("events.jsonl");
    let event = serde_json::json!({
        "EventID": 1102, "Channel": "Security", "Provider_Name": "Microsoft-Windows-Eventlog",
        "Computer": "dc01", "EventRecordID": 1, "SubjectUserName": "mallory",
        "TimeCreated": "2026-11-20T10:00:00Z",
    });
    std::fs::write(&path, format!("{event}\n")).unwrap();
    path
}

#[test]
fn files_readable_by_everyone_siren_creates_them_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = events(d);
    let siren = siren_bin();
    succeeds(
        permissive(&siren, d)
            .args(["ingest", "--quiet"])
            .arg(&input),
        &[0],
    );
    let mut add = permissive(&siren, d);
    add.args([
        "users",
        "add",
        "alice",
        "--role",
        "viewer",
        "--password-stdin",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = add.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"correct horse battery\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    succeeds(
        permissive(&siren, d)
            .arg("hunt")
            .arg("--rules")
            .arg(workspace_root().join("rules"))
            .args(["--format", "jsonl", "-o", "hunt.jsonl"])
            .arg(&input),
        &[0],
    );
    succeeds(
        permissive(&siren, d).args(["report", "export", "--format", "html", "-o", "report.html"]),
        &[0],
    );

    // While the server runs, the database has its -wal and -shm files.
    let port = free_port();
    let mut serve = permissive(&siren, d)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "siren serve did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let serving = walk(d, &["events.jsonl"]);
    serve.kill().unwrap();
    serve.wait().unwrap();
    assert_owner_only("siren serve", &serving);
    for name in ["siren.db", "siren.db-wal", "siren.db-shm"] {
        has(&serving, |p| p == name, name);
    }

    let found = walk(d, &["events.jsonl"]);
    assert_owner_only("siren ingest, users, hunt, report", &found);
    for name in ["siren.db", "hunt.jsonl", "report.html", "xdg", "xdg/siren"] {
        has(&found, |p| p == name, name);
    }
    has(
        &found,
        |p| p.starts_with("xdg/siren/") && p.len() > 10,
        "the rule cache file",
    );

    // A database left readable by others by an earlier version loses their access.
    std::fs::set_permissions(d.join("siren.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    succeeds(permissive(&siren, d).args(["incidents", "list"]), &[0]);
    assert_eq!(mode(&d.join("siren.db")), 0o640);
}

#[test]
fn files_readable_by_everyone_siren_agent_creates_them_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = events(d);
    // Nothing listens: the events wait in the spool.
    let config = d.join("agent.yaml");
    std::fs::write(
        &config,
        format!(
            "server: {{url: 'http://127.0.0.1:{}', token: env:SIREN_TEST_TOKEN}}\nstate_dir: {}\n",
            free_port(),
            d.join("agent/state").display()
        ),
    )
    .unwrap();
    let run_once = || {
        let stderr = succeeds(
            permissive(&agent_bin(), d)
                .env("SIREN_TEST_TOKEN", "secret")
                .arg("--config")
                .arg(&config)
                .args(["once", "--timeout", "1s"])
                .arg(&input),
            &[75],
        );
        assert!(stderr.contains("wait in the spool"), "{stderr}");
    };
    run_once();
    let found = walk(d, &["events.jsonl", "agent.yaml"]);
    assert_owner_only("siren-agent once", &found);
    for name in [
        "agent",
        "agent/state",
        "agent/state/spool",
        "agent/state/agent.lock",
        "agent/state/status.json",
    ] {
        has(&found, |p| p == name, name);
    }
    has(&found, |p| p.ends_with(".seg"), "a spool segment");

    // A state folder left open by an earlier version is closed.
    let state = d.join("agent/state");
    for folder in [state.clone(), state.join("spool")] {
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    run_once();
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("spool")), 0o700);
}

#[test]
fn configuration_files_with_literal_secrets_readable_by_others_draw_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let warning = "holds secrets written literally";
    let yaml = d.join("siren.yaml");
    std::fs::write(
        &yaml,
        "notify:\n  channels:\n    - { name: chat, type: webhook, preset: slack, url: \"https://hooks.slack.com/services/T0/B0/XYZ\" }\n",
    )
    .unwrap();
    let list = |d: &Path| {
        succeeds(
            permissive(&siren_bin(), d).args(["incidents", "list"]),
            &[0],
        )
    };
    std::fs::set_permissions(&yaml, std::fs::Permissions::from_mode(0o644)).unwrap();
    let stderr = list(d);
    assert!(
        stderr.contains(warning) && stderr.contains("channel 'chat' url"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("XYZ"),
        "the secret itself is never shown: {stderr}"
    );
    std::fs::set_permissions(&yaml, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(!list(d).contains(warning));
    std::fs::write(
        &yaml,
        "notify:\n  channels:\n    - { name: chat, type: webhook, preset: slack, url: \"env:SLACK_URL\" }\n",
    )
    .unwrap();
    std::fs::set_permissions(&yaml, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(!list(d).contains(warning));

    let agent_yaml = d.join("agent.yaml");
    std::fs::write(
        &agent_yaml,
        format!(
            "server: {{url: 'http://127.0.0.1:1', token: literal-token}}\nstate_dir: {}\n",
            d.join("state").display()
        ),
    )
    .unwrap();
    let check = || {
        succeeds(
            permissive(&agent_bin(), d)
                .arg("--config")
                .arg(&agent_yaml)
                .arg("check-config"),
            &[0],
        )
    };
    std::fs::set_permissions(&agent_yaml, std::fs::Permissions::from_mode(0o644)).unwrap();
    let stderr = check();
    assert!(stderr.contains("token written literally"), "{stderr}");
    assert!(!stderr.contains("literal-token"), "{stderr}");
    std::fs::set_permissions(&agent_yaml, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(!check().contains("token written literally"));
}
