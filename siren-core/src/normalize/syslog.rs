//! The syslog reader: one message per line, RFC 5424 or RFC 3164 (BSD), parsed by
//! `syslog_loose`.
//!
//! Each line gives the fields `timestamp` (RFC 3339, UTC), `host`, `program`, `pid`, `msgid`,
//! `facility`, `severity` (the keyword: `err`, `warning`, `info`…), `message`, and every RFC
//! 5424 structured-data parameter as `sd.<id>.<param>`; a field the line does not carry is
//! left out. An RFC 3164 date has no year and no zone: it is read as UTC, in the year that puts
//! it at most a day after [`ReadOptions::now`](super::ReadOptions::now). A line without a
//! syslog header and timestamp is reported and skipped.

use std::io::BufRead;
use std::sync::LazyLock;

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Utc};
use regex::Regex;
use serde_json::Value;
use syslog_loose::{IncompleteDate, Message, ProcId, Protocol, Variant};

use super::lines::{Line, LineReader};
use super::{Diagnostic, EventSink, Location, ReadOptions};
use crate::event::{Event, Fields};

/// How often (in bytes) progress is reported.
const PROGRESS_STEP: u64 = 1 << 20;

pub(super) fn read(
    name: &str,
    reader: impl BufRead,
    options: &ReadOptions,
    sink: &mut dyn EventSink,
) -> Result<(), String> {
    let mut lines = LineReader::new(reader, options.max_record_bytes);
    let mut unreported: u64 = 0;
    while let Some((number, line)) = lines.next_line().map_err(|e| super::io_reason(&e))? {
        let outcome = match line {
            Line::TooLong(len) => {
                unreported += len;
                Err(format!(
                    "record of {len} bytes exceeds the limit of {} bytes",
                    options.max_record_bytes
                ))
            }
            Line::Text(text) => {
                unreported += text.len() as u64 + 1;
                let text = match number {
                    1 => text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text),
                    _ => text,
                };
                if text.trim_ascii().is_empty() {
                    continue;
                }
                parse_line(text, options.now)
                    .map(|fields| Event::from_fields(fields, options.tenant.clone()))
            }
        };
        let flow = match outcome {
            Ok(event) => sink.event(event),
            Err(reason) => sink.diagnostic(Diagnostic {
                file: name.to_owned(),
                location: Location::Line(number),
                reason,
            }),
        };
        if unreported >= PROGRESS_STEP {
            sink.progress(unreported);
            unreported = 0;
        }
        if flow.is_break() {
            return Ok(());
        }
    }
    sink.progress(unreported);
    Ok(())
}

/// Parses one line into fields.
fn parse_line(line: &[u8], now: DateTime<Utc>) -> Result<Fields, String> {
    let line = std::str::from_utf8(line)
        .map_err(|e| format!("not a syslog message: invalid UTF-8 ({e})"))?;
    let message = parse(line, now).ok_or_else(|| {
        "not a syslog message: no RFC 5424 or RFC 3164 header with a valid timestamp".to_owned()
    })?;
    Ok(fields(&message))
}

/// Parses a message; `None` unless it has a syslog header with a timestamp (RFC 5424 allows
/// the nil timestamp `-`).
fn parse(line: &str, now: DateTime<Utc>) -> Option<Message<&str>> {
    let get_year = move |date: IncompleteDate| year_for(date, now);
    let message =
        syslog_loose::parse_message_with_year_exact_tz(line, get_year, Some(Utc), Variant::Either)
            .ok()?;
    let header = message.timestamp.is_some() || matches!(message.protocol, Protocol::RFC5424(_));
    header.then_some(message)
}

/// The year of a date written without one: the latest that puts it no more than a day after
/// `now` (a day of slack for senders ahead of UTC).
fn year_for((month, day, hour, minute, second): IncompleteDate, now: DateTime<Utc>) -> i32 {
    let limit = now.naive_utc() + chrono::Duration::days(1);
    (0..8)
        .map(|back| now.year() - back)
        .find(|&year| {
            NaiveDate::from_ymd_opt(year, month, day)
                .and_then(|date| date.and_hms_opt(hour, minute, second))
                .is_some_and(|time| time <= limit)
        })
        .unwrap_or(now.year())
}

