//! No-panic property tests for every reader, and the helpers the readers' unit tests share.

use std::ops::ControlFlow;
use std::path::PathBuf;

use proptest::prelude::*;

use super::{Diagnostic, EventSink, Format, Location, ReadOptions};
use crate::event::Event;

/// A sink that keeps everything it is given.
#[derive(Debug, Default)]
pub(super) struct Collect {
    pub(super) events: Vec<Event>,
    pub(super) diagnostics: Vec<Diagnostic>,
    pub(super) progress: u64,
}

impl EventSink for Collect {
    fn event(&mut self, event: Event) -> ControlFlow<()> {
        self.events.push(event);
        ControlFlow::Continue(())
    }
    fn diagnostic(&mut self, diagnostic: Diagnostic) -> ControlFlow<()> {
        self.diagnostics.push(diagnostic);
        ControlFlow::Continue(())
    }
    fn progress(&mut self, bytes: u64) {
        self.progress += bytes;
    }
}

/// Reads `bytes` as the file `name` through format detection.
pub(super) fn read_bytes(
    name: &str,
    bytes: &[u8],
    options: &ReadOptions,
) -> (Result<Format, String>, Collect) {
    let mut sink = Collect::default();
    // The path names the input for detection by extension; the EVTX reader would open it.
    let path = Some(std::path::Path::new(name)).filter(|_| !name.ends_with(".evtx"));
    let result = super::read_stream(name, path, bytes, options, &mut sink);
    (result, sink)
}

/// Reads `bytes` as the file `name`, checking what every reader promises whatever the input:
/// no panic (the test fails on one), and a reason for every diagnostic and failure.
fn read_checked(name: &str, bytes: &[u8], options: &ReadOptions) -> Collect {
    let (result, sink) = read_bytes(name, bytes, options);
    if let Err(reason) = &result {
        assert!(
            !reason.trim().is_empty(),
            "{name}: a failure without a reason"
        );
    }
    for diagnostic in &sink.diagnostics {
        assert!(
            !diagnostic.reason.trim().is_empty(),
            "{name}: a diagnostic without a reason: {diagnostic:?}"
        );
        assert_eq!(diagnostic.file, name);
    }
    sink
}

/// A change to a valid input.
#[derive(Debug, Clone)]
enum Mutation {
    /// Keep only the first `n` (modulo the length) bytes.
    Truncate(usize),
    /// XOR the byte at each position (modulo the length) with a non-zero mask.
    Flip(Vec<(usize, u8)>),
    /// Insert bytes at a position (modulo the length).
    Insert(usize, Vec<u8>),
    /// Remove a range (start and length, modulo the length).
    Remove(usize, usize),
}

impl Mutation {
    fn apply(&self, input: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        let len = out.len().max(1);
        match self {
            Mutation::Truncate(n) => out.truncate(n % len),
            Mutation::Flip(flips) => {
                for (at, mask) in flips {
                    if let Some(byte) = out.get_mut(at % len) {
                        *byte ^= mask;
                    }
                }
            }
            Mutation::Insert(at, bytes) => {
                let at = (at % len).min(out.len());
                out.splice(at..at, bytes.iter().copied());
            }
            Mutation::Remove(at, n) => {
                let at = (at % len).min(out.len());
                let end = (at + n % 64).min(out.len());
                out.drain(at..end);
            }
        }
        out
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        prop::collection::vec((any::<usize>(), 1u8..=255), 1..8).prop_map(Mutation::Flip),
        (any::<usize>(), garbage()).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        (any::<usize>(), any::<usize>()).prop_map(|(at, n)| Mutation::Remove(at, n)),
    ]
}

/// Bytes that stress parsers: markup, quotes, delimiters, line ends, invalid UTF-8.
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"<".to_vec()),
        Just(b">".to_vec()),
        Just(b"</Event>".to_vec()),
        Just(b"<Event>".to_vec()),
        Just(b"<![CDATA[".to_vec()),
        Just(b"&#xFFFFFF;".to_vec()),
        Just(b"&amp".to_vec()),
        Just(b"\"".to_vec()),
        Just(b",;\t".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"{\"".to_vec()),
        Just(b"]}".to_vec()),
        Just(b"<999>".to_vec()),
        Just(b"[sd@1 a=\"".to_vec()),
        Just(vec![0xFF, 0xFE]),
        Just(vec![0xE2, 0x82]),
        Just(vec![0]),
        prop::collection::vec(any::<u8>(), 0..16),
    ];
    prop::collection::vec(piece, 1..6).prop_map(|pieces| pieces.concat())
}

