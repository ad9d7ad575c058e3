//! Where the XML reader is: between events, building one event's element tree, or skipping
//! an event too large to keep; malformed input reported and skipped to the next `<Event`.

use quick_xml::events::Event as XmlEvent;

use super::element::{Element, element, unescape};
use super::reader::Outcome;
use crate::normalize::{Location, ReadOptions};

/// How deep elements may nest in one event (Windows events use five or six levels); the
/// conversion and flattening recurse once per level.
const MAX_DEPTH: usize = 256;

/// Where the reader is.
pub(super) enum State {
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
    pub(super) fn step(
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
    pub(super) fn fail(&mut self, reason: String, line: u64, out: &mut Vec<Outcome>) {
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
    pub(super) fn open_event_line(&self) -> Option<u64> {
        match self {
            State::Building { start_line, .. } | State::Oversized { start_line, .. } => {
                Some(*start_line)
            }
            State::Outside => None,
        }
    }

    /// Whether the open event has grown past the size limit.
    pub(super) fn too_big(&self, position: u64, options: &ReadOptions) -> bool {
        match self {
            State::Building { start_position, .. } => {
                position.saturating_sub(*start_position) > options.max_record_bytes as u64
            }
            _ => false,
        }
    }

    /// Drops the tree of the open event, which is too large, keeping only its depth.
    pub(super) fn overflow(&mut self, options: &ReadOptions) {
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
