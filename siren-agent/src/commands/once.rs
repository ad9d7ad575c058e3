//! `siren-agent once FILE...`: ships files through the spool and exits when the server has
//! acknowledged every event (or the timeout passes, leaving the rest in the spool).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::agent::{self, Mode};
use crate::exit::{Exit, ExitContext, Failure};
use crate::ship::ShipEnd;
use crate::source::evtx::EvtxFiles;
use crate::source::jsonl::JsonLines;

/// Arguments of `once`.
#[derive(clap::Args)]
pub struct OnceArgs {
    /// EVTX or JSON-lines files, or folders (their .evtx, .jsonl and .ndjson files).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Give up after this long without delivering everything (exit 75; the rest stays in the
    /// spool for the next run).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Threads parsing EVTX (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print the final status as JSON on stdout.
    #[arg(long)]
    json: bool,
}

fn is_evtx(path: &Path) -> bool {
    let mut head = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head == b"ElfFile\0"
}

/// Splits the inputs into EVTX and JSON-lines files.
fn inputs(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<PathBuf>), Failure> {
    let mut evtx = Vec::new();
    let mut jsonl = Vec::new();
    for path in paths {
        let path = path
            .canonicalize()
            .map_err(|e| Failure::new(Exit::NoInput, anyhow::anyhow!("{}: {e}", path.display())))?;
        if path.is_dir() {
            for entry in walkdir::WalkDir::new(&path)
                .sort_by_file_name()
                .into_iter()
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_file())
            {
                let p = entry.into_path();
                match p
                    .extension()
                    .and_then(|e| e.to_str())
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                {
                    Some("evtx") => evtx.push(p),
                    Some("jsonl" | "ndjson") => jsonl.push(p),
                    _ => {}
                }
            }
        } else if is_evtx(&path) {
            evtx.push(path);
        } else {
            jsonl.push(path);
        }
    }
    Ok((evtx, jsonl))
}

/// Runs the command.
pub fn run(path: &Path, args: OnceArgs) -> Result<Exit, Failure> {
    let config = super::load(path)?;
    let _log = crate::logging::init(Some(&config.log), false).exit(Exit::Config)?;
    super::warn_if_exposed(&config, path);
    let (evtx, jsonl) = inputs(&args.files)?;
    let mut sources: Vec<crate::agent::FilteredSource> = Vec::new();
    if !evtx.is_empty() {
        sources.push((
            Box::new(EvtxFiles::new("once", evtx, false, args.threads)),
            None,
        ));
    }
    for file in jsonl {
        let key = format!("once:{}", file.display());
        sources.push((Box::new(JsonLines::once("once", &key, &file)), None));
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst)).exit(Exit::Software)?;
    }
    // A timeout beyond what the clock can represent is none.
    let deadline = Instant::now().checked_add(args.timeout);
    let outcome =
        agent::run(&config, sources, Mode::Once { deadline }, stop).exit(Exit::Software)?;
    if args.json {
        #[allow(clippy::print_stdout)]
        {
            println!(
                "{}",
                serde_json::to_string_pretty(&outcome.status).unwrap_or_default()
            );
        }
    }
    let status = &outcome.status;
    tracing::info!(
        shipped = status.shipped,
        duplicates = status.duplicates,
        rejected = status.rejected,
        dropped = status.spool.dropped,
        queue = status.spool.depth,
        "once finished"
    );
    match outcome.ship {
        ShipEnd::GaveUp { auth: true, error } => Err(Failure::new(
            Exit::Config,
            anyhow::anyhow!("{error}; {} events wait in the spool", status.spool.depth),
        )),
        ShipEnd::GaveUp { auth: false, error } => Err(Failure::new(
            Exit::TempFail,
            anyhow::anyhow!(
                "gave up after {}: {error}; {} events wait in the spool and are sent by the next run",
                humantime::format_duration(args.timeout),
                status.spool.depth
            ),
        )),
        ShipEnd::Done if status.spool.depth > 0 => Err(Failure::new(
            Exit::TempFail,
            anyhow::anyhow!("stopped with {} events in the spool", status.spool.depth),
        )),
        ShipEnd::Done => {
            let problems: u64 = status.sources.values().map(|s| s.errors).sum();
            if let Some((name, error)) = outcome.failed_sources.first() {
                Err(Failure::new(
                    Exit::DataError,
                    anyhow::anyhow!("source {name}: {error}"),
                ))
            } else if status.rejected > 0 || problems > 0 || status.spool.dropped > 0 {
                Err(Failure::new(
                    Exit::DataError,
                    anyhow::anyhow!(
                        "{} events rejected by the server, {problems} unreadable records or files, {} dropped (see the log)",
                        status.rejected,
                        status.spool.dropped
                    ),
                ))
            } else {
                Ok(Exit::Ok)
            }
        }
    }
}
