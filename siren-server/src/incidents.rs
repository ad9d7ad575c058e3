//! `/api/v1/incidents`: list (filters, cursor pages), detail (the newest timeline entries and
//! notes, the first alerts and events, each with the cursor of the rest), the timeline, alerts
//! and events page by page, and the analyst's actions (assign, status, notes). Another
//! tenant's incident is "not found".

use axum::extract::State;
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use siren_core::api::Timeline;
use siren_core::incident::{
    Incident, IncidentFilter, IncidentId, IncidentPage, Resolution, Severity, Status,
    TimelineEntry, TimelineQuery,
};
use siren_core::store::server::{AlertPage, StoredAlert};
use siren_core::store::{EventPage, StoredEvent};

use crate::AppState;
use crate::auth::{Access, ChangeIncidents, Read};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, PathParams, QueryParams};

/// Timeline entries shown with an incident (the newest), and a timeline page by default.
const DETAIL_TIMELINE: u32 = 50;
/// Notes shown with an incident (the newest).
const DETAIL_NOTES: u32 = 100;
/// Alerts shown with an incident (the first), and an alerts page by default.
const DETAIL_ALERTS: u32 = 100;
/// Triggering events shown with an incident (the first), and an events page by default.
const DETAIL_EVENTS: u32 = 50;
/// The largest page of timeline entries, alerts or events.
const MAX_PAGE: u32 = 500;

/// `/api/v1/incidents…`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/incidents", get(list))
        .route("/api/v1/incidents/{id}", get(detail))
        .route("/api/v1/incidents/{id}/timeline", get(timeline))
        .route("/api/v1/incidents/{id}/alerts", get(alerts))
        .route("/api/v1/incidents/{id}/events", get(events))
        .route("/api/v1/incidents/{id}/assign", post(assign))
        .route("/api/v1/incidents/{id}/status", post(status))
        .route("/api/v1/incidents/{id}/notes", post(note))
}

