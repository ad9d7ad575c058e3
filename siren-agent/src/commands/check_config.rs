//! `siren-agent check-config`: validates the configuration and the files it names.

use std::path::Path;

use crate::exit::{Exit, ExitContext, Failure};

/// Runs the command.
pub fn run(path: &Path) -> Result<Exit, Failure> {
    let config = super::load(path)?;
    config.token().exit(Exit::Config)?;
    crate::ship::client(&config).exit(Exit::Config)?;
    if let Some(warning) = super::exposure_warning(&config, path) {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("warning: {warning}");
        }
    }
    #[allow(clippy::print_stdout)]
    {
        println!(
            "{}: valid ({} source{}, server {})",
            path.display(),
            config.sources.len(),
            if config.sources.len() == 1 { "" } else { "s" },
            config.server.url
        );
    }
    Ok(Exit::Ok)
}
