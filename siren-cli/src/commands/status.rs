//! `siren status`: what the database holds and how long it keeps it — its size and the free
//! space of its file system (SQLite), and per tenant the events stored, the oldest event, the
//! retention policy and what it would purge now (the same facts as `GET /api/v1/retention`
//! and `/metrics`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use siren_core::retention::Policy;
use siren_core::store::{Cutoffs, redact_url};

use crate::Context;
use crate::exit::{CommandResult, Exit, Failure};
use crate::output::{OutputFormat, Rows};

/// The free space of the database's file system.
#[derive(Debug, Serialize)]
struct Disk {
    folder: String,
    free_bytes: u64,
    size_bytes: u64,
}

/// One tenant's data and policy.
#[derive(Debug, Serialize)]
struct TenantStatus {
    tenant: String,
    events: u64,
    oldest_event: Option<DateTime<Utc>>,
    policy: Policy,
    cutoffs: Cutoffs,
}

/// What `siren status` reports.
#[derive(Debug, Serialize)]
struct Status {
    database: String,
    backend: &'static str,
    database_bytes: u64,
    disk: Option<Disk>,
    archive: Option<ArchiveStatus>,
    tenants: Vec<TenantStatus>,
}

/// The archive's place and size.
#[derive(Debug, Serialize)]
struct ArchiveStatus {
    location: String,
    parts: u64,
    bytes: u64,
}

/// Runs `siren status`.
pub async fn run(context: &Context) -> CommandResult {
    let store = siren_core::store::open(&context.database_url).await?;
    let now = Utc::now();
    let disk = match store.database_file().await? {
        Some(file) => {
            let folder = file.parent().map(|p| p.to_path_buf()).unwrap_or_default();
            siren_server::disk::space(&folder)
                .ok()
                .map(|(free_bytes, size_bytes)| Disk {
                    folder: folder.display().to_string(),
                    free_bytes,
                    size_bytes,
                })
        }
        None => None,
    };
    let tenants = store
        .spans()
        .await?
        .into_iter()
        .filter(|span| !context.tenant_given || span.tenant == context.tenant.as_str())
        .map(|span| {
            let policy = siren_core::TenantId::parse(&span.tenant)
                .map(|t| context.retention.policy(&t))
                .unwrap_or_default();
            TenantStatus {
                cutoffs: policy.cutoffs(now),
                policy,
                tenant: span.tenant,
                events: span.events,
                oldest_event: span.oldest_event,
            }
        })
        .collect();
    let archive = match &context.archive {
        Some(config) => {
            let archive = siren_core::archive::Archive::open(config)
                .map_err(|e| Failure::new(Exit::Config, e))?;
            let tenant = context.tenant_given.then_some(&context.tenant);
            let usage = archive
                .usage(tenant)
                .await
                .map_err(|e| Failure::new(Exit::Unavailable, e))?;
            Some(ArchiveStatus {
                location: archive.location().to_owned(),
                parts: usage.parts,
                bytes: usage.bytes,
            })
        }
        None => None,
    };
    let status = Status {
        archive,
        database: redact_url(&context.database_url),
        backend: store.backend(),
        database_bytes: store.database_bytes().await?,
        disk,
        tenants,
    };
    print(context, &status)?;
    Ok(Exit::Ok)
}

fn print(context: &Context, status: &Status) -> Result<(), Failure> {
    let io = |e: std::io::Error| Failure::new(Exit::Software, e);
    if matches!(
        context.printer.format,
        OutputFormat::Json | OutputFormat::Jsonl
    ) {
        let value = serde_json::to_value(status).map_err(|e| Failure::new(Exit::Software, e))?;
        return context
            .printer
            .document("status", &value, Vec::new())
            .map_err(io);
    }
    let keep = |keep: &Option<siren_core::retention::Keep>| {
        keep.as_ref().map_or("forever", |k| k.as_str()).to_owned()
    };
    let rows = Rows {
        columns: vec![
            "tenant",
            "events",
            "oldest_event",
            "events_kept",
            "incidents_kept",
        ],
        rows: status
            .tenants
            .iter()
            .map(|t| {
                serde_json::json!({
                    "tenant": t.tenant,
                    "events": t.events,
                    "oldest_event": t.oldest_event,
                    "events_kept": keep(&t.policy.events),
                    "incidents_kept": keep(&t.policy.incidents),
                })
            })
            .collect(),
    };
    context.printer.rows(&rows).map_err(io)?;
    let mib = |b: u64| b as f64 / 1_048_576.0;
    let mut line = format!(
        "{} ({}): {:.1} MiB",
        status.database,
        status.backend,
        mib(status.database_bytes)
    );
    if let Some(disk) = &status.disk {
        line.push_str(&format!(
            "; {:.1} MiB free of {:.1} MiB in {}",
            mib(disk.free_bytes),
            mib(disk.size_bytes),
            disk.folder
        ));
    }
    if let Some(archive) = &status.archive {
        line.push_str(&format!(
            "; archive {}: {} parts, {:.1} MiB",
            archive.location,
            archive.parts,
            mib(archive.bytes)
        ));
    }
    context.printer.note(line);
    Ok(())
}
