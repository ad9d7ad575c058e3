//! `/api/v1/reports`: the reports of `siren report export` for download — a period summary
//! and single-incident reports, in PDF, HTML, Markdown, CSV or JSON, optionally redacted.
//! Readers of the tenant may download them; another tenant's incident is "not found".

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use siren_core::incident::IncidentId;
use siren_core::report::{Redaction, ReportError, ReportFormat, ReportRequest};
use siren_core::store::report::ReportRange;

use crate::AppState;
use crate::auth::{Access, Read};
use crate::error::{ApiError, ApiResult};
use crate::events::parse_time;
use crate::extract::{PathParams, QueryParams};

/// `/api/v1/reports/…`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/reports/summary", get(summary))
        .route("/api/v1/reports/incidents/{id}", get(incident))
}

#[derive(Debug, Deserialize)]
struct ReportParams {
    /// `pdf` (default), `html`, `md`, `csv` or `json`.
    format: Option<String>,
    /// Period summaries: incidents active at or after this time.
    since: Option<String>,
    /// Period summaries: incidents first seen before this time.
    until: Option<String>,
    /// Values to hide: a comma-separated list of `users`, `ips`, `hosts`.
    redact: Option<String>,
}

impl ReportParams {
    fn request(&self) -> ApiResult<ReportRequest> {
        let format = match self.format.as_deref().map(str::trim) {
            None | Some("") => ReportFormat::Pdf,
            Some(text) => ReportFormat::parse(text).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "unknown report format '{text}': expected pdf, html, md, csv or json"
                ))
            })?,
        };
        let mut request = ReportRequest::new(format);
        if let Some(redact) = self.redact.as_deref().filter(|r| !r.trim().is_empty()) {
            let redaction = Redaction::parse(redact)
                .map_err(|e| ApiError::BadRequest(format!("redact: {e}")))?;
            request = request.with_redaction(redaction);
        }
        Ok(request)
    }
}

async fn summary(
    State(state): State<AppState>,
    access: Access<Read>,
    QueryParams(params): QueryParams<ReportParams>,
) -> ApiResult<Response> {
    let time = |name: &str, value: &Option<String>| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| parse_time(name, v))
            .transpose()
    };
    let range = ReportRange {
        since: time("since", &params.since)?,
        until: time("until", &params.until)?,
    };
    if let (Some(since), Some(until)) = (range.since, range.until)
        && since >= until
    {
        return Err(ApiError::BadRequest("since must be before until".into()));
    }
    let request = params.request()?.with_range(range);
    let name = format!("siren-summary-{}", request.now.format("%Y%m%d-%H%M%S"));
    render(&state, &access, request, &name).await
}

async fn incident(
    State(state): State<AppState>,
    access: Access<Read>,
    PathParams(id): PathParams<String>,
    QueryParams(params): QueryParams<ReportParams>,
) -> ApiResult<Response> {
    let id: IncidentId = id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("incident {id} not found")))?;
    let request = params.request()?.with_incidents(vec![id]);
    render(&state, &access, request, &format!("siren-incident-{id}")).await
}

/// Renders the report for the caller's tenant and sends it as a download.
async fn render(
    state: &AppState,
    access: &Access<Read>,
    request: ReportRequest,
    name: &str,
) -> ApiResult<Response> {
    let format = request.format;
    let bytes = siren_core::report::render(state.store().clone(), &access.tenant, &request)
        .await
        .map_err(|error| match error {
            ReportError::Store(error) => ApiError::from(error),
            ReportError::Request(why) => ApiError::BadRequest(why),
            other => ApiError::Internal(other.to_string()),
        })?;
    tracing::info!(
        tenant = %access.tenant, caller = %access.name, report = name,
        format = format.extension(), bytes = bytes.len(), "report rendered"
    );
    let disposition = format!("attachment; filename=\"{name}.{}\"", format.extension());
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
