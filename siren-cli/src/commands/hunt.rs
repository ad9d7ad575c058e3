//! `siren hunt`: scan logs with Sigma rules, no database — a timeline of detections and
//! correlation hits.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::ProgressBar;
use siren_core::correlation::CorrelatorConfig;
use siren_core::hunt::{Found, HuntOptions};
use siren_core::normalize::ReadObserver;
use siren_core::normalize::{self, Diagnostic, ReadOptions};
use siren_core::rules::Level;

use super::{RuleSource, detection_json, load_rules};
use crate::Context;
use crate::exit::{CommandResult, Exit, Failure};
use crate::output::{OutputFormat, cell, csv_cell};
use crate::timeline::Timeline;
use crate::write_behind::WriteBehind;

/// Arguments of `siren hunt`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or folders to scan (folders recursively); `-` reads stdin.
    #[arg(required_unless_present = "archive", value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Also scan the archive (the `archive:` section, or `--archive-url`): the parts of the
    /// days `--from`..`--to`, every tenant's or `--tenant`'s, each checked against its
    /// manifest first.
    #[arg(long)]
    archive: bool,
    #[command(flatten)]
    range: super::archive::Range,
    #[command(flatten)]
    rules: RuleSource,
    /// Report only rules of at least this level.
    #[arg(long, value_parser = parse_level, value_name = "LEVEL")]
    min_level: Option<Level>,
    /// Write the timeline to this file (`-` for stdout, the default).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Stop at the first record or file that cannot be read.
    #[arg(long)]
    strict: bool,
    /// Reader threads (0 = one per core).
    #[arg(long, default_value_t = 0, value_name = "N")]
    threads: usize,
    /// Evaluate no correlation rule: every detection rule reports its own matches, also
    /// those that correlations use as building blocks (`generate: false`).
    #[arg(long)]
    no_correlations: bool,
}

/// The archive's parts to scan, as inputs: checked against their manifests, read in place
/// from a folder, else fetched into the temporary folder returned.
async fn archive_inputs(
    context: &Context,
    range: &super::archive::Range,
) -> Result<(Vec<normalize::Input>, Option<tempfile::TempDir>), Failure> {
    let archive = range.open(context)?;
    let parts = range.parts(context, &archive).await?;
    if parts.is_empty() {
        context
            .printer
            .warn("no archived part in that range (see siren archive list)");
    }
    let mut inputs = Vec::new();
    let mut fetched: Option<tempfile::TempDir> = None;
    for part in &parts {
        let bytes = match archive.fetch(part).await {
            Ok(bytes) => bytes,
            Err(error) => {
                context.printer.warn(format!("skipped: {error}"));
                continue;
            }
        };
        if let Some(file) = archive.local_file(part) {
            inputs.push(normalize::Input::Named(file));
            continue;
        }
        let folder = match &fetched {
            Some(folder) => folder,
            None => {
                fetched.insert(tempfile::tempdir().map_err(|e| Failure::new(Exit::Software, e))?)
            }
        };
        let file = part
            .object
            .split('/')
            .fold(folder.path().to_owned(), |path, p| path.join(p));
        let written = file
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&file, &bytes));
        written.map_err(|e| Failure::new(Exit::Software, e))?;
        inputs.push(normalize::Input::Named(file));
    }
    Ok((inputs, fetched))
}

fn parse_level(text: &str) -> Result<Level, String> {
    Level::parse(text).ok_or_else(|| {
        format!("unknown level '{text}': use informational, low, medium, high or critical")
    })
}

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
        if !self.quiet && self.warnings.fetch_add(1, Ordering::Relaxed) < 20 {
            self.bar.suspend(|| {
                let _ = writeln!(std::io::stderr(), "warning: skipped {diagnostic}");
            });
        }
    }
}

