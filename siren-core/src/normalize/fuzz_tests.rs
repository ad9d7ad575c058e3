//! No-panic property tests for every reader, and the helpers the readers' unit tests share.

use std::ops::ControlFlow;
use std::path::PathBuf;

use super::{Diagnostic, EventSink, Format, ReadOptions};
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
    let path = std::path::Path::new(name);
    let result = super::read_stream(name, Some(path), bytes, options, &mut sink);
    (result, sink)
}

/// Where the shared corpus is, if it is there.
pub(super) fn shared_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("SIREN_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    };
    dir.join("corpus/evtx").is_dir().then_some(dir)
}
