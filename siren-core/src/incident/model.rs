//! The records of alerts and incidents: what a detection raises, what analysts see, the
//! timeline, and the pages and filters the store reads them by.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Resolution, Severity, Status};

/// An incident's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IncidentId(pub i64);

impl fmt::Display for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for IncidentId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let digits = s.trim().trim_start_matches('#');
        digits
            .parse()
            .map(IncidentId)
            .map_err(|_| format!("invalid incident id '{s}': expected a number"))
    }
}
/// One detection or correlation hit, ready to be grouped into an incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// The rule's id (or name, or title when it has neither).
    pub rule_id: String,
    /// The rule's title.
    pub rule_title: String,
    /// Severity of this alert.
    pub severity: Severity,
    /// Whether it comes from a correlation rule.
    pub correlation: bool,
    /// What groups it with other alerts of the same rule (default: the host).
    pub group_key: String,
    /// ATT&CK technique ids (`T1110.003`).
    pub techniques: Vec<String>,
    /// Next steps for the analyst.
    pub investigation: Vec<String>,
    /// When it happened (event time).
    pub time: DateTime<Utc>,
    /// Hosts concerned.
    pub hosts: Vec<String>,
    /// Accounts concerned.
    pub users: Vec<String>,
    /// IP addresses concerned.
    pub ips: Vec<String>,
    /// How many events it stands for.
    pub event_count: u64,
    /// The triggering event's de-duplication key, to find it in the store.
    pub event_key: Option<[u8; 16]>,
    /// Anything else worth keeping (JSON): group-by values, the correlation's value.
    pub detail: serde_json::Value,
}

/// An incident as analysts see it. Its JSON form is a public, documented format.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    /// Id.
    pub id: IncidentId,
    /// Owner.
    pub tenant: String,
    /// What happened, in a line.
    pub title: String,
    /// How bad.
    pub severity: Severity,
    /// Where in the lifecycle.
    pub status: Status,
    /// How it turned out, once resolved.
    pub resolution: Option<Resolution>,
    /// Who works it.
    pub assignee: Option<String>,
    /// The rules whose alerts it holds.
    pub rule_ids: Vec<String>,
    /// ATT&CK techniques.
    pub techniques: Vec<String>,
    /// Affected hosts.
    pub hosts: Vec<String>,
    /// Affected accounts.
    pub users: Vec<String>,
    /// IP addresses involved.
    pub ips: Vec<String>,
    /// First alert (event time).
    pub first_seen: DateTime<Utc>,
    /// Latest alert (event time).
    pub last_seen: DateTime<Utc>,
    /// Alerts grouped into it.
    pub alert_count: u64,
    /// Events behind those alerts.
    pub event_count: u64,
    /// Suggested next steps.
    pub investigation: Vec<String>,
    /// The grouping key alerts join on.
    pub group_key: String,
    /// When SIREN opened it.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// One thing that happened to an incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who (`siren` for SIREN itself).
    pub actor: String,
    /// `created`, `alert_added`, `assigned`, `status_changed`, `note`, `notification_sent`.
    pub kind: String,
    /// What, in words.
    pub detail: String,
}

/// The actor SIREN records for what it does itself.
pub const SYSTEM_ACTOR: &str = "siren";

/// Which part of an incident's timeline to read: the newest `limit` entries before a cursor.
#[derive(Debug, Clone, Default)]
pub struct TimelineQuery {
    /// Only entries older than this cursor (a previous page's [`TimelinePage::before`]).
    pub before: Option<String>,
    /// Only notes (`kind` = `note`).
    pub notes_only: bool,
    /// Page size.
    pub limit: u32,
}

/// A page of an incident's timeline and the cursor of the older entries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelinePage {
    /// The entries, oldest first.
    pub entries: Vec<TimelineEntry>,
    /// Entries in the whole timeline (or notes, when only notes were asked for).
    pub total: u64,
    /// Pass back as [`TimelineQuery::before`] for the older entries; `None` when there are
    /// none.
    pub before: Option<String>,
}

/// Filters of an incident list.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    /// Only this status.
    pub status: Option<Status>,
    /// Only this severity.
    pub severity: Option<Severity>,
    /// Only incidents assigned to this user.
    pub assignee: Option<String>,
    /// Only incidents seen at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Continue after this cursor (from the previous page).
    pub cursor: Option<String>,
    /// Page size.
    pub limit: u32,
}

/// A page of incidents and the cursor of the next one.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentPage {
    /// The incidents, most recently seen first.
    pub incidents: Vec<Incident>,
    /// Pass back as [`IncidentFilter::cursor`] for the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// What recording alerts did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AlertOutcome {
    /// Alerts stored.
    pub alerts: u64,
    /// Incidents opened.
    pub incidents_created: u64,
    /// Open incidents that received alerts.
    pub incidents_updated: u64,
}
