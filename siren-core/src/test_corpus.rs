//! The one way siren-core's unit tests find the shared corpus (`SIREN_SHARED`, default
//! `../shared` beside the workspace): absent, a test that needs it prints a notice and passes —
//! unless `SIREN_REQUIRE_CORPUS` is set (as CI sets it), where its absence, or a file of it that
//! cannot be read, fails the test.

use std::path::PathBuf;

/// The shared folder, when it holds a corpus; `what` names the test for the notice.
#[allow(clippy::print_stderr)] // The notice of a skipped test.
pub(crate) fn shared_dir(what: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("SIREN_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    };
    if dir.join("corpus").is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("SIREN_REQUIRE_CORPUS").is_none(),
        "{what}: the shared corpus is required but {} has no corpus/",
        dir.display()
    );
    eprintln!(
        "notice: skipping {what}: no corpus at {} (set SIREN_SHARED)",
        dir.display()
    );
    None
}

/// The bytes of `relative` (a path under `corpus/`), or `None` where the corpus is absent;
/// a corpus without the file fails the test rather than skipping it.
pub(crate) fn corpus_file(what: &str, relative: &str) -> Option<Vec<u8>> {
    let path = shared_dir(what)?.join("corpus").join(relative);
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) => panic!("{what}: the corpus has no readable {}: {e}", path.display()),
    }
}