/// The text samples, one per format, with the names they are read under.
fn samples() -> Vec<(&'static str, &'static [u8])> {
    vec![
        (
            "sample.xml",
            include_bytes!("../../../tests/fixtures/inputs/sample.xml"),
        ),
        (
            "sample.syslog",
            include_bytes!("../../../tests/fixtures/inputs/sample.syslog"),
        ),
        (
            "sample.csv",
            include_bytes!("../../../tests/fixtures/inputs/sample.csv"),
        ),
        (
            "sample.jsonl",
            include_bytes!("../../../tests/fixtures/inputs/sample.jsonl"),
        ),
        (
            "array.json",
            br#"[{"a": 1, "b": {"c": [1, 2]}}, {"Event": {"System": {"EventID": 1}}}]"#,
        ),
        (
            "pretty.json",
            b"{\n  \"winlog\": {\"event_id\": \"4625\"}\n}\n{\n  \"x\": 1\n}\n",
        ),
    ]
}

/// The small options the property tests read with: a low size limit reaches the oversize
/// paths, and one EVTX thread keeps the cases cheap.
fn fuzz_options() -> ReadOptions {
    ReadOptions::default()
        .with_max_record_bytes(1024)
        .with_evtx_threads(1)
}

/// A small real EVTX file from the shared corpus, if the corpus is there.
fn corpus_evtx() -> Option<&'static [u8]> {
    static EVTX: std::sync::OnceLock<Option<Vec<u8>>> = std::sync::OnceLock::new();
    EVTX.get_or_init(|| {
        crate::test_corpus::corpus_file("the EVTX tests", "evtx/DeepBlueCLI/new-user-security.evtx")
    })
    .as_deref()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        ext in prop::sample::select(vec!["", ".xml", ".csv", ".tsv", ".log", ".json", ".evtx"]),
    ) {
        let name = format!("input{ext}");
        let _ = super::detect(&bytes, Some(std::path::Path::new(&name)));
        read_checked(&name, &bytes, &fuzz_options());
    }

    #[test]
    fn arbitrary_text_never_panics(
        text in prop::collection::vec(garbage(), 0..24),
        lead in prop::sample::select(vec!["", "<Event>", "Jan  5 10:11:12 h p: ", "a,b\n", "<13>1 ", "{", "["]),
    ) {
        let mut bytes = lead.as_bytes().to_vec();
        bytes.extend(text.concat());
        read_checked("input", &bytes, &fuzz_options());
    }

    #[test]
    fn mutated_samples_never_panic(
        index in 0usize..6,
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let (name, sample) = samples()[index];
        let mut bytes = sample.to_vec();
        for m in &mutations {
            bytes = m.apply(&bytes);
        }
        read_checked(name, &bytes, &fuzz_options());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn truncated_evtx_never_panics(cut in any::<prop::sample::Index>()) {
        let Some(evtx) = corpus_evtx() else {
            return Ok(());
        };
        let bytes = &evtx[..cut.index(evtx.len())];
        read_checked("cut.evtx", bytes, &fuzz_options());
    }

    #[test]
    fn evtx_with_a_damaged_chunk_never_panics(
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..32),
        in_header in any::<bool>(),
    ) {
        let Some(evtx) = corpus_evtx() else {
            return Ok(());
        };
        let mut bytes = evtx.to_vec();
        // The first chunk starts after the 4 KiB file header; its own header is 512 bytes.
        let (start, end) = if in_header { (4096, 4096 + 512) } else { (4096, bytes.len()) };
        for (at, mask) in flips {
            let at = start + at.index(end.saturating_sub(start).max(1));
            if let Some(byte) = bytes.get_mut(at) {
                *byte ^= mask;
            }
        }
        read_checked("damaged.evtx", &bytes, &fuzz_options());
    }
}

#[test]
fn the_corpus_evtx_reads_whole() {
    let Some(evtx) = corpus_evtx() else {
        return;
    };
    let sink = read_checked("whole.evtx", evtx, &fuzz_options());
    assert!(!sink.events.is_empty());
    assert!(sink.diagnostics.is_empty(), "{:?}", sink.diagnostics);
}