/// The fields of a parsed message.
fn fields(message: &Message<&str>) -> Fields {
    let mut out = Fields::default();
    if let Some(timestamp) = message.timestamp {
        let utc = timestamp.with_timezone(&Utc);
        let text = utc.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        out.insert("timestamp".to_owned(), Value::String(text));
    }
    let mut text = |name: &str, value: Option<&str>| {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            out.insert(name.to_owned(), Value::String(value.to_owned()));
        }
    };
    text("host", message.hostname);
    text("program", message.appname);
    match &message.procid {
        Some(ProcId::PID(pid)) => {
            out.insert("pid".to_owned(), Value::from(*pid));
        }
        Some(ProcId::Name(name)) if !name.is_empty() => {
            out.insert("pid".to_owned(), Value::String((*name).to_owned()));
        }
        _ => {}
    }
    let mut text = |name: &str, value: Option<&str>| {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            out.insert(name.to_owned(), Value::String(value.to_owned()));
        }
    };
    text("msgid", message.msgid);
    text("facility", message.facility.map(|f| f.as_str()));
    text("severity", message.severity.map(|s| s.as_str()));
    // RFC 5424 allows a byte order mark before the message text.
    let msg = message.msg.strip_prefix('\u{feff}').unwrap_or(message.msg);
    out.insert("message".to_owned(), Value::String(msg.to_owned()));
    for element in &message.structured_data {
        for (param, value) in element.params() {
            let key = format!("sd.{}.{}", element.id, param);
            match out.get_mut(&key) {
                // A parameter repeated within its element keeps every value.
                Some(Value::Array(values)) => values.push(Value::String(value)),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, Value::String(value)]);
                }
                None => {
                    out.insert(key, Value::String(value));
                }
            }
        }
    }
    out
}

/// A syslog header without the `<PRI>` part: a BSD date (`Jan  5 10:11:12`, optionally with
/// the year) or an RFC 3339 timestamp, then a host name and more.
static HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d{1,2}(?: \d{4})? \d{2}:\d{2}:\d{2}|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})) +\S+ +\S",
    )
    .expect("the syslog header pattern is valid")
});