/// Runs `siren hunt`.
pub async fn run(context: &Context, args: Args) -> CommandResult {
    let printer = &context.printer;
    let load_started = std::time::Instant::now();
    let (rules, rule_problems) = load_rules(context, &args.rules)?;
    let load_time = load_started.elapsed();
    let (mut inputs, problems) = normalize::expand_inputs(&args.paths);
    for problem in &problems {
        printer.warn(format!("cannot read {problem}"));
    }
    // Parts of a bucket are fetched into a temporary folder, removed when the hunt ends.
    let _fetched = if args.archive {
        let (parts, folder) = archive_inputs(context, &args.range).await?;
        inputs.extend(parts);
        folder
    } else {
        None
    };
    if inputs.is_empty() {
        return Err(Failure::new(
            Exit::NoInput,
            anyhow::anyhow!("nothing to scan: no readable input among the paths given"),
        ));
    }
    let total: u64 = inputs.iter().filter_map(normalize::Input::size).sum();
    let observer = Observer {
        bar: printer.progress_bar(total),
        quiet: printer.quiet,
        warnings: AtomicU64::new(0),
    };
    let options = HuntOptions::default()
        .with_read(ReadOptions::default().with_tenant(context.tenant.clone()))
        .with_min_level(args.min_level)
        .with_threads(args.threads);
    let options = HuntOptions {
        strict: args.strict,
        ..options
    };
    // Correlation rules are evaluated unless turned off; the table and CSV forms then have a
    // `correlation` column (and only then, so that other hunts print what they always did).
    let correlating = !args.no_correlations && rules.correlations().next().is_some();
    let options = options.with_correlation(correlating.then(CorrelatorConfig::for_files));
    let format = printer.format;
    let mut timeline = Timeline::new();
    let mut by_level: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut write_error = None;
    // Each detection is rendered to its JSON line on the reader threads, in parallel.
    let render = |hit: siren_core::hunt::Hit<'_>| {
        let level = rules.rules()[hit.rule].level.map_or("none", |l| l.as_str());
        let time = hit
            .event
            .timestamp
            .map_or(i64::MIN, |t| t.timestamp_micros());
        (level, time, detection_json(&rules, hit).to_json())
    };
    let summary = tokio::task::block_in_place(|| {
        siren_core::hunt::hunt_rendered(
            &inputs,
            &rules,
            &options,
            &observer,
            &render,
            |found| {
                let (time, line) = match found {
                    Found::Detection((level, time, line)) => {
                        *by_level.entry(level).or_default() += 1;
                        (time, line)
                    }
                    Found::Correlation(hit) => (
                        hit.hit.last_seen.timestamp_micros(),
                        crate::correlation_line::to_json(&rules, &hit),
                    ),
                };
                if let Err(e) = timeline.push(time, line) {
                    write_error.get_or_insert(e);
                }
            },
            |_| {},
        )
    });
    observer.bar.finish_and_clear();
    if let Some(e) = write_error {
        return Err(Failure::new(
            Exit::Software,
            anyhow::Error::from(e).context("cannot spill the timeline to a temporary file"),
        ));
    }
    write_timeline(timeline, format, correlating, args.output.as_deref())?;

    if !printer.quiet {
        let levels = by_level
            .iter()
            .rev()
            .map(|(l, n)| format!("{l} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "hunt: {} files, {} events, {} detections ({levels}){}; rules: {} loaded in {:.2} s, {} not loaded{}; {:.2} s, {:.0} events/s",
            summary.files,
            summary.events,
            summary.detections,
            if correlating {
                format!(", {} correlation hits", summary.correlation_hits)
            } else {
                String::new()
            },
            rules.len(),
            load_time.as_secs_f64(),
            rule_problems.len(),
            if rule_problems.is_empty() {
                ""
            } else {
                " (see siren rules validate)"
            },
            summary.elapsed.as_secs_f64(),
            summary.events as f64 / summary.elapsed.as_secs_f64().max(1e-9),
        );
        if summary.files_skipped + summary.records_skipped > 0 {
            let _ = writeln!(
                err,
                "hunt: skipped {} files and {} records (see warnings)",
                summary.files_skipped, summary.records_skipped
            );
        }
    }
    // The process ends right after: freeing thousands of compiled rules one by one would
    // only delay the exit (tens of milliseconds), so the memory goes back with the process.
    std::mem::forget(rules);
    Ok(if !problems.is_empty() {
        Exit::NoInput
    } else if summary.files_skipped + summary.records_skipped > 0 || summary.stopped_early {
        Exit::DataError
    } else {
        Exit::Ok
    })
}

