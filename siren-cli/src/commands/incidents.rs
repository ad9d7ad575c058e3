//! `siren incidents list|show|assign|status|note`: work incidents from the terminal or a script.

use serde_json::json;
use siren_core::incident::{Incident, IncidentFilter, IncidentId, Resolution, Severity, Status};
use siren_core::store::IncidentStore;

use crate::Context;
use crate::exit::{CommandResult, Exit, Failure};
use crate::output::{OutputFormat, Rows};
use crate::time_arg::parse_time;

/// `siren incidents` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum IncidentsCommand {
    /// List incidents, most recently seen first.
    List(ListArgs),
    /// Show one incident: details, timeline and triggering events.
    Show {
        /// Incident id.
        id: IncidentId,
        /// At most this many triggering events.
        #[arg(long, default_value_t = 20)]
        events: u32,
    },
    /// Assign an incident to an active user.
    Assign {
        /// Incident id.
        id: IncidentId,
        /// The user (see `siren users list`).
        user: String,
    },
    /// Move an incident along its lifecycle: new → acknowledged → in_progress → resolved →
    /// closed, or escalated.
    Status {
        /// Incident id.
        id: IncidentId,
        /// New status.
        #[arg(value_parser = parse_status)]
        status: Status,
        /// Required when resolving: true_positive, false_positive or benign.
        #[arg(long, value_parser = parse_resolution)]
        resolution: Option<Resolution>,
        /// A note to record with the change.
        #[arg(long)]
        note: Option<String>,
    },
    /// Add a note to an incident.
    Note {
        /// Incident id.
        id: IncidentId,
        /// The note.
        text: String,
    },
}

/// Filters of `siren incidents list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only this status.
    #[arg(long, value_parser = parse_status)]
    status: Option<Status>,
    /// Only this severity.
    #[arg(long, value_parser = parse_severity)]
    severity: Option<Severity>,
    /// Only incidents assigned to this user.
    #[arg(long)]
    assignee: Option<String>,
    /// Only incidents seen at or after this time (RFC 3339, a date, or an age such as 24h).
    #[arg(long)]
    since: Option<String>,
    /// At most this many incidents.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Continue after this cursor (printed on stderr when more incidents follow).
    #[arg(long)]
    cursor: Option<String>,
}

fn parse_status(text: &str) -> Result<Status, String> {
    Status::parse(text).ok_or_else(|| {
        format!(
            "unknown status '{text}': use {}",
            Status::ALL.map(Status::as_str).join(", ")
        )
    })
}

fn parse_resolution(text: &str) -> Result<Resolution, String> {
    Resolution::parse(text).ok_or_else(|| {
        format!("unknown resolution '{text}': use true_positive, false_positive or benign")
    })
}

fn parse_severity(text: &str) -> Result<Severity, String> {
    Severity::parse(text).ok_or_else(|| {
        format!("unknown severity '{text}': use informational, low, medium, high or critical")
    })
}

/// The columns of the incident table and CSV.
const COLUMNS: [&str; 10] = [
    "id",
    "severity",
    "status",
    "title",
    "assignee",
    "hosts",
    "users",
    "alert_count",
    "first_seen",
    "last_seen",
];

/// An incident's public JSON form (documented in the README).
pub fn incident_json(incident: &Incident) -> serde_json::Value {
    let mut value = serde_json::to_value(incident).unwrap_or_default();
    let format =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    value["first_seen"] = json!(format(incident.first_seen));
    value["last_seen"] = json!(format(incident.last_seen));
    value["created_at"] = json!(format(incident.created_at));
    value["updated_at"] = json!(format(incident.updated_at));
    value
}

/// The incident as a table/CSV row (lists joined).
fn flat(incident: &Incident) -> serde_json::Value {
    let mut value = incident_json(incident);
    for key in ["hosts", "users", "ips", "rule_ids", "techniques"] {
        let joined = value[key].as_array().map(|a| {
            a.iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        });
        value[key] = json!(joined);
    }
    value
}

