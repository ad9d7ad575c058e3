//! Footprint and throughput of the release `siren-agent`, against a receiver that implements
//! the events API (gzip NDJSON, 200 with counts) in this process.
//!
//! 1. Footprint: `siren-agent run` follows a JSON-lines file fed at RATE events/s for SECONDS;
//!    its RSS (VmRSS sampled each second, and VmHWM) and CPU (utime + stime from
//!    `/proc/<pid>/stat`) are read from `/proc`. Targets, asserted on a release build: peak
//!    RSS (VmHWM, start-up included) under 30 MB, and CPU under 1% of a core at 100 events/s
//!    (the CPU target is asserted when RATE is at most 100). Asserted on any build: the
//!    receiver got every event written, and the agent's `status.json` counts as many read
//!    and as many acknowledged.
//! 2. Throughput: `siren-agent once --json` over the EVTX corpus (fresh state), in events/s,
//!    against the floor measured in the same run: merely parsing the same files to JSON with
//!    the `evtx` crate. Asserted: the agent read as many records as the parse, and the receiver
//!    got, and the agent counts as acknowledged, as many as it read.
//!
//! `cargo bench -p siren-agent --bench footprint -- [SECONDS] [RATE] [EVTX_DIR]`
//! (defaults 60, 100, the shared corpus's `corpus/evtx`). Linux only (reads `/proc`).
//! `cargo test -p siren-agent --bench footprint -- …` runs the same on the dev build.

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;

/// Peak RSS the agent stays under, in MB (10^6 bytes).
const RSS_TARGET_MB: f64 = 30.0;
/// CPU, in percent of one core, the agent stays under at [`CPU_TARGET_RATE`].
const CPU_TARGET_PERCENT: f64 = 1.0;
/// Events per second at which the CPU target holds.
const CPU_TARGET_RATE: u64 = 100;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let seconds: u64 = args.first().map_or(60, |s| s.parse().unwrap());
    let rate: u64 = args.get(1).map_or(100, |s| s.parse().unwrap());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned();
    let evtx_dir = args.get(2).map_or_else(
        || {
            std::env::var_os("SIREN_SHARED")
                .map_or_else(|| root.join("../shared"), PathBuf::from)
                .join("corpus/evtx")
        },
        PathBuf::from,
    );
    let (agent, release) = build_agent(&root);
    let (url, received, _runtime) = receiver();
    let dir = tempfile::tempdir().unwrap();

    // 1. Footprint.
    let file = dir.path().join("feed.jsonl");
    std::fs::write(&file, "").unwrap();
    let config = write_config(
        dir.path(),
        "follow",
        &url,
        &format!(
            "sources:\n  - type: jsonl\n    name: feed\n    path: {}\n    start_at: oldest\n",
            file.display()
        ),
    );
    let mut child = Command::new(&agent)
        .args(["--config"])
        .arg(&config)
        .arg("run")
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id();
    let ticks_per_second: f64 = String::from_utf8(
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    std::thread::sleep(Duration::from_secs(2)); // start-up
    let mut feed = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    let cpu_start = cpu_ticks(pid);
    let start = Instant::now();
    let mut max_rss = 0u64;
    let mut written = 0u64;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut next = Instant::now();
    let mut last_sample = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        writeln!(
            feed,
            r#"{{"seq":{written},"@timestamp":"2026-01-01T00:00:00Z","host":{{"name":"ws-042"}},"event":{{"code":4624,"provider":"Microsoft-Windows-Security-Auditing"}},"user":{{"name":"alice"}},"source":{{"ip":"10.0.0.7"}},"message":"An account was successfully logged on."}}"#
        )
        .unwrap();
        written += 1;
        next += interval;
        if last_sample.elapsed() >= Duration::from_secs(1) {
            max_rss = max_rss.max(status_kb(pid, "VmRSS"));
            last_sample = Instant::now();
        }
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(pid) - cpu_start) as f64 / ticks_per_second;
    let hwm = status_kb(pid, "VmHWM");
    max_rss = max_rss.max(status_kb(pid, "VmRSS"));
    let until = Instant::now() + Duration::from_secs(15);
    while received.load(Ordering::SeqCst) < written && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    // Written again when the agent stops.
    let status = agent_status(&dir.path().join("state-follow"));
    let read = status["sources"]["feed"]["read"].as_u64().unwrap_or(0);
    let acknowledged = status["shipped"].as_u64().unwrap_or(0);
    let delivered = received.load(Ordering::SeqCst);
    let rss_mb = max_rss as f64 * 1024.0 / 1e6;
    let hwm_mb = hwm as f64 * 1024.0 / 1e6;
    let cpu_percent = 100.0 * cpu / wall;
    println!("footprint: {written} events written at {rate}/s over {wall:.1} s");
    println!(
        "  agent read {read}, acknowledged {acknowledged}; receiver got {delivered}  [all = {written}]"
    );
    println!(
        "  RSS max {rss_mb:.1} MB (sampled each second), high-water mark {hwm_mb:.1} MB  [target < {RSS_TARGET_MB} MB]"
    );
    println!(
        "  CPU {cpu:.3} s over {wall:.1} s = {cpu_percent:.2}% of one core  [target < {CPU_TARGET_PERCENT}% at {CPU_TARGET_RATE} events/s]"
    );
    assert_eq!(read, written, "the agent read every event written");
    assert_eq!(delivered, read, "events delivered == events read");
    assert_eq!(
        acknowledged, read,
        "the agent counts every event read as acknowledged"
    );
    if release {
        assert!(
            hwm_mb < RSS_TARGET_MB,
            "peak RSS {hwm_mb:.1} MB is over the target of {RSS_TARGET_MB} MB"
        );
        if rate <= CPU_TARGET_RATE {
            assert!(
                cpu_percent < CPU_TARGET_PERCENT,
                "CPU {cpu_percent:.2}% of a core at {rate} events/s is over the target of {CPU_TARGET_PERCENT}% at {CPU_TARGET_RATE} events/s"
            );
        } else {
            println!(
                "  (CPU target not asserted: it holds at {CPU_TARGET_RATE} events/s, not {rate})"
            );
        }
        println!("  targets met");
    } else {
        println!("  (dev build: targets not asserted)");
    }

    // 2. Throughput of `once` over the corpus, against the bare parse.
    if !evtx_dir.is_dir() {
        println!("throughput: skipped, no corpus at {}", evtx_dir.display());
        return;
    }
    let files = evtx_files(&evtx_dir);
    let bare_start = Instant::now();
    let mut bare_records = 0u64;
    for f in &files {
        let mut parser = evtx::EvtxParser::from_path(f).unwrap();
        for record in parser.records_json_value() {
            let text = record.unwrap().data.to_string();
            bare_records += 1;
            std::hint::black_box(text);
        }
    }
    let bare = bare_start.elapsed().as_secs_f64();
    received.store(0, Ordering::SeqCst);
    let config = write_config(dir.path(), "once", &url, "");
    let once_start = Instant::now();
    let output = Command::new(&agent)
        .arg("--config")
        .arg(&config)
        .args(["once", "--json"])
        .arg(&evtx_dir)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let once = once_start.elapsed().as_secs_f64();
    assert!(
        output.status.success(),
        "siren-agent once: {}",
        output.status
    );
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let read = status["sources"]["once"]["read"].as_u64().unwrap_or(0);
    let acknowledged = status["shipped"].as_u64().unwrap_or(0);
    let delivered = received.load(Ordering::SeqCst);
    println!(
        "throughput: {} EVTX files, {bare_records} records",
        files.len()
    );
    println!(
        "  bare evtx parse to JSON: {bare:.2} s = {:.0} events/s (the floor)",
        bare_records as f64 / bare
    );
    println!(
        "  siren-agent once (spool, fsync, gzip, HTTP, acknowledged): {once:.2} s = {:.0} events/s, {:.2}x the bare parse time",
        delivered as f64 / once,
        once / bare
    );
    println!(
        "  agent read {read}, acknowledged {acknowledged}; receiver got {delivered}  [all = {bare_records}]"
    );
    assert_eq!(read, bare_records, "the agent read what the parser read");
    assert_eq!(delivered, read, "events delivered == events read");
    assert_eq!(
        acknowledged, read,
        "the agent counts every event read as acknowledged"
    );
}

