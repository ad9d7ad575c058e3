//! Readers that turn raw input (EVTX, Windows XML, JSON / JSON Lines, syslog, CSV) into
//! [`Event`]s, streaming, with the format detected from the content.
//!
//! Every reader reports into an [`EventSink`]: each event it parsed, and a [`Diagnostic`]
//! (file, record or line, reason) for each record or file it had to skip. A reader never
//! panics on input and never stops on a bad record; the sink decides whether to go on.

pub mod core;
mod csv;
mod evtx;
pub mod flatten;
mod flatten_stream;
#[cfg(test)]
mod fuzz_tests;
mod json;
mod lines;
mod observer;
mod syslog;
mod xml;

use std::fmt;
use std::io::{BufReader, Read};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use crate::event::{Event, TenantId};

pub use observer::{Quiet, ReadObserver};

/// The input formats SIREN reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// Windows binary event log.
    Evtx,
    /// A JSON document, an array of objects, or JSON Lines.
    Json,
    /// Windows event XML: one or many `<Event>` elements.
    Xml,
    /// Syslog lines, RFC 5424 or RFC 3164.
    Syslog,
    /// CSV with a header row.
    Csv,
    /// A SIREN archive part (zstd-compressed JSON Lines, see [`crate::archive::format`]).
    Archive,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Evtx => "evtx",
            Format::Json => "json",
            Format::Xml => "xml",
            Format::Syslog => "syslog",
            Format::Csv => "csv",
            Format::Archive => "archive",
        })
    }
}

/// Where in an input a diagnostic points.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// The whole file.
    File,
    /// A 1-based line of a text input.
    Line(u64),
    /// A record: the EVTX record number, or the 1-based position of an element or row.
    Record(u64),
    /// A 0-based EVTX chunk.
    Chunk(u64),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File => Ok(()),
            Location::Line(n) => write!(f, "line {n}"),
            Location::Record(n) => write!(f, "record {n}"),
            Location::Chunk(n) => write!(f, "chunk {n}"),
        }
    }
}

/// A record or file that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The input's name: its path, or `-` for stdin.
    pub file: String,
    /// Where in the input.
    pub location: Location,
    /// What was wrong, in words.
    pub reason: String,
}

impl Diagnostic {
    /// A diagnostic about the whole file.
    pub fn file(file: &str, reason: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            location: Location::File,
            reason: reason.into(),
        }
    }

    /// Whether it concerns a whole file rather than one record in it.
    pub fn is_file_level(&self) -> bool {
        self.location == Location::File
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Location::File => write!(f, "{}: {}", self.file, self.reason),
            _ => write!(f, "{}: {}: {}", self.file, self.location, self.reason),
        }
    }
}

/// Receives what a reader produced. Returning `ControlFlow::Break` stops the reader.
pub trait EventSink {
    /// One parsed event.
    fn event(&mut self, event: Event) -> ControlFlow<()>;
    /// One skipped record or file.
    fn diagnostic(&mut self, diagnostic: Diagnostic) -> ControlFlow<()>;
    /// `bytes` more of the current input were consumed (for progress display).
    fn progress(&mut self, _bytes: u64) {}
    /// A file found in a folder was left alone: it is empty or not a log (see [`Input::File`]).
    fn ignored(&mut self, _file: &str, _reason: &str) {}
}

/// Extensions of files that are meant to be logs: in a folder, such a file that cannot be
/// read is an error, where any other unreadable file is merely ignored.
const LOG_EXTENSIONS: &[&str] = &[
    "evtx", "xml", "json", "jsonl", "ndjson", "log", "syslog", "csv", "tsv",
];

/// Options shared by all readers.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// The tenant given to every event read.
    pub tenant: TenantId,
    /// A record (line, element, row) larger than this is skipped with a diagnostic.
    pub max_record_bytes: usize,
    /// Worker threads for EVTX parsing (0 = one per core).
    pub evtx_threads: usize,
    /// The reference time for dates written without a year (RFC 3164 syslog): the year is
    /// the one that puts the date closest before it.
    pub now: chrono::DateTime<chrono::Utc>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            tenant: TenantId::default(),
            max_record_bytes: 4 << 20,
            evtx_threads: 0,
            now: chrono::Utc::now(),
        }
    }
}

