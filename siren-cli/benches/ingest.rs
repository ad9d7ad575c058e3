//! Benchmark of `siren ingest` as users run it, detection on, into SQLite, against the floor:
//! rendering the same EVTX records to JSON text with the `evtx` crate, measured in the same
//! run (ratios, not absolute figures, are what to compare across machines).
//!
//! Each round, for each rule set, in a new store:
//! 1. first ingest: one copy of the EVTX files into the empty store. Its rate is new events/s:
//!    the events stored over the wall time (repeats within the copy are counted apart).
//! 2. repeat ingest: the same files again, in a new `siren` process. Its rate is repeat
//!    events/s: every record read is already in the store, which drops it (the run's own key
//!    cache only knows what this run has seen), and raises no alert.
//!
//! Rule sets: SIREN's built-in pack (`rules/`, what `siren ingest` detects with by default),
//! and SigmaHQ's Windows rules (`corpus/sigma/rules/windows` of the shared corpus, with
//! `--rules`) when the corpus has them. Their rule cache lives in the run's temporary folder
//! and `rules validate` fills it first, as every run after the first finds it.
//!
//! `cargo bench -p siren-cli --bench ingest -- [EVTX_DIR] [ROUNDS]` (defaults: the shared
//! corpus's `corpus/evtx`, 3 rounds; medians are printed). Builds the release `siren` first if
//! needed.

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{
    Rendering, build_siren, copied_input, evtx_files, median, render_floor, run_siren_with,
    shared_dir,
};

/// A set of rules `siren ingest` detects with.
struct RuleSet {
    name: String,
    /// `--rules` arguments; none for the built-in pack.
    args: Vec<OsString>,
}

/// What one rule set's rounds measured.
#[derive(Default)]
struct Measured {
    first: Vec<Duration>,
    repeat: Vec<Duration>,
    first_rss: u64,
    repeat_rss: u64,
    first_summary: serde_json::Value,
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned();
    let shared = shared_dir(&root);
    let source = args
        .first()
        .map_or_else(|| shared.join("corpus/evtx"), PathBuf::from);
    let rounds: usize = args
        .get(1)
        .map_or(3, |c| c.parse().expect("ROUNDS is a number"));
    assert!(rounds > 0, "ROUNDS is at least 1");
    if !source.is_dir() {
        eprintln!(
            "notice: no EVTX folder at {}: nothing to measure",
            source.display()
        );
        return;
    }
    let siren = build_siren(&root);
    let work = tempfile::tempdir().unwrap();
    // One copy: only the EVTX files, so that the folder's other files do not count.
    let input = copied_input(work.path(), &source, 1);
    let files = evtx_files(&input);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cache = work.path().join("rule-cache");
    let env = [("SIREN_RULE_CACHE", cache.as_path())];

    let mut sets = vec![RuleSet {
        name: "built-in pack (rules/)".to_owned(),
        args: Vec::new(),
    }];
    let sigma = shared.join("corpus/sigma/rules/windows");
    if sigma.is_dir() {
        let (_, report, _) = run_siren_with(
            &siren,
            &[
                "rules".into(),
                "validate".into(),
                "--format".into(),
                "json".into(),
                sigma.clone().into(),
            ],
            &env,
        );
        let loaded = serde_json::from_slice::<serde_json::Value>(&report)
            .ok()
            .and_then(|r| r["loaded"].as_u64())
            .map_or_else(String::new, |n| format!(", {n} rules"));
        sets.push(RuleSet {
            name: format!("SigmaHQ rules/windows{loaded}"),
            args: vec!["--rules".into(), sigma.into()],
        });
    } else {
        println!(
            "notice: no SigmaHQ rules at {}: built-in pack only",
            sigma.display()
        );
    }
    println!(
        "input: {} EVTX files (one copy of {}), {threads} threads, {rounds} rounds (medians)",
        files.len(),
        source.display()
    );

