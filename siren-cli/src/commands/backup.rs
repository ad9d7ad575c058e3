//! `siren backup FILE`, `siren backup --check [FILE]` and `siren restore FILE`: a consistent
//! copy of the embedded store taken while the server runs, its check, and its restore into
//! an empty database (`siren_core::store::backup`).

use std::path::PathBuf;

use siren_core::store::backup::{self, BackupError, BackupSummary};

use crate::Context;
use crate::exit::{CommandResult, Exit, Failure};

/// `siren backup` arguments.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The backup file to write (it must not exist); with `--check`, the backup to check
    /// (none: check the database itself).
    #[arg(value_name = "FILE", required_unless_present = "check")]
    file: Option<PathBuf>,
    /// Check instead of writing: integrity, schema version against this build, and counts.
    #[arg(long)]
    check: bool,
}

/// `siren restore` arguments.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup to restore into `--db`, which must be empty.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

fn failure(error: BackupError) -> Failure {
    if let BackupError::Store(store) = error {
        // The database's own errors keep their codes (unreachable 69, busy 75…).
        return Failure::from(store);
    }
    let exit = match &error {
        BackupError::Refused(_) => Exit::Usage,
        BackupError::Damaged { .. } => Exit::DataError,
        BackupError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Exit::NoInput
        }
        BackupError::Io { .. } | BackupError::Store(_) => Exit::Software,
    };
    Failure::new(exit, error)
}

fn print(context: &Context, title: &str, summary: &BackupSummary) -> CommandResult {
    let value = serde_json::to_value(summary).map_err(|e| Failure::new(Exit::Software, e))?;
    let table = vec![
        ("database".to_owned(), summary.database.clone()),
        ("backend".to_owned(), summary.backend.to_owned()),
        ("integrity".to_owned(), summary.integrity.clone()),
        (
            "schema".to_owned(),
            format!(
                "{} (this build: {})",
                summary.schema_version, summary.build_schema_version
            ),
        ),
        ("events".to_owned(), summary.events.to_string()),
        ("alerts".to_owned(), summary.alerts.to_string()),
        ("incidents".to_owned(), summary.incidents.to_string()),
        (
            "bytes".to_owned(),
            summary
                .bytes
                .map_or_else(|| "—".to_owned(), |b| b.to_string()),
        ),
    ];
    context
        .printer
        .document(title, &value, table)
        .map_err(|e| Failure::new(Exit::Software, e))?;
    Ok(Exit::Ok)
}

/// Runs `siren backup`.
pub async fn backup(context: &Context, args: BackupArgs) -> CommandResult {
    let summary = if args.check {
        backup::check(&context.database_url, args.file.as_deref()).await
    } else {
        let file = args.file.expect("clap requires FILE without --check");
        backup::backup(&context.database_url, &file).await
    }
    .map_err(failure)?;
    print(
        context,
        if args.check { "check" } else { "backup" },
        &summary,
    )
}

/// Runs `siren restore`.
pub async fn restore(context: &Context, args: RestoreArgs) -> CommandResult {
    let summary = backup::restore(&args.file, &context.database_url)
        .await
        .map_err(failure)?;
    print(context, "restored", &summary)
}
