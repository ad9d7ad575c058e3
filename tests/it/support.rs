//! Helpers shared by the end-to-end tests: where the corpus is, and how to run `siren`.

use std::path::PathBuf;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_owned()
}

/// The shared corpus folder, or `None` (after printing a notice) when it is absent.
///
/// Panics when it is absent but `SIREN_REQUIRE_CORPUS` is set, so CI cannot pass by skipping.
pub fn shared_dir(what: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("SIREN_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("../shared"),
    };
    if dir.join("corpus").is_dir() {
        return Some(dir);
    }
    if std::env::var_os("SIREN_REQUIRE_CORPUS").is_some() {
        panic!(
            "the shared corpus is required but {} has no corpus/",
            dir.display()
        );
    }
    eprintln!(
        "notice: skipping {what}: no corpus at {} (set SIREN_SHARED)",
        dir.display()
    );
    None
}
