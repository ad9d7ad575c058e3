//! The `siren-agent` binary: ships Windows Event Log records and log files to a SIREN server.

mod agent;
mod commands;
mod config;
mod exit;
mod filter;
mod logging;
#[cfg(windows)]
mod service;
mod ship;
mod source;
mod spool;
mod state_dir;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::exit::{EXIT_CODES_HELP, Failure};

#[cfg(windows)]
const DEFAULT_CONFIG: &str = r"C:\ProgramData\SIREN\agent.yaml";
#[cfg(not(windows))]
const DEFAULT_CONFIG: &str = "/etc/siren/agent.yaml";

/// SIREN's endpoint agent: reads the Windows Event Log, EVTX and JSON-lines files and ships
/// them to a SIREN server, keeping a bounded disk spool while the server is unreachable.
#[derive(Parser)]
#[command(version, after_help = EXIT_CODES_HELP)]
struct Args {
    /// The agent's YAML configuration.
    #[arg(short, long, global = true, env = "SIREN_AGENT_CONFIG", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run until stopped (Ctrl-C, SIGTERM, or the Windows service manager).
    Run,
    /// Check the configuration and exit (0 valid, 78 invalid).
    CheckConfig,
    /// Ship the given EVTX or JSON-lines files (folders: their .evtx, .jsonl and .ndjson files)
    /// and exit once the server has acknowledged every event.
    Once(commands::once::OnceArgs),
    /// Show the running agent's queue depth, last success and errors.
    Status(commands::status::StatusArgs),
    /// Install, remove, start or stop the Windows service.
    #[cfg(windows)]
    #[command(subcommand)]
    Service(commands::service::ServiceCommand),
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Run => commands::run::run(&args.config),
        Command::CheckConfig => commands::check_config::run(&args.config),
        Command::Once(once) => commands::once::run(&args.config, once),
        Command::Status(status) => commands::status::run(&args.config, status),
        #[cfg(windows)]
        Command::Service(service) => commands::service::run(&args.config, service),
    };
    match result {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(Failure { exit, error }) => {
            tracing::error!(error = %format!("{error:#}"), "siren-agent failed");
            #[allow(clippy::print_stderr)]
            {
                eprintln!("siren-agent: {error:#}");
            }
            ExitCode::from(exit.code())
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn verify_cli() {
        use clap::CommandFactory;
        super::Args::command().debug_assert();
    }
}
