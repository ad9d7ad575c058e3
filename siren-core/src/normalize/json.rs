//! The JSON reader: JSON Lines (one document per line), a top-level array of documents, or
//! documents written one after another (pretty-printed or not), read as a stream.

use std::io::{BufRead, Read};
use std::ops::ControlFlow;

use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde_json::Value;

use super::lines::{Line, LineReader};
use super::{Diagnostic, EventSink, Location, ReadOptions, flatten};
use crate::event::Event;

/// How often (in bytes) progress is reported.
const PROGRESS_STEP: u64 = 1 << 20;

pub(super) fn read(
    name: &str,
    mut reader: impl BufRead,
    options: &ReadOptions,
    sink: &mut dyn EventSink,
) -> Result<(), String> {
    // A UTF-8 byte order mark is not part of the first document.
    if reader
        .fill_buf()
        .map_err(|e| super::io_reason(&e))?
        .starts_with(b"\xEF\xBB\xBF")
    {
        reader.consume(3);
    }
    let first = loop {
        let buf = reader.fill_buf().map_err(|e| super::io_reason(&e))?;
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                let byte = buf[i];
                reader.consume(i);
                break Some(byte);
            }
            None if buf.is_empty() => break None,
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    };
    match first {
        Some(b'[') => read_array(name, reader, options, sink),
        Some(_) => read_lines(name, reader, options, sink),
        None => Ok(()),
    }
}

/// Builds the event of one parsed document.
fn to_event(value: Value, options: &ReadOptions) -> Result<Event, String> {
    flatten::flatten(value).map(|fields| Event::from_fields(fields, options.tenant.clone()))
}

/// JSON Lines, falling back to a document stream when the first line is not a whole document.
fn read_lines(
    name: &str,
    reader: impl BufRead,
    options: &ReadOptions,
    sink: &mut dyn EventSink,
) -> Result<(), String> {
    let mut lines = LineReader::new(reader, options.max_record_bytes);
    let mut unreported: u64 = 0;
    let mut first_line = true;
    while let Some((number, line)) = lines.next_line().map_err(|e| super::io_reason(&e))? {
        let location = Location::Line(number);
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
                if text.trim_ascii().is_empty() {
                    continue;
                }
                match serde_json::from_slice::<Value>(text) {
                    Ok(value) => to_event(value, options),
                    Err(error) if first_line && error.is_eof() => {
                        // A document spread over several lines: read as a stream instead.
                        let head = std::io::Cursor::new([text, b"\n"].concat());
                        let rest = head.chain(lines.into_inner());
                        return read_documents(name, rest, options, sink);
                    }
                    Err(error) => Err(format!(
                        "invalid JSON at column {}: {}",
                        error.column(),
                        without_position(&error)
                    )),
                }
            }
        };
        first_line = false;
        let flow = match outcome {
            Ok(event) => sink.event(event),
            Err(reason) => sink.diagnostic(Diagnostic {
                file: name.to_owned(),
                location,
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

/// serde_json's message without its " at line L column C" (the caller gives the position).
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// Documents one after another, each possibly spread over many lines. A syntax error ends the
/// file (a JSON stream cannot be resynchronised), with everything before it kept.
fn read_documents(
    name: &str,
    reader: impl Read,
    options: &ReadOptions,
    sink: &mut dyn EventSink,
) -> Result<(), String> {
    let stream = serde_json::Deserializer::from_reader(reader).into_iter::<Value>();
    for (index, document) in stream.enumerate() {
        let location = Location::Record(index as u64 + 1);
        let flow = match document {
            Ok(value) => match to_event(value, options) {
                Ok(event) => sink.event(event),
                Err(reason) => sink.diagnostic(Diagnostic {
                    file: name.to_owned(),
                    location,
                    reason,
                }),
            },
            Err(error) => {
                let reason = format!("invalid JSON, rest of the file skipped: {error}");
                let _ = sink.diagnostic(Diagnostic {
                    file: name.to_owned(),
                    location,
                    reason,
                });
                return Ok(());
            }
        };
        if flow.is_break() {
            return Ok(());
        }
    }
    Ok(())
}

/// A top-level array, element by element, without holding the array in memory.
fn read_array(
    name: &str,
    reader: impl Read,
    options: &ReadOptions,
    sink: &mut dyn EventSink,
) -> Result<(), String> {
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    let mut visitor = ArrayVisitor {
        name,
        options,
        sink,
        index: 0,
        stopped: false,
    };
    if let Err(error) = (&mut deserializer).deserialize_seq(&mut visitor) {
        let index = visitor.index + 1;
        let reason = format!("invalid JSON, rest of the array skipped: {error}");
        let location = Location::Record(index);
        let _ = visitor.sink.diagnostic(Diagnostic {
            file: name.to_owned(),
            location,
            reason,
        });
        return Ok(());
    }
    if !visitor.stopped && deserializer.end().is_err() {
        let reason = "unexpected data after the closing ']' of the array".to_owned();
        let _ = visitor.sink.diagnostic(Diagnostic::file(name, reason));
    }
    Ok(())
}

struct ArrayVisitor<'a> {
    name: &'a str,
    options: &'a ReadOptions,
    sink: &'a mut dyn EventSink,
    /// Elements read so far.
    index: u64,
    stopped: bool,
}

impl<'de> Visitor<'de> for &mut ArrayVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of event objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(value) = seq.next_element_seed(ValueSeed)? {
            self.index += 1;
            let flow = match to_event(value, self.options) {
                Ok(event) => self.sink.event(event),
                Err(reason) => self.sink.diagnostic(Diagnostic {
                    file: self.name.to_owned(),
                    location: Location::Record(self.index),
                    reason,
                }),
            };
            if let ControlFlow::Break(()) = flow {
                self.stopped = true;
                // Drain the rest without building values.
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Deserializes one array element as a JSON value.
struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        serde::Deserialize::deserialize(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::{Diagnostic, EventSink};

    #[derive(Default)]
    struct Count(usize, Vec<Diagnostic>);
    impl EventSink for Count {
        fn event(&mut self, _: Event) -> ControlFlow<()> {
            self.0 += 1;
            ControlFlow::Continue(())
        }
        fn diagnostic(&mut self, d: Diagnostic) -> ControlFlow<()> {
            self.1.push(d);
            ControlFlow::Continue(())
        }
    }

    #[test]
    fn a_byte_order_mark_is_not_a_bad_first_line() {
        let input = b"\xEF\xBB\xBF{\"EventID\": 1}\n{\"EventID\": 2}\n";
        let mut sink = Count::default();
        read("bom.jsonl", &input[..], &ReadOptions::default(), &mut sink).unwrap();
        assert_eq!((sink.0, sink.1.len()), (2, 0), "{:?}", sink.1);
    }

    #[test]
    fn arrays_and_pretty_documents_stream() {
        let mut sink = Count::default();
        read(
            "a.json",
            &b"[{\"a\": 1}, 2, {\"b\": 3}]"[..],
            &ReadOptions::default(),
            &mut sink,
        )
        .unwrap();
        assert_eq!(sink.0, 2);
        assert_eq!(sink.1[0].location, Location::Record(2));
        let mut sink = Count::default();
        read(
            "p.json",
            &b"{\n  \"a\": 1\n}\n{\n  \"b\": 2\n}\n"[..],
            &ReadOptions::default(),
            &mut sink,
        )
        .unwrap();
        assert_eq!((sink.0, sink.1.len()), (2, 0));
    }
}
