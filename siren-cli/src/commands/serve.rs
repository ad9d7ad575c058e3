//! `siren serve`: runs SIREN's server (REST API, agent ingest, live updates, dashboard) on the
//! configured database, with the `server:` section of the configuration file; it delivers the
//! notifications of the `notify:` section while it runs.

use std::sync::Arc;

use crate::Context;
use crate::exit::{CommandResult, Exit, Failure};

/// Arguments of `siren serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (default `server.listen`, else 127.0.0.1:8080).
    #[arg(long, env = "SIREN_LISTEN", value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// PEM certificate chain for HTTPS (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// PEM private key for HTTPS.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Sigma rule files or folders to detect with (default: `rules:`, else the built-in pack).
    #[arg(long = "rules", short = 'r', value_name = "DIR")]
    rules: Vec<std::path::PathBuf>,
    /// pySigma processing pipeline applied to the rules (repeatable; run in `priority`
    /// order, after the configuration file's `pipelines:`).
    #[arg(long = "pipeline", value_name = "FILE")]
    pipelines: Vec<std::path::PathBuf>,
    /// Only store events: no detection, correlation or incidents.
    #[arg(long, conflicts_with = "rules")]
    no_detect: bool,
    /// Distributed mode: the NATS JetStream bus (`nats://HOST:PORT`; default `server.bus`).
    /// Needs a PostgreSQL database shared by every process.
    #[arg(long, env = "SIREN_BUS", value_name = "URL")]
    bus: Option<String>,
    /// Distributed mode: the cluster's name, which names its streams and buckets on the bus
    /// (default `server.cluster`, else `siren`).
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,
    /// Distributed mode: this process's role (default `server.role`, else `both`).
    #[arg(long, value_enum)]
    role: Option<siren_server::cluster::Role>,
    /// Distributed mode: this process's name in the cluster (default `server.node_id`).
    #[arg(long, value_name = "NAME")]
    node_id: Option<String>,
}

/// Runs `siren serve` until Ctrl-C or SIGTERM.
pub async fn run(context: &Context, args: Args) -> CommandResult {
    let config_error = |e: anyhow::Error| Failure::new(Exit::Config, e);
    let mut server = context.server.clone();
    if let Some(listen) = args.listen {
        server.listen = listen;
    }
    if let Some(bus) = args.bus {
        server.bus = Some(bus);
    }
    if let Some(cluster) = args.cluster {
        server.cluster = cluster;
    }
    if let Some(role) = args.role {
        server.role = role;
    }
    if let Some(id) = args.node_id {
        server.node_id = Some(id);
    }
    if args.tls_cert.is_some() {
        server.tls_cert = args.tls_cert;
        server.tls_key = args.tls_key;
    }
    server
        .validate()
        .map_err(|e| config_error(anyhow::anyhow!(e)))?;
    let rules = if args.no_detect {
        None
    } else {
        let folders = if args.rules.is_empty() {
            context.rules.clone()
        } else {
            args.rules
        };
        let mut pipelines = context.pipelines.clone();
        pipelines.extend(args.pipelines);
        let rules = siren_server::load_rules(&folders, context.logsources.as_deref(), &pipelines)
            .map_err(config_error)?;
        Some(Arc::new(rules))
    };
    let store = super::open_store(context).await?;
    let listener = tokio::net::TcpListener::bind(server.listen)
        .await
        .map_err(|e| {
            Failure::new(
                Exit::Unavailable,
                anyhow::anyhow!("cannot listen on {}: {e}", server.listen),
            )
        })?;
    let address = listener
        .local_addr()
        .map_err(|e| Failure::new(Exit::Software, e))?;
    let scheme = if server.tls() { "https" } else { "http" };
    context.printer.note(format!(
        "SIREN is serving on {scheme}://{address}/ (Ctrl-C stops it)"
    ));
    let mut state = siren_server::AppState::for_config(store, rules, server, address.to_string())
        .await
        .map_err(|e| Failure::new(Exit::Unavailable, e))?;
    let archive = context
        .retention
        .open_archive(context.archive.as_ref())
        .map_err(|e| Failure::new(Exit::Config, anyhow::anyhow!(e)))?;
    state = state.with_retention(context.retention.clone(), archive);
    if super::notify::configured(context) {
        state = state
            .with_notifications(super::notify::resolved_config(context)?)
            .map_err(|e| Failure::new(Exit::Config, e))?;
    }
    siren_server::serve(listener, state, siren_server::shutdown_signal())
        .await
        .map_err(|e| Failure::new(Exit::Software, e))?;
    Ok(Exit::Ok)
}
