//! The CSV reader: a header row, then one event per row, with the delimiter (comma,
//! semicolon or tab) taken from the header line.
//!
//! Each row becomes flat fields named by the header, values as strings with surrounding
//! whitespace trimmed. **Empty cells are left out**, the way the other readers leave out what
//! an event does not carry, so `field: null` in a rule matches them. A header name used twice
//! gets `_2`, `_3`… and an empty one `column<N>`. A row with a different number of cells than
//! the header, or larger than [`ReadOptions::max_record_bytes`], is reported with its line and
//! skipped. Quoted cells may span lines.

use std::io::BufRead;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

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
    let mut header: Option<(u8, Vec<String>)> = None;
    // A record whose quoted cell continues on the next line: its first line and bytes so far.
    let mut pending: Option<(u64, Vec<u8>)> = None;
    loop {
        let next = lines.next_line().map_err(|e| super::io_reason(&e))?;
        let (number, text) = match next {
            None => break,
            Some((number, Line::TooLong(len))) => {
                unreported += len;
                let start = pending.take().map_or(number, |(start, _)| start);
                let reason = format!(
                    "record of more than {} bytes exceeds the limit of {} bytes",
                    len, options.max_record_bytes
                );
                if report(sink, name, start, reason).is_break() {
                    return Ok(());
                }
                continue;
            }
            Some((number, Line::Text(text))) => (number, text),
        };
        unreported += text.len() as u64 + 1;
        let text = match number {
            1 => text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text),
            _ => text,
        };
        let (start, record) = match pending.take() {
            Some((start, mut record)) => {
                record.push(b'\n');
                record.extend_from_slice(text);
                (start, record)
            }
            None if text.trim_ascii().is_empty() => continue,
            None => (number, text.to_vec()),
        };
        if memchr::memchr_iter(b'"', &record).count() % 2 == 1 {
            // A quoted cell goes on: wait for the rest, within the size limit.
            if record.len() > options.max_record_bytes {
                let reason = format!(
                    "record of more than {} bytes exceeds the limit of {} bytes",
                    record.len(),
                    options.max_record_bytes
                );
                if report(sink, name, start, reason).is_break() {
                    return Ok(());
                }
            } else {
                pending = Some((start, record));
            }
            continue;
        }
        let flow = match &header {
            None => {
                let delimiter = delimiter_of(&record);
                let names = parse_record(&record, delimiter)
                    .map_err(|reason| format!("unreadable CSV header: {reason}"))?;
                header = Some((delimiter, header_names(names)));
                continue;
            }
            Some((delimiter, names)) => match row(&record, *delimiter, names) {
                Ok(fields) => sink.event(Event::from_fields(fields, options.tenant.clone())),
                Err(reason) => report(sink, name, start, reason),
            },
        };
        if unreported >= PROGRESS_STEP {
            sink.progress(unreported);
            unreported = 0;
        }
        if flow.is_break() {
            return Ok(());
        }
    }
    if let Some((start, _)) = pending {
        let reason = "the input ends inside a quoted cell: unterminated quote".to_owned();
        let _ = report(sink, name, start, reason);
    }
    sink.progress(unreported);
    Ok(())
}

fn report(
    sink: &mut dyn EventSink,
    name: &str,
    line: u64,
    reason: String,
) -> std::ops::ControlFlow<()> {
    sink.diagnostic(Diagnostic {
        file: name.to_owned(),
        location: Location::Line(line),
        reason,
    })
}

/// The fields of one data row.
fn row(record: &[u8], delimiter: u8, names: &[String]) -> Result<Fields, String> {
    let cells = parse_record(record, delimiter)?;
    if cells.len() != names.len() {
        return Err(format!(
            "row has {} cells, the header has {}",
            cells.len(),
            names.len()
        ));
    }
    let mut fields = Fields::default();
    for (name, cell) in names.iter().zip(cells) {
        if !cell.is_empty() {
            fields.insert(name.clone(), Value::String(cell));
        }
    }
    Ok(fields)
}

/// The cells of one record, trimmed.
fn parse_record(record: &[u8], delimiter: u8) -> Result<Vec<String>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .trim(csv::Trim::All)
        .from_reader(record);
    let mut cells = csv::StringRecord::new();
    match reader.read_record(&mut cells) {
        Ok(_) => Ok(cells.iter().map(str::to_owned).collect()),
        Err(error) => Err(match error.kind() {
            csv::ErrorKind::Utf8 { .. } => "invalid UTF-8 in a cell".to_owned(),
            _ => format!("unreadable CSV row: {error}"),
        }),
    }
}

/// Unique, non-empty field names from the header cells.
fn header_names(cells: Vec<String>) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(cells.len());
    for (index, cell) in cells.into_iter().enumerate() {
        let base = if cell.is_empty() {
            format!("column{}", index + 1)
        } else {
            cell
        };
        let mut name = base.clone();
        let mut n = 1;
        while names.contains(&name) {
            n += 1;
            name = format!("{base}_{n}");
        }
        names.push(name);
    }
    names
}

