//! `siren notify test|status|deliver|retry`: try a channel, look at the notification outbox,
//! deliver what is due (for a cron job without an ingest), retry what failed.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use siren_core::incident::IncidentId;
use siren_core::notify::{DispatchReport, Dispatcher, NotifyConfig, SystemClock};
use siren_core::store::{DeliveryFilter, DeliveryState};

use crate::Context;
use crate::exit::{CommandResult, Exit, Failure};
use crate::output::Rows;

/// `siren notify` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum NotifyCommand {
    /// Send a test message on a channel of the configuration and report the result
    /// (exit 0 when it was accepted, 69 when the endpoint failed, 78 for a bad configuration).
    Test {
        /// The channel's name (`notify.channels[].name`).
        channel: String,
    },
    /// The notification outbox: each delivery's channel, state, attempts and last error.
    Status {
        /// Only deliveries in this state (pending, sent, held, digested, cancelled, failed).
        #[arg(long, value_parser = parse_state)]
        state: Option<DeliveryState>,
        /// Only this channel.
        #[arg(long)]
        channel: Option<String>,
        /// Only deliveries about this incident.
        #[arg(long)]
        incident: Option<IncidentId>,
        /// At most this many, newest first.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Deliver what is due now, for at most --timeout; the rest stays in the outbox.
    Deliver {
        /// How long to spend at most.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Make failed and waiting deliveries due now (after an endpoint came back).
    Retry,
}

fn parse_state(text: &str) -> Result<DeliveryState, String> {
    DeliveryState::parse(text).ok_or_else(|| {
        format!("unknown state '{text}': use pending, sent, held, digested, cancelled or failed")
    })
}

/// The `notify:` configuration with its secrets resolved from the environment and files.
pub fn resolved_config(context: &Context) -> Result<NotifyConfig, Failure> {
    let mut config = context.notify.clone();
    config
        .resolve_secrets(|spec| {
            siren_server::config_file::resolve_secret(spec).map_err(|e| e.to_string())
        })
        .map_err(|e| Failure::new(Exit::Config, e))?;
    Ok(config)
}

/// Whether the configuration routes anything anywhere.
pub fn configured(context: &Context) -> bool {
    context.notify.routes_anything()
}

/// A dispatcher for the context's tenant.
pub fn dispatcher(
    context: &Context,
    store: Arc<dyn siren_core::store::Store>,
) -> Result<Dispatcher, Failure> {
    let config = resolved_config(context)?;
    Ok(Dispatcher::new(store, config, Arc::new(SystemClock))
        .map_err(|e| Failure::new(Exit::Config, e))?
        .with_tenant(Some(context.tenant.clone())))
}

/// Runs `siren notify …`.
pub async fn run(context: &Context, command: NotifyCommand) -> CommandResult {
    match command {
        NotifyCommand::Test { channel } => test(context, &channel).await,
        NotifyCommand::Status {
            state,
            channel,
            incident,
            limit,
        } => {
            let store = super::open_store(context).await?;
            let filter = DeliveryFilter {
                state,
                channel,
                incident,
                limit,
            };
            let deliveries = store.list_deliveries(&context.tenant, &filter).await?;
            let rows = deliveries
                .iter()
                .map(|d| {
                    let mut row = serde_json::to_value(d).unwrap_or_default();
                    row["incident"] = json!(d.incident_id.map(|i| i.0));
                    row
                })
                .collect();
            context
                .printer
                .rows(&Rows {
                    columns: vec![
                        "id",
                        "incident",
                        "channel",
                        "kind",
                        "state",
                        "attempts",
                        "due_at",
                        "sent_at",
                        "last_error",
                    ],
                    rows,
                })
                .map_err(|e| Failure::new(Exit::Software, e))?;
            Ok(Exit::Ok)
        }
        NotifyCommand::Deliver { timeout } => {
            let store = super::open_store(context).await?;
            let dispatcher = dispatcher(context, store)?;
            let report = dispatcher
                .deliver_within(timeout)
                .await
                .map_err(|e| Failure::new(Exit::Software, e))?;
            let pending = dispatcher
                .pending(&context.tenant)
                .await
                .map_err(|e| Failure::new(Exit::Software, e))?;
            print_report(context, &report, pending)?;
            Ok(if report.failed > 0 || report.retried > 0 {
                Exit::Unavailable
            } else {
                Exit::Ok
            })
        }
        NotifyCommand::Retry => {
            let store = super::open_store(context).await?;
            let count = store
                .retry_deliveries(&context.tenant, chrono::Utc::now())
                .await?;
            context
                .printer
                .document(
                    "notify retry",
                    &json!({ "due_now": count }),
                    vec![("due now".to_owned(), count.to_string())],
                )
                .map_err(|e| Failure::new(Exit::Software, e))?;
            Ok(Exit::Ok)
        }
    }
}

async fn test(context: &Context, channel: &str) -> CommandResult {
    let config = resolved_config(context)?;
    if config.channel(channel).is_none() {
        let known: Vec<&str> = config.channels.iter().map(|c| c.name()).collect();
        return Err(Failure::new(
            Exit::Config,
            anyhow::anyhow!(
                "no channel named '{channel}' in the configuration (channels: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        ));
    }
    let notifier =
        siren_core::notify::Notifier::new(&config).map_err(|e| Failure::new(Exit::Config, e))?;
    let started = std::time::Instant::now();
    let result = notifier
        .send_test(channel, context.tenant.as_str(), chrono::Utc::now())
        .await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let (ok, error) = match &result {
        Ok(()) => (true, None),
        Err(e) => (false, Some(e.message.clone())),
    };
    let kind = config.channel(channel).map_or("", |c| c.kind());
    context
        .printer
        .document(
            "notify test",
            &json!({"channel": channel, "type": kind, "sent": ok, "error": error, "elapsed_ms": elapsed_ms}),
            vec![
                ("channel".to_owned(), format!("{channel} ({kind})")),
                (
                    "result".to_owned(),
                    if ok {
                        "sent".to_owned()
                    } else {
                        format!("failed: {}", error.clone().unwrap_or_default())
                    },
                ),
                ("elapsed".to_owned(), format!("{elapsed_ms} ms")),
            ],
        )
        .map_err(|e| Failure::new(Exit::Software, e))?;
    Ok(if ok { Exit::Ok } else { Exit::Unavailable })
}

/// The delivery summary of `notify deliver`.
fn print_report(context: &Context, report: &DispatchReport, pending: u64) -> Result<(), Failure> {
    let mut document = serde_json::to_value(report).unwrap_or_default();
    document["pending"] = json!(pending);
    context
        .printer
        .document(
            "notify deliver",
            &document,
            vec![
                ("sent".to_owned(), report.sent.to_string()),
                ("failed, will retry".to_owned(), report.retried.to_string()),
                ("failed for good".to_owned(), report.failed.to_string()),
                ("held by throttle".to_owned(), report.held.to_string()),
                ("left in the outbox".to_owned(), pending.to_string()),
            ],
        )
        .map_err(|e| Failure::new(Exit::Software, e))
}

/// The one-line summary `siren ingest` gives of its notifications.
pub fn summary_text(report: &DispatchReport, pending: u64) -> String {
    format!(
        "{} sent, {} failed ({} will be retried), {} left in the outbox",
        report.sent,
        report.failed + report.retried,
        report.retried,
        pending
    )
}
