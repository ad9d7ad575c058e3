//! Benchmark of `siren ingest` into SQLite against the floor: merely parsing the same EVTX
//! files with the `evtx` crate, measured in the same run (ratios, not absolute figures, are
//! what to compare across machines).
//!
//! `cargo bench -p siren-cli --bench ingest -- [EVTX_DIR] [COPIES]` (defaults: the shared
//! corpus's `corpus/evtx`, 10 copies). Builds the release `siren` first if needed.

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned();
    let shared =
        std::env::var_os("SIREN_SHARED").map_or_else(|| root.join("../shared"), PathBuf::from);
    let source = args
        .first()
        .map_or_else(|| shared.join("corpus/evtx"), PathBuf::from);
    let copies: usize = args
        .get(1)
        .map_or(10, |c| c.parse().expect("COPIES is a number"));
    if !source.is_dir() {
        eprintln!(
            "notice: no EVTX folder at {}: nothing to measure",
            source.display()
        );
        return;
    }
    let siren = build_siren(&root);
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("input");
    std::fs::create_dir(&input).unwrap();
    for i in 0..copies {
        copy_tree(&source, &input.join(format!("copy{i}")));
    }
    let files = evtx_files(&input);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "input: {} EVTX files ({} copies of {}), {threads} threads",
        files.len(),
        copies,
        source.display()
    );

    let mut parse_times = Vec::new();
    let mut ingest_times = Vec::new();
    let mut last = serde_json::Value::Null;
    let mut peak_rss = 0;
    for round in 0..3 {
        let (elapsed, records) = bare_parse(&files, threads);
        parse_times.push(elapsed);
        let db = work.path().join(format!("bench{round}.db"));
        let (elapsed, summary, rss) = run_ingest(&siren, &db, &input);
        assert_eq!(
            summary["records_read"], records as u64,
            "ingest read what the parser read"
        );
        ingest_times.push(elapsed);
        peak_rss = peak_rss.max(rss);
        last = summary;
    }
    let (_, one_copy, one_copy_rss) =
        run_ingest(&siren, &work.path().join("one.db"), &input.join("copy0"));
    let parse = median(&mut parse_times);
    let ingest = median(&mut ingest_times);
    let records = last["records_read"].as_u64().unwrap();
    println!(
        "records: {records} (stored {}, duplicates {})",
        last["stored"], last["duplicates"]
    );
    println!(
        "bare evtx parse:  {:>8.3} s  {:>9.0} events/s",
        parse.as_secs_f64(),
        records as f64 / parse.as_secs_f64()
    );
    println!(
        "siren ingest:     {:>8.3} s  {:>9.0} events/s",
        ingest.as_secs_f64(),
        records as f64 / ingest.as_secs_f64()
    );
    println!(
        "ratio ingest / parse: {:.2}",
        ingest.as_secs_f64() / parse.as_secs_f64()
    );
    println!(
        "peak RSS: {} MiB for {copies} copies, {} MiB for one copy ({} events stored)",
        peak_rss / 1024,
        one_copy_rss / 1024,
        one_copy["stored"]
    );
}

/// Builds `target/release/siren` (a no-op when up to date).
fn build_siren(root: &Path) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "siren-cli",
            "--bin",
            "siren",
        ])
        .current_dir(root)
        .status()
        .unwrap();
    assert!(status.success());
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    target.join("release/siren")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else if entry.path().extension().is_some_and(|e| e == "evtx") {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn evtx_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(evtx_files(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Parses every file to JSON values with the `evtx` crate, files spread over `threads`.
fn bare_parse(files: &[PathBuf], threads: usize) -> (Duration, usize) {
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let total = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while let Some(file) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let settings = evtx::ParserSettings::new().num_threads(1);
                    let mut parser = evtx::EvtxParser::from_path(file)
                        .unwrap()
                        .with_configuration(settings);
                    let n = parser.records_json_value().filter(Result::is_ok).count();
                    total.fetch_add(n, Ordering::Relaxed);
                }
            });
        }
    });
    (started.elapsed(), total.into_inner())
}

/// Runs `siren ingest` into a new SQLite database; returns wall time, summary and peak RSS (KiB).
fn run_ingest(siren: &Path, db: &Path, input: &Path) -> (Duration, serde_json::Value, u64) {
    let started = Instant::now();
    let mut child = Command::new(siren)
        .arg("--db")
        .arg(format!("sqlite://{}", db.display()))
        .args(["ingest", "--quiet", "--format", "json"])
        .arg(input)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_path) {
            if let Some(kb) = status.lines().find_map(|l| l.strip_prefix("VmHWM:")) {
                peak = peak.max(
                    kb.trim()
                        .trim_end_matches(" kB")
                        .trim()
                        .parse()
                        .unwrap_or(0),
                );
            }
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    let output = child.wait_with_output().unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    (elapsed, summary, peak)
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}
