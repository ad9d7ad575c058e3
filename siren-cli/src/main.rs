//! The `siren` command.
fn main() {}
