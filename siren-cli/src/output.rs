//! The single place that decides how output looks: tables (comfy-table) or machine formats
//! on stdout; progress bars (indicatif) and warnings on stderr, progress on a terminal only.

use std::io::{IsTerminal, Write};

use comfy_table::{ContentArrangement, Table, presets};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use siren_core::csv_safe::{self, neutralise};

/// Output formats every command offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// A table for people.
    Table,
    /// One JSON document.
    Json,
    /// One JSON object per line.
    Jsonl,
    /// CSV with a header row.
    Csv,
}

/// The global `--format` flag: the output formats every command offers, plus the document
/// formats of `siren report export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatFlag {
    /// A table for people.
    Table,
    /// One JSON document.
    Json,
    /// One JSON object per line.
    Jsonl,
    /// CSV with a header row.
    Csv,
    /// HTML (report export only).
    Html,
    /// Markdown (report export only).
    Md,
    /// PDF (report export only).
    Pdf,
}

impl FormatFlag {
    /// The printer's format; `None` for the report-only formats.
    pub fn output(self) -> Option<OutputFormat> {
        match self {
            FormatFlag::Table => Some(OutputFormat::Table),
            FormatFlag::Json => Some(OutputFormat::Json),
            FormatFlag::Jsonl => Some(OutputFormat::Jsonl),
            FormatFlag::Csv => Some(OutputFormat::Csv),
            FormatFlag::Html | FormatFlag::Md | FormatFlag::Pdf => None,
        }
    }
}

/// Rows with named columns, printable in every format.
pub struct Rows {
    /// Column names.
    pub columns: Vec<&'static str>,
    /// One JSON object per row (keys are column names; JSON output may carry more keys).
    pub rows: Vec<serde_json::Value>,
}

/// Prints results and messages according to the global flags.
pub struct Printer {
    /// The chosen format.
    pub format: OutputFormat,
    /// `-q`: no progress, no warnings.
    pub quiet: bool,
}

impl Printer {
    /// A progress bar over `total` bytes on stderr, hidden unless stderr is a terminal.
    pub fn progress_bar(&self, total: u64) -> ProgressBar {
        if self.quiet || !std::io::stderr().is_terminal() {
            return ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar
    }

    /// A warning on stderr (unless quiet).
    pub fn warn(&self, message: impl std::fmt::Display) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr().lock(), "warning: {message}");
        }
    }

    /// A note for people on stderr (unless quiet), e.g. a summary after machine output.
    pub fn note(&self, message: impl std::fmt::Display) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr().lock(), "{message}");
        }
    }

    /// A JSON document (for `json`), or the same as a key/value table otherwise.
    pub fn document(
        &self,
        title: &str,
        value: &serde_json::Value,
        table: Vec<(String, String)>,
    ) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        match self.format {
            OutputFormat::Json => {
                serde_json::to_writer_pretty(&mut out, value)?;
                writeln!(out)
            }
            OutputFormat::Jsonl => {
                serde_json::to_writer(&mut out, value)?;
                writeln!(out)
            }
            OutputFormat::Csv => {
                let mut writer = csv_safe::writer(out);
                writer.write_record(["key", "value"])?;
                for (key, value) in table {
                    writer
                        .write_record([neutralise(&key).as_ref(), neutralise(&value).as_ref()])?;
                }
                writer.flush()
            }
            OutputFormat::Table => {
                let mut t = new_table();
                t.set_header(vec![title, ""]);
                for (key, value) in table {
                    t.add_row(vec![key, value]);
                }
                writeln!(out, "{t}")
            }
        }
    }

    /// Rows in the chosen format.
    pub fn rows(&self, rows: &Rows) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        match self.format {
            OutputFormat::Json => {
                serde_json::to_writer_pretty(&mut out, &rows.rows)?;
                writeln!(out)
            }
            OutputFormat::Jsonl => {
                for row in &rows.rows {
                    serde_json::to_writer(&mut out, row)?;
                    writeln!(out)?;
                }
                Ok(())
            }
            OutputFormat::Csv => {
                let mut writer = csv_safe::writer(out);
                writer.write_record(&rows.columns)?;
                for row in &rows.rows {
                    writer.write_record(rows.columns.iter().map(|c| csv_cell(&row[*c])))?;
                }
                writer.flush()
            }
            OutputFormat::Table => {
                let mut table = new_table();
                table.set_header(rows.columns.clone());
                for row in &rows.rows {
                    table.add_row(rows.columns.iter().map(|c| truncate(&cell(&row[*c]), 80)));
                }
                writeln!(out, "{table}")
            }
        }
    }
}

fn new_table() -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    table
}

/// A JSON value as a table or CSV cell.
pub fn cell(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A JSON value as a CSV cell: numbers as they are, any other value neutralised against
/// formula injection ([`siren_core::csv_safe`]).
pub fn csv_cell(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Number(n) => n.to_string(),
        other => neutralise(&cell(other)).into_owned(),
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}
