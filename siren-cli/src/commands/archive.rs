//! `siren archive list|restore`: the parts retention wrote before deleting events, and
//! bringing a range of days back into the store (`siren_core::archive`).

use chrono::{NaiveDate, Utc};
use serde_json::json;
use siren_core::archive::{Archive, ArchiveConfig, PartManifest, RestoreRequest};
use siren_core::retention::Keep;
use siren_core::store::StoreError;

use crate::Context;
use crate::exit::{CommandResult, Exit, Failure};
use crate::output::{OutputFormat, Rows};

/// `siren archive` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ArchiveCommand {
    /// The archive's parts (every tenant's, or `--tenant`'s), by tenant and day;
    /// `--verify` reads each and checks its size, SHA-256 and events.
    List(ListArgs),
    /// Brings the events of a range of days back into the store, de-duplicated (an event
    /// still stored, or restored before, is stored once), and keeps them for `--keep`
    /// whatever the retention policy says.
    Restore(RestoreArgs),
}

/// Which archive, and which days.
#[derive(Debug, clap::Args)]
pub struct Range {
    /// The archive (`s3://BUCKET/PREFIX`, `file:///FOLDER` or a folder) instead of the
    /// configuration's `archive:` section (whose other settings still apply).
    #[arg(long, value_name = "URL")]
    pub archive_url: Option<String>,
    /// The first day (a date, RFC 3339 time or an age such as 120d; UTC).
    #[arg(long, value_name = "DAY")]
    pub from: Option<String>,
    /// The last day, included (default: the first day for `restore`, the last archived
    /// for `list`).
    #[arg(long, value_name = "DAY")]
    pub to: Option<String>,
}

impl Range {
    /// The days asked, as dates.
    pub fn days(&self) -> Result<(Option<NaiveDate>, Option<NaiveDate>), Failure> {
        let now = Utc::now();
        let day = |text: &Option<String>| {
            text.as_deref()
                .map(|t| crate::time_arg::parse_time(t, now).map(|at| at.date_naive()))
                .transpose()
                .map_err(|e| Failure::new(Exit::Usage, anyhow::anyhow!(e)))
        };
        let (from, to) = (day(&self.from)?, day(&self.to)?);
        if let (Some(from), Some(to)) = (from, to)
            && to < from
        {
            return Err(Failure::new(
                Exit::Usage,
                anyhow::anyhow!("--to {to} is before --from {from}"),
            ));
        }
        Ok((from, to))
    }

    /// The archive to read.
    pub fn open(&self, context: &Context) -> Result<Archive, Failure> {
        let config = match (&self.archive_url, &context.archive) {
            (Some(url), Some(config)) => ArchiveConfig {
                url: url.clone(),
                ..config.clone()
            },
            (Some(url), None) => ArchiveConfig::folder(url),
            (None, Some(config)) => config.clone(),
            (None, None) => {
                return Err(Failure::new(
                    Exit::Config,
                    anyhow::anyhow!(
                        "no archive: give --archive-url or an `archive:` section in siren.yaml"
                    ),
                ));
            }
        };
        Archive::open(&config).map_err(|e| Failure::new(Exit::Config, e))
    }

    /// The parts of the days asked: the tenant's when one was named, else every tenant's.
    pub async fn parts(
        &self,
        context: &Context,
        archive: &Archive,
    ) -> Result<Vec<PartManifest>, Failure> {
        let (from, to) = self.days()?;
        let tenant = context.tenant_given.then_some(&context.tenant);
        archive
            .list(tenant, from, to)
            .await
            .map_err(|e| Failure::new(Exit::Unavailable, e))
    }
}

/// `siren archive list` arguments.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    range: Range,
    /// Read every part and check it against its manifest.
    #[arg(long)]
    verify: bool,
}

/// `siren archive restore` arguments.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    range: Range,
    /// How long restored events are kept whatever their age (then retention removes them
    /// again, without archiving them twice).
    #[arg(long, default_value = "30d", value_parser = Keep::parse, value_name = "AGE")]
    keep: Keep,
}

/// Runs a `siren archive` subcommand.
pub async fn run(context: &Context, command: ArchiveCommand) -> CommandResult {
    match command {
        ArchiveCommand::List(args) => list(context, args).await,
        ArchiveCommand::Restore(args) => restore(context, args).await,
    }
}

