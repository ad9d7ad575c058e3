//! CSV (one row per incident, stable columns) and JSON (the documented report schema,
//! `docs/schema/report.schema.json`), written incident by incident.

use std::io::Write;

use serde::Serialize;

use super::model::{ReportIncident, Summary};
use super::{ReportError, ReportMeta};
use crate::csv_safe::{self, neutralise};

/// The CSV columns, in order. Part of the public format: add at the end, never reorder.
pub const CSV_COLUMNS: [&str; 18] = [
    "id",
    "title",
    "severity",
    "status",
    "resolution",
    "assignee",
    "first_seen",
    "last_seen",
    "created_at",
    "acknowledged_at",
    "resolved_at",
    "alert_count",
    "event_count",
    "rules",
    "techniques",
    "hosts",
    "users",
    "ips",
];

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Writes the CSV report. Text cells are neutralised against formula injection
/// ([`crate::csv_safe`]); ids and counts are numbers.
pub fn write_csv<W: Write>(
    out: W,
    incidents: impl Iterator<Item = ReportIncident>,
) -> Result<W, ReportError> {
    let text = |s: &str| neutralise(s).into_owned();
    let list = |items: &[String]| text(&items.join("; "));
    let mut writer = csv_safe::writer(out);
    writer.write_record(CSV_COLUMNS)?;
    for item in incidents {
        let i = &item.incident;
        writer.write_record([
            i.id.to_string(),
            text(&i.title),
            i.severity.as_str().to_owned(),
            i.status.as_str().to_owned(),
            i.resolution
                .map(|r| r.as_str().to_owned())
                .unwrap_or_default(),
            text(i.assignee.as_deref().unwrap_or_default()),
            time(Some(i.first_seen)),
            time(Some(i.last_seen)),
            time(Some(i.created_at)),
            time(item.acknowledged_at),
            time(item.resolved_at),
            i.alert_count.to_string(),
            i.event_count.to_string(),
            list(&i.rule_ids),
            list(&i.techniques),
            list(&i.hosts),
            list(&i.users),
            list(&i.ips),
        ])?;
    }
    writer
        .into_inner()
        .map_err(|e| ReportError::Io(e.into_error()))
}

#[derive(Serialize)]
struct Header<'a> {
    #[serde(flatten)]
    report: &'a ReportMeta,
    summary: &'a Summary,
}

/// A JSON error, as the IO error it may be (so a closed pipe is recognised).
fn json_error(error: serde_json::Error) -> ReportError {
    if error.is_io() {
        ReportError::Io(error.into())
    } else {
        ReportError::Json(error)
    }
}

/// Writes the JSON report: the header fields, the summary, then the incidents one per line.
pub fn write_json<W: Write>(
    mut out: W,
    meta: &ReportMeta,
    summary: &Summary,
    incidents: impl Iterator<Item = ReportIncident>,
) -> Result<W, ReportError> {
    let header = serde_json::to_string(&Header {
        report: meta,
        summary,
    })?;
    // The header object, reopened to append the incident list.
    let open = header.strip_suffix('}').unwrap_or(&header);
    out.write_all(open.as_bytes())?;
    out.write_all(b",\"incidents\":[\n")?;
    for (n, item) in incidents.enumerate() {
        if n > 0 {
            out.write_all(b",\n")?;
        }
        serde_json::to_writer(&mut out, &item).map_err(json_error)?;
    }
    out.write_all(b"\n]}\n")?;
    Ok(out)
}