#[derive(Debug, Deserialize)]
struct ListParams {
    status: Option<String>,
    severity: Option<String>,
    assignee: Option<String>,
    since: Option<String>,
    q: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

fn incident_id(text: &str) -> Result<IncidentId, ApiError> {
    // A malformed id names no incident of this tenant.
    text.parse()
        .map_err(|_| ApiError::NotFound(format!("incident {text} not found")))
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Whether an incident matches a free-text search (title, hosts, users, IPs, rules,
/// techniques, assignee), case-insensitively.
fn matches_text(incident: &siren_core::incident::Incident, needle: &str) -> bool {
    let hit = |s: &str| s.to_lowercase().contains(needle);
    hit(&incident.title)
        || incident.assignee.as_deref().is_some_and(hit)
        || incident.id.to_string() == needle.trim_start_matches('#')
        || [
            &incident.hosts,
            &incident.users,
            &incident.ips,
            &incident.rule_ids,
            &incident.techniques,
        ]
        .iter()
        .any(|list| list.iter().any(|s| hit(s)))
}

async fn list(
    State(state): State<AppState>,
    access: Access<Read>,
    QueryParams(params): QueryParams<ListParams>,
) -> ApiResult<Response> {
    let mut filter = IncidentFilter {
        status: non_empty(params.status)
            .map(|s| {
                Status::parse(&s)
                    .ok_or_else(|| ApiError::BadRequest(format!("unknown status '{s}'")))
            })
            .transpose()?,
        severity: non_empty(params.severity)
            .map(|s| {
                Severity::parse(&s)
                    .ok_or_else(|| ApiError::BadRequest(format!("unknown severity '{s}'")))
            })
            .transpose()?,
        assignee: non_empty(params.assignee),
        since: non_empty(params.since)
            .map(|s| crate::events::parse_time("since", &s))
            .transpose()?,
        cursor: non_empty(params.cursor),
        limit: params.limit.unwrap_or(50).clamp(1, 500),
    };
    let Some(needle) = non_empty(params.q).map(|q| q.to_lowercase()) else {
        let page = state
            .store()
            .list_incidents(&access.tenant, &filter)
            .await?;
        return Ok(Json(page).into_response());
    };
    // A text search reads pages until it has a page of matches (or 20 pages were read),
    // and hands back the cursor where it stopped.
    let wanted = filter.limit as usize;
    filter.limit = 500;
    let mut found = Vec::new();
    let mut next = None;
    for _ in 0..20 {
        let page = state
            .store()
            .list_incidents(&access.tenant, &filter)
            .await?;
        found.extend(
            page.incidents
                .into_iter()
                .filter(|i| matches_text(i, &needle)),
        );
        next = page.next_cursor;
        if found.len() >= wanted || next.is_none() {
            break;
        }
        filter.cursor = next.clone();
    }
    found.truncate(wanted);
    Ok(Json(IncidentPage {
        incidents: found,
        next_cursor: next,
    })
    .into_response())
}

async fn detail(
    State(state): State<AppState>,
    access: Access<Read>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<Detail>> {
    let id = incident_id(&id)?;
    let store = state.store();
    let incident = store.get_incident(&access.tenant, id).await?;
    let timeline = store
        .incident_timeline_page(
            &access.tenant,
            id,
            &TimelineQuery {
                limit: DETAIL_TIMELINE,
                ..TimelineQuery::default()
            },
        )
        .await?;
    let notes = store
        .incident_timeline_page(
            &access.tenant,
            id,
            &TimelineQuery {
                notes_only: true,
                limit: DETAIL_NOTES,
                ..TimelineQuery::default()
            },
        )
        .await?;
    let alerts = store
        .incident_alerts(&access.tenant, id, None, DETAIL_ALERTS)
        .await?;
    let events = store
        .incident_events_page(&access.tenant, id, None, DETAIL_EVENTS)
        .await?;
    Ok(Json(Detail {
        incident,
        timeline: timeline.entries,
        timeline_total: timeline.total,
        timeline_before: timeline.before,
        notes: notes.entries,
        notes_total: notes.total,
        alerts: alerts.alerts,
        alerts_after: alerts.after,
        events: events.events,
        events_after: events.after,
    }))
}

/// `GET /incidents/{id}`'s answer, serialised straight from the store's types (no JSON tree
/// in between: the events carry all of their fields).
#[derive(Serialize)]
struct Detail {
    incident: Incident,
    timeline: Vec<TimelineEntry>,
    timeline_total: u64,
    timeline_before: Option<String>,
    notes: Vec<TimelineEntry>,
    notes_total: u64,
    alerts: Vec<StoredAlert>,
    alerts_after: Option<String>,
    events: Vec<StoredEvent>,
    events_after: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TimelineParams {
    before: Option<String>,
    notes: Option<bool>,
    limit: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct AfterParams {
    after: Option<String>,
    limit: Option<u32>,
}

/// The incident's timeline, newest entries first page by page (each page oldest first).
async fn timeline(
    State(state): State<AppState>,
    access: Access<Read>,
    PathParams(id): PathParams<String>,
    QueryParams(params): QueryParams<TimelineParams>,
) -> ApiResult<Json<Timeline>> {
    let id = incident_id(&id)?;
    let store = state.store();
    // Another tenant's incident is not found.
    store.get_incident(&access.tenant, id).await?;
    let page = store
        .incident_timeline_page(
            &access.tenant,
            id,
            &TimelineQuery {
                before: non_empty(params.before),
                notes_only: params.notes.unwrap_or(false),
                limit: params.limit.unwrap_or(DETAIL_TIMELINE).clamp(1, MAX_PAGE),
            },
        )
        .await?;
    Ok(Json(page.into()))
}

/// The incident's alerts, oldest first, page by page.
async fn alerts(
    State(state): State<AppState>,
    access: Access<Read>,
    PathParams(id): PathParams<String>,
    QueryParams(params): QueryParams<AfterParams>,
) -> ApiResult<Json<AlertPage>> {
    let id = incident_id(&id)?;
    let store = state.store();
    store.get_incident(&access.tenant, id).await?;
    let after = non_empty(params.after);
    let page = store
        .incident_alerts(
            &access.tenant,
            id,
            after.as_deref(),
            params.limit.unwrap_or(DETAIL_ALERTS).clamp(1, MAX_PAGE),
        )
        .await?;
    Ok(Json(page))
}

/// The events that triggered the incident's alerts, in alert order, page by page.
async fn events(
    State(state): State<AppState>,
    access: Access<Read>,
    PathParams(id): PathParams<String>,
    QueryParams(params): QueryParams<AfterParams>,
) -> ApiResult<Json<EventPage>> {
    let id = incident_id(&id)?;
    let store = state.store();
    store.get_incident(&access.tenant, id).await?;
    let after = non_empty(params.after);
    let page = store
        .incident_events_page(
            &access.tenant,
            id,
            after.as_deref(),
            params.limit.unwrap_or(DETAIL_EVENTS).clamp(1, MAX_PAGE),
        )
        .await?;
    Ok(Json(page))
}

#[derive(Debug, Deserialize)]
struct AssignRequest {
    assignee: String,
}

async fn assign(
    State(state): State<AppState>,
    access: Access<ChangeIncidents>,
    PathParams(id): PathParams<String>,
    JsonBody(request): JsonBody<AssignRequest>,
) -> ApiResult<Json<Incident>> {
    let id = incident_id(&id)?;
    let incident = state
        .store()
        .assign_incident(&access.tenant, id, request.assignee.trim(), &access.actor())
        .await?;
    state.changes().wake();
    Ok(Json(incident))
}

#[derive(Debug, Deserialize)]
struct StatusRequest {
    status: String,
    #[serde(default)]
    resolution: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

async fn status(
    State(state): State<AppState>,
    access: Access<ChangeIncidents>,
    PathParams(id): PathParams<String>,
    JsonBody(request): JsonBody<StatusRequest>,
) -> ApiResult<Json<Incident>> {
    let id = incident_id(&id)?;
    let to = Status::parse(&request.status)
        .ok_or_else(|| ApiError::BadRequest(format!("unknown status '{}'", request.status)))?;
    let resolution = non_empty(request.resolution)
        .map(|r| {
            Resolution::parse(&r).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "unknown resolution '{r}': use true_positive, false_positive or benign"
                ))
            })
        })
        .transpose()?;
    let incident = state
        .store()
        .change_status(
            &access.tenant,
            id,
            to,
            resolution,
            request.note.as_deref(),
            &access.actor(),
        )
        .await?;
    state.changes().wake();
    Ok(Json(incident))
}

#[derive(Debug, Deserialize)]
struct NoteRequest {
    text: String,
}

/// The longest note accepted (characters).
const MAX_NOTE: usize = 20_000;

async fn note(
    State(state): State<AppState>,
    access: Access<ChangeIncidents>,
    PathParams(id): PathParams<String>,
    JsonBody(request): JsonBody<NoteRequest>,
) -> ApiResult<Json<Incident>> {
    let id = incident_id(&id)?;
    if request.text.chars().count() > MAX_NOTE {
        return Err(ApiError::BadRequest(format!(
            "a note has at most {MAX_NOTE} characters"
        )));
    }
    let incident = state
        .store()
        .add_note(&access.tenant, id, &request.text, &access.actor())
        .await?;
    state.changes().wake();
    Ok(Json(incident))
}
