//! `siren-agent run`: the agent in the foreground until Ctrl-C or SIGTERM.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::agent::{self, Mode};
use crate::exit::{Exit, ExitContext, Failure};

/// Runs the command.
pub fn run(path: &Path) -> Result<Exit, Failure> {
    let config = super::load(path)?;
    let _log = crate::logging::init(Some(&config.log), true).exit(Exit::Config)?;
    super::warn_if_exposed(&config, path);
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst)).exit(Exit::Software)?;
    }
    run_until(&config, stop)
}

/// Runs the configured agent until `stop` is set (shared with the Windows service).
pub fn run_until(config: &crate::config::Config, stop: Arc<AtomicBool>) -> Result<Exit, Failure> {
    let sources = agent::configured_sources(config).exit(Exit::Config)?;
    agent::run(config, sources, Mode::Service, stop).exit(Exit::Software)?;
    Ok(Exit::Ok)
}
