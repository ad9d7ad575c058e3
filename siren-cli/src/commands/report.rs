//! `siren report export`: an incident report (`--incident ID`, repeatable) or a period summary
//! (`--since` / `--until`) as PDF, HTML, Markdown, CSV or JSON, from the built-in templates or
//! the user's own, optionally redacted. Files are written atomically: the report is rendered
//! into a temporary file beside the target, which is renamed into place only when complete.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use siren_core::incident::IncidentId;
use siren_core::report::{
    CustomTemplate, Redaction, ReportError, ReportFormat, ReportRequest, template,
};
use siren_core::store::StoreError;
use siren_core::store::report::ReportRange;

use crate::Context;
use crate::exit::{CommandResult, Exit, Failure};
use crate::output::FormatFlag;
use crate::time_arg::parse_time;

/// `siren report` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ReportCommand {
    /// Render an incident report (--incident) or a period summary (--since/--until) with
    /// --format pdf|html|md|csv|json (default: from the -o file's extension, else html).
    Export(ExportArgs),
}

/// Options of `siren report export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Report on this incident (repeat for several); without it, a period summary.
    #[arg(long = "incident", value_name = "ID")]
    incidents: Vec<IncidentId>,
    /// Period start: incidents active at or after this time (RFC 3339, a date, or an age
    /// such as 7d).
    #[arg(long)]
    since: Option<String>,
    /// Period end: incidents first seen before this time.
    #[arg(long)]
    until: Option<String>,
    /// Output file (written atomically); `-` for stdout, the default for text formats.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// A minijinja template to use instead of the built-in one (html and md).
    #[arg(long, value_name = "FILE")]
    template: Option<PathBuf>,
    /// Replace these names by pseudonyms everywhere: any of users,ips,hosts.
    #[arg(long, value_name = "KINDS", value_parser = Redaction::parse)]
    redact: Option<Redaction>,
    /// The report's title.
    #[arg(long)]
    title: Option<String>,
}

/// Runs `siren report …`.
pub async fn run(context: &Context, command: ReportCommand) -> CommandResult {
    match command {
        ReportCommand::Export(args) => export(context, args).await,
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure::new(Exit::Usage, anyhow::anyhow!(message.into()))
}

/// The report format from `--format`, else the output file's extension, else HTML.
fn report_format(flag: FormatFlag, output: Option<&Path>) -> Result<ReportFormat, Failure> {
    match flag {
        FormatFlag::Html => Ok(ReportFormat::Html),
        FormatFlag::Md => Ok(ReportFormat::Markdown),
        FormatFlag::Pdf => Ok(ReportFormat::Pdf),
        FormatFlag::Csv => Ok(ReportFormat::Csv),
        FormatFlag::Json => Ok(ReportFormat::Json),
        FormatFlag::Jsonl => Err(usage("reports are pdf, html, md, csv or json (not jsonl)")),
        FormatFlag::Table => Ok(output
            .and_then(|p| p.extension())
            .and_then(|e| e.to_str())
            .and_then(ReportFormat::parse)
            .unwrap_or(ReportFormat::Html)),
    }
}

fn template_for(
    context: &Context,
    args: &ExportArgs,
    format: ReportFormat,
) -> Result<Option<CustomTemplate>, Failure> {
    let read = |path: &Path| -> Result<CustomTemplate, Failure> {
        let source = std::fs::read_to_string(path).map_err(|e| {
            Failure::new(
                Exit::NoInput,
                anyhow::anyhow!("cannot read template {}: {e}", path.display()),
            )
        })?;
        Ok(CustomTemplate {
            name: path.display().to_string(),
            source,
        })
    };
    if let Some(path) = &args.template {
        return read(path).map(Some);
    }
    if let (Some(dir), ReportFormat::Html | ReportFormat::Markdown) =
        (&context.report_templates, format)
    {
        let path = dir.join(template::builtin_name(!args.incidents.is_empty(), format));
        if path.is_file() {
            return read(&path).map(Some);
        }
    }
    Ok(None)
}

fn report_failure(error: ReportError) -> Failure {
    match error {
        ReportError::Store(StoreError::NotFound(what)) => Failure::new(
            Exit::NoInput,
            anyhow::anyhow!("{what} not found (see siren incidents list)"),
        ),
        ReportError::Store(error) => Failure::from(error),
        error @ ReportError::Template { .. } => Failure::new(Exit::Config, error),
        error @ ReportError::Request(_) => Failure::new(Exit::Usage, error),
        error => Failure::new(Exit::Software, error),
    }
}

async fn export(context: &Context, args: ExportArgs) -> CommandResult {
    let now = chrono::Utc::now();
    let format = report_format(context.format_flag, args.output.as_deref())?;
    let time = |text: &Option<String>, name: &str| -> Result<_, Failure> {
        text.as_deref()
            .map(|t| parse_time(t, now).map_err(|e| usage(format!("--{name}: {e}"))))
            .transpose()
    };
    let range = ReportRange {
        since: time(&args.since, "since")?,
        until: time(&args.until, "until")?,
    };
    if let (Some(since), Some(until)) = (range.since, range.until)
        && since >= until
    {
        return Err(usage("--since must be before --until"));
    }
    if !args.incidents.is_empty() && (range.since.is_some() || range.until.is_some()) {
        return Err(usage(
            "--incident reports name their incidents; --since/--until are for period summaries",
        ));
    }
    let mut request = ReportRequest::new(format)
        .with_incidents(args.incidents.clone())
        .with_range(range)
        .with_redaction(args.redact.unwrap_or_default());
    request.now = now;
    request.title = args.title.clone();
    if let Some(template) = template_for(context, &args, format)? {
        request = request.with_template(template);
    }

    let store = crate::commands::open_store(context).await?;
    let to_stdout = match &args.output {
        None => {
            if !format.is_text() {
                return Err(usage("a PDF report needs -o FILE (or -o - for stdout)"));
            }
            true
        }
        Some(path) => path.as_os_str() == "-",
    };
    if to_stdout {
        let out = std::io::BufWriter::new(std::io::stdout());
        let mut out = siren_core::report::render_to(store, &context.tenant, &request, out)
            .await
            .map_err(report_failure)?;
        out.flush().context("cannot write the report to stdout")?;
        return Ok(Exit::Ok);
    }
    let path = args.output.clone().unwrap_or_default();
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let temp = tempfile::Builder::new()
        .prefix(".siren-report-")
        .tempfile_in(&dir)
        .map_err(|e| {
            Failure::new(
                Exit::NoInput,
                anyhow::anyhow!("cannot write in {}: {e}", dir.display()),
            )
        })?;
    let out = std::io::BufWriter::new(temp);
    // On any error the temporary file is dropped (deleted): no partial report is left.
    let out = siren_core::report::render_to(store, &context.tenant, &request, out)
        .await
        .map_err(report_failure)?;
    let temp = out
        .into_inner()
        .map_err(|e| Failure::new(Exit::Software, e.into_error()))?;
    temp.as_file()
        .sync_all()
        .context("cannot write the report")?;
    temp.persist(&path).map_err(|e| {
        Failure::new(
            Exit::Software,
            anyhow::anyhow!("cannot write {}: {}", path.display(), e.error),
        )
    })?;
    context.printer.note(format!(
        "report written to {} ({})",
        path.display(),
        format.extension()
    ));
    Ok(Exit::Ok)
}
