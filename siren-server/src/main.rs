//! The `siren-server` binary: serves the REST API and the dashboard (the same server as
//! `siren serve`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use serde::Deserialize;
use siren_server::{AppState, ServerConfig};

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
    /// Only store events: no detection, correlation or incidents.
    #[arg(long)]
    no_detect: bool,
}

/// The parts of the configuration file the server reads (the `siren` command checks the rest):
/// the database, rules, `server:` and `notify:`.
#[derive(Debug, Default, Deserialize)]
struct FileConfig {
    database: Option<String>,
    #[serde(default)]
    rules: Vec<PathBuf>,
    logsources: Option<PathBuf>,
    server: Option<ServerConfig>,
    notify: Option<siren_core::notify::NotifyConfig>,
}

fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<FileConfig> {
    let path = match path {
        Some(path) => path.to_owned(),
        None if std::path::Path::new("siren.yaml").is_file() => PathBuf::from("siren.yaml"),
        None => return Ok(FileConfig::default()),
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read configuration file {}", path.display()))?;
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    let config: FileConfig = serde_yaml::from_str(&text)
        .with_context(|| format!("invalid configuration file {}", path.display()))?;
    // Secrets written literally in a file others can read.
    let mut secrets = config
        .notify
        .as_ref()
        .map_or_else(Vec::new, |n| n.literal_secrets());
    if let Some(url) = &config.database
        && !(url.starts_with("env:") || url.starts_with("file:"))
        && siren_core::notify::config::url_has_password(url)
    {
        secrets.insert(0, "database".to_owned());
    }
    if !secrets.is_empty()
        && let Some(mode) = siren_core::owner_only::readable_by_others(&path)
    {
        tracing::warn!(
            file = %path.display(),
            mode = format!("{mode:03o}"),
            secrets = secrets.join(", "),
            "the configuration file holds secrets written literally and others can read it: \
             chmod 600 it, or write them as env:NAME or file:PATH"
        );
    }
    Ok(config)
}

fn resolve_secret(value: &str) -> anyhow::Result<String> {
    if let Some(name) = value.strip_prefix("env:") {
        return std::env::var(name)
            .with_context(|| format!("environment variable {name} is not set"));
    }
    if let Some(path) = value.strip_prefix("file:") {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read secret file {path}"))?;
        return Ok(text.trim_end_matches(['\r', '\n']).to_owned());
    }
    Ok(value.to_owned())
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
    let file = load_config(args.config.as_deref())?;
    let database = match (&args.db, &file.database) {
        (Some(url), _) => url.clone(),
        (None, Some(url)) => resolve_secret(url).context("configuration key 'database'")?,
        (None, None) => siren_core::store::DEFAULT_DATABASE_URL.to_owned(),
    };
    let mut config = file.server.unwrap_or_default();
    if let Some(listen) = args.listen {
        config.listen = listen;
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
        Some(Arc::new(siren_server::load_rules(
            &folders,
            file.logsources.as_deref(),
        )?))
    };
    let store = siren_core::store::open(&database)
        .await
        .with_context(|| format!("cannot open {}", siren_core::store::redact_url(&database)))?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let scheme = if config.tls() { "https" } else { "http" };
    let mut state = AppState::new(store, rules, config);
    if let Some(mut notify) = file.notify.filter(|n| n.routes_anything()) {
        notify
            .resolve_secrets(|spec| resolve_secret(spec).map_err(|e| format!("{e:#}")))
            .context("configuration section 'notify'")?;
        state = state
            .with_notifications(notify)
            .context("configuration section 'notify'")?;
        tracing::info!("notifications enabled");
    }
    tracing::info!(listen = %listener.local_addr()?, scheme, "serving");
    siren_server::serve(listener, state, siren_server::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
