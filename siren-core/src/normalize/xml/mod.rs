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
//!
//! `reader.rs` drives quick-xml over the input and hands each event or diagnostic to the
//! sink; `state.rs` follows the reader through events, their elements and their ends;
//! `element.rs` makes an element from its start tag (names, attributes, entities);
//! `evtx_shape.rs` turns an event's element tree into the `evtx` crate's JSON shape;
//! `counted.rs` counts bytes and lines and caps the size of one token.

mod counted;

mod element;

mod evtx_shape;

mod reader;

mod state;

#[cfg(test)]
mod tests;

pub(super) use reader::read;
