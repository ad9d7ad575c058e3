//! `POST /api/v1/events` (agents and scripts send batches) and `GET /api/v1/events` (search).
//!
//! A batch is a JSON array of event documents or NDJSON (`application/x-ndjson`), optionally
//! gzip-compressed. The body limit applies before decompression and a second limit after it
//! (a small gzip bomb stops there). A body that is not JSON at all is refused as a whole (400);
//! an item that is not an event object (or, in NDJSON, a line that does not parse) is rejected
//! with its index while the rest is stored. The answer is sent once the events are committed.

use std::io::Read as _;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use siren_core::store::{EventQuery, StoredEvent};

use crate::AppState;
use crate::auth::{Access, Read, SendEvents};
use crate::error::{ApiError, ApiResult};

/// `/api/v1/events`.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/events", post(post_events).get(search_events))
}

/// The body's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFormat {
    /// A JSON array (or one object).
    Json,
    /// One JSON document per line.
    Ndjson,
}

fn body_format(headers: &HeaderMap) -> Result<BodyFormat, ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(BodyFormat::Json);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unsupported("unreadable Content-Type".to_owned()))?;
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" | "text/json" | "" => Ok(BodyFormat::Json),
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonlines"
        | "application/x-jsonlines"
        | "application/jsonl" => Ok(BodyFormat::Ndjson),
        other => Err(ApiError::Unsupported(format!(
            "Content-Type '{other}' is not accepted: use application/json (an array of events) \
             or application/x-ndjson"
        ))),
    }
}

fn is_gzip(headers: &HeaderMap) -> Result<bool, ApiError> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(false);
    };
    match value.to_str().map(|v| v.trim().to_ascii_lowercase()) {
        Ok(v) if v == "gzip" || v == "x-gzip" => Ok(true),
        Ok(v) if v == "identity" || v.is_empty() => Ok(false),
        _ => Err(ApiError::Unsupported(
            "Content-Encoding must be gzip or identity".to_owned(),
        )),
    }
}

fn too_large(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Reads the whole body within the limits, decompressing gzip.
async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Vec<u8>, ApiError> {
    let limit = state.config().body_limit;
    let gzip = is_gzip(headers)?;
    let raw = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if too_large(&e) {
            ApiError::TooLarge(format!("the body exceeds the limit of {limit} bytes"))
        } else {
            ApiError::BadRequest(format!("cannot read the body: {e}"))
        }
    })?;
    if !gzip {
        return Ok(raw.to_vec());
    }
    let unpacked_limit = state.config().decompressed_limit;
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(unpacked_limit));
    flate2::read::MultiGzDecoder::new(&raw[..])
        .take(unpacked_limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid gzip: {e}")))?;
    if out.len() > unpacked_limit {
        return Err(ApiError::TooLarge(format!(
            "the decompressed body exceeds the limit of {unpacked_limit} bytes"
        )));
    }
    Ok(out)
}

/// Splits a body into items: each a document or why it is not one.
fn parse_items(body: &[u8], format: BodyFormat) -> Result<Vec<Result<Value, String>>, ApiError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else {
        return Err(ApiError::BadRequest(
            "the body is empty: send a JSON array of events or NDJSON".to_owned(),
        ));
    };
    if format == BodyFormat::Json || body[start] == b'[' {
        return match body[start] {
            b'[' => {
                let items: Vec<Value> = serde_json::from_slice(body).map_err(|e| {
                    ApiError::BadRequest(format!("the body is not a valid JSON array: {e}"))
                })?;
                Ok(items.into_iter().map(Ok).collect())
            }
            b'{' if format == BodyFormat::Json => {
                // One document, or several one per line sent as application/json.
                match serde_json::from_slice::<Value>(body) {
                    Ok(value) => Ok(vec![Ok(value)]),
                    Err(_) => parse_lines(body),
                }
            }
            _ => Err(ApiError::BadRequest(
                "the body is not JSON: send a JSON array of events or NDJSON".to_owned(),
            )),
        };
    }
    parse_lines(body)
}

/// NDJSON: one document per line; blank lines are skipped and not counted.
fn parse_lines(body: &[u8]) -> Result<Vec<Result<Value, String>>, ApiError> {
    let items: Vec<Result<Value, String>> = body
        .split(|b| *b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.trim_ascii().is_empty())
        .map(|line| {
            serde_json::from_slice::<Value>(line).map_err(|e| format!("not a JSON document: {e}"))
        })
        .collect();
    if !items.is_empty() && items.iter().all(Result::is_err) {
        return Err(ApiError::BadRequest(
            "the body is neither a JSON array nor NDJSON: no line is a JSON document".to_owned(),
        ));
    }
    Ok(items)
}

