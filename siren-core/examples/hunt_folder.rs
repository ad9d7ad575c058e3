//! Hunts a folder of logs (EVTX, Windows XML, JSON / JSON Lines, syslog, CSV) with a folder of
//! Sigma rules, without a database, and prints one line per detection.
//!
//! `cargo run -p siren-core --example hunt_folder -- [LOGS_DIR [RULES_DIR]]`; by default it
//! hunts the fixtures in `tests/fixtures/inputs` with SIREN's own `rules/`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};

use siren_core::hunt::{HuntOptions, hunt};
use siren_core::normalize::{Quiet, expand_inputs};
use siren_core::rules::{LoadOptions, RuleSet};

fn main() {
    // The workspace root, where `rules/` and `tests/fixtures/` sit.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new(".."));
    let mut args = std::env::args().skip(1).map(PathBuf::from);
    let logs = args.next().unwrap_or(root.join("tests/fixtures/inputs"));
    let rule_dir = args.next().unwrap_or(root.join("rules"));

    let (rules, not_loaded) = RuleSet::load(&[rule_dir], &LoadOptions::default());
    let (inputs, missing) = expand_inputs(&[logs]);
    missing.iter().for_each(|m| eprintln!("cannot read {m}"));
    let summary = hunt(
        &inputs,
        &rules,
        &HuntOptions::default(),
        &Quiet,
        |detection| {
            let rule = &rules.rules()[detection.rule];
            let event = &detection.event;
            let time = event.timestamp.map(|t| t.to_rfc3339()).unwrap_or_default();
            let level = rule.level.map_or("none", |l| l.as_str());
            let host = event.host.as_deref().unwrap_or("-");
            println!("{time} {level} {host} {} ({})", rule.title, detection.file);
        },
        |skipped| eprintln!("skipped {skipped}"),
    );
    eprintln!(
        "{} events in {} files, {} detections; {} rules loaded, {} not",
        summary.events,
        summary.files,
        summary.detections,
        rules.len(),
        not_loaded.len()
    );
}