/// Columns of the table and CSV forms.
const COLUMNS: [&str; 9] = [
    "timestamp",
    "level",
    "rule_title",
    "host",
    "channel",
    "event_id",
    "record_id",
    "rule_id",
    "file",
];

/// Events of a correlation hit the table lists in its `correlation` cell (CSV lists all).
const TABLE_CORRELATION_EVENTS: usize = 5;

fn write_timeline(
    timeline: Timeline,
    format: OutputFormat,
    correlating: bool,
    output: Option<&std::path::Path>,
) -> Result<(), Failure> {
    let sink: Box<dyn Write + Send> = match output {
        Some(path) if path != std::path::Path::new("-") => {
            // Detections quote the events' fields: the file is its owner's only.
            let file = siren_core::owner_only::options()
                .write(true)
                .create(true)
                .truncate(true)
                .open(path);
            Box::new(file.map_err(|e| {
                Failure::new(
                    Exit::Software,
                    anyhow::Error::from(e).context(format!("cannot write {}", path.display())),
                )
            })?)
        }
        _ => Box::new(std::io::stdout()),
    };
    // The merge fills buffers while a thread of their own writes them out.
    let mut out = WriteBehind::new(sink);
    let result = match format {
        OutputFormat::Jsonl => timeline.finish(|line| {
            out.write_all(line)?;
            out.write_all(b"\n")
        }),
        OutputFormat::Json => {
            let mut first = true;
            out.write_all(b"[")
                .and_then(|()| {
                    timeline.finish(|line| {
                        out.write_all(if first { b"\n" } else { b",\n" })?;
                        first = false;
                        out.write_all(line)
                    })
                })
                .and_then(|()| out.write_all(b"\n]\n"))
        }
        OutputFormat::Csv => {
            let mut csv = siren_core::csv_safe::writer(&mut out);
            let extra: &[&str] = if correlating { &["correlation"] } else { &[] };
            let header = COLUMNS
                .iter()
                .copied()
                .chain(["tags"])
                .chain(extra.iter().copied());
            let mut result = csv.write_record(header).map_err(std::io::Error::from);
            if result.is_ok() {
                result = timeline.finish(|line| {
                    let value: serde_json::Value = serde_json::from_slice(line).unwrap_or_default();
                    let tags = value["tags"]
                        .as_array()
                        .map(|t| t.iter().map(cell).collect::<Vec<_>>().join(" "))
                        .unwrap_or_default();
                    let tags = siren_core::csv_safe::neutralise(&tags).into_owned();
                    let correlation = correlating.then(|| {
                        let text = crate::correlation_line::cell(&value, None);
                        siren_core::csv_safe::neutralise(&text).into_owned()
                    });
                    let row = COLUMNS
                        .iter()
                        .map(|c| csv_cell(&value[*c]))
                        .chain([tags])
                        .chain(correlation);
                    csv.write_record(row).map_err(std::io::Error::from)
                });
            }
            result.and_then(|()| csv.flush())
        }
        OutputFormat::Table => {
            let mut table = comfy_table::Table::new();
            table
                .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
                .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
                .set_header(
                    COLUMNS[..7]
                        .iter()
                        .copied()
                        .chain(correlating.then_some("correlation")),
                );
            let result = timeline.finish(|line| {
                let value: serde_json::Value = serde_json::from_slice(line).unwrap_or_default();
                let correlation = correlating
                    .then(|| crate::correlation_line::cell(&value, Some(TABLE_CORRELATION_EVENTS)));
                table.add_row(
                    COLUMNS[..7]
                        .iter()
                        .map(|c| cell(&value[*c]))
                        .chain(correlation),
                );
                Ok(())
            });
            result.and_then(|()| writeln!(out, "{table}"))
        }
    };
    result
        .and_then(|()| out.finish())
        .map_err(|e| Failure::new(Exit::Software, anyhow::Error::from(e)))
}
