//! `siren ingest`: read events from files, folders or stdin and store them, de-duplicated.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::ProgressBar;
use serde_json::json;
use siren_core::ingest::{IngestOptions, IngestSummary};
use siren_core::normalize::ReadObserver;
use siren_core::normalize::{self, Diagnostic, ReadOptions};

use crate::Context;
use crate::exit::{CommandResult, Exit, Failure};

/// Warnings printed one by one before the rest are only counted.
const WARNINGS_SHOWN: u64 = 20;

/// Arguments of `siren ingest`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or folders to read (folders recursively); `-` reads stdin. The format of each
    /// input (EVTX, Windows XML, JSON / JSON Lines, syslog, CSV) is detected from its content.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Stop at the first record or file that cannot be read (what was read before is kept).
    #[arg(long)]
    strict: bool,
    /// Skip records (lines, elements, rows) larger than this many bytes.
    #[arg(long, default_value_t = 4 << 20, value_name = "BYTES")]
    max_record_bytes: usize,
    /// Reader threads (0 = one per core).
    #[arg(long, default_value_t = 0, value_name = "N")]
    threads: usize,
    /// Sigma rule files or folders to detect with (default: SIREN's built-in rule pack).
    #[arg(long = "rules", short = 'r', value_name = "DIR")]
    rules: Vec<PathBuf>,
    /// Log-source mapping that replaces the built-in one.
    #[arg(long, value_name = "FILE", env = "SIREN_LOGSOURCES")]
    logsources: Option<PathBuf>,
    /// pySigma processing pipeline applied to the rules (repeatable; run in `priority` order).
    #[arg(long = "pipeline", value_name = "FILE", conflicts_with = "no_detect")]
    pipelines: Vec<PathBuf>,
    /// Only store: no detection, correlation or incidents.
    #[arg(long, conflicts_with = "rules")]
    no_detect: bool,
    /// At the end, deliver due notifications (see `notify:` in the configuration) for at
    /// most this long; what is not sent by then stays in the outbox for the next run or the
    /// server. `0s` leaves everything in the outbox.
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    notify_timeout: std::time::Duration,
}

/// Shows progress and the first warnings while the run goes.
struct Observer {
    bar: ProgressBar,
    quiet: bool,
    warnings: AtomicU64,
}