impl ReadOptions {
    /// Sets the tenant.
    pub fn with_tenant(mut self, tenant: TenantId) -> Self {
        self.tenant = tenant;
        self
    }

    /// Sets the record size limit.
    pub fn with_max_record_bytes(mut self, bytes: usize) -> Self {
        self.max_record_bytes = bytes;
        self
    }

    /// Sets the number of EVTX worker threads.
    pub fn with_evtx_threads(mut self, threads: usize) -> Self {
        self.evtx_threads = threads;
        self
    }

    /// Sets the reference time for dates written without a year.
    pub fn with_now(mut self, now: chrono::DateTime<chrono::Utc>) -> Self {
        self.now = now;
        self
    }
}

/// One input to read: a file, or standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A file named explicitly: whatever it holds, it must be readable as events.
    Named(PathBuf),
    /// A file found by walking a folder: when it is empty, or holds no format SIREN reads and
    /// has no log-file extension (a README, a licence), it is ignored rather than an error.
    File(PathBuf),
    /// Standard input (`-`).
    Stdin,
}

impl Input {
    /// The name diagnostics use for this input.
    pub fn name(&self) -> String {
        match self {
            Input::Named(path) | Input::File(path) => path.display().to_string(),
            Input::Stdin => "-".to_owned(),
        }
    }

    /// The input's size in bytes, when known.
    pub fn size(&self) -> Option<u64> {
        match self {
            Input::Named(path) | Input::File(path) => std::fs::metadata(path).ok().map(|m| m.len()),
            Input::Stdin => None,
        }
    }
}

/// Expands the paths a user named into inputs: files as they are, directories recursively
/// (sorted, so runs are reproducible), `-` as stdin. Paths that do not exist are returned
/// apart, so the caller can report them.
pub fn expand_inputs<P: AsRef<Path>>(paths: &[P]) -> (Vec<Input>, Vec<Diagnostic>) {
    let mut inputs = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        let path = path.as_ref();
        if path == Path::new("-") {
            inputs.push(Input::Stdin);
            continue;
        }
        let name = path.display().to_string();
        match std::fs::metadata(path) {
            Err(error) => problems.push(Diagnostic::file(&name, io_reason(&error))),
            Ok(meta) if meta.is_dir() => {
                let walker = walkdir::WalkDir::new(path)
                    .follow_links(true)
                    .sort_by_file_name();
                for entry in walker {
                    match entry {
                        Ok(entry) if entry.file_type().is_dir() => {}
                        Ok(entry) => inputs.push(Input::File(entry.into_path())),
                        Err(error) => {
                            let at = error.path().unwrap_or(path).display().to_string();
                            let reason = match error.io_error() {
                                Some(io) => io_reason(io),
                                None => error.to_string(),
                            };
                            problems.push(Diagnostic::file(&at, reason));
                        }
                    }
                }
            }
            Ok(_) => inputs.push(Input::Named(path.to_owned())),
        }
    }
    (inputs, problems)
}

/// Reads one input to the end, detecting its format from the content.
///
/// Returns the format that was detected, or `None` when the input was skipped as a whole (it
/// could not be opened, was empty, or is in no format SIREN reads); the sink was told why.
pub fn read_input(
    input: &Input,
    options: &ReadOptions,
    sink: &mut dyn EventSink,
) -> Option<Format> {
    let name = input.name();
    let result = match input {
        Input::Named(path) => match std::fs::File::open(path) {
            Ok(file) => read_stream(&name, Some(path), file, options, sink),
            Err(error) => Err(io_reason(&error)),
        },
        Input::File(path) => match std::fs::File::open(path) {
            Ok(file) => match not_a_log(path, &file) {
                Some(reason) => {
                    sink.ignored(&name, &reason);
                    return None;
                }
                None => read_stream(&name, Some(path), file, options, sink),
            },
            Err(error) => Err(io_reason(&error)),
        },
        Input::Stdin => read_stream(&name, None, std::io::stdin().lock(), options, sink),
    };
    match result {
        Ok(format) => Some(format),
        Err(reason) => {
            let _ = sink.diagnostic(Diagnostic::file(&name, reason));
            None
        }
    }
}

