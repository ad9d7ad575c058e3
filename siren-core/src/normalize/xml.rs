//! The Windows event XML reader: one `<Event>` or many (inside `<Events>` or one after
//! another), streamed with quick-xml and rebuilt, event by event, into the JSON shape the
//! `evtx` crate renders, so that it flattens to the same field names as the EVTX path.
//!
//! What the XML cannot carry: EVTX substitutions are typed, so the EVTX path gives numbers and
//! booleans for some `EventData` values (`ProcessId`, `Initiated`); XML only has text, and those
//! values stay strings here. The integer `System` fields (`EventID`, `Version`, `Level`, `Task`,
//! `Opcode`, `EventRecordID`, the `Execution` attributes, `EventID`'s `Qualifiers`) are numbers
//! either way.
//!
//! A malformed event is reported with its ordinal and line and skipped; reading resumes at the
//! next `<Event`. Only one event is held in memory at a time, and an event larger than
//! [`ReadOptions::max_record_bytes`] is measured and skipped without being held.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{BufRead, Read};
use std::ops::ControlFlow;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event as XmlEvent};
use serde_json::{Map, Value};

use super::{Diagnostic, EventSink, Location, ReadOptions, flatten};
use crate::event::Event;

/// How often (in bytes) progress is reported.
const PROGRESS_STEP: u64 = 1 << 20;

/// How deep elements may nest in one event (Windows events use five or six levels); the
/// conversion and flattening recurse once per level.
const MAX_DEPTH: usize = 256;

pub(super) fn read(
    name: &str,
    reader: impl BufRead,
    options: &ReadOptions,
    sink: &mut dyn EventSink,
) -> Result<(), String> {
    let mut xml = Reader::from_reader(Counted::new(reader, options.max_record_bytes as u64));
    let config = xml.config_mut();
    // End tags are matched here, against the open elements, so that a mismatch can be reported
    // with the event it breaks and reading can resume at the next `<Event`.
    config.check_end_names = false;
    config.allow_unmatched_ends = true;
    config.trim_text(false);

    let mut state = State::Outside;
    let mut ordinal: u64 = 0;
    // An `<Events>` export with no event in it is empty, not in another format.
    let mut saw_events = false;
    let mut reported: u64 = 0;
    let mut last_error_at: Option<u64> = None;
    let mut outcomes = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        xml.get_mut().start_token();
        let result = xml.read_event_into(&mut buf);
        let counted = xml.get_ref();
        let (position, line, overflowed) = (counted.position, counted.line(), counted.overflowed);
        let mut done = false;
        match result {
            Err(error) => {
                state.fail(
                    format!("malformed XML at line {line}: {error}"),
                    line,
                    &mut outcomes,
                );
                if last_error_at == Some(position) {
                    // No progress since the last error: the rest cannot be read.
                    done = true;
                }
                last_error_at = Some(position);
            }
            Ok(XmlEvent::Eof) => {
                if let Some(started) = state.open_event_line() {
                    let reason = format!(
                        "input ends inside the <Event> that starts at line {started}: \
                         truncated or not closed"
                    );
                    state.fail(reason, line, &mut outcomes);
                }
                done = true;
            }
            Ok(event) => {
                if let XmlEvent::Start(start) | XmlEvent::Empty(start) = &event {
                    saw_events |= start.local_name().as_ref() == b"Events";
                }
                if let Err(reason) = state.step(event, line, position, &mut ordinal, &mut outcomes)
                {
                    state.fail(reason, line, &mut outcomes);
                }
                if overflowed || state.too_big(position, options) {
                    state.overflow(options);
                }
            }
        }
        for outcome in outcomes.drain(..) {
            if emit(name, outcome, options, sink).is_break() {
                return Ok(());
            }
        }
        if position - reported >= PROGRESS_STEP || done {
            sink.progress(position - reported);
            reported = position;
        }
        if done {
            break;
        }
    }
    if ordinal == 0 && !saw_events {
        return Err("XML without any Windows <Event> element".to_owned());
    }
    Ok(())
}