/// Runs `siren incidents …`.
pub async fn run(context: &Context, command: IncidentsCommand) -> CommandResult {
    let store = super::open_store(context).await?;
    let tenant = &context.tenant;
    let io = |e: std::io::Error| Failure::new(Exit::Software, e);
    match command {
        IncidentsCommand::List(args) => {
            let since = args
                .since
                .as_deref()
                .map(|t| parse_time(t, chrono::Utc::now()))
                .transpose()
                .map_err(|e| Failure::new(Exit::Usage, anyhow::anyhow!(e)))?;
            let filter = IncidentFilter {
                status: args.status,
                severity: args.severity,
                assignee: args.assignee,
                since,
                cursor: args.cursor,
                limit: args.limit,
            };
            let page = store
                .list_incidents(tenant, &filter)
                .await
                .map_err(super::refused_is_finding)?;
            let rows = match context.printer.format {
                OutputFormat::Json | OutputFormat::Jsonl => {
                    page.incidents.iter().map(incident_json).collect()
                }
                _ => page.incidents.iter().map(flat).collect(),
            };
            context
                .printer
                .rows(&Rows {
                    columns: COLUMNS.to_vec(),
                    rows,
                })
                .map_err(io)?;
            if let Some(cursor) = page.next_cursor {
                context
                    .printer
                    .note(format!("more incidents follow: --cursor {cursor}"));
            }
            Ok(Exit::Ok)
        }
        IncidentsCommand::Show { id, events } => show(context, &*store, id, events).await,
        IncidentsCommand::Assign { id, user } => {
            let incident = store
                .assign_incident(tenant, id, &user, &super::cli_actor())
                .await
                .map_err(super::refused_is_finding)?;
            print_one(context, &incident)
        }
        IncidentsCommand::Status {
            id,
            status,
            resolution,
            note,
        } => {
            let incident = store
                .change_status(
                    tenant,
                    id,
                    status,
                    resolution,
                    note.as_deref(),
                    &super::cli_actor(),
                )
                .await
                .map_err(super::refused_is_finding)?;
            print_one(context, &incident)
        }
        IncidentsCommand::Note { id, text } => {
            let incident = store
                .add_note(tenant, id, &text, &super::cli_actor())
                .await
                .map_err(super::refused_is_finding)?;
            print_one(context, &incident)
        }
    }
}

fn print_one(context: &Context, incident: &Incident) -> CommandResult {
    let value = incident_json(incident);
    let table = summary_table(incident);
    context
        .printer
        .document(&format!("incident {}", incident.id), &value, table)
        .map_err(|e| Failure::new(Exit::Software, e))?;
    Ok(Exit::Ok)
}

fn summary_table(incident: &Incident) -> Vec<(String, String)> {
    let flat = flat(incident);
    let mut table: Vec<(String, String)> = [
        "title",
        "severity",
        "status",
        "resolution",
        "assignee",
        "rule_ids",
        "techniques",
        "hosts",
        "users",
        "ips",
        "first_seen",
        "last_seen",
        "alert_count",
        "event_count",
    ]
    .iter()
    .map(|k| ((*k).to_owned(), crate::output::cell(&flat[*k])))
    .collect();
    for (i, step) in incident.investigation.iter().enumerate() {
        table.push((
            if i == 0 {
                "investigate".to_owned()
            } else {
                String::new()
            },
            step.clone(),
        ));
    }
    table
}

async fn show(
    context: &Context,
    store: &dyn IncidentStore,
    id: IncidentId,
    events: u32,
) -> CommandResult {
    let tenant = &context.tenant;
    let incident = store
        .get_incident(tenant, id)
        .await
        .map_err(super::refused_is_finding)?;
    let timeline = store
        .incident_timeline(tenant, id)
        .await
        .map_err(super::refused_is_finding)?;
    let triggering = store
        .incident_events(tenant, id, events)
        .await
        .map_err(super::refused_is_finding)?;
    let io = |e: std::io::Error| Failure::new(Exit::Software, e);
    let time =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    match context.printer.format {
        OutputFormat::Table => {
            context
                .printer
                .document(
                    &format!("incident {id}"),
                    &json!(null),
                    summary_table(&incident),
                )
                .map_err(io)?;
            let rows = timeline
                .iter()
                .map(|t| json!({"at": time(t.at), "actor": t.actor, "kind": t.kind, "detail": t.detail}))
                .collect();
            context
                .printer
                .rows(&Rows {
                    columns: vec!["at", "actor", "kind", "detail"],
                    rows,
                })
                .map_err(io)?;
            let rows = triggering
                .iter()
                .map(|e| {
                    json!({"timestamp": e.timestamp.map(time), "host": e.host, "channel": e.source,
                           "event_id": e.event_id, "user": e.user, "process": e.process, "command_line": e.command_line})
                })
                .collect();
            let columns = vec![
                "timestamp",
                "host",
                "channel",
                "event_id",
                "user",
                "process",
                "command_line",
            ];
            context.printer.rows(&Rows { columns, rows }).map_err(io)?;
        }
        _ => {
            let mut value = incident_json(&incident);
            value["timeline"] = json!(timeline
                .iter()
                .map(|t| json!({"at": time(t.at), "actor": t.actor, "kind": t.kind, "detail": t.detail}))
                .collect::<Vec<_>>());
            value["events"] = serde_json::to_value(&triggering).unwrap_or_default();
            context
                .printer
                .document("incident", &value, Vec::new())
                .map_err(io)?;
        }
    }
    Ok(Exit::Ok)
}
