//! The report model: what templates, CSV, JSON and PDF render. A period summary is
//! aggregated while incidents stream past (bounded state: counters and per-day buckets); an
//! incident report adds each incident's status history, timeline, notes and triggering
//! events.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike as _, Duration, NaiveDate, Utc};
use serde::Serialize;

use super::redact::{Kind, Redactor, field_kind};
use crate::incident::{Incident, Severity, Status, TimelineEntry, severity_rank};
use crate::store::StoredEvent;

/// Severities from the worst down, the order reports list them in.
pub const SEVERITIES: [Severity; 5] = [
    Severity::Critical,
    Severity::High,
    Severity::Medium,
    Severity::Low,
    Severity::Informational,
];

/// How many entries the "top" lists keep.
pub const TOP: usize = 10;

/// A name and how many incidents have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Count {
    /// The rule, host, user, severity or status.
    pub name: String,
    /// Incidents.
    pub count: u64,
}

/// A span of time as seconds and in words (`2h 5m`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Span {
    /// Seconds.
    pub seconds: f64,
    /// In words.
    pub text: String,
}

impl Span {
    fn from_seconds(seconds: f64) -> Self {
        let whole = seconds.round() as i64;
        let (d, h, m, s) = (
            whole / 86_400,
            whole % 86_400 / 3600,
            whole % 3600 / 60,
            whole % 60,
        );
        let text = if d > 0 {
            format!("{d}d {h}h")
        } else if h > 0 {
            format!("{h}h {m}m")
        } else if m > 0 {
            format!("{m}m {s}s")
        } else {
            format!("{s}s")
        };
        Self { seconds, text }
    }
}

/// Incidents first seen in one stretch of time, by severity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    /// First day of the stretch.
    pub start: NaiveDate,
    /// Its label (`2026-03-01`, `2026-03`).
    pub label: String,
    /// Incidents by severity, in [`SEVERITIES`] order.
    pub counts: [u64; 5],
    /// All incidents.
    pub total: u64,
}

/// The period summary's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Incidents in the report.
    pub total: u64,
    /// Incidents by severity, worst first (every severity listed).
    pub by_severity: Vec<Count>,
    /// Incidents by status, in lifecycle order (every status listed).
    pub by_status: Vec<Count>,
    /// Incidents first seen within the period.
    pub new_in_period: u64,
    /// Incidents resolved within the period.
    pub resolved_in_period: u64,
    /// Incidents still open (not resolved or closed).
    pub open: u64,
    /// Incidents acknowledged (moved on from `new`).
    pub acknowledged: u64,
    /// Mean time from opening to the first status change.
    pub mean_time_to_acknowledge: Option<Span>,
    /// Mean time from opening to resolution.
    pub mean_time_to_resolve: Option<Span>,
    /// Rules with the most incidents.
    pub top_rules: Vec<Count>,
    /// Hosts in the most incidents.
    pub top_hosts: Vec<Count>,
    /// Accounts in the most incidents.
    pub top_users: Vec<Count>,
    /// Incidents over time by first seen, by severity.
    pub over_time: Vec<Bucket>,
    /// Earliest first seen.
    pub first_seen: Option<DateTime<Utc>>,
    /// Latest last seen.
    pub last_seen: Option<DateTime<Utc>>,
}

/// One status change of an incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusChange {
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// From.
    pub from: String,
    /// To.
    pub to: String,
    /// With which resolution.
    pub resolution: Option<String>,
}

/// Parses a `status_changed` entry's text (`new → acknowledged`, `in_progress → resolved
/// (true_positive)`).
pub fn parse_status_change(entry: &TimelineEntry) -> Option<StatusChange> {
    let (from, rest) = entry.detail.split_once('→')?;
    let rest = rest.trim();
    let (to, resolution) = match rest.split_once('(') {
        Some((to, res)) => (to.trim(), Some(res.trim_end_matches(')').trim().to_owned())),
        None => (rest, None),
    };
    Status::parse(from)?;
    Status::parse(to)?;
    Some(StatusChange {
        at: entry.at,
        actor: entry.actor.clone(),
        from: from.trim().to_owned(),
        to: to.to_owned(),
        resolution,
    })
}

/// The key fields of a triggering event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventSummary {
    /// Event time.
    pub time: Option<DateTime<Utc>>,
    /// Host.
    pub host: Option<String>,
    /// Channel / source.
    pub source: Option<String>,
    /// Event ID.
    pub event_id: Option<i64>,
    /// Record number.
    pub record_id: Option<i64>,
    /// Account.
    pub user: Option<String>,
    /// Source address.
    pub src_ip: Option<String>,
    /// Destination address.
    pub dst_ip: Option<String>,
    /// Process image.
    pub process: Option<String>,
    /// Command line.
    pub command_line: Option<String>,
    /// Other fields worth reading (name, value), at most [`MAX_EVENT_FIELDS`].
    pub fields: Vec<(String, String)>,
}

