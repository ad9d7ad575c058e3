//! `siren events`: look at stored events.

use serde_json::json;
use siren_core::store::{EventQuery, StoredEvent};

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
    /// Read the archive instead of the store (the `archive:` section, or `--archive-url`):
    /// the tenant's parts of the days `--since`..`--until` cover, each checked against its
    /// manifest first.
    #[arg(long)]
    archive: bool,
    /// The archive (`s3://BUCKET/PREFIX`, `file:///FOLDER` or a folder), with `--archive`.
    #[arg(long, value_name = "URL", requires = "archive")]
    archive_url: Option<String>,
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
    let events = if args.archive {
        archived_events(context, &query, args.archive_url).await?
    } else {
        let store = super::open_store(context).await?;
        store.list_events(&context.tenant, &query).await?
    };
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

/// The tenant's archived events matching `query`, newest first (their `id` is 0: they are
/// not in the store).
async fn archived_events(
    context: &Context,
    query: &EventQuery,
    archive_url: Option<String>,
) -> Result<Vec<StoredEvent>, Failure> {
    let range = super::archive::Range {
        archive_url,
        from: None,
        to: None,
    };
    let archive = range.open(context)?;
    let parts = archive
        .list(
            Some(&context.tenant),
            query.since.map(|t| t.date_naive()),
            query.until.map(|t| t.date_naive()),
        )
        .await
        .map_err(|e| Failure::new(Exit::Unavailable, e))?;
    let same = |wanted: &Option<String>, value: &Option<String>| {
        wanted.as_ref().is_none_or(|w| {
            value
                .as_ref()
                .is_some_and(|v| v.to_lowercase() == w.to_lowercase())
        })
    };
    let mut found = Vec::new();
    for part in &parts {
        let events = match archive.read(part).await {
            Ok(events) => events,
            Err(error) => {
                context.printer.warn(format!("skipped: {error}"));
                continue;
            }
        };
        found.extend(
            events
                .into_iter()
                .map(|archived| archived.event)
                .filter(|e| {
                    same(&query.host, &e.host)
                        && same(&query.source, &e.source)
                        && query.event_id.is_none_or(|id| e.event_id == Some(id))
                        && query
                            .since
                            .is_none_or(|since| e.timestamp.is_some_and(|t| t >= since))
                        && query
                            .until
                            .is_none_or(|until| e.timestamp.is_some_and(|t| t < until))
                })
                .map(|event| StoredEvent { id: 0, event }),
        );
    }
    found.sort_by_key(|e| std::cmp::Reverse(e.timestamp));
    found.truncate(query.limit as usize);
    Ok(found)
}
