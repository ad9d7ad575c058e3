//! `siren purge`: removes what the `retention:` policies no longer keep (or what is older
//! than `--before`), for one tenant or every tenant, in the small batches the server uses;
//! `--dry-run` counts instead (`siren_core::retention`).

use chrono::Utc;
use serde_json::json;
use siren_core::retention::{self, Kind, PurgeReport, PurgeRequest};

use crate::Context;
use crate::exit::{CommandResult, Exit, Failure};
use crate::output::{OutputFormat, Rows};

/// `siren purge` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Count what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Instead of the policies: remove what is older than this (RFC 3339, a date, or an
    /// age such as 90d), of every kind asked. Open incidents and their events stay.
    #[arg(long, value_name = "TIME")]
    before: Option<String>,
    /// Only these kinds (comma-separated: events, incidents, outbox, sessions, correlation).
    #[arg(long, value_delimiter = ',', value_parser = Kind::parse)]
    kind: Vec<Kind>,
}

/// Runs `siren purge`.
pub async fn run(context: &Context, args: Args) -> CommandResult {
    let now = Utc::now();
    let before = args
        .before
        .as_deref()
        .map(|text| crate::time_arg::parse_time(text, now))
        .transpose()
        .map_err(|e| Failure::new(Exit::Usage, anyhow::anyhow!(e)))?;
    let archive = context
        .retention
        .open_archive(context.archive.as_ref())
        .map_err(|e| Failure::new(Exit::Config, anyhow::anyhow!(e)))?;
    let request = PurgeRequest {
        now,
        before,
        kinds: args.kind,
        tenant: context.tenant_given.then(|| context.tenant.clone()),
        dry_run: args.dry_run,
        archive,
    };
    if before.is_none() && context.retention.is_empty() {
        context.printer.warn(
            "no retention policy is configured (`retention:` in siren.yaml) and no --before: nothing is due",
        );
    }
    let store = siren_core::store::open(&context.database_url).await?;
    let report =
        retention::purge(&*store, &context.retention, &request, &super::cli_actor()).await?;
    print(context, &report)?;
    Ok(Exit::Ok)
}

fn print(context: &Context, report: &PurgeReport) -> Result<(), Failure> {
    let io = |e: std::io::Error| Failure::new(Exit::Software, e);
    if matches!(
        context.printer.format,
        OutputFormat::Json | OutputFormat::Jsonl
    ) {
        let value = serde_json::to_value(report).map_err(|e| Failure::new(Exit::Software, e))?;
        return context
            .printer
            .document("purge", &value, Vec::new())
            .map_err(io);
    }
    let rows = Rows {
        columns: vec![
            "tenant",
            "events",
            "incidents",
            "alerts",
            "timeline",
            "changes",
            "deliveries",
            "sessions",
            "correlation",
        ],
        rows: report
            .tenants
            .iter()
            .map(|t| {
                let mut row = serde_json::to_value(t.removed).unwrap_or_default();
                row["tenant"] = json!(t.tenant);
                row
            })
            .collect(),
    };
    context.printer.rows(&rows).map_err(io)?;
    let verb = if report.dry_run {
        "would be removed (dry run: nothing was)"
    } else {
        "removed"
    };
    context
        .printer
        .note(format!("{} rows {verb}", report.total.total()));
    if report.archived.events > 0 {
        context.printer.note(format!(
            "{} events archived first, in {} parts ({} bytes)",
            report.archived.events, report.archived.parts, report.archived.bytes
        ));
    }
    Ok(())
}
