//! What the running agent reports about itself: counters, the last success and the last
//! error, written to `status.json` in the state folder (read by `siren-agent status`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::spool::SpoolStats;

/// Per-source counters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SourceStatus {
    /// Events read.
    pub read: u64,
    /// Events the local filter left out.
    pub filtered: u64,
    /// Problems (unreadable records, files…).
    pub errors: u64,
    /// The last problem.
    pub last_error: Option<String>,
}

/// The agent's status.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    /// The agent's id.
    pub agent_id: String,
    /// Its version.
    pub version: String,
    /// Its process id.
    pub pid: u32,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When this status was written.
    pub updated_at: Option<DateTime<Utc>>,
    /// Whether the agent was running when it wrote this (false after a clean stop).
    pub running: bool,
    /// The spool.
    pub spool: SpoolStats,
    /// Events the server acknowledged.
    pub shipped: u64,
    /// Of those, events the server already had.
    pub duplicates: u64,
    /// Events the server rejected (logged with its reason; not retried).
    pub rejected: u64,
    /// Unsent events deleted because the spool was full.
    pub dropped: u64,
    /// Requests acknowledged.
    pub batches: u64,
    /// When the server last acknowledged a batch.
    pub last_success: Option<DateTime<Utc>>,
    /// The last error (cleared by the next success).
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<DateTime<Utc>>,
    /// Per source.
    pub sources: BTreeMap<String, SourceStatus>,
}

impl Status {
    /// Records an error.
    pub fn set_error(&mut self, message: String) {
        self.last_error = Some(message);
        self.last_error_at = Some(Utc::now());
    }
}

/// The status shared by the agent's threads.
#[derive(Debug, Clone, Default)]
pub struct SharedStatus(Arc<Mutex<Status>>);

impl SharedStatus {
    /// A status for a starting agent.
    pub fn new(agent_id: String) -> Self {
        Self(Arc::new(Mutex::new(Status {
            agent_id,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            started_at: Some(Utc::now()),
            running: true,
            ..Status::default()
        })))
    }

    /// Changes it.
    pub fn update(&self, change: impl FnOnce(&mut Status)) {
        change(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// A copy.
    pub fn snapshot(&self) -> Status {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Writes it (atomically) with the spool's current figures.
    pub fn write(&self, path: &Path, spool: SpoolStats) -> std::io::Result<()> {
        let mut status = self.snapshot();
        status.spool = spool;
        status.dropped = status.dropped.max(spool.dropped);
        status.updated_at = Some(Utc::now());
        let tmp = path.with_extension("json.tmp");
        siren_core::owner_only::write(
            &tmp,
            &serde_json::to_vec_pretty(&status).unwrap_or_default(),
        )?;
        std::fs::rename(&tmp, path)
    }
}

/// Where the status file of a state folder is.
pub fn status_path(state_dir: &Path) -> PathBuf {
    state_dir.join("status.json")
}
