//! Benchmark of `siren hunt` with all of SigmaHQ's Windows rules (rules/windows, emerging
//! threats, threat hunting) against the floor: merely parsing the same EVTX files with the
//! `evtx` crate, in the same run. Reports events/s, the ratio to the floor, rule loading time
//! and peak memory.
//!
//! `cargo bench -p siren-cli --bench hunt -- [COPIES]` (default 10 copies of the shared
//! corpus's `corpus/evtx`). With `SIREN_BASELINE` set to another `siren` binary (an older
//! build, say), that one is measured too, alternating with this one, for a ratio between
//! the two taken in the same run.
//!
//! The timeline goes to a file (`-o`), as a timeline usually does: read from a pipe, its
//! ~90 MB would be copied by this harness on the same cores, and measured with `siren`.
//!
//! The rule cache lives in the run's temporary folder; `rules validate` fills it before the
//! timed runs, so "hunt" is a hunt with the cache warm, as every run after the first is, and
//! "hunt, no cache" (`--no-rule-cache`) parses every rule file as a first run does.

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

mod common;

use std::ffi::OsString;
use std::path::PathBuf;

use common::{
    bare_parse, build_siren, copied_input, evtx_files, median, run_siren_with, shared_dir,
};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let copies: usize = args
        .first()
        .map_or(10, |c| c.parse().expect("COPIES is a number"));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned();
    let shared = shared_dir(&root);
    let source = shared.join("corpus/evtx");
    if !source.is_dir() {
        eprintln!(
            "notice: no corpus at {}: nothing to measure",
            shared.display()
        );
        return;
    }
    let rules = [
        "rules/windows",
        "rules-emerging-threats",
        "rules-threat-hunting/windows",
    ]
    .map(|r| shared.join("corpus/sigma").join(r));
    let siren = build_siren(&root);
    let baseline = std::env::var_os("SIREN_BASELINE").map(PathBuf::from);
    let work = tempfile::tempdir().unwrap();
    let input = copied_input(work.path(), &source, copies);
    let files = evtx_files(&input);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "input: {} EVTX files ({copies} copies), {threads} threads",
        files.len()
    );

    let mut hunt_args: Vec<OsString> = vec![
        "hunt".into(),
        "--quiet".into(),
        "--format".into(),
        "jsonl".into(),
    ];
    for r in &rules {
        hunt_args.push("--rules".into());
        hunt_args.push(r.into());
    }
    let validate: Vec<OsString> = [
        "rules".into(),
        "validate".into(),
        "--format".into(),
        "json".into(),
    ]
    .into_iter()
    .chain(rules.iter().map(OsString::from))
    .collect();
    let cache = work.path().join("rule-cache");
    let env = [("SIREN_RULE_CACHE", cache.as_path())];
    let run = |siren: &std::path::Path, args: &[OsString]| run_siren_with(siren, args, &env);
    let (_, report, _) = run(&siren, &validate);
    let report: serde_json::Value = serde_json::from_slice(&report).unwrap();
    let mut parse_times = Vec::new();
    let mut hunt_times = Vec::new();
    let mut cold_times = Vec::new();
    let mut load_times = Vec::new();
    let mut cold_load_times = Vec::new();
    let mut baseline_times = Vec::new();
    let (mut detections, mut peak) = (0, 0);
    let timeline = work.path().join("timeline.jsonl");
    let empty = work.path().join("empty.jsonl");
    std::fs::write(&empty, "{}\n").unwrap();
    let over = |input: &std::path::Path, cold: bool| {
        let mut args = hunt_args.clone();
        if cold {
            args.push("--no-rule-cache".into());
        }
        args.extend(["-o".into(), timeline.clone().into(), input.into()]);
        args
    };
    for _ in 0..5 {
        let (elapsed, records) = bare_parse(&files, threads);
        parse_times.push(elapsed);
        let (elapsed, _, rss) = run(&siren, &over(&input, false));
        hunt_times.push(elapsed);
        detections = count_lines(&timeline);
        peak = peak.max(rss);
        let _ = records;
        let (elapsed, _, rss) = run(&siren, &over(&input, true));
        cold_times.push(elapsed);
        assert_eq!(
            count_lines(&timeline),
            detections,
            "the same without a cache"
        );
        peak = peak.max(rss);
        if let Some(baseline) = &baseline {
            let (elapsed, _, _) = run(baseline, &over(&input, false));
            baseline_times.push(elapsed);
            let found = count_lines(&timeline);
            assert_eq!(found, detections, "the baseline finds as many detections");
        }
        // Rule loading alone: the same rules over an empty input.
        load_times.push(run(&siren, &over(&empty, false)).0);
        cold_load_times.push(run(&siren, &over(&empty, true)).0);
        let _ = std::fs::remove_file(&timeline);
    }
    let parse = median(&mut parse_times);
    let hunt = median(&mut hunt_times);
    let cold = median(&mut cold_times);
    let load = median(&mut load_times);
    let cold_load = median(&mut cold_load_times);
    let events = bare_parse(&files, threads).1;
    println!(
        "rules: {} loaded, {} not loaded",
        report["loaded"], report["not_loaded"]
    );
    println!("events: {events}, detections: {detections}");
    println!(
        "bare evtx parse:  {:>8.3} s  {:>9.0} events/s",
        parse.as_secs_f64(),
        events as f64 / parse.as_secs_f64()
    );
    println!(
        "siren hunt:       {:>8.3} s  {:>9.0} events/s (rule loading and start-up {:.3} s)",
        hunt.as_secs_f64(),
        events as f64 / hunt.as_secs_f64(),
        load.as_secs_f64()
    );
    println!(
        "siren hunt, no cache: {:>4.3} s  {:>9.0} events/s (rule loading and start-up {:.3} s)",
        cold.as_secs_f64(),
        events as f64 / cold.as_secs_f64(),
        cold_load.as_secs_f64()
    );
    println!(
        "ratio hunt / parse: {:.2} (no cache: {:.2})",
        hunt.as_secs_f64() / parse.as_secs_f64(),
        cold.as_secs_f64() / parse.as_secs_f64()
    );
    println!("peak RSS: {} MiB", peak / 1024);
    if !baseline_times.is_empty() {
        let before = median(&mut baseline_times);
        println!(
            "baseline hunt:    {:>8.3} s  {:>9.0} events/s (ratio to parse {:.2}; this build / baseline {:.3})",
            before.as_secs_f64(),
            events as f64 / before.as_secs_f64(),
            before.as_secs_f64() / parse.as_secs_f64(),
            hunt.as_secs_f64() / before.as_secs_f64()
        );
    }
}

/// The lines of a written timeline, which is then removed (before it is written back to
/// disk, where it would slow the next run down).
fn count_lines(path: &std::path::Path) -> usize {
    let lines = std::fs::read(path)
        .unwrap()
        .iter()
        .filter(|&&b| b == b'\n')
        .count();
    std::fs::remove_file(path).unwrap();
    lines
}
