//! Sources of events behind one trait: EVTX files, followed JSON-lines files and (on Windows)
//! Event Log channels. A source pushes what it reads, with the read position after each
//! event, to an [`Emit`]; the runner filters, spools and reports.

#[cfg(windows)]
pub mod eventlog;
pub mod evtx;
pub mod jsonl;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::filter::Filter;
use crate::spool::{Spool, SpoolError, SpoolRecord};
use crate::status::SharedStatus;

/// One event read, and where the source stands after it.
#[derive(Debug, Clone)]
pub struct SourceItem {
    /// Position key (the source name, or the source name and a file).
    pub key: String,
    /// Position after this event (opaque JSON the source understands on resume).
    pub position: Value,
    /// The event as JSON text.
    pub event: String,
    /// The event parsed, when the source had it parsed anyway (saves a parse for filtering).
    pub parsed: Option<Value>,
}

/// The source was asked to stop (shutdown) or the spool closed.
#[derive(Debug, Clone, Copy)]
pub struct Stopped;

/// Where a source sends what it reads.
pub trait Emit {
    /// Hands over events; returns once they are durably spooled.
    fn emit(&mut self, items: Vec<SourceItem>) -> Result<(), Stopped>;
    /// Records a position without an event (e.g. a file finished, bad records skipped).
    fn mark(&mut self, key: &str, position: Value) -> Result<(), Stopped>;
    /// Waits before polling again; fails when the agent stops.
    fn idle(&mut self, wait: Duration) -> Result<(), Stopped>;
    /// The saved position of a key, if any.
    fn resume(&self, key: &str) -> Option<Value>;
    /// Reports a problem that did not stop the source (counted, shown by `status`).
    fn problem(&mut self, message: String);
}

/// A source of events.
pub trait Source: Send {
    /// Its configured name.
    fn name(&self) -> &str;
    /// Reads until finished (one-shot sources) or until `emit` reports [`Stopped`].
    fn run(&mut self, emit: &mut dyn Emit) -> anyhow::Result<()>;
}

/// The [`Emit`] the agent gives every source: filter, then spool.
pub struct SpoolEmit {
    /// Source name (for counters).
    pub name: String,
    /// The filter, if configured.
    pub filter: Option<Filter>,
    /// The spool.
    pub spool: Arc<Spool>,
    /// Saved positions at start.
    pub resume: Arc<BTreeMap<String, Value>>,
    /// Set when the agent stops.
    pub stop: Arc<AtomicBool>,
    /// Counters.
    pub status: SharedStatus,
}

impl SpoolEmit {
    fn append(&mut self, records: &[SpoolRecord]) -> Result<(), Stopped> {
        loop {
            match self.spool.append(records) {
                Ok(dropped) => {
                    if dropped > 0 {
                        self.status.update(|s| s.dropped += dropped);
                    }
                    return Ok(());
                }
                Err(SpoolError::Closed) => return Err(Stopped),
                Err(error) => {
                    // A full disk or another IO failure: nothing is acknowledged to the
                    // source, so nothing is lost; retry until it clears or the agent stops.
                    tracing::error!(source = %self.name, %error, "cannot write to the spool; retrying in 5s");
                    self.status
                        .update(|s| s.set_error(format!("spool: {error}")));
                    self.idle(Duration::from_secs(5))?;
                }
            }
        }
    }
}

impl Emit for SpoolEmit {
    fn emit(&mut self, items: Vec<SourceItem>) -> Result<(), Stopped> {
        let read = items.len() as u64;
        let mut records = Vec::with_capacity(items.len());
        let mut filtered = 0u64;
        let mut last_marker: BTreeMap<String, Value> = BTreeMap::new();
        for item in items {
            let keep = match &self.filter {
                None => true,
                Some(filter) => match item.parsed.as_ref() {
                    Some(v) => filter.keeps(v),
                    None => match serde_json::from_str::<Value>(&item.event) {
                        Ok(v) => filter.keeps(&v),
                        Err(_) => true,
                    },
                },
            };
            if keep {
                last_marker.remove(&item.key);
                records.push(SpoolRecord {
                    key: item.key,
                    position: item.position,
                    event: Some(item.event),
                });
            } else {
                filtered += 1;
                last_marker.insert(item.key, item.position);
            }
        }
        // Positions of trailing filtered events travel as markers, so a restart does not
        // read them again.
        for (key, position) in last_marker {
            records.push(SpoolRecord {
                key,
                position,
                event: None,
            });
        }
        self.append(&records)?;
        let name = self.name.clone();
        self.status.update(|s| {
            let src = s.sources.entry(name).or_default();
            src.read += read;
            src.filtered += filtered;
        });
        Ok(())
    }

    fn mark(&mut self, key: &str, position: Value) -> Result<(), Stopped> {
        self.append(&[SpoolRecord {
            key: key.to_owned(),
            position,
            event: None,
        }])
    }

    fn idle(&mut self, wait: Duration) -> Result<(), Stopped> {
        let step = Duration::from_millis(100);
        let mut left = wait;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Err(Stopped);
            }
            if left.is_zero() {
                return Ok(());
            }
            let nap = left.min(step);
            std::thread::sleep(nap);
            left -= nap;
        }
    }

    fn resume(&self, key: &str) -> Option<Value> {
        self.resume.get(key).cloned()
    }

    fn problem(&mut self, message: String) {
        tracing::warn!(source = %self.name, problem = %message, "source problem");
        let name = self.name.clone();
        self.status.update(|s| {
            let src = s.sources.entry(name).or_default();
            src.errors += 1;
            src.last_error = Some(message);
        });
    }
}
