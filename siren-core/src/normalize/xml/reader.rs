//! The XML reader's loop: quick-xml events fed to the reader's state, the events and
//! diagnostics it completes handed to the sink, progress reported.

use std::io::BufRead;
use std::ops::ControlFlow;

use quick_xml::Reader;
use quick_xml::events::Event as XmlEvent;
use serde_json::{Map, Value};

use super::counted::Counted;
use super::element::Element;
use super::evtx_shape::{Role, element_value};
use super::state::State;
use crate::event::Event;
use crate::normalize::{Diagnostic, EventSink, Location, ReadOptions, flatten};

/// How often (in bytes) progress is reported.
const PROGRESS_STEP: u64 = 1 << 20;

pub(in crate::normalize) fn read(
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
pub(super) enum Outcome {
    /// A complete event: its ordinal, first line, and element tree.
    Finished(u64, u64, Element),
    /// A skipped event or stretch of input.
    Skipped(Location, String),
}
