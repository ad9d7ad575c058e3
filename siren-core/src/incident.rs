//! Alerts and incidents: the lifecycle, severities, grouping keys and the analyst-facing
//! records the store keeps.
//!
//! A detection or correlation hit is an [`Alert`]. Alerts with the same rule and grouping key
//! (default: the host) join the open incident of that key while it is open and its last alert
//! is within the grouping window; otherwise a new incident opens. So 10,000 repeats are one
//! incident with a count.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::rules::Level as Severity;

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

/// Where an incident is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Opened, nobody has looked yet.
    New,
    /// Someone has seen it.
    Acknowledged,
    /// Being investigated.
    InProgress,
    /// Handed up to a senior analyst or incident response.
    Escalated,
    /// Decided (with a [`Resolution`]).
    Resolved,
    /// Done; no further change.
    Closed,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 6] = [
        Status::New,
        Status::Acknowledged,
        Status::InProgress,
        Status::Escalated,
        Status::Resolved,
        Status::Closed,
    ];

    /// The status's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Acknowledged => "acknowledged",
            Status::InProgress => "in_progress",
            Status::Escalated => "escalated",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
        }
    }

    /// Parses a status name (`in-progress` is accepted for `in_progress`).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase().replace('-', "_");
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether alerts still join an incident in this status.
    pub fn is_open(self) -> bool {
        !matches!(self, Status::Resolved | Status::Closed)
    }

    /// The statuses an incident may move to from this one.
    ///
    /// `new → acknowledged → in_progress → resolved → closed`, `escalated` from any open
    /// status, resolving straight from any open status (a quick false-positive call), and
    /// reopening a resolved incident (`in_progress`). `closed` is final.
    pub fn next(self) -> &'static [Status] {
        use Status::*;
        match self {
            New => &[Acknowledged, InProgress, Escalated, Resolved],
            Acknowledged => &[InProgress, Escalated, Resolved],
            InProgress => &[Escalated, Resolved],
            Escalated => &[InProgress, Resolved],
            Resolved => &[Closed, InProgress],
            Closed => &[],
        }
    }

    /// Checks a move from `self` to `to`, with the resolution a move to `resolved` needs.
    pub fn check_transition(
        self,
        to: Status,
        resolution: Option<Resolution>,
    ) -> Result<(), TransitionError> {
        if !self.next().contains(&to) {
            return Err(TransitionError::NotAllowed { from: self, to });
        }
        match (to, resolution) {
            (Status::Resolved, None) => Err(TransitionError::ResolutionRequired),
            (Status::Resolved, Some(_)) | (_, None) => Ok(()),
            (_, Some(_)) => Err(TransitionError::ResolutionOnlyOnResolve),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused status change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionError {
    /// The lifecycle does not allow it.
    #[error("cannot move an incident from {from} to {to}: from {from} it can go to {}", list(from.next()))]
    NotAllowed {
        /// Current status.
        from: Status,
        /// Requested status.
        to: Status,
    },
    /// Resolving needs a resolution.
    #[error("resolving needs a resolution: true_positive, false_positive or benign")]
    ResolutionRequired,
    /// A resolution was given for another status.
    #[error("a resolution is only given when resolving")]
    ResolutionOnlyOnResolve,
}

fn list(statuses: &[Status]) -> String {
    if statuses.is_empty() {
        return "nowhere (it is final)".to_owned();
    }
    statuses
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// How a resolved incident turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// A real attack or policy breach.
    TruePositive,
    /// The rule fired on something harmless it should not have.
    FalsePositive,
    /// The activity happened but was expected (an admin, a test).
    Benign,
}

impl Resolution {
    /// The resolution's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::TruePositive => "true_positive",
            Resolution::FalsePositive => "false_positive",
            Resolution::Benign => "benign",
        }
    }

    /// Parses a resolution name (`-` may stand for `_`).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "true_positive" | "tp" => Some(Resolution::TruePositive),
            "false_positive" | "fp" => Some(Resolution::FalsePositive),
            "benign" => Some(Resolution::Benign),
            _ => None,
        }
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

/// Default investigation steps by ATT&CK tactic tag, for rules that give none.
pub fn default_investigation(tags: &[String]) -> Vec<String> {
    let mut steps = Vec::new();
    let has = |tactic: &str| tags.iter().any(|t| t.eq_ignore_ascii_case(tactic));
    if has("attack.credential-access") || has("attack.credential_access") {
        steps.push("Check whether the targeted accounts logged on successfully afterwards (4624) and from where.".to_owned());
        steps.push(
            "Reset the credentials of any account that may be compromised; review MFA status."
                .to_owned(),
        );
    }
    if has("attack.execution") {
        steps.push(
            "Review the process tree and command line; collect the binary or script for analysis."
                .to_owned(),
        );
    }
    if has("attack.persistence") || has("attack.privilege-escalation") {
        steps.push("Find the service, task, account or registry change that was created and who created it.".to_owned());
    }
    if has("attack.lateral-movement") {
        steps.push(
            "Identify the source host and account, and check the other hosts they reached."
                .to_owned(),
        );
    }
    if has("attack.defense-evasion") || has("attack.defense_evasion") {
        steps.push("Check what was disabled or cleared, restore it, and look for activity hidden around that time.".to_owned());
    }
    if has("attack.exfiltration") || has("attack.command-and-control") {
        steps.push(
            "Identify the remote endpoints and the volume sent; block them if unexpected."
                .to_owned(),
        );
    }
    if steps.is_empty() {
        steps.push(
            "Review the triggering events and the host's activity around the first alert."
                .to_owned(),
        );
        steps.push(
            "Decide whether the activity is expected; resolve as benign or false_positive if so."
                .to_owned(),
        );
    }
    steps
}

/// A severity one step up (critical stays critical).
pub fn raised(severity: Severity) -> Severity {
    match severity {
        Severity::Informational => Severity::Low,
        Severity::Low => Severity::Medium,
        Severity::Medium => Severity::High,
        Severity::High | Severity::Critical => Severity::Critical,
    }
}

/// A severity's rank for sorting and comparison (informational 0 … critical 4).
pub fn severity_rank(severity: Severity) -> i64 {
    match severity {
        Severity::Informational => 0,
        Severity::Low => 1,
        Severity::Medium => 2,
        Severity::High => 3,
        Severity::Critical => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_allows_the_documented_moves_only() {
        assert!(
            Status::New
                .check_transition(Status::Acknowledged, None)
                .is_ok()
        );
        assert!(
            Status::InProgress
                .check_transition(Status::Resolved, Some(Resolution::TruePositive))
                .is_ok()
        );
        assert_eq!(
            Status::InProgress.check_transition(Status::Resolved, None),
            Err(TransitionError::ResolutionRequired)
        );
        let refused = Status::Closed
            .check_transition(Status::New, None)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("from closed to new"), "{refused}");
        let refused = Status::New
            .check_transition(Status::Closed, None)
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("acknowledged, in_progress, escalated, resolved"),
            "{refused}"
        );
        assert!(
            Status::Resolved
                .check_transition(Status::InProgress, None)
                .is_ok(),
            "reopen"
        );
        assert_eq!(Status::parse("In-Progress"), Some(Status::InProgress));
        assert_eq!(
            Resolution::parse("false-positive"),
            Some(Resolution::FalsePositive)
        );
    }

    #[test]
    fn severities_rise_and_rank() {
        assert_eq!(raised(Severity::Medium), Severity::High);
        assert_eq!(raised(Severity::Critical), Severity::Critical);
        assert!(severity_rank(Severity::High) > severity_rank(Severity::Low));
    }
}