fn part_row(part: &PartManifest) -> serde_json::Value {
    json!({
        "tenant": part.tenant,
        "day": part.day,
        "events": part.events,
        "bytes": part.bytes,
        "first": part.first,
        "last": part.last,
        "sha256": part.sha256,
        "object": part.object,
        "written_at": part.written_at,
    })
}

async fn list(context: &Context, args: ListArgs) -> CommandResult {
    let archive = args.range.open(context)?;
    let parts = args.range.parts(context, &archive).await?;
    let mut rows = Vec::new();
    let mut bad = 0;
    for part in &parts {
        let mut row = part_row(part);
        if args.verify {
            match archive.read(part).await {
                Ok(_) => row["verified"] = json!(true),
                Err(error) => {
                    bad += 1;
                    row["verified"] = json!(false);
                    row["error"] = json!(error.to_string());
                    context.printer.warn(&error);
                }
            }
        }
        rows.push(row);
    }
    let mut columns = vec![
        "tenant", "day", "events", "bytes", "first", "last", "object",
    ];
    if args.verify {
        columns.push("verified");
    }
    let io = |e: std::io::Error| Failure::new(Exit::Software, e);
    context.printer.rows(&Rows { columns, rows }).map_err(io)?;
    let events: u64 = parts.iter().map(|p| p.events).sum();
    let bytes: u64 = parts.iter().map(|p| p.bytes).sum();
    context.printer.note(format!(
        "{} parts, {events} events, {bytes} bytes in {}",
        parts.len(),
        archive.location()
    ));
    if bad > 0 {
        return Err(Failure::new(
            Exit::DataError,
            anyhow::anyhow!("{bad} of {} parts failed verification", parts.len()),
        ));
    }
    Ok(Exit::Ok)
}

async fn restore(context: &Context, args: RestoreArgs) -> CommandResult {
    let range = Range {
        to: args.range.to.clone().or_else(|| args.range.from.clone()),
        ..args.range
    };
    let (Some(from), Some(to)) = range.days()? else {
        return Err(Failure::new(
            Exit::Usage,
            anyhow::anyhow!("give the first day to restore with --from"),
        ));
    };
    let archive = range.open(context)?;
    let now = Utc::now();
    let request = RestoreRequest {
        tenant: context.tenant_given.then(|| context.tenant.clone()),
        from,
        to,
        until: args.keep.until(now),
    };
    let store = siren_core::store::open(&context.database_url).await?;
    let report = siren_core::archive::restore(&*store, &archive, &request, &super::cli_actor())
        .await
        .map_err(|e| match e {
            StoreError::Archive(_) => Failure::new(Exit::Unavailable, e),
            e => Failure::from(e),
        })?;
    for failure in report.tenants.iter().flat_map(|t| &t.failed) {
        context.printer.warn(format!("skipped: {failure}"));
    }
    let io = |e: std::io::Error| Failure::new(Exit::Software, e);
    if matches!(
        context.printer.format,
        OutputFormat::Json | OutputFormat::Jsonl
    ) {
        let value = serde_json::to_value(&report).map_err(|e| Failure::new(Exit::Software, e))?;
        context
            .printer
            .document("restore", &value, Vec::new())
            .map_err(io)?;
    } else {
        let rows = report
            .tenants
            .iter()
            .map(|t| serde_json::to_value(t).unwrap_or_default())
            .collect();
        context
            .printer
            .rows(&Rows {
                columns: vec!["tenant", "parts", "events", "new"],
                rows,
            })
            .map_err(io)?;
        let parts: u64 = report.tenants.iter().map(|t| t.parts).sum();
        let events: u64 = report.tenants.iter().map(|t| t.events).sum();
        let new: u64 = report.tenants.iter().map(|t| t.new).sum();
        context.printer.note(format!(
            "{events} events read from {parts} parts, {new} stored again ({} were still stored), kept until {}",
            events - new,
            report.kept_until
        ));
    }
    let failed = report.failed();
    if report.tenants.is_empty() {
        context
            .printer
            .warn("no archived part in that range (see siren archive list)");
        return Ok(Exit::NoInput);
    }
    if failed > 0 {
        return Err(Failure::new(
            Exit::DataError,
            anyhow::anyhow!("{failed} parts could not be read (the others were restored)"),
        ));
    }
    Ok(Exit::Ok)
}
