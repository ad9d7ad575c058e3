//! `siren-agent` end to end: the real binary ships to a real `siren-server` (started by the
//! test on SQLite, [`real_server`]), through faults: bad configuration, an unreachable server, a
//! wrong token, an untrusted certificate, a full spool, a followed file that is appended to and
//! rotated, restarts and kills, batches the server refuses as too large, an event it refuses on
//! its own, and a busy server that answers 503 with `Retry-After`.

mod corpus;
mod real_server;
mod refusals;
mod shipping;
mod spool_files;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::agent_bin;
use real_server::RealServer;

/// Writes an agent configuration: test defaults with `extra` (YAML) merged over them, section
/// by section.
fn write_config(dir: &Path, url: &str, token: &str, extra: &str) -> PathBuf {
    let path = dir.join("agent.yaml");
    let defaults = format!(
        "server:\n  url: {url}\n  token: {token}\n  heartbeat: 1s\nstate_dir: {}\nbatch:\n  max_wait: 200ms\nretry:\n  initial: 100ms\n  max: 1s\n",
        dir.join("state").display()
    );
    let mut config: serde_yaml::Mapping = serde_yaml::from_str(&defaults).unwrap();
    let extra: Option<serde_yaml::Mapping> = serde_yaml::from_str(extra).unwrap();
    for (key, value) in extra.unwrap_or_default() {
        match (config.get_mut(&key), value) {
            (Some(serde_yaml::Value::Mapping(section)), serde_yaml::Value::Mapping(over)) => {
                section.extend(over);
            }
            (_, value) => {
                config.insert(key, value);
            }
        }
    }
    std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).unwrap();
    path
}

fn agent(config: &Path) -> Command {
    let mut cmd = Command::new(agent_bin());
    cmd.arg("--config")
        .arg(config)
        .env_remove("SIREN_AGENT_CONFIG")
        .env("RUST_LOG", "info");
    cmd
}

/// Runs the agent to completion: exit code, stdout, stderr.
fn run_agent(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn spool_bytes(state: &Path) -> u64 {
    std::fs::read_dir(state.join("spool")).map_or(0, |entries| {
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
            .map(|e| e.metadata().map_or(0, |m| m.len()))
            .sum()
    })
}

fn sigterm(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

fn lines_file(path: &Path, range: std::ops::Range<usize>, tag: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in range {
        writeln!(
            f,
            "{}",
            json!({"seq": i, "tag": tag, "message": format!("line {i}")})
        )
        .unwrap();
    }
    f.sync_all().unwrap();
}

/// The server stored exactly the events whose `seq` is in `expected`, each once, and counted
/// no duplicate since it started: no event was sent to it twice.
fn assert_stored_once(server: &RealServer, expected: impl IntoIterator<Item = usize>) {
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for e in server.events() {
        *counts.entry(e["seq"].as_u64().unwrap()).or_default() += 1;
    }
    let expected: Vec<u64> = expected.into_iter().map(|i| i as u64).collect();
    let missing: Vec<u64> = expected
        .iter()
        .filter(|i| !counts.contains_key(i))
        .copied()
        .collect();
    let repeated: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        missing.is_empty() && repeated.is_empty() && counts.len() == expected.len(),
        "missing {missing:?}, repeated {repeated:?}, distinct {} of {}",
        counts.len(),
        expected.len()
    );
    assert_eq!(
        server.metric("siren_events_duplicate_total", &[]),
        0,
        "the server received an event twice"
    );
}
