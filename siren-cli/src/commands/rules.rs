//! `siren rules validate|list|test`: load and check Sigma rules.

use std::path::PathBuf;

use serde_json::json;
use siren_core::hunt::HuntOptions;
use siren_core::normalize::ReadObserver;
use siren_core::normalize::{self, ReadOptions};
use siren_core::rules::RuleKind;

use super::{RuleSource, detection_json, load_rules};
use crate::Context;
use crate::exit::{CommandResult, Exit, Failure};
use crate::output::{OutputFormat, Rows};

/// `siren rules` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RulesCommand {
    /// Load and compile rules; list every rule that did not load, with the reason. Exit 1 if any.
    Validate {
        /// Rule files or folders.
        #[arg(required = true, value_name = "DIR")]
        paths: Vec<PathBuf>,
        /// Log-source mapping that replaces the built-in one.
        #[arg(long, value_name = "FILE", env = "SIREN_LOGSOURCES")]
        logsources: Option<PathBuf>,
        /// pySigma processing pipeline applied to the rules (repeatable; run in `priority`
        /// order).
        #[arg(long = "pipeline", value_name = "FILE")]
        pipelines: Vec<PathBuf>,
    },
    /// List loaded rules: id, title, level, status, log source, tags.
    List {
        #[command(flatten)]
        rules: RuleSource,
    },
    /// Run rules over events (matches per rule) and the tests embedded in the rules
    /// (`siren: tests:`). Exit 1 if an embedded test fails or a rule does not load.
    Test {
        /// Rule files or folders.
        #[arg(required = true, value_name = "RULE_OR_DIR")]
        paths: Vec<PathBuf>,
        /// Events to run the rules over (files or folders; `-` for stdin).
        #[arg(long, value_name = "PATH", num_args = 1..)]
        events: Vec<PathBuf>,
        /// Log-source mapping that replaces the built-in one.
        #[arg(long, value_name = "FILE", env = "SIREN_LOGSOURCES")]
        logsources: Option<PathBuf>,
        /// pySigma processing pipeline applied to the rules (repeatable; run in `priority`
        /// order).
        #[arg(long = "pipeline", value_name = "FILE")]
        pipelines: Vec<PathBuf>,
    },
}

/// Runs `siren rules …`.
pub async fn run(context: &Context, command: RulesCommand) -> CommandResult {
    match command {
        RulesCommand::Validate {
            paths,
            logsources,
            pipelines,
        } => validate(
            context,
            RuleSource {
                rules: paths,
                logsources,
                pipelines,
            },
        ),
        RulesCommand::List { rules } => list(context, &rules),
        RulesCommand::Test {
            paths,
            events,
            logsources,
            pipelines,
        } => tokio::task::block_in_place(|| {
            test(
                context,
                RuleSource {
                    rules: paths,
                    logsources,
                    pipelines,
                },
                &events,
            )
        }),
    }
}

fn io_failure(e: std::io::Error) -> Failure {
    Failure::new(Exit::Software, e)
}

fn validate(context: &Context, source: RuleSource) -> CommandResult {
    let started = std::time::Instant::now();
    let (rules, problems) = load_rules(context, &source)?;
    let elapsed = started.elapsed();
    let printer = &context.printer;
    let rows = problems
        .iter()
        .map(|p| json!({"file": p.file, "rule": p.rule, "reason": p.error.to_string()}))
        .collect::<Vec<_>>();
    let correlations = rules
        .rules()
        .iter()
        .filter(|r| matches!(r.kind, RuleKind::Correlation(_)))
        .count();
    let loaded = rules.len();
    let total = loaded + problems.len();
    let rate = if total == 0 {
        100.0
    } else {
        loaded as f64 * 100.0 / total as f64
    };
    match printer.format {
        OutputFormat::Json => {
            let document = json!({
                "loaded": loaded, "not_loaded": problems.len(), "correlations": correlations,
                "load_rate": rate, "elapsed": elapsed.as_secs_f64(), "problems": rows,
            });
            printer
                .document("rules", &document, Vec::new())
                .map_err(io_failure)?;
        }
        _ => {
            if !rows.is_empty() || printer.format != OutputFormat::Table {
                printer
                    .rows(&Rows {
                        columns: vec!["file", "rule", "reason"],
                        rows,
                    })
                    .map_err(io_failure)?;
            }
            if !printer.quiet {
                printer.note(format!(
                    "{loaded} rules loaded ({correlations} correlations), {} not loaded, {rate:.2}% in {:.2} s",
                    problems.len(),
                    elapsed.as_secs_f64()
                ));
            }
        }
    }
    Ok(if problems.is_empty() {
        Exit::Ok
    } else {
        Exit::Findings
    })
}