/// The most extra fields an event summary lists.
pub const MAX_EVENT_FIELDS: usize = 12;

/// Fields the summary already shows, or that carry no meaning for a reader.
const SKIPPED_FIELDS: &[&str] = &[
    "EventID",
    "Channel",
    "Computer",
    "TimeCreated",
    "EventRecordID",
    "Provider_Name",
    "Provider_Guid",
    "Version",
    "Level",
    "Task",
    "Opcode",
    "Keywords",
    "Correlation",
    "Security_UserID",
    "Execution_ProcessID",
    "Execution_ThreadID",
    "Image",
    "CommandLine",
];

/// An incident as a report shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportIncident {
    /// The incident.
    #[serde(flatten)]
    pub incident: Incident,
    /// When it first moved on from `new`.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// When it was (last) resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Its status changes, oldest first (incident reports only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_history: Option<Vec<StatusChange>>,
    /// Everything that happened to it, oldest first (incident reports only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<TimelineEntry>>,
    /// Analysts' notes, oldest first (incident reports only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<Vec<TimelineEntry>>,
    /// The triggering events' key fields (incident reports only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<EventSummary>>,
}

impl ReportIncident {
    /// An incident with its acknowledgement and resolution times from its status changes.
    pub fn new(incident: Incident, changes: &[StatusChange]) -> Self {
        let acknowledged_at = changes.iter().find(|c| c.from == "new").map(|c| c.at);
        let resolved_at = if incident.status.is_open() {
            None
        } else {
            changes
                .iter()
                .rev()
                .find(|c| c.to == "resolved")
                .map(|c| c.at)
        };
        Self {
            incident,
            acknowledged_at,
            resolved_at,
            status_history: None,
            timeline: None,
            notes: None,
            events: None,
        }
    }

    /// Adds the detail of an incident report.
    pub fn with_detail(
        mut self,
        changes: Vec<StatusChange>,
        timeline: Vec<TimelineEntry>,
        events: &[StoredEvent],
    ) -> Self {
        self.notes = Some(
            timeline
                .iter()
                .filter(|e| e.kind == "note")
                .cloned()
                .collect(),
        );
        self.status_history = Some(changes);
        self.timeline = Some(timeline);
        self.events = Some(events.iter().map(summarise_event).collect());
        self
    }

    /// Teaches the redactor this incident's names (before [`Redactor::seal`]).
    pub fn learn(&self, redactor: &mut Redactor) {
        let i = &self.incident;
        i.hosts.iter().for_each(|h| {
            redactor.learn(Kind::Host, h);
        });
        i.users.iter().for_each(|u| {
            redactor.learn(Kind::User, u);
        });
        i.ips.iter().for_each(|a| {
            redactor.learn(Kind::Ip, a);
        });
        for event in self.events.iter().flatten() {
            for (kind, value) in [
                (Kind::Host, &event.host),
                (Kind::User, &event.user),
                (Kind::Ip, &event.src_ip),
                (Kind::Ip, &event.dst_ip),
            ] {
                if let Some(value) = value {
                    redactor.learn(kind, value);
                }
            }
            for (name, value) in &event.fields {
                if let Some(kind) = field_kind(name) {
                    redactor.learn(kind, value);
                }
            }
        }
    }

    /// Replaces the redacted names everywhere in this incident.
    pub fn redact(&mut self, redactor: &mut Redactor) {
        if !redactor.active() {
            return;
        }
        let i = &mut self.incident;
        i.title = redactor.text(&i.title);
        i.group_key = redactor.text(&i.group_key);
        for host in &mut i.hosts {
            *host = redactor.value(Kind::Host, host);
        }
        for user in &mut i.users {
            *user = redactor.value(Kind::User, user);
        }
        for ip in &mut i.ips {
            *ip = redactor.value(Kind::Ip, ip);
        }
        for step in &mut i.investigation {
            *step = redactor.text(step);
        }
        for list in [&mut self.timeline, &mut self.notes].into_iter().flatten() {
            for entry in list {
                entry.detail = redactor.text(&entry.detail);
            }
        }
        for event in self.events.iter_mut().flatten() {
            let known = |r: &mut Redactor, kind, v: &mut Option<String>| {
                if let Some(value) = v {
                    *value = r.value(kind, value);
                }
            };
            known(redactor, Kind::Host, &mut event.host);
            known(redactor, Kind::User, &mut event.user);
            known(redactor, Kind::Ip, &mut event.src_ip);
            known(redactor, Kind::Ip, &mut event.dst_ip);
            for text in [&mut event.process, &mut event.command_line]
                .into_iter()
                .flatten()
            {
                *text = redactor.text(text);
            }
            for (name, value) in &mut event.fields {
                *value = match field_kind(name) {
                    Some(kind) => redactor.value(kind, value),
                    None => redactor.text(value),
                };
            }
        }
    }
}

