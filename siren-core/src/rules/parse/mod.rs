//! From YAML documents to rules: metadata, the `detection` section (search identifiers and
//! condition), correlation and filter rules, and the `siren:` extension.
//!
//! `document.rs` reads a file's YAML documents and each document's rule; `search.rs` compiles
//! a `detection` section's search identifiers and condition; `detection.rs` is the compiled
//! detection (renamed per log source; its needed literals and event IDs); `siren.rs` reads
//! the `siren:` extension and `correlation.rs` a correlation rule.

mod correlation;

mod detection;

mod document;

mod search;

mod siren;

#[cfg(test)]
mod tests;

pub(crate) use detection::{Detection, Item, Need, share_names};

pub(crate) use search::parse_detection;

pub(crate) use document::{ParseContext, Parsed, parse_documents, parse_file, yaml_documents};