fn list(context: &Context, source: &RuleSource) -> CommandResult {
    let (rules, problems) = load_rules(context, source)?;
    let rows = rules
        .rules()
        .iter()
        .map(|rule| {
            let logsource = [
                &rule.logsource.product,
                &rule.logsource.category,
                &rule.logsource.service,
            ]
            .iter()
            .filter_map(|p| p.as_deref())
            .collect::<Vec<_>>()
            .join("/");
            let kind = match rule.kind {
                RuleKind::Detection => "detection",
                RuleKind::Correlation(_) => "correlation",
                RuleKind::Filter(_) => "filter",
                _ => "other",
            };
            json!({
                "id": rule.id.as_ref().map(|id| id.as_str()),
                "title": rule.title,
                "kind": kind,
                "level": rule.level.map(|l| l.as_str()),
                "status": rule.status.map(|s| s.as_str()),
                "logsource": logsource,
                "tags": rule.tags.join(" "),
                "file": rule.file,
            })
        })
        .collect();
    let columns = vec![
        "id",
        "title",
        "kind",
        "level",
        "status",
        "logsource",
        "tags",
    ];
    context
        .printer
        .rows(&Rows { columns, rows })
        .map_err(io_failure)?;
    if !problems.is_empty() {
        context.printer.warn(format!(
            "{} rules not loaded (see siren rules validate)",
            problems.len()
        ));
    }
    Ok(Exit::Ok)
}

struct Silent;
impl ReadObserver for Silent {}

fn test(context: &Context, source: RuleSource, events: &[PathBuf]) -> CommandResult {
    let (rules, problems) = load_rules(context, &source)?;
    let printer = &context.printer;
    for problem in &problems {
        printer.warn(format!("not loaded: {problem}"));
    }
    let mut matches = vec![0_u64; rules.len()];
    let mut failed_inputs = false;
    if !events.is_empty() {
        let (inputs, missing) = normalize::expand_inputs(events);
        for problem in &missing {
            printer.warn(format!("cannot read {problem}"));
        }
        failed_inputs = !missing.is_empty();
        let options = HuntOptions::default()
            .with_read(ReadOptions::default().with_tenant(context.tenant.clone()));
        let mut out = std::io::stdout().lock();
        let mut write_error = None;
        siren_core::hunt::hunt(
            &inputs,
            &rules,
            &options,
            &Silent,
            |detection| {
                matches[detection.rule] += 1;
                if printer.format == OutputFormat::Jsonl && write_error.is_none() {
                    use std::io::Write;
                    let line = detection_json(&rules, detection.hit()).to_json();
                    if let Err(e) = out.write_all(&line).and_then(|()| out.write_all(b"\n")) {
                        write_error = Some(e);
                    }
                }
            },
            |diagnostic| printer.warn(format!("skipped {diagnostic}")),
        );
        if let Some(e) = write_error {
            return Err(io_failure(e));
        }
    }
    let mut failures = 0;
    let rows: Vec<_> = (0..rules.len())
        .map(|index| {
            let rule = &rules.rules()[index];
            let report = rules.run_embedded_tests(index);
            let tests = if report.run == 0 {
                "none".to_owned()
            } else if report.passed() {
                format!("passed ({})", report.run)
            } else {
                failures += 1;
                format!(
                    "FAILED: must match {:?} missed, must not match {:?} matched",
                    report.failed_match, report.failed_no_match
                )
            };
            json!({
                "id": rule.id.as_ref().map(|id| id.as_str()),
                "title": rule.title,
                "matches": matches[index],
                "tests": tests,
                "tests_run": report.run,
                "tests_passed": report.passed(),
                "file": rule.file,
            })
        })
        .collect();
    if printer.format != OutputFormat::Jsonl {
        let columns = vec!["id", "title", "matches", "tests"];
        printer.rows(&Rows { columns, rows }).map_err(io_failure)?;
    }
    if !printer.quiet {
        printer.note(format!(
            "{} rules, {} with failing tests, {} not loaded",
            rules.len(),
            failures,
            problems.len()
        ));
    }
    Ok(if failures > 0 || !problems.is_empty() {
        Exit::Findings
    } else if failed_inputs {
        Exit::NoInput
    } else {
        Exit::Ok
    })
}
