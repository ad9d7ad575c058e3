//! Benchmark of `siren ingest` into SQLite against the floor: merely parsing the same EVTX
//! files with the `evtx` crate, measured in the same run (ratios, not absolute figures, are
//! what to compare across machines).
//!
//! `cargo bench -p siren-cli --bench ingest -- [EVTX_DIR] [COPIES]` (defaults: the shared
//! corpus's `corpus/evtx`, 10 copies). Builds the release `siren` first if needed.

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{bare_parse, build_siren, copied_input, evtx_files, median, run_siren, shared_dir};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned();
    let source = args
        .first()
        .map_or_else(|| shared_dir(&root).join("corpus/evtx"), PathBuf::from);
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
    let input = copied_input(work.path(), &source, copies);
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
        let (elapsed, summary, rss) = ingest(&siren, &db, &input);
        assert_eq!(
            summary["records_read"], records as u64,
            "ingest read what the parser read"
        );
        ingest_times.push(elapsed);
        peak_rss = peak_rss.max(rss);
        last = summary;
    }
    let (_, one_copy, one_copy_rss) =
        ingest(&siren, &work.path().join("one.db"), &input.join("copy0"));
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

/// `siren ingest --no-detect` into a new SQLite database: wall time, summary, peak RSS (KiB).
fn ingest(siren: &Path, db: &Path, input: &Path) -> (std::time::Duration, serde_json::Value, u64) {
    let args = [
        "--db".into(),
        format!("sqlite://{}", db.display()).into(),
        "ingest".into(),
        "--no-detect".into(),
        "--quiet".into(),
        "--format".into(),
        "json".into(),
        input.into(),
    ];
    let (elapsed, stdout, rss) = run_siren(siren, &args);
    (elapsed, serde_json::from_slice(&stdout).unwrap(), rss)
}
