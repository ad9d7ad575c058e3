//! The correlator's state saved as versioned JSON bytes ([`Correlator::snapshot`]) and
//! loaded into a later correlator ([`Correlator::restore`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::correlator::PlanState;
use super::key::GroupKey;
use super::window::Group;
use super::{Correlator, CorrelatorStats, StateError};

/// The name written into every snapshot, checked on restore.
pub const STATE_FORMAT: &str = "siren-correlation-state";
/// The snapshot format version this build writes and reads.
pub const STATE_VERSION: u32 = 1;

/// What [`Correlator::restore`] kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Correlations whose state was restored.
    pub restored: usize,
    /// Groups restored.
    pub groups: usize,
    /// Saved correlations dropped: no longer loaded, or their definition changed.
    pub dropped: Vec<String>,
}

/// The saved form of the state.
#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    format: String,
    version: u32,
    #[serde(default)]
    watermark: Option<DateTime<Utc>>,
    #[serde(default)]
    stats: CorrelatorStats,
    #[serde(default)]
    correlations: Vec<SavedCorrelation>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedCorrelation {
    reference: String,
    fingerprint: String,
    groups: Vec<(GroupKey, Group)>,
}

/// [`Snapshot`] as it is written: borrowing the state instead of copying it.
#[derive(Serialize)]
struct SnapshotRef<'a> {
    format: &'a str,
    version: u32,
    watermark: Option<DateTime<Utc>>,
    stats: &'a CorrelatorStats,
    correlations: Vec<SavedCorrelationRef<'a>>,
}

/// [`SavedCorrelation`] as it is written.
#[derive(Serialize)]
struct SavedCorrelationRef<'a> {
    reference: &'a str,
    fingerprint: &'a str,
    groups: Vec<(&'a GroupKey, &'a Group)>,
}

impl Correlator {
    /// The whole state (windows, episodes, clock and counters) as versioned JSON bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        let snapshot = SnapshotRef {
            format: STATE_FORMAT,
            version: STATE_VERSION,
            watermark: self.watermark,
            stats: &self.stats,
            correlations: self
                .plans
                .iter()
                .zip(&self.states)
                .filter(|(_, s)| !s.groups.is_empty())
                .map(|(p, s)| {
                    let mut groups: Vec<(&GroupKey, &Group)> = s.groups.iter().collect();
                    groups.sort_by(|a, b| a.0.cmp(b.0));
                    SavedCorrelationRef {
                        reference: &p.reference,
                        fingerprint: &p.fingerprint,
                        groups,
                    }
                })
                .collect(),
        };
        serde_json::to_vec(&snapshot).unwrap_or_default()
    }

    /// Replaces the state with one saved by [`Correlator::snapshot`] (possibly by another
    /// process with another rule set): correlations are matched by reference, and the saved
    /// state of a correlation that is no longer loaded or whose definition changed is
    /// dropped. On error the state is left as it was.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<RestoreReport, StateError> {
        #[derive(Deserialize)]
        struct Header {
            format: String,
            version: u32,
        }
        let header: Header = serde_json::from_slice(bytes)?;
        if header.format != STATE_FORMAT {
            return Err(StateError::WrongFormat {
                found: header.format,
            });
        }
        if header.version != STATE_VERSION {
            return Err(StateError::UnsupportedVersion {
                found: header.version,
            });
        }
        let snapshot: Snapshot = serde_json::from_slice(bytes)?;
        let mut states = vec![PlanState::default(); self.plans.len()];
        let mut report = RestoreReport::default();
        for saved in snapshot.correlations {
            let Some(index) = self
                .plans
                .iter()
                .position(|p| p.reference == saved.reference && p.fingerprint == saved.fingerprint)
            else {
                report.dropped.push(saved.reference);
                continue;
            };
            report.restored += 1;
            let slots = self.plans[index].aggregate.distinct_slots as u32;
            for (key, mut group) in saved.groups {
                if key.len() != self.plans[index].group_by.len() {
                    continue;
                }
                // Keep the invariants whatever the bytes say: sorted, known slots.
                group.entries.retain(|e| e.slot < slots);
                group.entries.make_contiguous().sort_by_key(|e| e.time);
                report.groups += 1;
                states[index].groups.insert(key, group);
            }
        }
        self.states = states;
        self.watermark = snapshot.watermark;
        self.stats = snapshot.stats;
        for plan in 0..self.plans.len() {
            self.sweep(plan);
        }
        Ok(report)
    }
}
