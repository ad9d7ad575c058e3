//! Reports: incident reports and period summaries rendered to HTML and Markdown (minijinja
//! templates, user-overridable), PDF (feature `pdf`), CSV and JSON.
//!
//! A report is computed from the store by streaming: a first pass over the incidents of the
//! period (pages of [`source::PAGE`]) aggregates the [`model::Summary`] and learns the names
//! to redact; a second pass renders the incident list page by page. Memory stays bounded by
//! the page size and the number of distinct rules, hosts, users and days, not by the number
//! of incidents (the PDF document, which the PDF library holds until it is finished, is the
//! exception).
//!
//! [`render`] returns the bytes (what the server sends); [`render_to`] writes them to any
//! writer (the CLI writes to a temporary file it renames into place).

pub mod chart;
pub mod model;
#[cfg(feature = "pdf")]
mod pdf;
pub mod redact;
pub mod source;
pub mod tabular;
pub mod template;

use std::io::Write;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use redact::Redaction;
pub use template::CustomTemplate;

use crate::event::TenantId;
use crate::incident::IncidentId;
use crate::store::report::ReportRange;
use crate::store::{IncidentStore, ReportSource, StoreError};
use model::{ReportIncident, Summary, SummaryBuilder, parse_status_change};
use redact::Redactor;
use source::Source;

/// The version of the report's JSON schema (`docs/schema/report.schema.json`).
pub const SCHEMA: &str = "siren.report/v1";

/// Triggering events an incident report lists per incident.
pub const EVENTS_PER_INCIDENT: u32 = 50;

/// What a report is rendered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// A self-contained, printable HTML page with inline SVG charts.
    Html,
    /// Markdown.
    Markdown,
    /// PDF (needs the `pdf` feature).
    Pdf,
    /// CSV, one row per incident.
    Csv,
    /// JSON, per `docs/schema/report.schema.json`.
    Json,
}

impl ReportFormat {
    /// Parses `html`, `md` / `markdown`, `pdf`, `csv`, `json`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "html" | "htm" => Some(Self::Html),
            "md" | "markdown" => Some(Self::Markdown),
            "pdf" => Some(Self::Pdf),
            "csv" => Some(Self::Csv),
            "json" => Some(Self::Json),
            _ => None,
        }
    }

    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Html => "html",
            Self::Markdown => "md",
            Self::Pdf => "pdf",
            Self::Csv => "csv",
            Self::Json => "json",
        }
    }

    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Html => "text/html; charset=utf-8",
            Self::Markdown => "text/markdown; charset=utf-8",
            Self::Pdf => "application/pdf",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Json => "application/json",
        }
    }

    /// Whether it is text (fit for a terminal).
    pub fn is_text(self) -> bool {
        self != Self::Pdf
    }
}

/// What to report on and how.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    /// Incidents of an incident report; empty for a period summary.
    pub incidents: Vec<IncidentId>,
    /// The period (a period summary's incidents, and what "new" and "resolved" count).
    pub range: ReportRange,
    /// The output format.
    pub format: ReportFormat,
    /// Names to hide.
    pub redaction: Redaction,
    /// A template to use instead of the built-in one (HTML and Markdown only).
    pub template: Option<CustomTemplate>,
    /// The report's title (a default names the kind and period).
    pub title: Option<String>,
    /// The time the report is generated at.
    pub now: DateTime<Utc>,
}

impl ReportRequest {
    /// A period summary over everything, in `format`, generated now.
    pub fn new(format: ReportFormat) -> Self {
        Self {
            incidents: Vec::new(),
            range: ReportRange::default(),
            format,
            redaction: Redaction::default(),
            template: None,
            title: None,
            now: Utc::now(),
        }
    }

    /// Reports on these incidents instead of a period.
    pub fn with_incidents(mut self, ids: Vec<IncidentId>) -> Self {
        self.incidents = ids;
        self
    }

    /// Limits a period summary to `range`.
    pub fn with_range(mut self, range: ReportRange) -> Self {
        self.range = range;
        self
    }

    /// Hides names.
    pub fn with_redaction(mut self, redaction: Redaction) -> Self {
        self.redaction = redaction;
        self
    }

    /// Uses the caller's template.
    pub fn with_template(mut self, template: CustomTemplate) -> Self {
        self.template = Some(template);
        self
    }
}

