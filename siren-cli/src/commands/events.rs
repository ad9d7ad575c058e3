//! `siren events`: look at stored events.

use serde_json::json;
use siren_core::store::EventQuery;

use crate::Context;
use crate::exit::{CommandResult, Exit, Failure};
use crate::output::Rows;
use crate::time_arg::parse_time;

/// `siren events` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum EventsCommand {
    /// List stored events, newest first (JSON output includes every original field).
    List(ListArgs),
}

/// Filters of `siren events list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only events from this host.
    #[arg(long)]
    host: Option<String>,
    /// Only events with this event ID.
    #[arg(long)]
    event_id: Option<i64>,
    /// Only events of this channel (or source).
    #[arg(long)]
    channel: Option<String>,
    /// Only events at or after this time (RFC 3339, a date, or an age such as 24h or 7d).
    #[arg(long)]
    since: Option<String>,
    /// Only events before this time.
    #[arg(long)]
    until: Option<String>,
    /// At most this many events.
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

/// Runs `siren events …`.
pub async fn run(context: &Context, command: EventsCommand) -> CommandResult {
    let EventsCommand::List(args) = command;
    let now = chrono::Utc::now();
    let time = |text: &Option<String>| -> Result<_, Failure> {
        text.as_deref()
            .map(|t| parse_time(t, now))
            .transpose()
            .map_err(|e| Failure::new(Exit::Usage, anyhow::anyhow!(e)))
    };
    let query = EventQuery {
        host: args.host,
        event_id: args.event_id,
        source: args.channel,
        since: time(&args.since)?,
        until: time(&args.until)?,
        limit: args.limit,
    };
    let store = super::open_store(context).await?;
    let events = store.list_events(&context.tenant, &query).await?;
    let rows = events
        .into_iter()
        .map(|e| {
            let mut row = serde_json::to_value(&e).unwrap_or_default();
            row["timestamp"] = json!(
                e.timestamp
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            );
            row["channel"] = json!(e.source);
            row
        })
        .collect();
    let columns = vec![
        "id",
        "timestamp",
        "host",
        "channel",
        "event_id",
        "record_id",
        "user",
        "process",
    ];
    context
        .printer
        .rows(&Rows { columns, rows })
        .map_err(|e| Failure::new(Exit::Software, e))?;
    Ok(Exit::Ok)
}
