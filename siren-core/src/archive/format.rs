//! The archive's file format: a part is zstd-compressed JSON Lines, a header line naming the
//! format, tenant and day, then one [`ArchivedEvent`] per line.
//!
//! JSON Lines rather than Parquet: events of different sources share no schema (an EVTX
//! record and a CloudTrail entry have different fields), so a columnar file would hold one
//! sparse column per field name ever seen, or one JSON string column, which is JSON Lines
//! with more machinery. JSON Lines keeps each event's fields exactly as stored, streams (a
//! reader never needs the whole part in memory), and stays readable with `zstdcat` and `jq`.
//! zstd compresses such text 10 to 20 times and decompresses at hundreds of MB/s.

use std::io::BufRead;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::normalize::{Diagnostic, EventSink, Location, ReadOptions};

/// The format name in a part's header line.
pub const FORMAT: &str = "siren-events";
/// The version of the format this build writes and reads.
pub const VERSION: u32 = 1;
/// How a part's header line starts: readers recognise an archive by it.
pub const HEADER_START: &[u8] = b"{\"siren_archive\":";

/// A part's first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`FORMAT`].
    pub siren_archive: String,
    /// The format version.
    pub version: u32,
    /// Whose events.
    pub tenant: String,
    /// The day (UTC) of the events' time, or of their ingest time for those without one.
    pub day: NaiveDate,
}

impl Header {
    /// The header of a part of `tenant`'s events of `day`.
    pub fn new(tenant: &str, day: NaiveDate) -> Self {
        Self {
            siren_archive: FORMAT.to_owned(),
            version: VERSION,
            tenant: tenant.to_owned(),
            day,
        }
    }

    /// Parses a header line, refusing other formats and later versions.
    pub fn parse(line: &str) -> Result<Self, String> {
        let header: Header =
            serde_json::from_str(line).map_err(|e| format!("not a SIREN archive header: {e}"))?;
        if header.siren_archive != FORMAT {
            return Err(format!(
                "archive of '{}', not of events ('{FORMAT}')",
                header.siren_archive
            ));
        }
        if header.version > VERSION {
            return Err(format!(
                "archive format version {} is newer than this build reads ({VERSION})",
                header.version
            ));
        }
        Ok(header)
    }
}

/// One archived event: the event as stored, with its de-duplication key and ingest time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchivedEvent {
    /// The store's de-duplication key, 32 hexadecimal digits: restoring keeps it, so an
    /// event restored twice, or restored while still stored, is stored once.
    pub key: String,
    /// When it was first ingested.
    pub ingested_at: DateTime<Utc>,
    /// The event.
    pub event: Event,
}

impl ArchivedEvent {
    /// The de-duplication key as bytes.
    pub fn key_bytes(&self) -> Result<[u8; 16], String> {
        let text = self.key.as_bytes();
        if text.len() != 32 {
            return Err(format!("key '{}' is not 32 hexadecimal digits", self.key));
        }
        let mut key = [0u8; 16];
        for (byte, pair) in key.iter_mut().zip(text.chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|e| e.to_string())?;
            *byte = u8::from_str_radix(pair, 16)
                .map_err(|_| format!("key '{}' is not 32 hexadecimal digits", self.key))?;
        }
        Ok(key)
    }

    /// A key in its archived form.
    pub fn key_text(key: &[u8; 16]) -> String {
        key.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The day the event is filed under: its time's, else its ingest time's (UTC).
    pub fn day(&self) -> NaiveDate {
        self.event
            .timestamp
            .unwrap_or(self.ingested_at)
            .date_naive()
    }
}