impl ReadObserver for Observer {
    fn progress(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn diagnostic(&self, diagnostic: &Diagnostic) {
        let n = self.warnings.fetch_add(1, Ordering::Relaxed);
        if !self.quiet && n < WARNINGS_SHOWN {
            self.bar
                .suspend(|| warn_line(&format!("skipped {diagnostic}")));
        }
    }
}

#[allow(clippy::print_stderr)]
fn warn_line(text: &str) {
    eprintln!("warning: {text}");
}

/// Runs `siren ingest`.
pub async fn run(context: &Context, args: Args) -> CommandResult {
    let printer = &context.printer;
    let (inputs, problems) = normalize::expand_inputs(&args.paths);
    // A path named on the command line that cannot be read is missing input (exit 66); a file
    // inside a folder that cannot be read is a skipped file like any other (exit 65).
    let (missing, unreadable): (Vec<_>, Vec<_>) = problems
        .into_iter()
        .partition(|p| args.paths.iter().any(|a| a.display().to_string() == p.file));
    for problem in &missing {
        printer.warn(format!("cannot read {problem}"));
    }
    if inputs.is_empty() {
        return Err(Failure::new(
            Exit::NoInput,
            anyhow::anyhow!("nothing to ingest: no readable input among the paths given"),
        ));
    }
    let rules = if args.no_detect {
        None
    } else {
        let (rules, problems) = if args.rules.is_empty() {
            super::load_builtin_rules(args.logsources.as_deref(), &args.pipelines)?
        } else {
            super::load_rules(
                context,
                &super::RuleSource {
                    rules: args.rules.clone(),
                    logsources: args.logsources.clone(),
                    pipelines: args.pipelines.clone(),
                },
            )?
        };
        if !problems.is_empty() {
            printer.warn(format!(
                "{} rules not loaded (see siren rules validate)",
                problems.len()
            ));
        }
        Some(Arc::new(rules))
    };
    let store = super::open_store(context).await?;
    let total: u64 = inputs.iter().filter_map(normalize::Input::size).sum();
    let observer = Arc::new(Observer {
        bar: printer.progress_bar(total),
        quiet: printer.quiet,
        warnings: AtomicU64::new(0),
    });
    let read = ReadOptions::default()
        .with_tenant(context.tenant.clone())
        .with_max_record_bytes(args.max_record_bytes);
    let mut options = IngestOptions::default()
        .with_read(read)
        .with_strict(args.strict)
        .with_threads(args.threads);
    // Policies may filter on a rule's tags (ATT&CK tactics).
    let rule_tags = rules.as_deref().map(siren_core::notify::rule_tags_of);
    if let Some(rules) = rules {
        options = options.with_rules(rules);
    }
    let result = siren_core::ingest::ingest(store.clone(), inputs, options, observer.clone()).await;
    observer.bar.finish_and_clear();
    let mut summary = result.map_err(|e| match e {
        siren_core::ingest::IngestError::Store { source, stored } => {
            let failure = Failure::from(source);
            Failure::new(
                failure.exit,
                failure
                    .error
                    .context(format!("ingest stopped after storing {stored} events")),
            )
        }
        other => Failure::new(Exit::Software, other),
    })?;
    // Paths that could not be opened count as skipped inputs.
    summary.files_skipped += (missing.len() + unreadable.len()) as u64;
    for problem in &unreadable {
        printer.warn(format!("skipped {problem}"));
    }
    let named_missing = missing.len();
    let missing: Vec<_> = missing.into_iter().chain(unreadable).collect();
    let shown = observer.warnings.load(Ordering::Relaxed);
    if !printer.quiet && shown > WARNINGS_SHOWN {
        printer.warn(format!(
            "{} more records or files skipped (see --format json for the list)",
            shown - WARNINGS_SHOWN
        ));
    }
    let notified = notify(context, store, args.notify_timeout, rule_tags).await;
    print_summary(context, &summary, &missing, notified.as_ref())
        .map_err(|e| Failure::new(Exit::Software, e))?;
    Ok(if named_missing > 0 {
        Exit::NoInput
    } else if !summary.is_clean() || summary.stopped_early {
        Exit::DataError
    } else {
        Exit::Ok
    })
}

/// "2 (not logs: LICENSE, README.md)".
fn ignored_text(summary: &IngestSummary) -> String {
    if summary.files_ignored == 0 {
        return "0".to_owned();
    }
    let names: Vec<_> = summary
        .ignored
        .iter()
        .take(5)
        .map(|d| {
            std::path::Path::new(&d.file)
                .file_name()
                .map_or(d.file.clone(), |n| n.to_string_lossy().into_owned())
        })
        .collect();
    let more = if summary.files_ignored > 5 {
        ", …"
    } else {
        ""
    };
    format!(
        "{} (empty or not logs: {}{more})",
        summary.files_ignored,
        names.join(", ")
    )
}

/// Delivers due notifications within `budget`; problems are warnings (the events are stored
/// and the outbox keeps what was not sent).
async fn notify(
    context: &Context,
    store: Arc<dyn siren_core::store::Store>,
    budget: std::time::Duration,
    rule_tags: Option<Box<siren_core::notify::RuleTags>>,
) -> Option<(siren_core::notify::DispatchReport, u64)> {
    if !super::notify::configured(context) || budget.is_zero() {
        return None;
    }
    let dispatcher = match super::notify::dispatcher(context, store) {
        Ok(d) => match rule_tags {
            Some(tags) => d.with_rule_tags(tags),
            None => d,
        },
        Err(failure) => {
            context
                .printer
                .warn(format!("notifications not sent: {:#}", failure.error));
            return None;
        }
    };
    let report = match dispatcher.deliver_within(budget).await {
        Ok(report) => report,
        Err(e) => {
            context.printer.warn(format!(
                "notifications not sent (they stay in the outbox): {e}"
            ));
            return None;
        }
    };
    let pending = dispatcher
        .pending(&context.tenant)
        .await
        .unwrap_or_default();
    if report.retried + report.failed > 0 {
        context.printer.warn(format!(
            "{} notifications failed (see siren notify status)",
            report.retried + report.failed
        ));
    }
    Some((report, pending))
}

fn print_summary(
    context: &Context,
    summary: &IngestSummary,
    unopened: &[Diagnostic],
    notified: Option<&(siren_core::notify::DispatchReport, u64)>,
) -> std::io::Result<()> {
    let mut document = serde_json::to_value(summary).unwrap_or_default();
    if let Some((report, pending)) = notified {
        let mut value = serde_json::to_value(report).unwrap_or_default();
        value["pending"] = json!(pending);
        document["notifications"] = value;
    }
    document["events_per_second"] = json!(summary.events_per_second().round());
    document["database"] = json!(siren_core::store::redact_url(&context.database_url));
    document["tenant"] = json!(context.tenant);
    if let Some(list) = document["diagnostics"].as_array_mut() {
        for problem in unopened {
            list.insert(
                0,
                json!({"file": problem.file, "location": "", "reason": problem.reason}),
            );
        }
    }
    let formats = summary
        .formats
        .iter()
        .map(|(f, n)| format!("{f}: {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut table = vec![
        (
            "files read".to_owned(),
            format!("{} ({formats})", summary.files),
        ),
        (
            "files skipped".to_owned(),
            summary.files_skipped.to_string(),
        ),
        ("files ignored".to_owned(), ignored_text(summary)),
        ("records read".to_owned(), summary.records_read.to_string()),
        ("stored".to_owned(), summary.stored.to_string()),
        ("duplicates".to_owned(), summary.duplicates.to_string()),
        (
            "records skipped".to_owned(),
            summary.records_skipped.to_string(),
        ),
        (
            "alerts".to_owned(),
            format!(
                "{} ({} from correlations)",
                summary.alerts, summary.correlation_hits
            ),
        ),
        (
            "incidents".to_owned(),
            format!(
                "{} opened, {} updated",
                summary.incidents_created, summary.incidents_updated
            ),
        ),
        (
            "elapsed".to_owned(),
            format!("{:.2} s", summary.elapsed.as_secs_f64()),
        ),
        (
            "events/s".to_owned(),
            format!("{:.0}", summary.events_per_second()),
        ),
    ];
    if let Some((report, pending)) = notified {
        table.push((
            "notifications".to_owned(),
            super::notify::summary_text(report, *pending),
        ));
    }
    if summary.stopped_early {
        table.push((
            "stopped".to_owned(),
            "at the first skipped record (--strict)".to_owned(),
        ));
    }
    let mut reasons: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for d in &summary.diagnostics {
        *reasons.entry(d.reason.as_str()).or_default() += 1;
    }
    for (reason, count) in reasons.iter().take(10) {
        table.push((format!("skipped ×{count}"), (*reason).to_owned()));
    }
    context.printer.document("ingest", &document, table)
}
