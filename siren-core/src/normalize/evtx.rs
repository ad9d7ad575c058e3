//! The EVTX reader: the `evtx` crate parses chunks on its worker threads, where each record
//! is also flattened into an [`Event`], so the caller only receives finished events.

use std::io::BufRead;
use std::path::Path;

use evtx::err::EvtxError;
use evtx::{EvtxParser, ParserSettings};

use super::{Diagnostic, EventSink, Location, ReadOptions, flatten_stream};
use crate::event::Event;

/// The size of an EVTX chunk.
const CHUNK_SIZE: u64 = 64 * 1024;

/// What a worker thread made of one record.
type RecordOutcome = Result<Event, (u64, String)>;

pub(super) fn read(
    name: &str,
    path: Option<&Path>,
    mut reader: impl BufRead,
    options: &ReadOptions,
    sink: &mut dyn EventSink,
) -> Result<(), String> {
    let threads = if options.evtx_threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        options.evtx_threads
    };
    let settings = ParserSettings::new().num_threads(threads);
    match path {
        Some(path) => {
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            let parser = EvtxParser::from_path(path).map_err(not_evtx)?;
            drain(
                parser.with_configuration(settings),
                name,
                size,
                options,
                sink,
            );
        }
        None => {
            let mut buffer = Vec::new();
            reader
                .read_to_end(&mut buffer)
                .map_err(|e| super::io_reason(&e))?;
            let size = buffer.len() as u64;
            let parser = EvtxParser::from_buffer(buffer).map_err(not_evtx)?;
            drain(
                parser.with_configuration(settings),
                name,
                size,
                options,
                sink,
            );
        }
    }
    Ok(())
}

fn not_evtx(error: EvtxError) -> String {
    format!("not a readable EVTX file: {}", chain(&error))
}

/// Reads every record of an open file into the sink.
fn drain<T: std::io::Read + std::io::Seek + Send + 'static>(
    mut parser: EvtxParser<T>,
    name: &str,
    size: u64,
    options: &ReadOptions,
    sink: &mut dyn EventSink,
) {
    // The evtx crate reads what is there; a cut-off file is only visible against its header.
    let header = parser.header();
    let declared = u64::from(header.header_block_size) + u64::from(header.chunk_count) * CHUNK_SIZE;
    if size < declared {
        let chunks = u64::from(header.chunk_count);
        let complete = size.saturating_sub(u64::from(header.header_block_size)) / CHUNK_SIZE;
        let reason = format!(
            "file truncated: the header declares {chunks} chunks ({declared} bytes) but the file has \
             {size} bytes; records in chunks {complete} to {} are lost",
            chunks - 1
        );
        if sink
            .diagnostic(Diagnostic {
                file: name.to_owned(),
                location: Location::Chunk(complete),
                reason,
            })
            .is_break()
        {
            return;
        }
    }
    let tenant = options.tenant.clone();
    let records = parser.serialized_records(move |record| {
        let record = record?;
        let record_id = record.event_record_id;
        let outcome: RecordOutcome = match record.into_json_bytes() {
            Ok(serialized) => match flatten_stream::flatten_json_slice(&serialized.data) {
                Ok(fields) => Ok(Event::from_fields(fields, tenant.clone())),
                Err(reason) => Err((record_id, reason)),
            },
            Err(error) => Err((record_id, chain(&error))),
        };
        Ok(outcome)
    });
    for result in records {
        let flow = match result {
            Ok(Ok(event)) => sink.event(event),
            Ok(Err((record_id, reason))) => sink.diagnostic(Diagnostic {
                file: name.to_owned(),
                location: Location::Record(record_id),
                reason,
            }),
            Err(error) => sink.diagnostic(Diagnostic {
                file: name.to_owned(),
                location: location_of(&error),
                reason: chain(&error),
            }),
        };
        if flow.is_break() {
            return;
        }
    }
    sink.progress(size);
}

/// Where in the file an EVTX error points.
fn location_of(error: &EvtxError) -> Location {
    match error {
        EvtxError::FailedToParseRecord { record_id, .. } => Location::Record(*record_id),
        EvtxError::FailedToParseChunk { chunk_id, .. } => Location::Chunk(*chunk_id),
        EvtxError::FailedToReadRecordAt {
            chunk: Some(chunk), ..
        } => Location::Chunk(*chunk),
        _ => Location::File,
    }
}

/// An error and its causes, as one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
