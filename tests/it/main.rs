//! End-to-end tests of the SIREN binaries and of `siren-core` against the shared corpus.
//!
//! The corpus (`SIREN_SHARED`, default `../shared` from the workspace root) holds real EVTX
//! files and SigmaHQ's rules. Where it is absent, the tests that need it print a notice and
//! pass; with `SIREN_REQUIRE_CORPUS=1` (as CI sets) its absence is a failure.

// A failed unwrap is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod agent;
mod api_errors;
mod archive;
mod authz;
mod cluster_stages;
mod correlation;
mod csv_injection;
mod dashboard;
#[cfg(unix)]
mod file_modes;
mod hunt;
mod hunt_correlation;
mod incidents;
mod ingest;
mod ingest_crash;
mod normalize_corpus;
mod notify;
mod null_semantics;
mod pipelines;
mod report;
mod retention;
mod rule_pack;
mod security;
mod server;
mod sigma_regression;
mod store;
mod support;
