//! How `siren-agent` commands end: the exit code table (shared with `siren`, in
//! `siren_core::exit`), its meaning for the agent in `--help`, and the error that carries a code.

pub use siren_core::exit::Exit;

/// The exit codes, for `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0   success (once: every event acknowledged by the server)
  2   usage error
  65  bad input data: unreadable records, or events the server rejected (see the log)
  66  an input path does not exist
  69  status: the agent is not running
  70  internal error (spool unusable)
  75  temporary failure: the server was not reached in time; the events stay in the spool
  78  bad configuration, or the server refuses the token";

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

/// Attaches an exit code to results.
pub trait ExitContext<T> {
    /// Fails with `exit`.
    fn exit(self, exit: Exit) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> ExitContext<T> for Result<T, E> {
    fn exit(self, exit: Exit) -> Result<T, Failure> {
        self.map_err(|e| Failure::new(exit, e))
    }
}
