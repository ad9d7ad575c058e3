//! A correlation hit of `siren hunt` as a timeline line: its public JSON object, and the
//! summary the table and CSV forms show in their `correlation` column.

use chrono::SecondsFormat;
use serde::Serialize;
use serde_json::{Map, Value};
use siren_core::hunt::HuntCorrelation;
use siren_core::rules::{CorrelationType, RuleKind, RuleSet};

/// An event time as detections print theirs.
fn time_text(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// One correlation hit as the public JSON object of `siren hunt`: the correlation rule's
/// id, title, level and tags like a detection's, at the time the condition held, with a
/// `correlation` object in place of the event.
#[derive(Serialize)]
struct CorrelationJson<'a> {
    timestamp: String,
    rule_id: Option<&'a str>,
    rule_title: &'a str,
    level: Option<&'static str>,
    tags: &'a [String],
    /// The host, when every event behind the hit is from one.
    host: Option<&'a str>,
    /// The input, when every event behind the hit is from one.
    file: Option<&'a str>,
    correlation: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    #[serde(rename = "type")]
    kind: CorrelationType,
    /// The `group-by` fields and this group's values (null: the events lack the field).
    group: Map<String, Value>,
    timespan: String,
    first_seen: String,
    last_seen: String,
    /// The value that met the condition (a count for the count types).
    value: Value,
    /// How many matches the window held.
    matches: usize,
    events: Vec<EventJson<'a>>,
    events_omitted: usize,
}

#[derive(Serialize)]
struct EventJson<'a> {
    file: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    record_id: Option<i64>,
    index: u64,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<&'a str>,
}

/// The single value all `values` share, if they are all the same and there is one.
fn only<'a>(mut values: impl Iterator<Item = Option<&'a str>>) -> Option<&'a str> {
    let first = values.next()??;
    values.all(|v| v == Some(first)).then_some(first)
}

/// A count as an integer, any other value as it is.
fn number(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() < 9_007_199_254_740_992.0 {
        Value::from(value as i64)
    } else {
        serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
    }
}

/// The hit as one line of JSON (UTF-8, without the newline).
pub fn to_json(rules: &RuleSet, found: &HuntCorrelation) -> Vec<u8> {
    let hit = &found.hit;
    let rule = &rules.rules()[hit.rule];
    let timespan = match &rule.kind {
        RuleKind::Correlation(c) => humantime::format_duration(c.timespan).to_string(),
        _ => String::new(),
    };
    let records = &found.records;
    let line = CorrelationJson {
        timestamp: time_text(hit.last_seen),
        rule_id: rule.id.as_ref().map(|id| id.as_str()),
        rule_title: &rule.title,
        level: rule.level.map(|l| l.as_str()),
        tags: &rule.tags,
        host: only(records.iter().map(|r| r.host.as_deref())),
        file: only(records.iter().map(|r| Some(&*r.file))),
        correlation: Detail {
            kind: hit.kind,
            group: hit
                .group
                .iter()
                .map(|(field, value)| {
                    (
                        field.clone(),
                        value.clone().map_or(Value::Null, Value::from),
                    )
                })
                .collect(),
            timespan,
            first_seen: time_text(hit.first_seen),
            last_seen: time_text(hit.last_seen),
            value: number(hit.value),
            matches: hit.matches,
            events: records
                .iter()
                .map(|r| EventJson {
                    file: &r.file,
                    record_id: r.record_id,
                    index: r.index,
                    timestamp: time_text(r.timestamp),
                    host: r.host.as_deref(),
                })
                .collect(),
            events_omitted: hit.events_omitted,
        },
    };
    serde_json::to_vec(&line).unwrap_or_default()
}

/// The `correlation` cell of a timeline line (empty for a detection): the group, the type,
/// value and timespan, and the events behind the hit by input, `#` record number or `@`
/// place in the input; at most `max_events` of them (`None`: all).
pub fn cell(line: &Value, max_events: Option<usize>) -> String {
    let Some(detail) = line.get("correlation") else {
        return String::new();
    };
    let group = detail["group"]
        .as_object()
        .map(|g| {
            g.iter()
                .map(|(field, value)| format!("{field}={}", crate::output::cell(value)))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let events = detail["events"].as_array().map_or(&[][..], Vec::as_slice);
    let shown = max_events.unwrap_or(usize::MAX).min(events.len());
    let mut by_file: Vec<(&str, Vec<String>)> = Vec::new();
    for event in &events[..shown] {
        let file = event["file"].as_str().unwrap_or_default();
        let at = match event["record_id"].as_i64() {
            Some(record) => format!("#{record}"),
            None => format!("@{}", event["index"]),
        };
        match by_file.last_mut() {
            Some((f, ats)) if *f == file => ats.push(at),
            _ => by_file.push((file, vec![at])),
        }
    }
    let mut records = by_file
        .iter()
        .map(|(file, ats)| format!("{file} {}", ats.join(" ")))
        .collect::<Vec<_>>()
        .join(", ");
    let more = events.len() - shown + detail["events_omitted"].as_u64().unwrap_or(0) as usize;
    if more > 0 {
        records.push_str(&format!(" (+{more} more)"));
    }
    format!(
        "{group}; {} {} in {}; {} matches: {records}",
        crate::output::cell(&detail["type"]),
        detail["value"],
        crate::output::cell(&detail["timespan"]),
        detail["matches"],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cell_lists_the_group_and_the_records_by_file() {
        let line = serde_json::json!({"correlation": {
            "type": "event_count", "group": {"User": "bob", "Ip": null}, "timespan": "5m",
            "value": 3, "matches": 3, "events_omitted": 0, "events": [
                {"file": "a.evtx", "record_id": 7, "index": 1},
                {"file": "a.evtx", "record_id": 9, "index": 2},
                {"file": "b.jsonl", "index": 4}]}});
        assert_eq!(
            cell(&line, None),
            "User=bob Ip=; event_count 3 in 5m; 3 matches: a.evtx #7 #9, b.jsonl @4"
        );
        assert_eq!(
            cell(&line, Some(1)),
            "User=bob Ip=; event_count 3 in 5m; 3 matches: a.evtx #7 (+2 more)"
        );
        assert_eq!(cell(&serde_json::json!({"rule_title": "x"}), None), "");
    }

    #[test]
    fn counts_print_as_integers() {
        assert_eq!(number(5.0), Value::from(5));
        assert_eq!(number(2.5), serde_json::json!(2.5));
    }
}