/// The header of every report (in JSON, the top-level fields).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportMeta {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// `period` or `incident`.
    pub kind: &'static str,
    /// The title.
    pub title: String,
    /// The tenant.
    pub tenant: String,
    /// When it was generated.
    pub generated_at: DateTime<Utc>,
    /// Start of the period, if any.
    pub since: Option<DateTime<Utc>>,
    /// End of the period, if any.
    pub until: Option<DateTime<Utc>>,
    /// What was redacted (`users`, `ips`, `hosts`).
    pub redacted: Vec<&'static str>,
}

/// What can go wrong rendering a report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// Reading the store failed (or an incident does not exist).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A template does not parse or fails to render.
    #[error("template '{name}'{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Template {
        /// The template's name (its file, for a custom one).
        name: String,
        /// The line, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// The request does not make sense.
    #[error("{0}")]
    Request(String),
    /// The PDF could not be built.
    #[error("cannot build the PDF: {0}")]
    Pdf(String),
    /// Writing the output failed.
    #[error("cannot write the report: {0}")]
    Io(#[from] std::io::Error),
    /// Writing JSON failed.
    #[error("cannot write the JSON report: {0}")]
    Json(#[from] serde_json::Error),
    /// Writing CSV failed.
    #[error("cannot write the CSV report: {0}")]
    Csv(#[from] csv::Error),
}

impl ReportError {
    fn template(error: minijinja::Error) -> Self {
        let mut message = error.kind().to_string();
        if let Some(detail) = error.detail() {
            message = format!("{message}: {detail}");
        }
        ReportError::Template {
            name: error.name().unwrap_or("template").to_owned(),
            line: error.line(),
            message,
        }
    }
}

/// Renders a report to bytes (what `GET /api/v1/reports/…` sends, with
/// [`ReportFormat::content_type`]).
pub async fn render(
    store: Arc<dyn ReportSource>,
    tenant: &TenantId,
    request: &ReportRequest,
) -> Result<Vec<u8>, ReportError> {
    render_to(store, tenant, request, Vec::new()).await
}

/// Renders a report into `out` and gives it back. On error, `out` may hold part of the
/// report: write to a temporary file and rename it into place on success.
pub async fn render_to<W: Write + Send + 'static>(
    store: Arc<dyn ReportSource>,
    tenant: &TenantId,
    request: &ReportRequest,
    out: W,
) -> Result<W, ReportError> {
    let incident_report = !request.incidents.is_empty();
    if request.template.is_some()
        && !matches!(request.format, ReportFormat::Html | ReportFormat::Markdown)
    {
        return Err(ReportError::Request(format!(
            "a template applies to html and md reports, not {}",
            request.format.extension()
        )));
    }
    if cfg!(not(feature = "pdf")) && request.format == ReportFormat::Pdf {
        return Err(ReportError::Request(
            "this build has no PDF support (cargo feature `pdf`)".to_owned(),
        ));
    }
    // A broken template fails before any work.
    let template_name = request
        .template
        .as_ref()
        .map(|t| t.name.clone())
        .unwrap_or_else(|| template::builtin_name(incident_report, request.format).to_owned());
    let env = match request.format {
        ReportFormat::Html | ReportFormat::Markdown => Some(template::environment(
            request.format,
            &template_name,
            request.template.as_ref(),
        )?),
        _ => None,
    };

    let range = if incident_report {
        ReportRange::default()
    } else {
        request.range
    };
    let mut redactor = Redactor::new(request.redaction);
    let mut summary = SummaryBuilder::new(range.since, range.until);
    let mut detailed = None;
    if incident_report {
        let mut list = Vec::with_capacity(request.incidents.len());
        for id in &request.incidents {
            list.push(detailed_incident(store.as_ref(), tenant, *id).await?);
        }
        for item in &list {
            item.learn(&mut redactor);
            summary.add(item, &mut redactor);
        }
        detailed = Some(list);
    } else {
        let mut cursor: Option<String> = None;
        loop {
            let (items, next) =
                source::page(store.as_ref(), tenant, &range, cursor.as_deref()).await?;
            for item in &items {
                summary.add(item, &mut redactor);
            }
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    redactor.seal();
    let summary = summary.finish();
    let meta = ReportMeta {
        schema: SCHEMA,
        kind: if incident_report {
            "incident"
        } else {
            "period"
        },
        title: request
            .title
            .clone()
            .unwrap_or_else(|| default_title(request, incident_report)),
        tenant: tenant.as_str().to_owned(),
        generated_at: request.now,
        since: range.since,
        until: range.until,
        redacted: request.redaction.names(),
    };
    let source = Arc::new(Source::new(
        Arc::clone(&store),
        tenant.clone(),
        range,
        detailed,
        redactor,
        summary.total,
    ));
    let format = request.format;
    let work_source = Arc::clone(&source);
    let rendered = tokio::task::spawn_blocking(move || {
        write_format(
            format,
            env,
            &template_name,
            &meta,
            &summary,
            &work_source,
            out,
        )
    })
    .await
    .map_err(|e| ReportError::Request(format!("the report renderer stopped: {e}")))?;
    // A store error mid-list stops the list: the report is incomplete, so it is an error.
    if let Some(error) = source.take_error() {
        return Err(error);
    }
    rendered
}

fn default_title(request: &ReportRequest, incident_report: bool) -> String {
    if incident_report {
        let ids: Vec<String> = request.incidents.iter().map(|i| format!("#{i}")).collect();
        return format!("Incident report {}", ids.join(", "));
    }
    let day = |t: Option<DateTime<Utc>>| t.map(|t| t.format("%Y-%m-%d").to_string());
    match (day(request.range.since), day(request.range.until)) {
        (Some(s), Some(u)) => format!("Incident summary {s} to {u}"),
        (Some(s), None) => format!("Incident summary since {s}"),
        (None, Some(u)) => format!("Incident summary until {u}"),
        (None, None) => "Incident summary".to_owned(),
    }
}

/// An incident with its status history, timeline, notes and triggering events.
async fn detailed_incident(
    store: &dyn IncidentStore,
    tenant: &TenantId,
    id: IncidentId,
) -> Result<ReportIncident, ReportError> {
    let incident = store.get_incident(tenant, id).await?;
    let timeline = store.incident_timeline(tenant, id).await?;
    let events = store
        .incident_events(tenant, id, EVENTS_PER_INCIDENT)
        .await?;
    let changes: Vec<_> = timeline
        .iter()
        .filter(|e| e.kind == "status_changed")
        .filter_map(parse_status_change)
        .collect();
    Ok(ReportIncident::new(incident, &changes).with_detail(changes, timeline, &events))
}

#[derive(Serialize)]
struct Charts {
    over_time: String,
    by_severity: String,
}

fn write_format<W: Write>(
    format: ReportFormat,
    env: Option<minijinja::Environment<'static>>,
    template_name: &str,
    meta: &ReportMeta,
    summary: &Summary,
    source: &Arc<Source>,
    mut out: W,
) -> Result<W, ReportError> {
    match format {
        ReportFormat::Csv => tabular::write_csv(out, source.iter()),
        ReportFormat::Json => tabular::write_json(out, meta, summary, source.iter()),
        ReportFormat::Pdf => {
            #[cfg(feature = "pdf")]
            {
                let bytes = pdf::render(meta, summary, source)?;
                out.write_all(&bytes)?;
                Ok(out)
            }
            #[cfg(not(feature = "pdf"))]
            {
                let _ = &mut out;
                Err(ReportError::Request(
                    "this build has no PDF support".to_owned(),
                ))
            }
        }
        ReportFormat::Html | ReportFormat::Markdown => {
            let env = env.ok_or_else(|| ReportError::Request("no template".to_owned()))?;
            let template = env
                .get_template(template_name)
                .map_err(ReportError::template)?;
            let charts = Charts {
                over_time: chart::over_time(summary),
                by_severity: chart::by_severity(summary),
            };
            let incidents = minijinja::Value::from_object(template::LazyIncidents {
                source: Arc::clone(source),
            });
            let context = minijinja::context! {
                report => minijinja::Value::from_serialize(meta),
                summary => minijinja::Value::from_serialize(summary),
                charts => minijinja::Value::from_serialize(&charts),
                incidents => incidents,
            };
            let mut writer = std::io::BufWriter::new(&mut out);
            template
                .render_captured_to(context, &mut writer)
                .map_err(ReportError::template)?;
            writer.flush()?;
            drop(writer);
            Ok(out)
        }
    }
}