/// Why a file found in a folder is not a log to read, if it is not: empty, or in no format
/// SIREN reads and without a log-file extension.
fn not_a_log(path: &Path, file: &std::fs::File) -> Option<String> {
    let mut head = Vec::with_capacity(HEAD_BYTES);
    let read = file.take(HEAD_BYTES as u64).read_to_end(&mut head);
    let mut rewind = file;
    let rewound = std::io::Seek::rewind(&mut rewind);
    if read.is_err() || rewound.is_err() {
        return None; // Reading again reports the error.
    }
    if head.is_empty() {
        return Some("empty file".to_owned());
    }
    if head.starts_with(&ZSTD_MAGIC) {
        return None;
    }
    let log_extension = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| LOG_EXTENSIONS.iter().any(|l| l.eq_ignore_ascii_case(e)));
    match detect(&head, Some(path)) {
        Err(reason) if !log_extension => Some(format!("not a log: {reason}")),
        _ => None,
    }
}

/// Reads one stream to the end, detecting its format from the first bytes. `path` is the
/// file the stream came from, if any: it lets the EVTX reader seek rather than buffer.
///
/// ```
/// use std::ops::ControlFlow;
///
/// use siren_core::Event;
/// use siren_core::normalize::{Diagnostic, EventSink, Format, ReadOptions, read_stream};
///
/// /// Keeps what the reader produced.
/// #[derive(Default)]
/// struct Collect(Vec<Event>, Vec<Diagnostic>);
/// impl EventSink for Collect {
///     fn event(&mut self, event: Event) -> ControlFlow<()> {
///         self.0.push(event);
///         ControlFlow::Continue(())
///     }
///     fn diagnostic(&mut self, diagnostic: Diagnostic) -> ControlFlow<()> {
///         self.1.push(diagnostic);
///         ControlFlow::Continue(())
///     }
/// }
///
/// let record = "<38>1 2024-03-04T08:15:02Z bastion01 sshd 21960 - - \
///               Failed password for root from 198.51.100.23 port 40611 ssh2\n";
/// let mut sink = Collect::default();
/// let options = ReadOptions::default();
/// let format = read_stream("auth.log", None, record.as_bytes(), &options, &mut sink)?;
/// assert_eq!(format, Format::Syslog);
/// assert!(sink.1.is_empty());
/// let event = &sink.0[0];
/// assert_eq!(event.host.as_deref(), Some("bastion01"));
/// let time = event.timestamp.map(|t| t.to_rfc3339());
/// assert_eq!(time.as_deref(), Some("2024-03-04T08:15:02+00:00"));
/// # Ok::<(), String>(())
/// ```
pub fn read_stream(
    name: &str,
    path: Option<&Path>,
    mut stream: impl Read,
    options: &ReadOptions,
    sink: &mut dyn EventSink,
) -> Result<Format, String> {
    let mut head = Vec::with_capacity(HEAD_BYTES);
    (&mut stream)
        .take(HEAD_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|e| io_reason(&e))?;
    if head.is_empty() {
        return Err("empty file: no records to read".to_owned());
    }
    if head.starts_with(&ZSTD_MAGIC) {
        return read_compressed(
            name,
            std::io::Cursor::new(head).chain(stream),
            options,
            sink,
        );
    }
    let format = detect(&head, path).map_err(str::to_owned)?;
    let reader = BufReader::with_capacity(256 << 10, std::io::Cursor::new(head).chain(stream));
    match format {
        Format::Evtx => evtx::read(name, path, reader, options, sink),
        Format::Json => json::read(name, reader, options, sink),
        Format::Xml => xml::read(name, reader, options, sink),
        Format::Syslog => syslog::read(name, reader, options, sink),
        Format::Csv => csv::read(name, reader, options, sink),
        Format::Archive => crate::archive::format::read(name, reader, options, sink),
    }
    .map(|()| format)
}

