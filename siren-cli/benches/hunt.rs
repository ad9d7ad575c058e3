//! Benchmark of `siren hunt` with all of SigmaHQ's Windows rules (rules/windows, emerging
//! threats, threat hunting) against the floor under any reader built on the `evtx` crate:
//! rendering every record of the same EVTX files to JSON text (what SIREN's reader starts
//! from), measured in the same run; rendering them to XML, the cheapest complete rendering
//! the crate offers, is measured too. Reports events/s, the ratios to both floors, rule
//! loading time and peak memory.
//!
//! `cargo bench -p siren-cli --bench hunt -- [COPIES]` (default 10 copies of the shared
//! corpus's `corpus/evtx`). With `SIREN_BASELINE` set to another `siren` binary (an older
//! build, say), that one is measured too, alternating with this one, for a ratio between
//! the two taken in the same run; its timeline must be byte-identical to this build's.
//!
//! The timeline goes to a file (`-o`), as a timeline usually does: read from a pipe, its
//! ~90 MB would be copied by this harness on the same cores, and measured with `siren`.
//! Every run's timeline is compared byte for byte with the first one's.
//!
//! Each build has its own rule cache in the run's temporary folder; `rules validate` fills
//! it before the timed runs, so "hunt" is a hunt with the cache warm, as every run after the
//! first is, and "hunt, no cache" (`--no-rule-cache`) parses every rule file as a first run
//! does.

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

mod common;

use std::ffi::OsString;
use std::path::PathBuf;

use common::{
    Rendering, build_siren, copied_input, evtx_files, median, render_floor, run_siren_with,
    shared_dir,
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
    let baseline_cache = work.path().join("baseline-rule-cache");
    let env = [("SIREN_RULE_CACHE", cache.as_path())];
    let baseline_env = [("SIREN_RULE_CACHE", baseline_cache.as_path())];
    let run = |siren: &std::path::Path, args: &[OsString]| run_siren_with(siren, args, &env);
    let (_, report, _) = run(&siren, &validate);
    let report: serde_json::Value = serde_json::from_slice(&report).unwrap();
    if let Some(baseline) = &baseline {
        run_siren_with(baseline, &validate, &baseline_env);
    }
    let mut json_times = Vec::new();
    let mut xml_times = Vec::new();
    let mut hunt_times = Vec::new();
    let mut cold_times = Vec::new();
    let mut load_times = Vec::new();
    let mut cold_load_times = Vec::new();
    let mut baseline_times = Vec::new();
    let mut peak = 0;
    let mut expected: Option<Vec<u8>> = None;
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
    // Every timeline is the first one, byte for byte.
    let mut same_timeline = |what: &str| {
        let written = std::fs::read(&timeline).unwrap();
        std::fs::remove_file(&timeline).unwrap();
        match &expected {
            None => expected = Some(written),
            Some(first) => assert!(
                *first == written,
                "{what}: the timeline differs from the first run's ({} bytes against {})",
                written.len(),
                first.len()
            ),
        }
    };
    for _ in 0..5 {
        json_times.push(render_floor(&files, threads, Rendering::Json).0);
        xml_times.push(render_floor(&files, threads, Rendering::Xml).0);
        let (elapsed, _, rss) = run(&siren, &over(&input, false));
        hunt_times.push(elapsed);
        same_timeline("hunt");
        peak = peak.max(rss);
        let (elapsed, _, rss) = run(&siren, &over(&input, true));
        cold_times.push(elapsed);
        same_timeline("hunt without a cache");
        peak = peak.max(rss);
        if let Some(baseline) = &baseline {
            let (elapsed, _, _) = run_siren_with(baseline, &over(&input, false), &baseline_env);
            baseline_times.push(elapsed);
            same_timeline("the baseline's hunt");
        }
        // Rule loading alone: the same rules over an empty input.
        load_times.push(run(&siren, &over(&empty, false)).0);
        cold_load_times.push(run(&siren, &over(&empty, true)).0);
        let _ = std::fs::remove_file(&timeline);
    }
    let json = median(&mut json_times);
    let xml = median(&mut xml_times);
    let hunt = median(&mut hunt_times);
    let cold = median(&mut cold_times);
    let load = median(&mut load_times);
    let cold_load = median(&mut cold_load_times);
    let events = render_floor(&files, threads, Rendering::Json).1;
    let expected = expected.unwrap_or_default();
    let detections = expected.iter().filter(|&&b| b == b'\n').count();
    println!(
        "rules: {} loaded, {} not loaded",
        report["loaded"], report["not_loaded"]
    );
    println!(
        "events: {events}, detections: {detections} (timeline {} bytes, the same in every run)",
        expected.len()
    );
    let rate = |d: std::time::Duration| events as f64 / d.as_secs_f64();
    println!(
        "floor, evtx to JSON text: {:>8.3} s  {:>9.0} events/s",
        json.as_secs_f64(),
        rate(json)
    );
    println!(
        "floor, evtx to XML text:  {:>8.3} s  {:>9.0} events/s",
        xml.as_secs_f64(),
        rate(xml)
    );
    println!(
        "siren hunt:               {:>8.3} s  {:>9.0} events/s (rule loading and start-up {:.3} s)",
        hunt.as_secs_f64(),
        rate(hunt),
        load.as_secs_f64()
    );
    println!(
        "siren hunt, no cache:     {:>8.3} s  {:>9.0} events/s (rule loading and start-up {:.3} s)",
        cold.as_secs_f64(),
        rate(cold),
        cold_load.as_secs_f64()
    );
    let ratio =
        |d: std::time::Duration, floor: std::time::Duration| d.as_secs_f64() / floor.as_secs_f64();
    println!(
        "ratio hunt / JSON floor: {:.2} (no cache: {:.2}); hunt / XML floor: {:.2}",
        ratio(hunt, json),
        ratio(cold, json),
        ratio(hunt, xml)
    );
    println!("peak RSS: {} MiB", peak / 1024);
    if !baseline_times.is_empty() {
        let before = median(&mut baseline_times);
        println!(
            "baseline hunt:            {:>8.3} s  {:>9.0} events/s (ratio to the JSON floor {:.2}; this build / baseline {:.3})",
            before.as_secs_f64(),
            rate(before),
            ratio(before, json),
            ratio(hunt, before)
        );
    }
}
