//! What the benchmarks share: a corpus copied N times, the `evtx` crate's rendering (the floor),
//! running the release `siren` with its peak memory, medians.

#![allow(
    dead_code,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Builds `target/release/siren` (a no-op when up to date).
pub fn build_siren(root: &Path) -> PathBuf {
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

pub fn copy_tree(from: &Path, to: &Path) {
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

pub fn evtx_files(dir: &Path) -> Vec<PathBuf> {
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

/// Runs `siren ARGS…` and returns wall time, stdout and peak RSS (KiB, from /proc).
pub fn run_siren(siren: &Path, args: &[std::ffi::OsString]) -> (Duration, Vec<u8>, u64) {
    run_siren_with(siren, args, &[])
}

/// Like [`run_siren`], with environment variables set for the child.
pub fn run_siren_with(
    siren: &Path,
    args: &[std::ffi::OsString],
    envs: &[(&str, &Path)],
) -> (Duration, Vec<u8>, u64) {
    let started = Instant::now();
    let mut child = Command::new(siren)
        .args(args)
        .envs(envs.iter().copied())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut std::io::BufReader::new(stdout), &mut out).unwrap();
        out
    });
    let status_path = format!("/proc/{}/status", child.id());
    // The exit is timed by a thread that only waits, not by the memory polling below.
    let waiter = std::thread::spawn(move || {
        child.wait().unwrap();
        Instant::now()
    });
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
        if waiter.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = waiter.join().unwrap() - started;
    (elapsed, reader.join().unwrap(), peak)
}

/// The corpus folder a benchmark reads (`SIREN_SHARED`, default `../shared`).
pub fn shared_dir(root: &Path) -> PathBuf {
    std::env::var_os("SIREN_SHARED").map_or_else(|| root.join("../shared"), PathBuf::from)
}

/// `source`'s EVTX files copied `copies` times under `dir/input`.
pub fn copied_input(dir: &Path, source: &Path, copies: usize) -> PathBuf {
    let input = dir.join("input");
    std::fs::create_dir(&input).unwrap();
    for i in 0..copies {
        copy_tree(source, &input.join(format!("copy{i}")));
    }
    input
}

pub fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// How [`render_floor`] renders each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rendering {
    /// Compact JSON text (`EvtxRecord::into_json_bytes`), what SIREN's reader starts from.
    Json,
    /// XML text (`EvtxRecord::into_xml_bytes`), the cheapest complete rendering the crate has.
    Xml,
}

/// Renders every record of every file to text with the `evtx` crate, one file per thread at
/// a time on `threads` threads, and returns the time taken and the records rendered: the
/// floor under any reader of EVTX built on that crate.
pub fn render_floor(files: &[PathBuf], threads: usize, rendering: Rendering) -> (Duration, usize) {
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
                    let n = match rendering {
                        Rendering::Json => {
                            parser.records_json_bytes().filter(Result::is_ok).count()
                        }
                        Rendering::Xml => parser.records_bytes().filter(Result::is_ok).count(),
                    };
                    total.fetch_add(n, Ordering::Relaxed);
                }
            });
        }
    });
    (started.elapsed(), total.into_inner())
}
