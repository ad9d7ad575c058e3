//! The `siren-server` binary: serves the REST API and the dashboard (the same server as
//! `siren serve`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use siren_server::AppState;
use siren_server::config_file::{ConfigFile, resolve_secret};

/// mimalloc instead of the system allocator, as in `siren`: ingest allocates and frees many
/// small strings and maps per event on several threads at once, where glibc's allocator took
/// over a quarter of the server's time under the load benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// SIREN's server: REST API, agent ingest, live updates and the dashboard.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Database URL: sqlite://PATH (default sqlite://siren.db) or postgres://USER@HOST/DB.
    #[arg(long, env = "SIREN_DATABASE_URL", hide_env_values = true)]
    db: Option<String>,
    /// Configuration file (default ./siren.yaml when present); its `server:` section.
    #[arg(long, env = "SIREN_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8080, or `server.listen`).
    #[arg(long, env = "SIREN_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// Sigma rule files or folders to detect with (default: SIREN's built-in rule pack).
    #[arg(long = "rules", short = 'r', value_name = "DIR")]
    rules: Vec<PathBuf>,
    /// pySigma processing pipeline applied to the rules (repeatable; run in `priority`
    /// order, after the configuration file's `pipelines:`).
    #[arg(long = "pipeline", value_name = "FILE")]
    pipelines: Vec<PathBuf>,
    /// Only store events: no detection, correlation or incidents.
    #[arg(long)]
    no_detect: bool,
    /// Distributed mode: the NATS JetStream bus to publish correlation input to
    /// (`nats://HOST:PORT`; or `server.bus`).
    #[arg(long, env = "SIREN_BUS")]
    bus: Option<String>,
    /// Distributed mode: the cluster's name, which names its streams and buckets on the bus
    /// (default `server.cluster`, else `siren`).
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,
    /// Distributed mode: this process's role (default `both`; or `server.role`).
    #[arg(long, value_enum)]
    role: Option<siren_server::cluster::Role>,
    /// Distributed mode: this process's name in the cluster (or `server.node_id`).
    #[arg(long)]
    node_id: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SIREN_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let file = ConfigFile::load(args.config.as_deref())?;
    if let Some(warning) = file.exposure_warning() {
        tracing::warn!("{warning}");
    }
    let database = match (&args.db, &file.database) {
        (Some(url), _) => url.clone(),
        (None, Some(url)) => resolve_secret(url).context("configuration key 'database'")?,
        (None, None) => siren_core::store::DEFAULT_DATABASE_URL.to_owned(),
    };
    let mut config = file.server.unwrap_or_default();
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(bus) = args.bus {
        config.bus = Some(bus);
    }
    if let Some(cluster) = args.cluster {
        config.cluster = cluster;
    }
    if let Some(role) = args.role {
        config.role = role;
    }
    if let Some(id) = args.node_id {
        config.node_id = Some(id);
    }
    config.validate().map_err(anyhow::Error::msg)?;
    let rules = if args.no_detect {
        None
    } else {
        let folders = if args.rules.is_empty() {
            file.rules
        } else {
            args.rules
        };
        let mut pipelines = file.pipelines.clone();
        pipelines.extend(args.pipelines);
        Some(Arc::new(siren_server::load_rules(
            &folders,
            file.logsources.as_deref(),
            &pipelines,
        )?))
    };
    let store = siren_core::store::open(&database)
        .await
        .with_context(|| format!("cannot open {}", siren_core::store::redact_url(&database)))?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let scheme = if config.tls() { "https" } else { "http" };
    let distributed = config.bus.is_some();
    let mut state =
        AppState::for_config(store, rules, config, listener.local_addr()?.to_string()).await?;
    if distributed {
        tracing::info!("distributed mode: correlation input goes to the bus");
    }
    if let Some(mut notify) = file.notify.filter(|n| n.routes_anything()) {
        notify
            .resolve_secrets(|spec| resolve_secret(spec).map_err(|e| e.to_string()))
            .context("configuration section 'notify'")?;
        state = state
            .with_notifications(notify)
            .context("configuration section 'notify'")?;
        tracing::info!("notifications enabled");
    }
    let retention = file.retention.unwrap_or_default();
    retention
        .validate()
        .map_err(anyhow::Error::msg)
        .context("configuration section 'retention'")?;
    let mut archive_config = file.archive;
    if let Some(config) = archive_config.as_mut() {
        config
            .resolve_secrets(|name| std::env::var(name).ok())
            .map_err(anyhow::Error::msg)?;
    }
    let archive = retention
        .open_archive(archive_config.as_ref())
        .map_err(anyhow::Error::msg)
        .context("configuration section 'archive'")?;
    state = state.with_retention(retention, archive);
    tracing::info!(listen = %listener.local_addr()?, scheme, "serving");
    siren_server::serve(listener, state, siren_server::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
