//! The readers against the real EVTX corpus.

use std::ops::ControlFlow;

use siren_core::Event;
use siren_core::normalize::{self, Diagnostic, EventSink, ReadOptions};

use crate::support::shared_dir;

#[derive(Default)]
struct Collect {
    events: Vec<Event>,
    diagnostics: Vec<Diagnostic>,
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
}

#[test]
fn every_corpus_record_is_read() {
    let Some(shared) = shared_dir("every_corpus_record_is_read") else {
        return;
    };
    let evtx = shared.join("corpus/evtx");
    let counts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(evtx.join("record-counts.json")).unwrap()).unwrap();
    let (inputs, problems) = normalize::expand_inputs(&[&evtx]);
    assert!(problems.is_empty(), "{problems:?}");
    let mut sink = Collect::default();
    let options = ReadOptions::default();
    for input in inputs.iter().filter(
        |i| matches!(i, normalize::Input::File(p) if p.extension().is_some_and(|e| e == "evtx")),
    ) {
        normalize::read_input(input, &options, &mut sink);
    }
    assert!(
        sink.diagnostics.is_empty(),
        "{:#?}",
        &sink.diagnostics[..sink.diagnostics.len().min(10)]
    );
    assert_eq!(
        sink.events.len() as u64,
        counts["records"].as_u64().unwrap()
    );
    let with_core = sink
        .events
        .iter()
        .filter(|e| e.event_id.is_some() && e.host.is_some() && e.timestamp.is_some())
        .count();
    assert_eq!(with_core, sink.events.len());
}
