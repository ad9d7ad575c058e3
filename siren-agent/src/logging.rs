//! Logging: to stderr, or to a daily-rotated file (tracing-appender), with the level from the
//! configuration or `RUST_LOG`.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

/// Keeps the file writer flushing until dropped.
pub struct LogGuard(#[allow(dead_code)] Option<WorkerGuard>);

/// Sets up logging. `to_file` is false for interactive commands, which log to stderr.
pub fn init(config: Option<&LogConfig>, to_file: bool) -> anyhow::Result<LogGuard> {
    let level = config
        .and_then(|c| c.level.clone())
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info,evtx=warn".to_owned());
    let filter =
        EnvFilter::try_new(&level).map_err(|e| anyhow::anyhow!("log.level: {level:?}: {e}"))?;
    let file = config.and_then(|c| c.file.as_ref()).filter(|_| to_file);
    match file {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let name = path.file_name().map_or_else(
                || "siren-agent.log".into(),
                |n| n.to_string_lossy().into_owned(),
            );
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("log.file: cannot create {}: {e}", dir.display()))?;
            let appender = RollingFileAppender::builder()
                .rotation(Rotation::DAILY)
                .filename_prefix(name)
                .max_log_files(config.and_then(|c| c.keep).unwrap_or(7).max(1))
                .build(dir)
                .map_err(|e| anyhow::anyhow!("log.file: {}: {e}", path.display()))?;
            let (writer, guard) = tracing_appender::non_blocking(appender);
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(writer)
                .with_ansi(false)
                .init();
            Ok(LogGuard(Some(guard)))
        }
        None => {
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .init();
            Ok(LogGuard(None))
        }
    }
}
