//! The exit codes of `siren`, one enum for every command (documented in `--help`).

use std::fmt;

/// How a `siren` command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// The command ran and found a failure it reports (failed rule tests, invalid rules).
    Findings = 1,
    /// Bad command line (clap exits with this itself).
    #[allow(dead_code)]
    Usage = 2,
    /// Input data was bad: records or files were skipped.
    DataError = 65,
    /// An input named on the command line does not exist.
    NoInput = 66,
    /// An internal error.
    Software = 70,
    /// A service SIREN needs (the database) is unavailable.
    Unavailable = 69,
    /// A temporary failure (database busy): retry later.
    TempFail = 75,
    /// Bad configuration.
    Config = 78,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

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

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
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