/// The first bytes of a zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Reads a zstd-compressed stream: a SIREN archive part, or a log in any format SIREN reads
/// (`auth.log.zst`). The EVTX reader then reads from the stream rather than seeking.
fn read_compressed(
    name: &str,
    stream: impl Read,
    options: &ReadOptions,
    sink: &mut dyn EventSink,
) -> Result<Format, String> {
    let mut decoder = zstd::stream::read::Decoder::new(stream)
        .map_err(|e| format!("cannot decompress zstd: {}", io_reason(&e)))?;
    let mut head = Vec::with_capacity(HEAD_BYTES);
    (&mut decoder)
        .take(HEAD_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|e| format!("cannot decompress zstd: {}", io_reason(&e)))?;
    if head.is_empty() {
        return Err("empty file: a zstd frame with no records".to_owned());
    }
    if head.starts_with(&ZSTD_MAGIC) {
        return Err("zstd inside zstd: decompress the file once first".to_owned());
    }
    let format = if head.starts_with(crate::archive::format::HEADER_START) {
        Format::Archive
    } else {
        detect(&head, None).map_err(str::to_owned)?
    };
    let reader = BufReader::with_capacity(256 << 10, std::io::Cursor::new(head).chain(decoder));
    match format {
        Format::Evtx => evtx::read(name, None, reader, options, sink),
        Format::Json => json::read(name, reader, options, sink),
        Format::Xml => xml::read(name, reader, options, sink),
        Format::Syslog => syslog::read(name, reader, options, sink),
        Format::Csv => csv::read(name, reader, options, sink),
        Format::Archive => crate::archive::format::read(name, reader, options, sink),
    }
    .map(|()| format)
}

/// How many leading bytes format detection looks at.
const HEAD_BYTES: usize = 8192;

/// Detects the format of an input from its first bytes, falling back to the file extension
/// only where the content is ambiguous.
pub fn detect(head: &[u8], path: Option<&Path>) -> Result<Format, &'static str> {
    if head.starts_with(b"ElfFile\0") {
        return Ok(Format::Evtx);
    }
    if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
        return Err("UTF-16 text is not supported: convert the file to UTF-8");
    }
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let looks_binary = text.contains(&0)
        || match std::str::from_utf8(text) {
            Ok(_) => false,
            // A multi-byte character cut at the end of the head is fine.
            Err(e) => e.error_len().is_some(),
        };
    if looks_binary {
        return Err(if head.starts_with(b"ElfChnk\0") {
            "EVTX chunk without its file header (truncated or carved file)"
        } else {
            "unrecognised input: binary data that is not an EVTX file"
        });
    }
    let trimmed = text.trim_ascii_start();
    match trimmed.first() {
        None => return Err("empty file: only whitespace, no records to read"),
        Some(b'{' | b'[') => return Ok(Format::Json),
        Some(b'<') => {
            let digits = trimmed[1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            let is_pri = (1..=3).contains(&digits) && trimmed.get(1 + digits) == Some(&b'>');
            return Ok(if is_pri { Format::Syslog } else { Format::Xml });
        }
        Some(_) => {}
    }
    let first_line = trimmed.split(|&b| b == b'\n').next().unwrap_or_default();
    if syslog::looks_like_syslog(first_line) {
        return Ok(Format::Syslog);
    }
    let extension = path
        .and_then(|p| p.extension())
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("csv" | "tsv") => return Ok(Format::Csv),
        Some("log" | "syslog") => return Ok(Format::Syslog),
        _ => {}
    }
    if csv::looks_like_header(first_line) {
        return Ok(Format::Csv);
    }
    Err("unrecognised input: not EVTX, Windows XML, JSON, syslog or CSV")
}

/// An I/O error in words, without Rust's "(os error N)" noise.
pub(crate) fn io_reason(error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::NotFound => "no such file or directory".to_owned(),
        ErrorKind::PermissionDenied => "permission denied".to_owned(),
        ErrorKind::IsADirectory => "is a directory".to_owned(),
        _ => {
            let text = error.to_string();
            match text.find(" (os error") {
                Some(i) => text[..i].to_owned(),
                None => text,
            }
        }
    }
}