/// Hands one outcome to the sink.
fn emit(
    name: &str,
    outcome: Outcome,
    options: &ReadOptions,
    sink: &mut dyn EventSink,
) -> ControlFlow<()> {
    match outcome {
        Outcome::Finished(ordinal, start_line, root) => {
            let value = Value::Object(Map::from_iter([(
                "Event".to_owned(),
                element_value(&root, Role::Root),
            )]));
            match flatten::flatten(value) {
                Ok(fields) => sink.event(Event::from_fields(fields, options.tenant.clone())),
                Err(reason) => sink.diagnostic(Diagnostic {
                    file: name.to_owned(),
                    location: Location::Record(ordinal),
                    reason: format!("event starting at line {start_line}: {reason}"),
                }),
            }
        }
        Outcome::Skipped(location, reason) => sink.diagnostic(Diagnostic {
            file: name.to_owned(),
            location,
            reason,
        }),
    }
}

/// What the reader produced.
enum Outcome {
    /// A complete event: its ordinal, first line, and element tree.
    Finished(u64, u64, Element),
    /// A skipped event or stretch of input.
    Skipped(Location, String),
}

/// One element of the event being read.
#[derive(Debug, Default)]
struct Element {
    /// The local name (without a namespace prefix).
    name: String,
    /// The name as written, to match the end tag against.
    qname: Vec<u8>,
    attributes: Vec<(String, String)>,
    text: String,
    children: Vec<Element>,
}

/// Where the reader is.
enum State {
    /// Between events: everything but the next `<Event` is ignored.
    Outside,
    /// Inside an event, building its tree: the open elements, outermost first.
    Building {
        ordinal: u64,
        start_line: u64,
        start_position: u64,
        open: Vec<Element>,
    },
    /// Inside an event too large to keep: only its depth is tracked.
    Oversized {
        ordinal: u64,
        start_line: u64,
        start_position: u64,
        depth: usize,
        limit: usize,
    },
}

impl State {
    /// Advances over one XML event.
    fn step(
        &mut self,
        event: XmlEvent<'_>,
        line: u64,
        position: u64,
        ordinal: &mut u64,
        out: &mut Vec<Outcome>,
    ) -> Result<(), String> {
        let (start, empty) = match event {
            XmlEvent::Start(start) => (start, false),
            XmlEvent::Empty(start) => (start, true),
            XmlEvent::End(end) => return self.end(end.name().as_ref(), line, position, out),
            XmlEvent::Text(text) => {
                if let State::Building { open, .. } = self
                    && let Some(top) = open.last_mut()
                {
                    let raw = std::str::from_utf8(&text)
                        .map_err(|e| format!("invalid UTF-8 in text at line {line}: {e}"))?;
                    top.text.push_str(&unescape(raw));
                }
                return Ok(());
            }
            XmlEvent::CData(data) => {
                if let State::Building { open, .. } = self
                    && let Some(top) = open.last_mut()
                {
                    let raw = std::str::from_utf8(&data)
                        .map_err(|e| format!("invalid UTF-8 in CDATA at line {line}: {e}"))?;
                    top.text.push_str(raw);
                }
                return Ok(());
            }
            // Declarations, comments, processing instructions and DOCTYPE carry no event data.
            _ => return Ok(()),
        };
        if start.local_name().as_ref() == b"Event" {
            let tag_lines = memchr::memchr_iter(b'\n', start.as_ref()).count() as u64;
            let start_line = line.saturating_sub(tag_lines).max(1);
            self.interrupt(start_line, out);
            *ordinal += 1;
            let tag_len = start.as_ref().len() as u64 + 2;
            *self = State::Building {
                ordinal: *ordinal,
                start_line,
                start_position: position.saturating_sub(tag_len),
                open: vec![element(&start)?],
            };
            if empty {
                self.close_root(out);
            }
            return Ok(());
        }
        match self {
            State::Outside => {}
            State::Building { open, .. } => {
                if open.len() >= MAX_DEPTH {
                    return Err(format!(
                        "elements nested more than {MAX_DEPTH} deep at line {line}"
                    ));
                }
                let child = element(&start)?;
                if empty {
                    if let Some(parent) = open.last_mut() {
                        parent.children.push(child);
                    }
                } else {
                    open.push(child);
                }
            }
            State::Oversized { depth, .. } => {
                if !empty {
                    *depth += 1;
                }
            }
        }
        Ok(())
    }

