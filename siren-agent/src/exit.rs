//! The exit codes of `siren-agent`, one enum for every command (documented in `--help`).

/// How a `siren-agent` command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// Input data was bad: records were unreadable or the server rejected events.
    DataError = 65,
    /// An input named on the command line does not exist.
    NoInput = 66,
    /// The agent is not running (status).
    Unavailable = 69,
    /// The agent's own failure (spool unusable, a thread could not start).
    Software = 70,
    /// Temporary failure: the server could not be reached in time; the events wait in the
    /// spool and the next run sends them.
    TempFail = 75,
    /// Bad configuration (including a token the server refuses).
    Config = 78,
}

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
