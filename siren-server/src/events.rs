//! `POST /api/v1/events` (agents and scripts send batches) and `GET /api/v1/events` (search).
//!
//! A batch is a JSON array of event documents or NDJSON (`application/x-ndjson`), optionally
//! gzip-compressed. The body limit applies before decompression and a second limit after it
//! (a small gzip bomb stops there). A body that is not JSON at all is refused as a whole (400);
//! an item that is not an event object (or, in NDJSON, a line that does not parse) is rejected
//! with its index while the rest is stored. The answer is sent once the events are committed.

use std::io::Read as _;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use siren_core::api::BatchOutcome;
use siren_core::event::Fields;
use siren_core::normalize::flatten::flatten_json_slice;
use siren_core::store::{EventQuery, StoredEvent};

use crate::AppState;
use crate::auth::{Access, Read, SendEvents};
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryParams;

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

/// The deepest nesting a document may have: serde_json's limit (the 128th level fails), which
/// splitting a body into items does not check by itself.
const MAX_DEPTH: usize = 127;

/// How deeply `text` (valid JSON) nests arrays and objects.
fn nesting_depth(text: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &byte in text {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Where each item of a body is (a byte range of the body), or why it is not a document.
type Items = Vec<Result<std::ops::Range<usize>, String>>;

/// The byte range of `part`, a slice of `body`.
fn span(body: &[u8], part: &str) -> std::ops::Range<usize> {
    let start = part.as_ptr() as usize - body.as_ptr() as usize;
    start..start + part.len()
}

/// Splits a body into items without parsing them into trees: each a document's place in the
/// body, or why it is not one. The documents are flattened from the text later, on the
/// batch's blocking thread ([`flatten_items`]).
fn split_items(body: &[u8], format: BodyFormat) -> Result<Items, ApiError> {
    let bom = if body.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    let start = body[bom..].iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start.map(|s| s + bom) else {
        return Err(ApiError::BadRequest(
            "the body is empty: send a JSON array of events or NDJSON".to_owned(),
        ));
    };
    if format == BodyFormat::Json || body[start] == b'[' {
        return match body[start] {
            b'[' => {
                let items: Vec<&RawValue> = serde_json::from_slice(&body[bom..]).map_err(|e| {
                    ApiError::BadRequest(format!("the body is not a valid JSON array: {e}"))
                })?;
                if nesting_depth(&body[start..]) > MAX_DEPTH {
                    return Err(ApiError::BadRequest(format!(
                        "the body is not a valid JSON array: it nests deeper than {MAX_DEPTH} levels"
                    )));
                }
                Ok(items
                    .iter()
                    .map(|item| Ok(span(body, item.get())))
                    .collect())
            }
            b'{' if format == BodyFormat::Json => {
                // One document, or several one per line sent as application/json.
                match serde_json::from_slice::<&RawValue>(&body[bom..]) {
                    Ok(item) if nesting_depth(item.get().as_bytes()) <= MAX_DEPTH => {
                        Ok(vec![Ok(span(body, item.get()))])
                    }
                    _ => split_lines(body),
                }
            }
            _ => Err(ApiError::BadRequest(
                "the body is not JSON: send a JSON array of events or NDJSON".to_owned(),
            )),
        };
    }
    split_lines(body)
}

/// NDJSON: one document per line; blank lines are skipped and not counted.
fn split_lines(body: &[u8]) -> Result<Items, ApiError> {
    let mut items = Vec::new();
    let mut from = 0;
    for line in body.split(|b| *b == b'\n') {
        let start = from;
        from += line.len() + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = if start == 0 {
            line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line)
        } else {
            line
        };
        if line.trim_ascii().is_empty() {
            continue;
        }
        let item = match serde_json::from_slice::<&RawValue>(line) {
            Ok(item) if nesting_depth(item.get().as_bytes()) > MAX_DEPTH => Err(format!(
                "not a JSON document: it nests deeper than {MAX_DEPTH} levels"
            )),
            Ok(item) => Ok(span(body, item.get())),
            Err(e) => Err(format!("not a JSON document: {e}")),
        };
        items.push(item);
    }
    if !items.is_empty() && items.iter().all(Result::is_err) {
        return Err(ApiError::BadRequest(
            "the body is neither a JSON array nor NDJSON: no line is a JSON document".to_owned(),
        ));
    }
    Ok(items)
}

/// Flattens each item of `body` straight from its text.
fn flatten_items(body: &[u8], items: Items) -> Vec<Result<Fields, String>> {
    items
        .into_iter()
        .map(|item| item.and_then(|range| flatten_json_slice(&body[range])))
        .collect()
}

async fn post_events(
    State(state): State<AppState>,
    access: Access<SendEvents>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<BatchOutcome>> {
    let Ok(_slot) = state.ingest_slots().clone().try_acquire_owned() else {
        state.metrics().busy();
        return Err(ApiError::Busy(1));
    };
    let format = body_format(&headers)?;
    let bytes = read_body(&state, &headers, body).await?;
    let items = split_items(&bytes, format)?;
    let max = state.config().max_batch;
    if items.len() > max {
        return Err(ApiError::TooLarge(format!(
            "a batch of {} items exceeds the limit of {max}; send smaller batches",
            items.len()
        )));
    }
    let outcome = state
        .pipeline()
        .ingest_flattened(&access.tenant, move || flatten_items(&bytes, items))
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
    Ok(Json(outcome))
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
    QueryParams(params): QueryParams<SearchParams>,
) -> ApiResult<Json<Events>> {
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
        let items =
            |body: &[u8], format| split_items(body, format).map(|items| flatten_items(body, items));
        let array = items(br#"[{"a":1}, 2, {"b":2}]"#, BodyFormat::Json).unwrap_or_default();
        assert_eq!(array.len(), 3);
        assert!(array[0].is_ok() && array[1].is_err() && array[2].is_ok());
        let lines = items(
            b"\xEF\xBB\xBF{\"a\":1}\n\n{oops\n{\"b\":2}\r\n",
            BodyFormat::Ndjson,
        )
        .unwrap_or_default();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].is_ok() && lines[1].is_err() && lines[2].is_ok());
        let one = items(b" {\"a\": \"x\"} ", BodyFormat::Json).unwrap_or_default();
        assert_eq!(one.len(), 1);
        assert!(items(b"not json", BodyFormat::Json).is_err());
        assert!(items(b"   ", BodyFormat::Ndjson).is_err());
        assert!(items(b"[{\"a\":1}", BodyFormat::Json).is_err());
        assert!(items(b"garbage\nmore", BodyFormat::Ndjson).is_err());
    }

    #[test]
    fn nesting_is_limited_as_serde_json_limits_it() {
        let nested = |depth: usize| {
            let mut text = "[".repeat(depth);
            text.push_str(&"]".repeat(depth));
            text
        };
        for depth in [MAX_DEPTH, MAX_DEPTH + 1] {
            let text = nested(depth);
            assert_eq!(nesting_depth(text.as_bytes()), depth);
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&text).is_ok(),
                depth <= MAX_DEPTH
            );
            assert_eq!(
                split_items(text.as_bytes(), BodyFormat::Json).is_ok(),
                depth <= MAX_DEPTH
            );
        }
        assert_eq!(nesting_depth(br#"{"a": "[[[\"{{"}"#), 1);
    }
}