    /// Advances over an end tag.
    fn end(
        &mut self,
        name: &[u8],
        line: u64,
        position: u64,
        out: &mut Vec<Outcome>,
    ) -> Result<(), String> {
        match self {
            State::Outside => Ok(()),
            State::Building { open, .. } => {
                let Some(top) = open.last() else {
                    return Ok(());
                };
                if top.qname != name {
                    return Err(format!(
                        "malformed XML at line {line}: expected </{}>, found </{}>",
                        String::from_utf8_lossy(&top.qname),
                        String::from_utf8_lossy(name)
                    ));
                }
                if open.len() == 1 {
                    self.close_root(out);
                } else if let Some(done) = open.pop()
                    && let Some(parent) = open.last_mut()
                {
                    parent.children.push(done);
                }
                Ok(())
            }
            State::Oversized {
                ordinal,
                start_line,
                start_position,
                depth,
                limit,
            } => {
                *depth = depth.saturating_sub(1);
                if *depth == 0 {
                    let bytes = position.saturating_sub(*start_position);
                    out.push(oversized(*ordinal, *start_line, bytes, *limit));
                    *self = State::Outside;
                }
                Ok(())
            }
        }
    }

    /// Ends the open event, if any, with `reason`; outside an event, reports the stretch.
    fn fail(&mut self, reason: String, line: u64, out: &mut Vec<Outcome>) {
        match std::mem::replace(self, State::Outside) {
            State::Outside => out.push(Outcome::Skipped(Location::Line(line), reason)),
            State::Building {
                ordinal,
                start_line,
                ..
            }
            | State::Oversized {
                ordinal,
                start_line,
                ..
            } => out.push(Outcome::Skipped(
                Location::Record(ordinal),
                format!("event starting at line {start_line} skipped: {reason}"),
            )),
        }
    }

    /// A new `<Event` starts at `next_line`: an event still open there is reported.
    fn interrupt(&mut self, next_line: u64, out: &mut Vec<Outcome>) {
        match std::mem::replace(self, State::Outside) {
            State::Outside => {}
            State::Building {
                ordinal,
                start_line,
                ..
            } => out.push(Outcome::Skipped(
                Location::Record(ordinal),
                format!(
                    "event starting at line {start_line} skipped: not closed before the next \
                     <Event> at line {next_line}"
                ),
            )),
            State::Oversized {
                ordinal,
                start_line,
                limit,
                ..
            } => out.push(Outcome::Skipped(
                Location::Record(ordinal),
                format!(
                    "event starting at line {start_line} skipped: larger than the limit of \
                     {limit} bytes and not closed before the next <Event> at line {next_line}"
                ),
            )),
        }
    }

    /// Closes the root `<Event>`: the event is finished.
    fn close_root(&mut self, out: &mut Vec<Outcome>) {
        if let State::Building {
            ordinal,
            start_line,
            mut open,
            ..
        } = std::mem::replace(self, State::Outside)
            && let Some(root) = open.pop()
        {
            out.push(Outcome::Finished(ordinal, start_line, root));
        }
    }

    /// The first line of the open event, if one is open.
    fn open_event_line(&self) -> Option<u64> {
        match self {
            State::Building { start_line, .. } | State::Oversized { start_line, .. } => {
                Some(*start_line)
            }
            State::Outside => None,
        }
    }

    /// Whether the open event has grown past the size limit.
    fn too_big(&self, position: u64, options: &ReadOptions) -> bool {
        match self {
            State::Building { start_position, .. } => {
                position.saturating_sub(*start_position) > options.max_record_bytes as u64
            }
            _ => false,
        }
    }

    /// Drops the tree of the open event, which is too large, keeping only its depth.
    fn overflow(&mut self, options: &ReadOptions) {
        if let State::Building {
            ordinal,
            start_line,
            start_position,
            open,
        } = self
        {
            *self = State::Oversized {
                ordinal: *ordinal,
                start_line: *start_line,
                start_position: *start_position,
                depth: open.len(),
                limit: options.max_record_bytes,
            };
        }
    }
}

/// The diagnostic for an event larger than the limit.
fn oversized(ordinal: u64, start_line: u64, bytes: u64, limit: usize) -> Outcome {
    Outcome::Skipped(
        Location::Record(ordinal),
        format!(
            "event starting at line {start_line} skipped: record of {bytes} bytes exceeds the \
             limit of {limit} bytes"
        ),
    )
}

/// An element from its start tag: names and attributes, unescaped.
fn element(start: &BytesStart<'_>) -> Result<Element, String> {
    let qname = start.name().as_ref().to_vec();
    let name = std::str::from_utf8(start.local_name().as_ref())
        .map_err(|_| "invalid UTF-8 in an element name".to_owned())?
        .to_owned();
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| format!("malformed attribute in <{name}>: {e}"))?;
        let key = attribute.key;
        // Namespace declarations keep their full name; other attributes their local one.
        let key = if key.as_ref().starts_with(b"xmlns") {
            key.as_ref()
        } else {
            key.local_name().into_inner()
        };
        let key = std::str::from_utf8(key)
            .map_err(|_| format!("invalid UTF-8 in an attribute name of <{name}>"))?;
        let value = std::str::from_utf8(&attribute.value)
            .map_err(|_| format!("invalid UTF-8 in attribute {key} of <{name}>"))?;
        attributes.push((key.to_owned(), unescape(value).into_owned()));
    }
    Ok(Element {
        name,
        qname,
        attributes,
        text: String::new(),
        children: Vec::new(),
    })
}