    let mut parse_times = Vec::new();
    let mut records = 0;
    let mut measured: Vec<Measured> = sets.iter().map(|_| Measured::default()).collect();
    for round in 0..rounds {
        let (elapsed, read) = render_floor(&files, threads, Rendering::Json);
        parse_times.push(elapsed);
        records = read as u64;
        for (i, set) in sets.iter().enumerate() {
            let db = work.path().join(format!("set{i}-round{round}.db"));
            let m = &mut measured[i];

            let (elapsed, first, rss) = ingest(&siren, &env, &db, &set.args, &input);
            assert_eq!(
                first["records_read"], records,
                "{}: the ingest read what the parser read",
                set.name
            );
            assert_eq!(
                first["stored"].as_u64().unwrap() + first["duplicates"].as_u64().unwrap(),
                records,
                "{}: every record read is stored or a repeat",
                set.name
            );
            assert!(
                first["alerts"].as_u64().unwrap() > 0,
                "{}: detection is on and finds something in the corpus",
                set.name
            );
            m.first.push(elapsed);
            m.first_rss = m.first_rss.max(rss);

            let (elapsed, repeat, rss) = ingest(&siren, &env, &db, &set.args, &input);
            assert_eq!(repeat["records_read"], records, "{}: repeat read", set.name);
            assert_eq!(
                repeat["stored"], 0,
                "{}: the repeat stores nothing",
                set.name
            );
            assert_eq!(
                repeat["duplicates"], records,
                "{}: the repeat drops every record as already stored",
                set.name
            );
            assert_eq!(
                repeat["alerts"], 0,
                "{}: the repeat raises no alert",
                set.name
            );
            m.repeat.push(elapsed);
            m.repeat_rss = m.repeat_rss.max(rss);
            m.first_summary = first;
        }
    }

    let parse = median(&mut parse_times).as_secs_f64();
    println!("records: {records} per ingest, as many as the bare parse reads");
    println!(
        "evtx to JSON text:         {parse:>7.3} s  {:>9.0} events/s  (the floor)",
        records as f64 / parse
    );
    for (set, m) in sets.iter().zip(&mut measured) {
        let first = median(&mut m.first).as_secs_f64();
        let repeat = median(&mut m.repeat).as_secs_f64();
        let summary = &m.first_summary;
        let stored = summary["stored"].as_u64().unwrap();
        println!("siren ingest, {}:", set.name);
        println!(
            "  first, empty store:      {first:>7.3} s  {:>9.0} new events/s     ({:.2}x the parse time; {stored} stored, {} repeats within the copy, {} alerts, {} incidents)",
            stored as f64 / first,
            first / parse,
            summary["duplicates"],
            summary["alerts"],
            summary["incidents_created"],
        );
        println!(
            "  repeat, same files:      {repeat:>7.3} s  {:>9.0} repeat events/s  ({:.2}x the parse time; all {records} dropped as already stored)",
            records as f64 / repeat,
            repeat / parse,
        );
        println!(
            "  peak RSS: first {} MiB, repeat {} MiB",
            m.first_rss / 1024,
            m.repeat_rss / 1024
        );
    }
}

/// `siren ingest` with detection into the SQLite database `db`: wall time, summary, peak RSS
/// (KiB).
fn ingest(
    siren: &Path,
    env: &[(&str, &Path)],
    db: &Path,
    rules: &[OsString],
    input: &Path,
) -> (Duration, serde_json::Value, u64) {
    let mut args: Vec<OsString> = vec![
        "--db".into(),
        format!("sqlite://{}", db.display()).into(),
        "ingest".into(),
        "--quiet".into(),
        "--format".into(),
        "json".into(),
    ];
    args.extend(rules.iter().cloned());
    args.push(input.into());
    let (elapsed, stdout, rss) = run_siren_with(siren, &args, env);
    let summary = serde_json::from_slice(&stdout).unwrap_or_else(|e| {
        panic!(
            "siren ingest printed no JSON summary ({e}): {}",
            String::from_utf8_lossy(&stdout)
        )
    });
    (elapsed, summary, rss)
}