fn summarise_event(stored: &StoredEvent) -> EventSummary {
    let event = &stored.event;
    let fields = event
        .fields
        .iter()
        .filter(|(name, _)| !SKIPPED_FIELDS.contains(&name.as_str()))
        .filter_map(|(name, value)| {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => return None,
                other => other.to_string(),
            };
            (!text.is_empty() && text != "-").then(|| (name.clone(), text))
        })
        .take(MAX_EVENT_FIELDS)
        .collect();
    EventSummary {
        time: event.timestamp,
        host: event.host.clone(),
        source: event.source.clone(),
        event_id: event.event_id,
        record_id: event.record_id,
        user: event.user.clone(),
        src_ip: event.src_ip.clone(),
        dst_ip: event.dst_ip.clone(),
        process: event.process.clone(),
        command_line: event.command_line.clone(),
        fields,
    }
}

/// Builds a [`Summary`] from incidents seen one at a time.
#[derive(Debug, Default)]
pub struct SummaryBuilder {
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    total: u64,
    by_severity: [u64; 5],
    by_status: [u64; 6],
    new_in_period: u64,
    resolved_in_period: u64,
    acknowledged: u64,
    ack_seconds: f64,
    resolved: u64,
    resolve_seconds: f64,
    rules: HashMap<String, u64>,
    hosts: HashMap<String, u64>,
    users: HashMap<String, u64>,
    days: BTreeMap<NaiveDate, [u64; 5]>,
    first_seen: Option<DateTime<Utc>>,
    last_seen: Option<DateTime<Utc>>,
}