/// The `status.json` the agent writes in its state folder.
fn agent_status(state_dir: &Path) -> serde_json::Value {
    let path = state_dir.join("status.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Builds `siren-agent` with the profile this benchmark was built with (release under
/// `cargo bench`; `cargo test --bench footprint` runs it on the dev build).
fn build_agent(root: &Path) -> (PathBuf, bool) {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap().to_owned();
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args([
            "build",
            "--quiet",
            "-p",
            "siren-agent",
            "--bin",
            "siren-agent",
        ])
        .current_dir(root);
    if release {
        build.arg("--release");
    }
    assert!(
        build.status().unwrap().success(),
        "building siren-agent failed"
    );
    println!(
        "agent: {} build",
        if release {
            "release"
        } else {
            "dev (dependencies at opt-level 2)"
        }
    );
    (profile_dir.join("siren-agent"), release)
}

fn write_config(dir: &Path, name: &str, url: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "server: {{url: '{url}', token: bench}}\nstate_dir: {}\n{extra}",
            dir.join(format!("state-{name}")).display()
        ),
    )
    .unwrap();
    // It holds the token: readable by its owner only, as the agent asks.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses): utime is the 14th field.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn status_kb(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn evtx_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.unwrap();
        if entry.path().extension().is_some_and(|e| e == "evtx") {
            out.push(entry.into_path());
        }
    }
    out
}

/// A receiver counting the events it is sent.
fn receiver() -> (String, Arc<AtomicU64>, tokio::runtime::Runtime) {
    async fn events(
        State(count): State<Arc<AtomicU64>>,
        headers: HeaderMap,
        body: Bytes,
    ) -> String {
        let mut text = String::new();
        if headers
            .get("content-encoding")
            .is_some_and(|v| v.as_bytes() == b"gzip")
        {
            flate2::read::GzDecoder::new(&body[..])
                .read_to_string(&mut text)
                .unwrap();
        } else {
            text = String::from_utf8_lossy(&body).into_owned();
        }
        let n = text.lines().filter(|l| !l.trim().is_empty()).count() as u64;
        count.fetch_add(n, Ordering::SeqCst);
        format!(r#"{{"received":{n},"stored":{n},"duplicates":0,"rejected":[]}}"#)
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let app = Router::new()
        .route("/api/v1/events", post(events))
        .route("/api/v1/agents/heartbeat", post(|| async { "" }))
        .with_state(count.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    runtime.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        axum::serve(listener, app).await.unwrap();
    });
    (url, count, runtime)
}
