//! The running agent: sources on their own threads feed the spool, the shipper empties it,
//! and a housekeeping thread writes the status file and sends heartbeats.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::{Config, SourceConfig};
use crate::filter::Filter;
use crate::ship::{ShipEnd, Shipper};
use crate::source::evtx::EvtxFiles;
use crate::source::jsonl::{JsonLines, StopError};
use crate::source::{Source, SpoolEmit};
use crate::spool::Spool;
use crate::status::{SharedStatus, Status, status_path};

/// How the agent runs.
pub enum Mode {
    /// Until `stop` is set.
    Service,
    /// Until the sources are read and everything is acknowledged, or the deadline passes.
    Once {
        /// When to give up.
        deadline: Option<Instant>,
    },
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// How shipping ended.
    pub ship: ShipEnd,
    /// The final status.
    pub status: Status,
    /// Sources that failed (name and error).
    pub failed_sources: Vec<(String, String)>,
}

/// A source and its filter.
pub type FilteredSource = (Box<dyn Source>, Option<Filter>);

/// Sources built from the configuration.
pub fn configured_sources(config: &Config) -> anyhow::Result<Vec<FilteredSource>> {
    let mut out: Vec<FilteredSource> = Vec::new();
    for source in &config.sources {
        let filter = source.filter().map(Filter::new);
        let built: Box<dyn Source> = match source {
            SourceConfig::Jsonl {
                name,
                path,
                start_at,
                ..
            } => Box::new(JsonLines::follow(name, path, *start_at)),
            SourceConfig::Evtx {
                name, path, watch, ..
            } => Box::new(EvtxFiles::new(name, vec![path.clone()], *watch, 1)),
            #[cfg(windows)]
            SourceConfig::Eventlog {
                name,
                channel,
                query,
                start_at,
                ..
            } => Box::new(crate::source::eventlog::EventLog::new(
                name,
                channel,
                query.as_deref(),
                *start_at,
            )),
            #[cfg(not(windows))]
            SourceConfig::Eventlog { name, .. } => {
                anyhow::bail!("source {name}: the Windows Event Log exists only on Windows")
            }
        };
        out.push((built, filter));
    }
    Ok(out)
}

/// Holds the state folder's lock for the life of the process.
pub struct StateLock(#[allow(dead_code)] File);

/// Takes the lock that keeps two agents off one state folder.
#[allow(clippy::incompatible_msrv)]
pub fn lock_state(state_dir: &Path) -> anyhow::Result<StateLock> {
    crate::state_dir::prepare(state_dir)?;
    let path = state_dir.join("agent.lock");
    let file = siren_core::owner_only::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("state_dir: cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(StateLock(file)),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another siren-agent is using the state folder {} (stop it first)",
            state_dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Runs sources and the shipper until the mode says to end.
pub fn run(
    config: &Config,
    sources: Vec<FilteredSource>,
    mode: Mode,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Outcome> {
    let _lock = lock_state(&config.state_dir)?;
    let token = config.token()?;
    let client = crate::ship::client(config)?;
    let base = reqwest::Url::parse(&config.server.url).context("server.url")?;
    let events_url = base.join("api/v1/events").context("server.url")?;
    let heartbeat_url = base.join("api/v1/agents/heartbeat").context("server.url")?;
    let spool_dir = config.state_dir.join("spool");
    let (spool, recovered) = Spool::open(
        &spool_dir,
        config.spool.max_bytes,
        config.spool.segment_bytes(),
        config.spool.when_full,
    )
    .context("cannot open the spool")?;
    let spool = Arc::new(spool);
    let status = SharedStatus::new(config.agent_id());
    let resume = Arc::new(recovered.resume);
    let status_file = status_path(&config.state_dir);
    tracing::info!(agent = %config.agent_id(), server = %base, queue = spool.stats().depth, sources = sources.len(), "siren-agent started");

    let finished = Arc::new(AtomicUsize::new(0));
    let total = sources.len();
    let failed: Arc<std::sync::Mutex<Vec<(String, String)>>> = Default::default();
    let mut threads = Vec::new();
    for (mut source, filter) in sources {
        let mut emit = SpoolEmit {
            name: source.name().to_owned(),
            filter,
            spool: spool.clone(),
            resume: resume.clone(),
            stop: stop.clone(),
            status: status.clone(),
        };
        let finished = finished.clone();
        let failed = failed.clone();
        let thread = std::thread::Builder::new()
            .name(format!("source {}", source.name()))
            .spawn(move || {
                match source.run(&mut emit) {
                    Ok(()) => tracing::debug!(source = %source.name(), "source finished"),
                    Err(e) if e.is::<StopError>() => {}
                    Err(error) => {
                        tracing::error!(source = %source.name(), error = %format!("{error:#}"), "source failed");
                        failed
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((source.name().to_owned(), format!("{error:#}")));
                        emit.status.update(|s| {
                            s.set_error(format!("source {}: {error:#}", source.name()))
                        });
                    }
                }
                finished.fetch_add(1, Ordering::SeqCst);
            })
            .context("cannot start a source thread")?;
        threads.push(thread);
    }

    let housekeeping_stop = Arc::new(AtomicBool::new(false));
    let housekeeping = {
        let spool = spool.clone();
        let status = status.clone();
        let stop = housekeeping_stop.clone();
        let client = client.clone();
        let token = token.clone();
        let every = config.server.heartbeat;
        let status_file = status_file.clone();
        std::thread::Builder::new()
            .name("housekeeping".into())
            .spawn(move || {
                // None: an interval beyond what the clock can represent, so never again.
                let mut next_heartbeat = Some(Instant::now());
                while !stop.load(Ordering::Relaxed) {
                    let stats = spool.stats();
                    if let Err(error) = status.write(&status_file, stats) {
                        tracing::warn!(%error, file = %status_file.display(), "cannot write the status file");
                    }
                    if !every.is_zero() && next_heartbeat.is_some_and(|at| Instant::now() >= at) {
                        crate::ship::heartbeat(&client, &heartbeat_url, &token, &status, stats.depth);
                        next_heartbeat = Instant::now().checked_add(every);
                    }
                    for _ in 0..10 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            })
            .context("cannot start the housekeeping thread")?
    };

    let shipper = Shipper {
        client,
        events_url,
        token,
        spool: spool.clone(),
        status: status.clone(),
        batch: config.batch.clone(),
        retry: config.retry.clone(),
        stop: stop.clone(),
    };
    let ship = match mode {
        Mode::Service => shipper.run(&|| false, None),
        Mode::Once { deadline } => {
            let finished = finished.clone();
            shipper.run(&move || finished.load(Ordering::SeqCst) == total, deadline)
        }
    };
    stop.store(true, Ordering::SeqCst);
    spool.close();
    for t in threads {
        let _ = t.join();
    }
    housekeeping_stop.store(true, Ordering::SeqCst);
    let _ = housekeeping.join();
    status.update(|s| s.running = false);
    let stats = spool.stats();
    if let Err(error) = status.write(&status_file, stats) {
        tracing::warn!(%error, "cannot write the status file");
    }
    let mut final_status = status.snapshot();
    final_status.spool = stats;
    tracing::info!(
        queue = stats.depth,
        shipped = final_status.shipped,
        rejected = final_status.rejected,
        dropped = stats.dropped,
        "siren-agent stopped"
    );
    let failed_sources = std::mem::take(&mut *failed.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(Outcome {
        ship,
        status: final_status,
        failed_sources,
    })
}
