//! Ingests log files into a SQLite database, detecting with Sigma rules, then lists the
//! incidents the detections opened.
//!
//! `cargo run -p siren-core --example ingest_sqlite -- [LOGS_DIR [RULES_DIR [DATABASE_FILE]]]`;
//! by default it ingests `tests/fixtures/inputs` with SIREN's own `rules/` into a temporary
//! database that is removed at the end.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use siren_core::TenantId;
use siren_core::incident::IncidentFilter;
use siren_core::ingest::{IngestOptions, ingest};
use siren_core::normalize::Quiet;
use siren_core::normalize::expand_inputs;
use siren_core::rules::{LoadOptions, RuleSet};
use siren_core::store;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The workspace root, where `rules/` and `tests/fixtures/` sit.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new(".."));
    let mut args = std::env::args().skip(1).map(PathBuf::from);
    let logs = args.next().unwrap_or(root.join("tests/fixtures/inputs"));
    let rule_dir = args.next().unwrap_or(root.join("rules"));
    let temp = tempfile::tempdir()?;
    let database = args.next().unwrap_or(temp.path().join("siren.db"));

    let store = store::open(&format!("sqlite://{}", database.display())).await?;
    let (rules, _not_loaded) = RuleSet::load(&[rule_dir], &LoadOptions::default());
    let (inputs, _missing) = expand_inputs(&[logs]);
    let options = IngestOptions::default().with_rules(Arc::new(rules));
    let summary = ingest(store.clone(), inputs, options, Arc::new(Quiet)).await?;
    println!(
        "{} events stored ({} duplicates, {} records skipped), {} alerts, {} incidents opened",
        summary.stored,
        summary.duplicates,
        summary.records_skipped,
        summary.alerts,
        summary.incidents_created
    );

    let filter = IncidentFilter {
        limit: 100,
        ..IncidentFilter::default()
    };
    let page = store.list_incidents(&TenantId::default(), &filter).await?;
    for incident in page.incidents {
        println!(
            "incident #{} [{}] {} (alerts: {}, hosts: {})",
            incident.id,
            incident.severity.as_str(),
            incident.title,
            incident.alert_count,
            incident.hosts.join(", ")
        );
    }
    Ok(())
}