async fn post_events(
    State(state): State<AppState>,
    access: Access<SendEvents>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let Ok(_slot) = state.ingest_slots().clone().try_acquire_owned() else {
        state.metrics().busy();
        return Err(ApiError::Busy(1));
    };
    let format = body_format(&headers)?;
    let bytes = read_body(&state, &headers, body).await?;
    let items = parse_items(&bytes, format)?;
    drop(bytes);
    let max = state.config().max_batch;
    if items.len() > max {
        return Err(ApiError::TooLarge(format!(
            "a batch of {} items exceeds the limit of {max}; send smaller batches",
            items.len()
        )));
    }
    let outcome = state
        .pipeline()
        .ingest_json(&access.tenant, items)
        .await
        .map_err(|error| {
            if siren_core::ingest::is_transient(&error) {
                tracing::warn!(%error, "ingest deferred: store busy");
                ApiError::Busy(1)
            } else {
                ApiError::Internal(error.to_string())
            }
        })?;
    state.metrics().ingested(&outcome);
    if outcome.incidents_created + outcome.incidents_updated > 0 {
        state.incidents_changed();
    }
    tracing::info!(
        tenant = %access.tenant, caller = %access.name, received = outcome.received,
        stored = outcome.stored, duplicates = outcome.duplicates, rejected = outcome.rejected.len(),
        incidents_created = outcome.incidents_created, "events ingested"
    );
    Ok(Json(json!(outcome)))
}

#[derive(Debug, Deserialize)]
struct SearchParams {
    host: Option<String>,
    event_id: Option<i64>,
    source: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<u32>,
    #[allow(dead_code)] // read by the authentication layer
    tenant: Option<String>,
}

/// Parses a time parameter: RFC 3339, a date, or an age back from now (`30m`, `24h`, `7d`).
pub fn parse_time(name: &str, text: &str) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        if let Some(t) = date.and_hms_opt(0, 0, 0) {
            return Ok(t.and_utc());
        }
    }
    let invalid = || {
        ApiError::BadRequest(format!(
            "invalid {name} '{text}': use RFC 3339, a date (2024-05-01) or an age (30m, 24h, 7d)"
        ))
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let amount: i64 = number.parse().map_err(|_| invalid())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(invalid()),
    };
    let delta =
        chrono::Duration::try_seconds(amount.saturating_mul(seconds)).ok_or_else(invalid)?;
    chrono::Utc::now()
        .checked_sub_signed(delta)
        .ok_or_else(invalid)
}

async fn search_events(
    State(state): State<AppState>,
    access: Access<Read>,
    params: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Events>> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let query = EventQuery {
        host: params.host.filter(|h| !h.is_empty()),
        event_id: params.event_id,
        source: params.source.filter(|s| !s.is_empty()),
        since: params
            .since
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| parse_time("since", s))
            .transpose()?,
        until: params
            .until
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| parse_time("until", s))
            .transpose()?,
        limit: params.limit.unwrap_or(100).clamp(1, 1000),
    };
    let events = state.store().list_events(&access.tenant, &query).await?;
    Ok(Json(Events { events }))
}

/// `GET /events`' answer, serialised straight from the stored events (no JSON tree in between).
#[derive(Serialize)]
struct Events {
    events: Vec<StoredEvent>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_of_arrays_and_lines_with_their_errors() {
        let items = parse_items(br#"[{"a":1}, 2, {"b":2}]"#, BodyFormat::Json).unwrap_or_default();
        assert_eq!(items.len(), 3);
        let lines = parse_items(b"{\"a\":1}\n\n{oops\n{\"b\":2}\r\n", BodyFormat::Ndjson)
            .unwrap_or_default();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].is_err());
        assert!(parse_items(b"not json", BodyFormat::Json).is_err());
        assert!(parse_items(b"   ", BodyFormat::Ndjson).is_err());
        assert!(parse_items(b"[{\"a\":1}", BodyFormat::Json).is_err());
        assert!(parse_items(b"garbage\nmore", BodyFormat::Ndjson).is_err());
    }
}
