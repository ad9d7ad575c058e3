//! `siren cluster status`: the distributed mode as the bus sees it — each partition, the
//! worker that owns it and how far behind it is, and every front-end and worker heard from.

use serde_json::json;

use crate::Context;
use crate::exit::{CommandResult, Exit, Failure};
use crate::output::Rows;

/// `siren cluster` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Partitions with their owner, last stream sequence applied and lag, then the members
    /// (with `--format json`: one document with both). Exits 69 when the bus is unreachable.
    Status {
        /// The bus (default `server.bus`).
        #[arg(long, env = "SIREN_BUS", value_name = "URL")]
        bus: Option<String>,
        /// The cluster's name (default `server.cluster`).
        #[arg(long, value_name = "NAME")]
        cluster: Option<String>,
    },
}

/// Runs `siren cluster …`.
pub async fn run(context: &Context, command: ClusterCommand) -> CommandResult {
    let ClusterCommand::Status { bus, cluster } = command;
    let url = bus.or_else(|| context.server.bus.clone()).ok_or_else(|| {
        Failure::new(
            Exit::Usage,
            anyhow::anyhow!("no bus: give --bus nats://HOST:PORT or set server.bus"),
        )
    })?;
    let cluster = cluster.unwrap_or_else(|| context.server.cluster.clone());
    let unavailable = |e: anyhow::Error| Failure::new(Exit::Unavailable, e);
    let bus = siren_server::cluster::Bus::connect(&url, &cluster, context.server.partitions)
        .await
        .map_err(unavailable)?;
    let status = bus.status().await.map_err(unavailable)?;
    let io = |e: std::io::Error| Failure::new(Exit::Software, e);
    if matches!(
        context.printer.format,
        crate::output::OutputFormat::Json | crate::output::OutputFormat::Jsonl
    ) {
        // The document `GET /api/v1/cluster` answers, as seen from outside the cluster.
        let view = siren_server::cluster_status::ClusterView {
            mode: "distributed",
            cluster: Some(cluster),
            node: None,
            role: None,
            partitions: status.partitions,
            members: status.members,
        };
        let value = serde_json::to_value(&view).map_err(|e| Failure::new(Exit::Software, e))?;
        context
            .printer
            .document("cluster", &value, Vec::new())
            .map_err(io)?;
        return Ok(Exit::Ok);
    }
    let rows = status
        .partitions
        .iter()
        .map(|p| {
            json!({"partition": p.partition, "owner": p.owner, "applied": p.applied, "lag": p.lag})
        })
        .collect();
    context
        .printer
        .rows(&Rows {
            columns: vec!["partition", "owner", "applied", "lag"],
            rows,
        })
        .map_err(io)?;
    let members = status
        .members
        .iter()
        .map(|m| {
            json!({"member": m.id, "role": m.role, "listen": m.listen,
                   "partitions": m.partitions.len(), "seen": m.at.to_rfc3339()})
        })
        .collect();
    context
        .printer
        .rows(&Rows {
            columns: vec!["member", "role", "listen", "partitions", "seen"],
            rows: members,
        })
        .map_err(io)?;
    let unowned = status
        .partitions
        .iter()
        .filter(|p| p.owner.is_none())
        .count();
    if unowned > 0 {
        context.printer.warn(format!(
            "{unowned} partition(s) have no owner: start a worker"
        ));
    }
    Ok(Exit::Ok)
}
