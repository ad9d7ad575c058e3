//! The `siren-agent` binary: ships Windows Event Log records and log files to a SIREN server.

use clap::{Parser, Subcommand};

/// SIREN's endpoint agent: reads the Windows Event Log and log files and ships them to a
/// SIREN server, keeping a disk spool while the server is unreachable.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a configuration file and exit.
    CheckConfig {
        /// The agent's YAML configuration.
        config: std::path::PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.command {
        Command::CheckConfig { config } => {
            anyhow::bail!(
                "{}: the agent's configuration format is not defined yet",
                config.display()
            )
        }
    }
}
