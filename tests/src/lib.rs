//! End-to-end tests of the SIREN binaries live in `it/`.
