//! [`CorrelatorConfig`]: how a correlator bounds its state (lateness, groups, matches per
//! group, chain depth, per-group clocks).

use std::time::Duration;

/// How a [`Correlator`](super::Correlator) bounds its state. Builder-lite:
/// `CorrelatorConfig::default().with_lateness(…)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelatorConfig {
    /// How far behind the latest event time a match may arrive and still be placed in its
    /// window (default 10 minutes).
    pub lateness: Duration,
    /// The most groups one correlation keeps (default 100,000).
    pub max_groups: usize,
    /// The most matches one group keeps (default 10,000).
    pub max_entries: usize,
    /// The most event references a hit carries (default 100).
    pub max_hit_events: usize,
    /// How deep correlations of correlations are followed (default 8).
    pub max_chain_depth: usize,
    /// When set, each group keeps its own clock (its latest match): a match more than this
    /// behind it is dropped as late, and matches older than it by more than this plus the
    /// timespan are expired, whatever the correlator's clock says. See
    /// [`CorrelatorConfig::with_group_clock`].
    pub group_lateness: Option<Duration>,
}

impl Default for CorrelatorConfig {
    fn default() -> Self {
        Self {
            lateness: Duration::from_secs(600),
            max_groups: 100_000,
            max_entries: 10_000,
            max_hit_events: 100,
            max_chain_depth: 8,
            group_lateness: None,
        }
    }
}

impl CorrelatorConfig {
    /// The configuration for logs read from files (`siren ingest`, `siren hunt`): archives
    /// of any age in any order. Matches up to ten years behind the latest are placed; each
    /// group keeps its own clock with 10 minutes of lateness, so windows stay as small as the
    /// timespan needs however far apart the files' clocks are; at most 2,000 matches a group.
    pub fn for_files() -> Self {
        Self::default()
            .with_lateness(Duration::from_secs(10 * 365 * 86_400))
            .with_group_clock(Duration::from_secs(600))
            .with_max_entries(2_000)
    }

    /// Sets the allowed lateness.
    pub fn with_lateness(mut self, lateness: Duration) -> Self {
        self.lateness = lateness;
        self
    }
    /// Sets the cap on groups per correlation (at least 1).
    pub fn with_max_groups(mut self, max: usize) -> Self {
        self.max_groups = max.max(1);
        self
    }
    /// Sets the cap on matches per group (at least 1).
    pub fn with_max_entries(mut self, max: usize) -> Self {
        self.max_entries = max.max(1);
        self
    }
    /// Gives each group its own clock, with `lateness` allowed behind it.
    ///
    /// For callers that read archives in any order (files of different years, hosts whose
    /// logs arrive hours late): set [`CorrelatorConfig::lateness`] as long as the oldest data
    /// that may still arrive (it then only decides when idle groups are forgotten), and the
    /// group lateness short (minutes): windows stay as small as the timespan needs, however
    /// far apart the sources' clocks are. Replays are not recognised once a group has been
    /// forgotten, so such callers should feed only events they have not fed before.
    pub fn with_group_clock(mut self, lateness: Duration) -> Self {
        self.group_lateness = Some(lateness);
        self
    }
    /// Sets the cap on event references per hit.
    pub fn with_max_hit_events(mut self, max: usize) -> Self {
        self.max_hit_events = max;
        self
    }
}