fn in_range(at: DateTime<Utc>, since: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> bool {
    since.is_none_or(|s| at >= s) && until.is_none_or(|u| at < u)
}

fn severity_slot(severity: Severity) -> usize {
    4 - severity_rank(severity).clamp(0, 4) as usize
}

impl SummaryBuilder {
    /// A builder for the period `[since, until)`.
    pub fn new(since: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> Self {
        Self {
            since,
            until,
            ..Self::default()
        }
    }

    /// Counts one incident; names are redacted through `redactor` (which learns them).
    pub fn add(&mut self, item: &ReportIncident, redactor: &mut Redactor) {
        let i = &item.incident;
        self.total += 1;
        self.by_severity[severity_slot(i.severity)] += 1;
        if let Some(slot) = Status::ALL.iter().position(|s| *s == i.status) {
            self.by_status[slot] += 1;
        }
        if in_range(i.first_seen, self.since, self.until) {
            self.new_in_period += 1;
        }
        if let Some(at) = item.acknowledged_at {
            self.acknowledged += 1;
            self.ack_seconds += seconds(at - i.created_at);
        }
        if let Some(at) = item.resolved_at {
            self.resolved += 1;
            self.resolve_seconds += seconds(at - i.created_at);
            if in_range(at, self.since, self.until) {
                self.resolved_in_period += 1;
            }
        }
        for rule in &i.rule_ids {
            *self.rules.entry(rule.clone()).or_default() += 1;
        }
        for host in &i.hosts {
            let name = redactor.learn(Kind::Host, host);
            *self.hosts.entry(name).or_default() += 1;
        }
        for user in &i.users {
            let name = redactor.learn(Kind::User, user);
            *self.users.entry(name).or_default() += 1;
        }
        for ip in &i.ips {
            redactor.learn(Kind::Ip, ip);
        }
        self.days.entry(i.first_seen.date_naive()).or_default()[severity_slot(i.severity)] += 1;
        self.first_seen = Some(
            self.first_seen
                .map_or(i.first_seen, |f| f.min(i.first_seen)),
        );
        self.last_seen = Some(self.last_seen.map_or(i.last_seen, |l| l.max(i.last_seen)));
    }

    /// The summary.
    pub fn finish(self) -> Summary {
        let counts = |names: Vec<String>, values: &[u64]| -> Vec<Count> {
            names
                .into_iter()
                .zip(values)
                .map(|(name, count)| Count {
                    name,
                    count: *count,
                })
                .collect()
        };
        Summary {
            total: self.total,
            by_severity: counts(
                SEVERITIES.iter().map(|s| s.as_str().to_owned()).collect(),
                &self.by_severity,
            ),
            by_status: counts(
                Status::ALL.iter().map(|s| s.as_str().to_owned()).collect(),
                &self.by_status,
            ),
            new_in_period: self.new_in_period,
            resolved_in_period: self.resolved_in_period,
            open: self.by_status[..4].iter().sum(),
            acknowledged: self.acknowledged,
            mean_time_to_acknowledge: (self.acknowledged > 0)
                .then(|| Span::from_seconds(self.ack_seconds / self.acknowledged as f64)),
            mean_time_to_resolve: (self.resolved > 0)
                .then(|| Span::from_seconds(self.resolve_seconds / self.resolved as f64)),
            top_rules: top(self.rules),
            top_hosts: top(self.hosts),
            top_users: top(self.users),
            over_time: buckets(&self.days),
            first_seen: self.first_seen,
            last_seen: self.last_seen,
        }
    }
}

fn seconds(span: Duration) -> f64 {
    span.num_milliseconds().max(0) as f64 / 1000.0
}

fn top(counts: HashMap<String, u64>) -> Vec<Count> {
    let mut list: Vec<Count> = counts
        .into_iter()
        .map(|(name, count)| Count { name, count })
        .collect();
    list.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    list.truncate(TOP);
    list
}

/// The most bars the "over time" chart draws.
pub const MAX_BUCKETS: usize = 36;

/// Groups per-day counts into at most [`MAX_BUCKETS`] stretches of days, weeks or months.
fn buckets(days: &BTreeMap<NaiveDate, [u64; 5]>) -> Vec<Bucket> {
    let (Some(first), Some(last)) = (days.keys().next(), days.keys().next_back()) else {
        return Vec::new();
    };
    let span = (*last - *first).num_days() + 1;
    let step: i64 = if span as usize <= MAX_BUCKETS {
        1
    } else if (span as usize).div_ceil(7) <= MAX_BUCKETS {
        7
    } else {
        0 // by month
    };
    let key = |day: NaiveDate| -> NaiveDate {
        match step {
            1 => day,
            7 => *first + Duration::days((day - *first).num_days() / 7 * 7),
            _ => NaiveDate::from_ymd_opt(day.year(), day.month(), 1).unwrap_or(day),
        }
    };
    let mut grouped: BTreeMap<NaiveDate, [u64; 5]> = BTreeMap::new();
    // Every stretch from the first to the last, empty ones included, so time reads evenly.
    let mut day = key(*first);
    while day <= *last {
        grouped.insert(day, [0; 5]);
        day = match step {
            1 => day + Duration::days(1),
            7 => day + Duration::days(7),
            _ => day
                .checked_add_months(chrono::Months::new(1))
                .unwrap_or(*last + Duration::days(1)),
        };
    }
    for (day, counts) in days {
        let slot = grouped.entry(key(*day)).or_default();
        for (a, b) in slot.iter_mut().zip(counts) {
            *a += b;
        }
    }
    let mut list: Vec<Bucket> = grouped
        .into_iter()
        .map(|(start, counts)| Bucket {
            start,
            label: if step == 0 {
                start.format("%Y-%m").to_string()
            } else {
                start.format("%Y-%m-%d").to_string()
            },
            counts,
            total: counts.iter().sum(),
        })
        .collect();
    // Many months: merge neighbours until the chart stays readable.
    while list.len() > MAX_BUCKETS {
        list = list
            .chunks(2)
            .map(|pair| {
                let mut merged = pair[0].clone();
                if let Some(next) = pair.get(1) {
                    for (a, b) in merged.counts.iter_mut().zip(next.counts) {
                        *a += b;
                    }
                    merged.total += next.total;
                }
                merged
            })
            .collect();
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(detail: &str) -> TimelineEntry {
        TimelineEntry {
            at: Utc::now(),
            actor: "ana".into(),
            kind: "status_changed".into(),
            detail: detail.into(),
        }
    }

    #[test]
    fn status_changes_parse_from_the_timeline_text() {
        let c = parse_status_change(&entry("in_progress → resolved (true_positive)")).unwrap();
        assert_eq!(
            (c.from.as_str(), c.to.as_str(), c.resolution.as_deref()),
            ("in_progress", "resolved", Some("true_positive"))
        );
        assert!(parse_status_change(&entry("assigned to bob")).is_none());
    }

    #[test]
    fn long_periods_fold_into_few_buckets() {
        let mut days = BTreeMap::new();
        let start = NaiveDate::from_ymd_opt(2019, 1, 1).unwrap();
        for n in 0..2000 {
            days.insert(start + Duration::days(n * 3), [1, 0, 0, 0, 0]);
        }
        let list = buckets(&days);
        assert!(
            list.len() <= MAX_BUCKETS && list.len() > 10,
            "{}",
            list.len()
        );
        assert_eq!(list.iter().map(|b| b.total).sum::<u64>(), 2000);
    }
}
