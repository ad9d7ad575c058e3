//! The exit codes of SIREN's programs (`siren`, `siren-agent`), one table for all of them:
//! BSD's `sysexits.h` codes, so that scripts and service managers read them the same way
//! whichever program ran. Each program documents in its `--help` what each code means for it.

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// The command ran and reports a failure it found (failed rule tests, invalid rules).
    Findings = 1,
    /// Bad command line.
    Usage = 2,
    /// Input data was bad: records or files were skipped, or events were rejected.
    DataError = 65,
    /// An input named on the command line does not exist.
    NoInput = 66,
    /// A service the command needs (the database, a running agent) is unavailable.
    Unavailable = 69,
    /// An internal error.
    Software = 70,
    /// A temporary failure (database busy, server unreachable): retry later.
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

#[cfg(test)]
mod tests {
    use super::Exit;

    #[test]
    fn codes_are_those_of_sysexits() {
        let codes = [
            (Exit::Ok, 0),
            (Exit::Findings, 1),
            (Exit::Usage, 2),
            (Exit::DataError, 65),
            (Exit::NoInput, 66),
            (Exit::Unavailable, 69),
            (Exit::Software, 70),
            (Exit::TempFail, 75),
            (Exit::Config, 78),
        ];
        for (exit, code) in codes {
            assert_eq!(exit.code(), code, "{exit:?}");
        }
    }
}