/// Reads a decompressed part as a log input: the header, then each event (for the tenant
/// `options` names). A line that is not an archived event is reported with its number and
/// skipped.
pub(crate) fn read(
    name: &str,
    reader: impl BufRead,
    options: &ReadOptions,
    sink: &mut dyn EventSink,
) -> Result<(), String> {
    let mut lines = reader.lines();
    let header = match lines.next() {
        Some(Ok(line)) => line,
        Some(Err(error)) => return Err(crate::normalize::io_reason(&error)),
        None => return Err("empty archive part".to_owned()),
    };
    Header::parse(&header)?;
    for (index, line) in lines.enumerate() {
        let number = index as u64 + 2;
        let line =
            line.map_err(|e| format!("line {number}: {}", crate::normalize::io_reason(&e)))?;
        sink.progress(line.len() as u64 + 1);
        if line.trim().is_empty() {
            continue;
        }
        let flow = match serde_json::from_str::<ArchivedEvent>(&line) {
            Ok(archived) => {
                let mut event = archived.event;
                event.tenant = options.tenant.clone();
                sink.event(event)
            }
            Err(error) => sink.diagnostic(Diagnostic {
                file: name.to_owned(),
                location: Location::Line(number),
                reason: format!("not an archived event: {error}"),
            }),
        };
        if flow.is_break() {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_bad_ones_are_named() {
        let key = [0xab; 16];
        let archived = ArchivedEvent {
            key: ArchivedEvent::key_text(&key),
            ingested_at: Utc::now(),
            event: Event::from_fields(Default::default(), Default::default()),
        };
        assert_eq!(archived.key_bytes(), Ok(key));
        let bad = ArchivedEvent {
            key: "zz".repeat(16),
            ..archived
        };
        assert!(bad.key_bytes().unwrap_err().contains("32 hexadecimal"));
    }

    /// Keeps what a reader produced.
    #[derive(Default)]
    struct Collect(Vec<Event>, Vec<Diagnostic>);
    impl EventSink for Collect {
        fn event(&mut self, event: Event) -> std::ops::ControlFlow<()> {
            self.0.push(event);
            std::ops::ControlFlow::Continue(())
        }
        fn diagnostic(&mut self, diagnostic: Diagnostic) -> std::ops::ControlFlow<()> {
            self.1.push(diagnostic);
            std::ops::ControlFlow::Continue(())
        }
    }

    #[test]
    fn compressed_logs_and_parts_are_read_and_a_bad_line_is_named() {
        use crate::normalize::{Format, read_stream};
        let options = ReadOptions::default();
        let syslog = "<38>1 2024-03-04T08:15:02Z bastion01 sshd 21960 - - Failed password\n";
        let packed = zstd::stream::encode_all(syslog.as_bytes(), 3).unwrap();
        let mut sink = Collect::default();
        let format = read_stream("auth.log.zst", None, &packed[..], &options, &mut sink);
        assert_eq!(format, Ok(Format::Syslog));
        assert_eq!(sink.0[0].host.as_deref(), Some("bastion01"));

        let day = NaiveDate::from_ymd_opt(2024, 3, 4).unwrap();
        let event = ArchivedEvent {
            key: ArchivedEvent::key_text(&[7; 16]),
            ingested_at: Utc::now(),
            event: sink.0[0].clone(),
        };
        let part = format!(
            "{}\n{}\nnot an event\n",
            serde_json::to_string(&Header::new("acme", day)).unwrap(),
            serde_json::to_string(&event).unwrap()
        );
        let packed = zstd::stream::encode_all(part.as_bytes(), 3).unwrap();
        let mut sink = Collect::default();
        let format = read_stream("part.jsonl.zst", None, &packed[..], &options, &mut sink);
        assert_eq!(format, Ok(Format::Archive));
        assert_eq!(sink.0.len(), 1);
        assert_eq!(sink.0[0].fields, event.event.fields);
        assert_eq!(
            sink.1[0].to_string(),
            "part.jsonl.zst: line 3: not an archived event: expected ident at line 1 column 2"
        );

        let twice = zstd::stream::encode_all(&packed[..], 3).unwrap();
        let error = read_stream(
            "twice.zst",
            None,
            &twice[..],
            &options,
            &mut Collect::default(),
        );
        assert!(error.unwrap_err().contains("zstd inside zstd"));
        let truncated = &packed[..packed.len() / 2];
        let mut sink = Collect::default();
        let result = read_stream("cut.zst", None, truncated, &options, &mut sink);
        assert!(
            result.is_err() || !sink.1.is_empty(),
            "a truncated part is reported"
        );
    }

    #[test]
    fn headers_of_other_formats_and_later_versions_are_refused() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let line = serde_json::to_string(&Header::new("acme", day)).unwrap();
        assert!(line.as_bytes().starts_with(HEADER_START), "{line}");
        assert_eq!(Header::parse(&line).unwrap().day, day);
        let later = line.replace("\"version\":1", "\"version\":99");
        assert!(Header::parse(&later).unwrap_err().contains("newer"));
        let other = line.replace(FORMAT, "siren-alerts");
        assert!(Header::parse(&other).unwrap_err().contains("siren-alerts"));
    }
}
