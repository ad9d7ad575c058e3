//! `siren-agent status`: what the agent last wrote about itself (queue, last success, errors).

use std::path::Path;

use anyhow::Context;
use chrono::Utc;

use crate::exit::{Exit, ExitContext, Failure};
use crate::status::{Status, status_path};

/// Arguments of `status`.
#[derive(clap::Args)]
pub struct StatusArgs {
    /// Print the status file as JSON.
    #[arg(long)]
    json: bool,
}

/// Whether the status describes a live agent: it says it runs and wrote recently.
fn alive(status: &Status) -> bool {
    status.running
        && status
            .updated_at
            .is_some_and(|t| Utc::now().signed_duration_since(t).num_seconds() < 30)
}

/// Runs the command. Exit 0 when the agent runs, 69 when it does not or has never run.
pub fn run(path: &Path, args: StatusArgs) -> Result<Exit, Failure> {
    let config = super::load(path)?;
    let file = status_path(&config.state_dir);
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("no status at {} (has the agent run?)", file.display()))
        .exit(Exit::Unavailable)?;
    let status: Status = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a status file", file.display()))
        .exit(Exit::Software)?;
    let running = alive(&status);
    #[allow(clippy::print_stdout)]
    if args.json {
        let mut value = serde_json::to_value(&status).unwrap_or_default();
        value["alive"] = running.into();
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        let when =
            |t: Option<chrono::DateTime<Utc>>| t.map_or("never".to_owned(), |t| t.to_rfc3339());
        println!(
            "agent:         {} (version {}, pid {})",
            status.agent_id, status.version, status.pid
        );
        println!(
            "state:         {}",
            if running { "running" } else { "not running" }
        );
        println!("status time:   {}", when(status.updated_at));
        println!(
            "queue:         {} events, {} of {} bytes",
            status.spool.depth, status.spool.bytes, status.spool.max_bytes
        );
        println!("last success:  {}", when(status.last_success));
        println!(
            "last error:    {}",
            status
                .last_error
                .as_deref()
                .map_or("none".to_owned(), |e| format!(
                    "{e} ({})",
                    when(status.last_error_at)
                ))
        );
        println!(
            "shipped:       {} ({} duplicates), rejected {}, dropped (spool full) {}",
            status.shipped, status.duplicates, status.rejected, status.spool.dropped
        );
        for (name, source) in &status.sources {
            println!(
                "source {name}: read {}, filtered {}, problems {}{}",
                source.read,
                source.filtered,
                source.errors,
                source
                    .last_error
                    .as_deref()
                    .map_or(String::new(), |e| format!(" (last: {e})"))
            );
        }
    }
    Ok(if running { Exit::Ok } else { Exit::Unavailable })
}
