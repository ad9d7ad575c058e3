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

/// A warning when the configuration at `path` holds the server token literally (not
/// `env:NAME` / `file:PATH`) and its group or others may read it.
pub fn exposure_warning(config: &Config, path: &Path) -> Option<String> {
    let token = &config.server.token;
    if token.starts_with("env:") || token.starts_with("file:") {
        return None;
    }
    let mode = siren_core::owner_only::readable_by_others(path)?;
    Some(format!(
        "the configuration {} holds the server token written literally and others can read it \
         (mode {mode:03o}): chmod 600 it, or write the token as env:NAME or file:PATH",
        path.display()
    ))
}

/// Logs [`exposure_warning`] (once logging is set up).
pub fn warn_if_exposed(config: &Config, path: &Path) {
    if let Some(warning) = exposure_warning(config, path) {
        tracing::warn!("{warning}");
    }
}
