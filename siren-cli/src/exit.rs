//! How `siren` commands end: the exit code table (shared with the agent, in `siren_core::exit`),
//! its meaning for `siren` in `--help`, and the error that carries a code.

use std::fmt;

pub use siren_core::exit::Exit;

/// The exit codes, for `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0   success
  1   findings: the command ran and reports a failure (rule tests failed, rules invalid)
  2   usage error
  65  bad input data: some records or files were skipped (see the summary)
  66  an input path does not exist
  69  a service is unavailable (the database cannot be reached)
  70  internal error
  75  temporary failure (database busy): retry
  78  bad configuration";

/// An error that ends a command, with the exit code it deserves.
pub struct Failure {
    /// The exit code.
    pub exit: Exit,
    /// What went wrong.
    pub error: anyhow::Error,
}

impl Failure {
    /// A failure with an explicit exit code.
    pub fn new(exit: Exit, error: impl Into<anyhow::Error>) -> Self {
        Self {
            exit,
            error: error.into(),
        }
    }
}

impl Failure {
    /// The error and its causes on one line, `: `-separated, leaving out a cause whose text
    /// the line already ends with (many errors repeat their source in their own message).
    pub fn message(&self) -> String {
        let mut line = String::new();
        for cause in self.error.chain() {
            let text = cause.to_string();
            if line.ends_with(&text) {
                continue;
            }
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        line
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        let exit = error
            .chain()
            .find_map(|cause| cause.downcast_ref::<siren_core::store::StoreError>())
            .map_or(Exit::Software, store_exit);
        Self { exit, error }
    }
}

impl From<siren_core::store::StoreError> for Failure {
    fn from(error: siren_core::store::StoreError) -> Self {
        Self {
            exit: store_exit(&error),
            error: error.into(),
        }
    }
}

/// The exit code a store error deserves.
fn store_exit(error: &siren_core::store::StoreError) -> Exit {
    use siren_core::store::StoreError;
    match error {
        StoreError::UnsupportedUrl(_) => Exit::Config,
        StoreError::Connect { .. } => Exit::Unavailable,
        e if e.is_transient() => Exit::TempFail,
        _ => Exit::Software,
    }
}

/// What every command returns.
pub type CommandResult = Result<Exit, Failure>;

#[cfg(test)]
mod tests {
    use super::{Exit, Failure};

    #[test]
    fn a_cause_the_message_already_ends_with_is_not_repeated() {
        let inner = std::io::Error::other("connection refused");
        let outer =
            anyhow::Error::new(inner).context("cannot open database 'x': connection refused");
        let failure = Failure::new(Exit::Unavailable, outer.context("siren backup"));
        assert_eq!(
            failure.message(),
            "siren backup: cannot open database 'x': connection refused"
        );
        let plain = Failure::new(Exit::Software, anyhow::anyhow!("top").context("outer"));
        assert_eq!(plain.message(), "outer: top");
    }
}