/// The delimiter of a header line: whichever of comma, semicolon and tab occurs most outside
/// quotes (comma when none does).
fn delimiter_of(line: &[u8]) -> u8 {
    let mut counts = [0usize; 3];
    let mut quoted = false;
    for &byte in line {
        match byte {
            b'"' => quoted = !quoted,
            b',' if !quoted => counts[0] += 1,
            b';' if !quoted => counts[1] += 1,
            b'\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let candidates = [b',', b';', b'\t'];
    let mut best = 0;
    for i in 1..3 {
        if counts[i] > counts[best] {
            best = i;
        }
    }
    candidates[best]
}

/// A header name: starts with a letter, `_`, `@` or `#`, then letters, digits, spaces and a
/// few punctuation marks that column names use (`Event ID`, `host.name`, `Date and Time`).
static NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z_@#][A-Za-z0-9_.@#:/()\- ]{0,79}$").expect("the name pattern is valid")
});

/// Whether a line looks like a CSV header row: at least two delimited, non-empty,
/// identifier-like names.
pub(super) fn looks_like_header(line: &[u8]) -> bool {
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let delimiter = delimiter_of(line);
    let Ok(cells) = parse_record(line, delimiter) else {
        return false;
    };
    cells.len() >= 2 && cells.iter().all(|cell| NAME.is_match(cell))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fuzz_tests::read_bytes;
    use super::super::{Format, Location, ReadOptions};
    use super::*;

    #[test]
    fn rows_become_fields_by_header_name() {
        let text = "\u{feff}TimeCreated;EventID;Computer;TargetUserName;IpAddress;Note\r\n\
                    2024-01-05T10:11:12Z;4625;dc01;bob;10.0.0.5;\"a; b\"\r\n\
                    2024-01-05T10:11:13Z;4624;dc01;alice;;\"two\nlines\"\r\n";
        let (result, sink) = read_bytes("logons.txt", text.as_bytes(), &ReadOptions::default());
        assert_eq!(result, Ok(Format::Csv));
        assert!(sink.diagnostics.is_empty(), "{:?}", sink.diagnostics);
        assert_eq!(sink.events.len(), 2);
        let first = &sink.events[0];
        assert_eq!(first.fields["EventID"], json!("4625"));
        assert_eq!(first.fields["Note"], json!("a; b"));
        assert_eq!(first.event_id, Some(4625));
        assert_eq!(first.user.as_deref(), Some("bob"));
        assert_eq!(first.src_ip.as_deref(), Some("10.0.0.5"));
        let second = &sink.events[1];
        assert!(
            !second.fields.contains_key("IpAddress"),
            "empty cells are left out"
        );
        assert_eq!(second.fields["Note"], json!("two\nlines"));
    }

    #[test]
    fn a_row_with_the_wrong_cell_count_is_reported_with_its_line() {
        let text = "host,user,action\nws1,bob,logon\nws2,eve\n\nws3,carol,logoff\n";
        let (result, sink) = read_bytes("a.csv", text.as_bytes(), &ReadOptions::default());
        assert_eq!(result, Ok(Format::Csv));
        assert_eq!(sink.events.len(), 2);
        assert_eq!(sink.diagnostics.len(), 1);
        assert_eq!(sink.diagnostics[0].location, Location::Line(3));
        assert_eq!(
            sink.diagnostics[0].reason,
            "row has 2 cells, the header has 3"
        );
    }

    #[test]
    fn oversized_rows_and_unterminated_quotes() {
        let text = format!(
            "host\tuser\nws1\t{}\nws2\tbob\nws3\t\"open\n",
            "x".repeat(500)
        );
        let options = ReadOptions::default().with_max_record_bytes(100);
        let (result, sink) = read_bytes("a.tsv", text.as_bytes(), &options);
        assert_eq!(result, Ok(Format::Csv));
        assert_eq!(sink.events.len(), 1);
        let places: Vec<_> = sink
            .diagnostics
            .iter()
            .map(|d| d.location.clone())
            .collect();
        assert_eq!(places, [Location::Line(2), Location::Line(4)]);
        assert!(sink.diagnostics[0].reason.contains("limit of 100 bytes"));
        assert!(sink.diagnostics[1].reason.contains("unterminated quote"));
    }

    #[test]
    fn header_detection_and_names() {
        assert!(looks_like_header(
            b"Level,Date and Time,Source,Event ID,Task Category"
        ));
        assert!(looks_like_header(b"\"host\";\"user\""));
        assert!(looks_like_header(b"a\tb\r"));
        assert!(!looks_like_header(b"justone"));
        assert!(!looks_like_header(b"1,2,3"));
        assert!(!looks_like_header(b"a,,b"));
        assert!(!looks_like_header(b"hello, world! this is prose."));
        assert_eq!(
            header_names(vec!["a".into(), String::new(), "a".into()]),
            ["a", "column2", "a_2"]
        );
        let (result, sink) = read_bytes("h.csv", b"only,a,header\n", &ReadOptions::default());
        assert_eq!(result, Ok(Format::Csv));
        assert!(sink.events.is_empty() && sink.diagnostics.is_empty());
    }
}