/// Resolves the predefined and character entities; an unknown entity is kept as written.
fn unescape(raw: &str) -> Cow<'_, str> {
    if let Ok(text) = quick_xml::escape::unescape(raw) {
        return text;
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match rest.find(';') {
            Some(end) if end <= 32 => {
                let entity = &rest[..=end];
                match quick_xml::escape::unescape(entity) {
                    Ok(text) => out.push_str(&text),
                    Err(_) => out.push_str(entity),
                }
                rest = &rest[end + 1..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Where an element sits, for the typing of `System` values.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The `<Event>` element.
    Root,
    /// `<Event><System>`.
    System,
    /// A child of `System`.
    SystemChild,
    /// Anything else.
    Other,
}

/// `System` children whose text the `evtx` crate renders as a number.
const NUMERIC_SYSTEM_ELEMENTS: [&str; 6] = [
    "EventID",
    "Version",
    "Level",
    "Task",
    "Opcode",
    "EventRecordID",
];

/// The JSON value of an element, as the `evtx` crate renders it: `null` when empty, its text
/// when it has only text, otherwise an object of `#attributes`, `#text` and its children.
fn element_value(element: &Element, role: Role) -> Value {
    let text = content_text(element);
    let numeric_text =
        role == Role::SystemChild && NUMERIC_SYSTEM_ELEMENTS.contains(&element.name.as_str());
    let attributes: Vec<&(String, String)> = element
        .attributes
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .collect();
    if element.children.is_empty() && attributes.is_empty() {
        if text.is_empty() {
            return Value::Null;
        }
        return scalar(text, numeric_text);
    }
    let mut object = Map::new();
    if !attributes.is_empty() {
        let mut values = Map::new();
        for (key, value) in attributes {
            let numeric = role == Role::SystemChild
                && (element.name == "Execution"
                    || (element.name == "EventID" && key == "Qualifiers"));
            values.insert(key.clone(), scalar(value, numeric));
        }
        object.insert("#attributes".to_owned(), Value::Object(values));
    }
    if !text.is_empty() {
        object.insert("#text".to_owned(), scalar(text, numeric_text));
    }
    let child_role = match role {
        Role::Root => None,
        Role::System => Some(Role::SystemChild),
        _ => Some(Role::Other),
    };
    members(
        element,
        child_role,
        is_data_container(&element.name),
        &mut object,
    );
    Value::Object(object)
}

fn is_data_container(name: &str) -> bool {
    name == "EventData" || name == "UserData"
}

/// An element's own text: as written for a leaf, trimmed when it also has children (the
/// indentation between them is no content).
fn content_text(element: &Element) -> &str {
    if element.children.is_empty() {
        &element.text
    } else {
        element.text.trim()
    }
}

/// Text as a JSON value: a number where the `evtx` crate has one, otherwise a string.
fn scalar(text: &str, numeric: bool) -> Value {
    if numeric {
        if let Ok(n) = text.trim().parse::<u64>() {
            return Value::from(n);
        }
        if let Ok(n) = text.trim().parse::<i64>() {
            return Value::from(n);
        }
    }
    Value::String(text.to_owned())
}

/// The children of `element` as members of `object`. In `EventData` / `UserData`, `<Data
/// Name="X">` becomes member `X` (a run of the same name an array), and unnamed `<Data>`
/// become one `"Data": {"#text": …}`. Repeated names get `_1`, `_2`… suffixes.
fn members(
    element: &Element,
    child_role: Option<Role>,
    container: bool,
    object: &mut Map<String, Value>,
) {
    let named = container
        && element
            .children
            .iter()
            .any(|c| c.name == "Data" && data_name(c).is_some());
    let mut positional_done = false;
    let mut name_counts: HashMap<&str, u32> = HashMap::new();
    let mut data_counts: HashMap<&str, u32> = HashMap::new();
    let mut skip = 0;
    for (index, child) in element.children.iter().enumerate() {
        if skip > 0 {
            skip -= 1;
            continue;
        }
        if container && child.name == "Data" {
            if named {
                let Some(name) = data_name(child) else {
                    continue;
                };
                let run = 1 + element.children[index + 1..]
                    .iter()
                    .take_while(|c| c.name == "Data" && data_name(c) == Some(name))
                    .count();
                skip = run - 1;
                let key = suffixed(name, &mut data_counts);
                let value = if run == 1 {
                    data_value(child)
                } else {
                    Value::Array(
                        element.children[index..index + run]
                            .iter()
                            .map(data_value)
                            .collect(),
                    )
                };
                object.insert(key, value);
            } else if !positional_done {
                positional_done = true;
                let data: Vec<Value> = element
                    .children
                    .iter()
                    .filter(|c| c.name == "Data")
                    .map(data_value)
                    .collect();
                let value = if data.len() == 1 {
                    data.into_iter().next().unwrap_or(Value::Null)
                } else {
                    Value::Array(data)
                };
                object.insert(
                    "Data".to_owned(),
                    Value::Object(Map::from_iter([("#text".to_owned(), value)])),
                );
            }
            continue;
        }
        let key = suffixed(&child.name, &mut name_counts);
        let role = match child_role {
            Some(role) => role,
            None if child.name == "System" => Role::System,
            None => Role::Other,
        };
        object.insert(key, element_value(child, role));
    }
}

/// The non-empty `Name` attribute of a `<Data>` element.
fn data_name(element: &Element) -> Option<&str> {
    element
        .attributes
        .iter()
        .find(|(key, value)| key == "Name" && !value.is_empty())
        .map(|(_, value)| value.as_str())
}

/// `name` the first time, then `name_1`, `name_2`…
fn suffixed<'a>(name: &'a str, counts: &mut HashMap<&'a str, u32>) -> String {
    let count = counts.entry(name).or_insert(0);
    *count += 1;
    match *count - 1 {
        0 => name.to_owned(),
        n => format!("{name}_{n}"),
    }
}

/// The value of one `<Data>`: `""` when empty, its text, or (nested elements) an object.
fn data_value(element: &Element) -> Value {
    let text = content_text(element);
    if element.children.is_empty() {
        return Value::String(text.to_owned());
    }
    let mut object = Map::new();
    if !text.is_empty() {
        object.insert("#text".to_owned(), Value::String(text.to_owned()));
    }
    members(element, Some(Role::Other), false, &mut object);
    Value::Object(object)
}

/// A buffered reader that counts bytes and lines, and stops any single XML token from growing
/// past the size limit: past it, input is skipped up to the next `<` and `overflowed` is set.
struct Counted<R> {
    inner: R,
    /// Bytes consumed.
    position: u64,
    /// Line feeds consumed.
    newlines: u64,
    /// Where the current token started.
    token_start: u64,
    limit: u64,
    /// Whether input was skipped since the current token started.
    overflowed: bool,
}

impl<R: BufRead> Counted<R> {
    fn new(inner: R, limit: u64) -> Self {
        Self {
            inner,
            position: 0,
            newlines: 0,
            token_start: 0,
            limit: limit.max(1),
            overflowed: false,
        }
    }

    fn start_token(&mut self) {
        self.token_start = self.position;
        self.overflowed = false;
    }

    /// The 1-based line of the current position.
    fn line(&self) -> u64 {
        self.newlines + 1
    }
}

impl<R: BufRead> Read for Counted<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counted<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.position - self.token_start > self.limit {
            // One token larger than a whole record may be: skip to the next markup.
            loop {
                let available = self.inner.fill_buf()?;
                if available.is_empty() {
                    break;
                }
                let (skip, found) = match memchr::memchr(b'<', available) {
                    Some(at) => (at, true),
                    None => (available.len(), false),
                };
                let newlines = memchr::memchr_iter(b'\n', &available[..skip]).count() as u64;
                self.newlines += newlines;
                self.position += skip as u64;
                self.inner.consume(skip);
                if found {
                    break;
                }
            }
            self.overflowed = true;
            self.token_start = self.position;
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        if let Ok(available) = self.inner.fill_buf() {
            let end = amount.min(available.len());
            let newlines = memchr::memchr_iter(b'\n', &available[..end]).count() as u64;
            self.newlines += newlines;
            self.position += end as u64;
        }
        self.inner.consume(amount);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fuzz_tests::{Collect, read_bytes, shared_dir};
    use super::super::{Format, Input, Location, ReadOptions};

    const LOGON_FAILURE: &str = r#"<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event">
  <System>
    <Provider Name="Microsoft-Windows-Security-Auditing" Guid="{54849625-5478-4994-a5ba-3e3b0328c30d}"/>
    <EventID>4625</EventID>
    <Version>0</Version>
    <Level>0</Level>
    <Task>12544</Task>
    <Opcode>0</Opcode>
    <Keywords>0x8010000000000000</Keywords>
    <TimeCreated SystemTime="2021-04-22T10:09:34.1234560Z"/>
    <EventRecordID>4711</EventRecordID>
    <Correlation ActivityID="{A1B2}"/>
    <Execution ProcessID="628" ThreadID="3760"/>
    <Channel>Security</Channel>
    <Computer>dc01.corp.local</Computer>
    <Security/>
  </System>
  <EventData>
    <Data Name="TargetUserName">bob</Data>
    <Data Name="IpAddress">10.0.0.5</Data>
    <Data Name="Note">a &lt;b&gt; &amp; &#x41; &unknown; <![CDATA[<raw> & text]]></Data>
    <Data Name="Empty"></Data>
  </EventData>
</Event>"#;

    fn read(text: &str) -> Collect {
        let (result, sink) = read_bytes("events.xml", text.as_bytes(), &ReadOptions::default());
        assert_eq!(result, Ok(Format::Xml), "{:?}", sink.diagnostics);
        sink
    }

    #[test]
    fn one_event_gets_the_evtx_field_names_and_types() {
        let sink = read(LOGON_FAILURE);
        assert!(sink.diagnostics.is_empty(), "{:?}", sink.diagnostics);
        let [event] = sink.events.as_slice() else {
            panic!("expected one event, got {}", sink.events.len())
        };
        let f = &event.fields;
        assert_eq!(f["EventID"], json!(4625));
        assert_eq!(f["EventRecordID"], json!(4711));
        assert_eq!(f["Level"], json!(0));
        assert_eq!(f["Keywords"], json!("0x8010000000000000"));
        assert_eq!(f["Execution_ProcessID"], json!(628));
        assert_eq!(
            f["Provider_Name"],
            json!("Microsoft-Windows-Security-Auditing")
        );
        assert_eq!(f["TimeCreated"], json!("2021-04-22T10:09:34.1234560Z"));
        assert_eq!(f["Correlation_ActivityID"], json!("{A1B2}"));
        assert_eq!(f["Channel"], json!("Security"));
        assert_eq!(f["Computer"], json!("dc01.corp.local"));
        assert_eq!(f["Security"], json!(null));
        assert_eq!(f["TargetUserName"], json!("bob"));
        assert_eq!(f["Note"], json!("a <b> & A &unknown; <raw> & text"));
        assert_eq!(f["Empty"], json!(""));
        assert_eq!(event.event_id, Some(4625));
        assert_eq!(event.user.as_deref(), Some("bob"));
        assert_eq!(event.src_ip.as_deref(), Some("10.0.0.5"));
        assert!(event.timestamp.is_some());
    }

    #[test]
    fn unnamed_data_user_data_and_namespaces() {
        let text = r#"<?xml version="1.0" encoding="utf-8"?>
<e:Events xmlns:e="http://schemas.microsoft.com/win/2004/08/events/event">
<e:Event><e:System><e:EventID Qualifiers="16384">15457</e:EventID><e:Channel>Application</e:Channel></e:System>
<e:EventData><e:Data>xp_cmdshell</e:Data><e:Data>0</e:Data><e:Data>1</e:Data><e:Binary>0A0B</e:Binary></e:EventData></e:Event>
<!-- a comment <Event> -->
<e:Event><e:System><e:EventID>104</e:EventID></e:System><e:UserData>
<LogFileCleared xmlns="http://manifests.microsoft.com/win/2004/08/windows/eventlog">
<SubjectUserName>jwrig</SubjectUserName><BackupPath></BackupPath><Privilege>a</Privilege><Privilege>b</Privilege>
</LogFileCleared></e:UserData>
<RenderingInfo Culture="en-US"><Message>The log file was cleared.</Message><Keywords><Keyword>Audit Success</Keyword></Keywords></RenderingInfo>
</e:Event>
<e:Event><e:System><e:EventID>1</e:EventID></e:System><e:EventData><e:Data>only</e:Data></e:EventData></e:Event>
</e:Events>"#;
        let sink = read(text);
        assert!(sink.diagnostics.is_empty(), "{:?}", sink.diagnostics);
        assert_eq!(sink.events.len(), 3);
        let f = &sink.events[0].fields;
        assert_eq!(f["EventID"], json!(15457));
        assert_eq!(f["EventID_Qualifiers"], json!(16384));
        assert_eq!(f["Data"], json!(["xp_cmdshell", "0", "1"]));
        assert_eq!(f["Binary"], json!("0A0B"));
        let f = &sink.events[1].fields;
        assert_eq!(f["SubjectUserName"], json!("jwrig"));
        assert_eq!(f["BackupPath"], json!(null));
        assert_eq!(f["Privilege"], json!("a"));
        assert_eq!(f["Privilege_1"], json!("b"));
        assert_eq!(f["Message"], json!("The log file was cleared."));
        assert_eq!(f["RenderingInfo_Culture"], json!("en-US"));
        assert_eq!(f["Keyword"], json!("Audit Success"));
        assert_eq!(sink.events[2].fields["Data"], json!("only"));
    }

    #[test]
    fn a_broken_event_is_reported_and_the_next_one_read() {
        let good = "<Event><System><EventID>1</EventID></System></Event>\n";
        let text = format!(
            "<Events>\n{good}<Event><System><EventID>2</EventID></Oops></System></Event>\n\
             {good}<Event><System><EventID>3</EventID>\n{good}<Event><System a=\"1\" a=\"2\"/></Event>\n{good}</Events>\n"
        );
        let sink = read(&text);
        assert_eq!(sink.events.len(), 4, "{:?}", sink.diagnostics);
        let places: Vec<_> = sink
            .diagnostics
            .iter()
            .map(|d| (d.location.clone(), d.reason.clone()))
            .collect();
        assert_eq!(places.len(), 3, "{places:?}");
        assert_eq!(places[0].0, Location::Record(2));
        assert!(places[0].1.contains("line 3"), "{}", places[0].1);
        assert!(
            places[0].1.contains("expected </EventID>, found </Oops>")
                || places[0].1.contains("</Oops>"),
            "{}",
            places[0].1
        );
        assert_eq!(places[1].0, Location::Record(4));
        assert!(places[1].1.contains("not closed"), "{}", places[1].1);
        assert_eq!(places[2].0, Location::Record(6));
    }

    #[test]
    fn truncated_input_is_reported() {
        let cut = &LOGON_FAILURE[..LOGON_FAILURE.len() / 2];
        let text = format!("{LOGON_FAILURE}\n{cut}");
        let sink = read(&text);
        assert_eq!(sink.events.len(), 1);
        assert_eq!(sink.diagnostics.len(), 1, "{:?}", sink.diagnostics);
        assert_eq!(sink.diagnostics[0].location, Location::Record(2));
        assert!(
            sink.diagnostics[0].reason.contains("line 25"),
            "{}",
            sink.diagnostics[0].reason
        );
    }

    #[test]
    fn oversized_event_is_skipped_and_the_rest_kept() {
        let big = format!(
            "<Event><System><EventID>9</EventID></System><EventData><Data Name=\"X\">{}</Data></EventData></Event>",
            "x".repeat(5000)
        );
        let text = format!("{LOGON_FAILURE}\n{big}\n{LOGON_FAILURE}\n");
        let options = ReadOptions::default().with_max_record_bytes(2000);
        let (result, sink) = read_bytes("big.xml", text.as_bytes(), &options);
        assert_eq!(result, Ok(Format::Xml));
        assert_eq!(sink.events.len(), 2, "{:?}", sink.diagnostics);
        assert_eq!(sink.diagnostics.len(), 1);
        assert_eq!(sink.diagnostics[0].location, Location::Record(2));
        assert!(
            sink.diagnostics[0]
                .reason
                .contains("exceeds the limit of 2000 bytes")
        );
    }

    #[test]
    fn bom_wrong_extension_and_empty_input() {
        let text = format!("\u{feff}{LOGON_FAILURE}");
        let (result, sink) = read_bytes("events.csv", text.as_bytes(), &ReadOptions::default());
        assert_eq!(result, Ok(Format::Xml));
        assert_eq!(sink.events.len(), 1);
        let (result, _) = read_bytes("events.xml", b"", &ReadOptions::default());
        assert!(result.unwrap_err().contains("empty"));
        let (result, sink) = read_bytes(
            "none.xml",
            b"<Events>\n</Events>\n",
            &ReadOptions::default(),
        );
        assert_eq!(result, Ok(Format::Xml));
        assert!(sink.events.is_empty() && sink.diagnostics.is_empty());
        let (result, _) = read_bytes("other.xml", b"<root><a/></root>", &ReadOptions::default());
        assert!(result.unwrap_err().contains("<Event>"));
    }

    #[test]
    fn deep_nesting_is_reported_not_followed() {
        let deep = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
        let text = format!(
            "<Event><System><EventID>1</EventID></System><UserData>{deep}</UserData></Event>\n{LOGON_FAILURE}"
        );
        let sink = read(&text);
        assert_eq!(sink.events.len(), 1);
        assert_eq!(sink.diagnostics.len(), 1, "{:?}", sink.diagnostics);
        assert!(
            sink.diagnostics[0]
                .reason
                .contains("nested more than 256 deep")
        );
    }

    /// Text form of a value, for comparing the XML and EVTX renderings of one record: XML has
    /// no types, so numbers and booleans compare by their text.
    fn text_of(value: &serde_json::Value) -> String {
        match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            serde_json::Value::Array(items) => {
                items.iter().map(text_of).collect::<Vec<_>>().join("\u{1}")
            }
            other => other.to_string(),
        }
    }

    #[test]
    #[allow(clippy::print_stderr)] // The notice when the corpus is absent.
    fn real_records_give_the_same_fields_as_the_evtx_path() {
        let Some(shared) = shared_dir() else {
            eprintln!("shared corpus not found: skipping the XML/EVTX comparison");
            return;
        };
        let corpus = shared.join("corpus/evtx");
        // Every DeepBlueCLI log, and samples with unnamed `<Data>`, UserData, an attributed
        // `EventData`, escaped XML in a value, and Sysmon's typed values.
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(corpus.join("DeepBlueCLI"))
            .map(|dir| dir.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "evtx"));
        files.sort();
        for sample in [
            "Defense Evasion/DE_xp_cmdshell_enabled_MSSQL_EID_15457.evtx",
            "Execution/temp_scheduled_task_4698_4699.evtx",
            "Credential Access/CA_4624_4625_LogonType2_LogonProc_chrome.evtx",
            "Credential Access/CA_Mimikatz_Memssp_Default_Logs_Sysmon_11.evtx",
        ] {
            files.push(corpus.join("EVTX-ATTACK-SAMPLES").join(sample));
        }
        let files: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        let mut compared = 0;
        for file in &files {
            let path = std::path::PathBuf::from(&file);
            if !path.is_file() {
                eprintln!("{file} not in the corpus: skipped");
                continue;
            }
            // The EVTX path.
            let mut from_evtx = Collect::default();
            super::super::read_input(
                &Input::File(path.clone()),
                &ReadOptions::default(),
                &mut from_evtx,
            );
            // The evtx crate's XML rendering of the same records, through the XML reader.
            let mut parser = evtx::EvtxParser::from_path(&path).expect("corpus file opens");
            let xml: String = parser
                .records()
                .take(40)
                .filter_map(Result::ok)
                .map(|r| r.data)
                .collect::<Vec<_>>()
                .join("\n");
            let from_xml = read(&xml);
            assert!(
                from_xml.diagnostics.is_empty(),
                "{file}: {:?}",
                from_xml.diagnostics
            );
            for event in &from_xml.events {
                let record = event.record_id;
                let Some(expected) = from_evtx.events.iter().find(|e| e.record_id == record) else {
                    panic!("{file}: record {record:?} not found on the EVTX path")
                };
                let names = |e: &crate::Event| e.fields.keys().cloned().collect::<Vec<_>>();
                assert_eq!(
                    names(event),
                    names(expected),
                    "{file}: record {record:?}: field names"
                );
                for (name, value) in &expected.fields {
                    let got = &event.fields[name];
                    // System fields are typed the same on both paths; EventData only as text.
                    if matches!(value, serde_json::Value::Number(_)) && name.contains("EventID") {
                        assert_eq!(got, value, "{file}: record {record:?}: {name}");
                    }
                    assert_eq!(
                        text_of(got),
                        text_of(value),
                        "{file}: record {record:?}: {name}"
                    );
                }
                assert_eq!(event.timestamp, expected.timestamp);
                assert_eq!(event.event_id, expected.event_id);
                assert_eq!(event.host, expected.host);
                assert_eq!(event.user, expected.user);
                compared += 1;
            }
        }
        assert!(compared > 100, "only {compared} records compared");
    }
}