/// Whether a line looks like an RFC 3164 or RFC 5424 message without a PRI part.
pub(super) fn looks_like_syslog(line: &[u8]) -> bool {
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Ok(line) = std::str::from_utf8(line) else {
        return false;
    };
    // Any year will do to recognise the shape.
    HEADER.is_match(line) && parse(line, DateTime::UNIX_EPOCH).is_some()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::super::fuzz_tests::read_bytes;
    use super::super::{Format, Location, ReadOptions};
    use super::*;

    fn options() -> ReadOptions {
        let now = Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).single();
        ReadOptions::default().with_now(now.unwrap_or_default())
    }

    #[test]
    fn rfc5424_with_structured_data() {
        let line = r#"<165>1 2024-01-05T10:11:12.003+01:00 web01 sshd 4242 ID47 [exampleSDID@32473 iut="3" eventSource="Application"][meta user="bob\"s"] Failed password for bob from 10.0.0.5 port 22"#;
        let (result, sink) = read_bytes("auth.log", line.as_bytes(), &options());
        assert_eq!(result, Ok(Format::Syslog));
        assert!(sink.diagnostics.is_empty(), "{:?}", sink.diagnostics);
        let f = &sink.events[0].fields;
        assert_eq!(f["timestamp"], json!("2024-01-05T09:11:12.003Z"));
        assert_eq!(f["host"], json!("web01"));
        assert_eq!(f["program"], json!("sshd"));
        assert_eq!(f["pid"], json!(4242));
        assert_eq!(f["msgid"], json!("ID47"));
        assert_eq!(f["facility"], json!("local4"));
        assert_eq!(f["severity"], json!("notice"));
        assert_eq!(f["sd.exampleSDID@32473.iut"], json!("3"));
        assert_eq!(f["sd.meta.user"], json!("bob\"s"));
        assert_eq!(
            f["message"],
            json!("Failed password for bob from 10.0.0.5 port 22")
        );
        let event = &sink.events[0];
        assert_eq!(event.host.as_deref(), Some("web01"));
        assert_eq!(event.source.as_deref(), Some("sshd"));
        assert_eq!(event.severity.as_deref(), Some("information"));
        assert_eq!(
            event.timestamp.map(|t| t.to_rfc3339()),
            Some("2024-01-05T09:11:12.003+00:00".to_owned())
        );
    }

    #[test]
    fn rfc3164_year_is_taken_from_the_reference_time() {
        let text = "<38>Feb 28 23:59:01 fw01 kernel: DROP IN=eth0 SRC=10.0.0.9\n\
                    Dec 31 10:00:00 fw01 sshd[77]: Accepted publickey for root\n\
                    Mar  2 11:00:00 fw01 cron[1]: tomorrow, within a day of slack\n";
        let (result, sink) = read_bytes("fw.txt", text.as_bytes(), &options());
        assert_eq!(result, Ok(Format::Syslog));
        assert!(sink.diagnostics.is_empty(), "{:?}", sink.diagnostics);
        let stamps: Vec<_> = sink
            .events
            .iter()
            .map(|e| e.fields["timestamp"].clone())
            .collect();
        assert_eq!(
            stamps,
            [
                json!("2024-02-28T23:59:01Z"),
                json!("2023-12-31T10:00:00Z"),
                json!("2024-03-02T11:00:00Z")
            ]
        );
        let f = &sink.events[1].fields;
        assert_eq!(f["program"], json!("sshd"));
        assert_eq!(f["pid"], json!(77));
        assert_eq!(f["host"], json!("fw01"));
        assert!(!f.contains_key("facility"));
        assert_eq!(sink.events[0].fields["facility"], json!("auth"));
        assert_eq!(sink.events[0].fields["severity"], json!("info"));
    }

    #[test]
    fn a_bad_line_among_good_ones_is_reported_with_its_number() {
        let text = "\u{feff}Jan  5 10:11:12 host sshd[12]: one\n\
                    this is not syslog\n\
                    \n\
                    2024-01-05T10:11:13Z host sshd: three\n\
                    Feb 30 10:11:12 host sshd[12]: no such date\n";
        let (result, sink) = read_bytes("x.log", text.as_bytes(), &options());
        assert_eq!(result, Ok(Format::Syslog));
        assert_eq!(sink.events.len(), 2);
        let lines: Vec<_> = sink
            .diagnostics
            .iter()
            .map(|d| d.location.clone())
            .collect();
        assert_eq!(lines, [Location::Line(2), Location::Line(5)]);
        assert!(sink.diagnostics[0].reason.contains("not a syslog message"));
    }

    #[test]
    fn oversized_line_and_wrong_extension() {
        let long = format!("Jan  5 10:11:12 host app: {}", "x".repeat(300));
        let text =
            format!("Jan  5 10:11:12 host app: short\n{long}\nJan  5 10:11:13 host app: end\n");
        let options = options().with_max_record_bytes(200);
        let (result, sink) = read_bytes("data.csv", text.as_bytes(), &options);
        assert_eq!(result, Ok(Format::Syslog));
        assert_eq!(sink.events.len(), 2);
        assert_eq!(sink.diagnostics.len(), 1);
        assert_eq!(sink.diagnostics[0].location, Location::Line(2));
        assert!(
            sink.diagnostics[0]
                .reason
                .contains("exceeds the limit of 200 bytes")
        );
    }

    #[test]
    fn detection_without_pri() {
        for yes in [
            "Jan  5 10:11:12 host prog[12]: msg",
            "Dec 25 2023 10:11:12 host prog: msg",
            "2024-01-05T10:11:12Z host prog: msg",
            "2024-01-05T10:11:12.5+02:00 host prog[1]: msg\r",
        ] {
            assert!(looks_like_syslog(yes.as_bytes()), "{yes}");
        }
        for no in [
            "timestamp,host,user",
            "2024-01-05T10:11:12Z,host,prog",
            "January 5 is a date",
            "Jan  5 10:11:12",
            "",
        ] {
            assert!(!looks_like_syslog(no.as_bytes()), "{no}");
        }
        let (result, _) = read_bytes("empty.log", b"", &options());
        assert!(result.is_err());
    }
}
