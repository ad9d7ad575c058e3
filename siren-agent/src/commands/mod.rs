//! One module per `siren-agent` subcommand.

pub mod check_config;
pub mod once;
pub mod run;
#[cfg(windows)]
pub mod service;
pub mod status;

use std::path::Path;

use crate::config::Config;
use crate::exit::{Exit, ExitContext, Failure};

/// Loads the configuration; a problem is exit code 78.
pub fn load(path: &Path) -> Result<Config, Failure> {
    Config::load(path).exit(Exit::Config)
}
