//! Derivation of the normalised core fields (`timestamp`, `host`, `user`, …) from the
//! original fields, whichever source they came from.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;

use crate::event::Event;

/// Original field names that carry each core field, in order of preference.
const TIMESTAMP: &[&str] = &[
    "TimeCreated",
    "@timestamp",
    "timestamp",
    "time",
    "UtcTime",
    "EventTime",
    "TimeGenerated",
    "date",
];
const HOST: &[&str] = &[
    "Computer",
    "host.name",
    "hostname",
    "Hostname",
    "host",
    "computer_name",
    "HostName",
];
const SOURCE: &[&str] = &[
    "Channel",
    "Provider_Name",
    "source",
    "program",
    "app_name",
    "SourceName",
];
const EVENT_ID: &[&str] = &["EventID", "event.code", "event_id", "EventId"];
const RECORD_ID: &[&str] = &["EventRecordID", "record_id", "RecordNumber"];
const SEVERITY: &[&str] = &["Level", "log.level", "severity", "Severity"];
const USER: &[&str] = &[
    "TargetUserName",
    "User",
    "SubjectUserName",
    "UserName",
    "AccountName",
    "user.name",
    "user",
    "username",
];
const SRC_IP: &[&str] = &[
    "IpAddress",
    "SourceIp",
    "SourceAddress",
    "ClientAddress",
    "source.ip",
    "src_ip",
    "SrcIP",
    "src",
];
const DST_IP: &[&str] = &[
    "DestinationIp",
    "DestAddress",
    "destination.ip",
    "dst_ip",
    "DstIP",
    "dst",
];
const PROCESS: &[&str] = &[
    "Image",
    "NewProcessName",
    "ProcessName",
    "Application",
    "process.executable",
    "process",
];
const COMMAND_LINE: &[&str] = &["CommandLine", "process.command_line", "command_line"];
const PARENT: &[&str] = &[
    "ParentImage",
    "ParentProcessName",
    "process.parent.executable",
    "parent_process",
];

/// Each core field's names, in order of preference (the order of the `Slots` rows).
const CORE: [&[&str]; 12] = [
    TIMESTAMP,
    HOST,
    SOURCE,
    EVENT_ID,
    RECORD_ID,
    SEVERITY,
    USER,
    SRC_IP,
    DST_IP,
    PROCESS,
    COMMAND_LINE,
    PARENT,
];

/// The most names any core field has.
const MOST_NAMES: usize = 8;

/// Per original field name: which core field it carries, and its rank among that field's
/// names.
static ROLES: std::sync::LazyLock<foldhash::HashMap<&'static str, (usize, usize)>> =
    std::sync::LazyLock::new(|| {
        let mut roles = foldhash::HashMap::default();
        for (core, names) in CORE.iter().enumerate() {
            for (rank, name) in names.iter().enumerate() {
                roles.entry(*name).or_insert((core, rank));
            }
        }
        roles
    });

/// Fills the core fields of `event` from its original fields.
pub fn derive_core(event: &mut Event) {
    // One pass over the event's fields (one cheap lookup each) rather than a lookup of every
    // candidate name: each core field's candidates, by rank.
    let mut slots: [[Option<&Value>; MOST_NAMES]; 12] = [[None; MOST_NAMES]; 12];
    for (name, value) in &event.fields {
        if let Some(&(core, rank)) = ROLES.get(name.as_str()) {
            slots[core][rank] = Some(value);
        }
    }
    let [
        timestamp,
        host,
        source,
        event_id,
        record_id,
        level,
        user,
        src_ip,
        dst_ip,
        process,
        command_line,
        parent,
    ] = &slots;
    event.timestamp = first(timestamp, parse_timestamp);
    event.host = first(host, text);
    event.source = first(source, text);
    event.event_id = first(event_id, integer);
    event.record_id = first(record_id, integer);
    event.severity = first(level, severity);
    event.user = first(user, text);
    event.src_ip = first(src_ip, text);
    event.dst_ip = first(dst_ip, text);
    event.process = first(process, text);
    event.command_line = first(command_line, text);
    event.parent_process = first(parent, text);
}

/// The first candidate, by rank, whose value `parse` accepts.
fn first<T>(candidates: &[Option<&Value>], parse: fn(&Value) -> Option<T>) -> Option<T> {
    candidates.iter().flatten().find_map(|v| parse(v))
}

/// Text of a scalar; Windows' placeholders for "nothing" (`-`, empty) count as absent.
fn text(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!text.is_empty() && text != "-").then_some(text)
}

fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Windows levels (0–5), syslog keywords and common words, onto one scale.
fn severity(value: &Value) -> Option<String> {
    let word = match value {
        Value::Number(n) => match n.as_i64()? {
            1 => "critical",
            2 => "error",
            3 => "warning",
            0 | 4 => "information",
            5 => "verbose",
            _ => return None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "0" | "4" | "info" | "information" | "informational" | "notice" => "information",
            "1" | "critical" | "crit" | "alert" | "emerg" | "emergency" | "fatal" => "critical",
            "2" | "error" | "err" => "error",
            "3" | "warning" | "warn" => "warning",
            "5" | "verbose" | "debug" | "trace" => "verbose",
            _ => return None,
        },
        _ => return None,
    };
    Some(word.to_owned())
}

/// RFC 3339 / ISO 8601 (an offset-less time is UTC), or Unix seconds / milliseconds.
pub(crate) fn parse_timestamp(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::String(s) => parse_timestamp_str(s.trim()),
        Value::Number(n) => {
            let n = n.as_f64()?;
            // Past the year 2286 in seconds, it must be milliseconds.
            let millis = if n.abs() < 1e10 { n * 1000.0 } else { n };
            Utc.timestamp_millis_opt(millis as i64).single()
        }
        _ => None,
    }
}

/// Parses a timestamp string in the forms logs use.
pub(crate) fn parse_timestamp_str(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f %z"] {
        if let Ok(t) = DateTime::parse_from_str(s, format) {
            return Some(t.with_timezone(&Utc));
        }
    }
    let naive = s.trim_end_matches('Z');
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, format) {
            return Some(t.and_utc());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Fields, TenantId};
    use serde_json::json;

    fn event(value: Value) -> Event {
        let Value::Object(fields) = value else {
            panic!("test input must be an object")
        };
        Event::from_fields(fields.into_iter().collect::<Fields>(), TenantId::default())
    }

    #[test]
    fn windows_logon_failure() {
        let e = event(
            json!({"EventID": 4625, "Channel": "Security", "Computer": "dc01",
            "TimeCreated": "2021-04-22T10:09:34.123456Z", "EventRecordID": 7, "Level": 0,
            "SubjectUserName": "-", "TargetUserName": "bob", "IpAddress": "10.1.2.3"}),
        );
        assert_eq!(e.event_id, Some(4625));
        assert_eq!(e.record_id, Some(7));
        assert_eq!(e.host.as_deref(), Some("dc01"));
        assert_eq!(e.source.as_deref(), Some("Security"));
        assert_eq!(e.user.as_deref(), Some("bob"));
        assert_eq!(e.src_ip.as_deref(), Some("10.1.2.3"));
        assert_eq!(e.severity.as_deref(), Some("information"));
        assert_eq!(
            e.timestamp.unwrap().to_rfc3339(),
            "2021-04-22T10:09:34.123456+00:00"
        );
    }

    #[test]
    fn placeholders_are_absent_and_fallbacks_apply() {
        let e = event(json!({"TargetUserName": "-", "SubjectUserName": "alice",
            "NewProcessName": "C:\\x.exe", "ParentProcessName": "C:\\p.exe"}));
        assert_eq!(e.user.as_deref(), Some("alice"));
        assert_eq!(e.process.as_deref(), Some("C:\\x.exe"));
        assert_eq!(e.parent_process.as_deref(), Some("C:\\p.exe"));
    }

    #[test]
    fn timestamps_in_common_forms() {
        for (input, expected) in [
            (json!("2021-01-02 03:04:05"), "2021-01-02T03:04:05+00:00"),
            (
                json!("2021-01-02T03:04:05+02:00"),
                "2021-01-02T01:04:05+00:00",
            ),
            (json!(1609556645), "2021-01-02T03:04:05+00:00"),
            (json!(1609556645000_i64), "2021-01-02T03:04:05+00:00"),
        ] {
            assert_eq!(
                parse_timestamp(&input).unwrap().to_rfc3339(),
                expected,
                "{input}"
            );
        }
        assert!(parse_timestamp(&json!("yesterday")).is_none());
    }

    #[test]
    fn every_core_field_has_room_for_its_names_and_no_name_serves_two() {
        let mut seen = std::collections::HashSet::new();
        for names in CORE {
            assert!(names.len() <= MOST_NAMES, "{names:?}");
            for name in names {
                assert!(seen.insert(name), "{name} serves two core fields");
            }
        }
    }

    #[test]
    fn preference_does_not_depend_on_field_order() {
        let e = event(json!({"ProcessName": "C:\\late.exe", "User": "-",
            "SubjectUserName": "carol", "Image": "C:\\first.exe", "TargetUserName": "dave"}));
        assert_eq!(e.process.as_deref(), Some("C:\\first.exe"));
        assert_eq!(e.user.as_deref(), Some("dave"));
    }
}