#[test]
fn the_fixtures_read_as_documented() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/inputs");
    // (file, format, events, diagnostics at)
    let expected: [(&str, Format, usize, &[Location]); 8] = [
        ("sample.xml", Format::Xml, 3, &[]),
        ("sample.syslog", Format::Syslog, 7, &[]),
        ("sample.csv", Format::Csv, 5, &[]),
        ("sample.jsonl", Format::Json, 4, &[]),
        ("bad.xml", Format::Xml, 2, &[Location::Record(2)]),
        ("bad.syslog", Format::Syslog, 7, &[Location::Line(4)]),
        ("bad.csv", Format::Csv, 5, &[Location::Line(4)]),
        ("bad.jsonl", Format::Json, 4, &[Location::Line(3)]),
    ];
    for (file, format, events, at) in expected {
        let mut sink = Collect::default();
        let input = super::Input::File(dir.join(file));
        let got = super::read_input(&input, &ReadOptions::default(), &mut sink);
        assert_eq!(got, Some(format), "{file}: {:?}", sink.diagnostics);
        assert_eq!(sink.events.len(), events, "{file}: {:?}", sink.diagnostics);
        let locations: Vec<_> = sink
            .diagnostics
            .iter()
            .map(|d| d.location.clone())
            .collect();
        assert_eq!(locations, at, "{file}: {:?}", sink.diagnostics);
        assert!(
            sink.events.iter().all(|e| e.timestamp.is_some()),
            "{file}: an event without a time"
        );
    }
}

/// A sink that asks the reader to stop after the first thing it is given.
#[derive(Default)]
struct StopAtFirst {
    seen: usize,
}

impl EventSink for StopAtFirst {
    fn event(&mut self, _: Event) -> ControlFlow<()> {
        self.seen += 1;
        ControlFlow::Break(())
    }
    fn diagnostic(&mut self, _: Diagnostic) -> ControlFlow<()> {
        self.seen += 1;
        ControlFlow::Break(())
    }
}

#[test]
fn every_reader_stops_when_the_sink_says_so() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/inputs");
    for file in [
        "sample.xml",
        "sample.syslog",
        "sample.csv",
        "sample.jsonl",
        "bad.xml",
    ] {
        let mut sink = StopAtFirst::default();
        let input = super::Input::File(dir.join(file));
        assert!(super::read_input(&input, &ReadOptions::default(), &mut sink).is_some());
        assert_eq!(sink.seen, 1, "{file}");
    }
}

#[test]
fn json_bad_inputs() {
    let good = r#"{"EventID": 4625, "TargetUserName": "bob", "timestamp": "2024-01-05T10:11:12Z"}"#;
    let long = format!(r#"{{"x": "{}"}}"#, "y".repeat(2000));
    let text = format!("{good}\n{{\"broken\": \n{long}\n{good}\n");
    // A `.csv` name: the content decides.
    let sink = read_checked("events.csv", text.as_bytes(), &fuzz_options());
    assert_eq!(sink.events.len(), 2, "{:?}", sink.diagnostics);
    let at: Vec<_> = sink
        .diagnostics
        .iter()
        .map(|d| d.location.clone())
        .collect();
    assert_eq!(at, [Location::Line(2), Location::Line(3)]);
    assert!(
        sink.diagnostics[1]
            .reason
            .contains("exceeds the limit of 1024 bytes")
    );
    let (result, _) = read_bytes("empty.json", b"", &fuzz_options());
    assert!(result.is_err_and(|reason| reason.contains("empty")));
}

#[test]
fn evtx_bad_inputs() {
    let Some(evtx) = corpus_evtx() else {
        return;
    };
    // A wrong extension: the content decides.
    let (result, whole) = read_bytes("copied.log.evtx", evtx, &fuzz_options());
    assert_eq!(result, Ok(Format::Evtx));
    assert!(whole.diagnostics.is_empty());
    let mut sink = Collect::default();
    let as_log = super::read_stream("copied.log", None, evtx, &fuzz_options(), &mut sink);
    assert_eq!(as_log, Ok(Format::Evtx));
    assert_eq!(sink.events.len(), whole.events.len());
    // Cut inside the first chunk's records: what is whole is kept, the rest is reported.
    let cut = &evtx[..evtx.len().min(4096 + 512 + 3000)];
    let sink = read_checked("cut.evtx", cut, &fuzz_options());
    assert!(sink.events.len() < whole.events.len());
    assert!(!sink.diagnostics.is_empty());
    // A chunk without its file header is named as such.
    let (result, _) = read_bytes("carved.evtx", &evtx[4096..], &fuzz_options());
    assert!(result.is_err_and(|reason| reason.contains("without its file header")));
}
