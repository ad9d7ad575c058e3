//! Grouping alerts into incidents, as pure decisions the store then persists: the key an
//! alert groups on, which incident it joins (the open incident of its key while the alert
//! falls within the grouping window of it, else a new one), what joining does to the
//! incident (counts, times, assets, severity), and the timeline text of it.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};

use super::{Alert, Incident, IncidentId, Severity, Status};

/// The most hosts, users or IPs an incident lists (its counts go on).
pub const MAX_ASSETS: usize = 100;

/// Alerts of one incident at which its severity rises one step (once).
pub const REPEATS_RAISE: u64 = 100;

/// Alerts in one incident's "alerts added" timeline entry name at most this many rules.
const MAX_RULES_NAMED: usize = 5;

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

/// The key alerts join incidents on: their rule and grouping value.
pub fn incident_key(alert: &Alert) -> String {
    format!("{}\u{1f}{}", alert.rule_id, alert.group_key)
}

/// Alerts grouped by [`incident_key`], the groups in key order and each group's alerts in
/// time order.
pub fn group_alerts(alerts: &[Alert]) -> Vec<(String, Vec<&Alert>)> {
    let mut groups: HashMap<String, Vec<&Alert>> = HashMap::new();
    for alert in alerts {
        groups.entry(incident_key(alert)).or_default().push(alert);
    }
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, list) in &mut groups {
        list.sort_by_key(|a| a.time);
    }
    groups
}

/// The group part of a key ([`incident_key`]): what [`Incident::group_key`] shows.
pub fn group_of(key: &str) -> &str {
    key.split_once('\u{1f}').map_or(key, |(_, group)| group)
}

/// An incident as grouping changes it: the incident, the whole key its alerts join on, and
/// what the grouping at hand did to it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupedIncident {
    /// The incident (one grouping opened has id 0 until it is stored).
    pub incident: Incident,
    /// The key its alerts join on ([`incident_key`]).
    pub key: String,
    /// Whether it is stored already (the open incident of its key).
    pub stored: bool,
    /// Alerts added to it by the grouping at hand (for its timeline entry).
    pub added: u64,
}

impl GroupedIncident {
    /// A stored incident, whose alerts join on `key`.
    pub fn stored(incident: Incident, key: String) -> Self {
        Self {
            incident,
            key,
            stored: true,
            added: 0,
        }
    }

    /// A new incident of `tenant` and `key` for `alert`, opened at `now` (the alert is not
    /// added yet).
    pub fn open(tenant: &str, key: &str, alert: &Alert, now: DateTime<Utc>) -> Self {
        let title = if alert.group_key.is_empty() {
            alert.rule_title.clone()
        } else {
            format!("{} — {}", alert.rule_title, alert.group_key)
        };
        let incident = Incident {
            id: IncidentId(0),
            tenant: tenant.to_owned(),
            title,
            severity: alert.severity,
            status: Status::New,
            resolution: None,
            assignee: None,
            rule_ids: vec![alert.rule_id.clone()],
            techniques: Vec::new(),
            hosts: Vec::new(),
            users: Vec::new(),
            ips: Vec::new(),
            first_seen: alert.time,
            last_seen: alert.time,
            alert_count: 0,
            event_count: 0,
            investigation: alert.investigation.clone(),
            group_key: group_of(key).to_owned(),
            created_at: now,
            updated_at: now,
        };
        Self {
            incident,
            key: key.to_owned(),
            stored: false,
            added: 0,
        }
    }

    /// The rule that opened the incident (the first of its rules).
    pub fn opened_by(&self) -> &str {
        self.incident.rule_ids.first().map_or("", String::as_str)
    }

    /// Whether `alert` joins this incident: it is open and the alert falls within `window`
    /// before its first or after its last alert. Times are compared in microseconds, as the
    /// store keeps them.
    pub fn accepts(&self, alert: &Alert, window: Duration) -> bool {
        let at = alert.time.timestamp_micros();
        let window = window.num_microseconds().unwrap_or(i64::MAX);
        let incident = &self.incident;
        incident.status.is_open()
            && at
                >= incident
                    .first_seen
                    .timestamp_micros()
                    .saturating_sub(window)
            && at <= incident.last_seen.timestamp_micros().saturating_add(window)
    }

    /// Adds `alert`: its counts, times and assets, and its severity when higher; the
    /// [`REPEATS_RAISE`]th alert raises the severity one step.
    pub fn add(&mut self, alert: &Alert) {
        self.added += 1;
        let incident = &mut self.incident;
        incident.first_seen = incident.first_seen.min(alert.time);
        incident.last_seen = incident.last_seen.max(alert.time);
        incident.alert_count += 1;
        incident.event_count += alert.event_count;
        merge(&mut incident.rule_ids, std::slice::from_ref(&alert.rule_id));
        merge(&mut incident.techniques, &alert.techniques);
        merge(&mut incident.hosts, &alert.hosts);
        merge(&mut incident.users, &alert.users);
        merge(&mut incident.ips, &alert.ips);
        if severity_rank(alert.severity) > severity_rank(incident.severity) {
            incident.severity = alert.severity;
        }
        // A rule that keeps firing: one step up, once.
        if incident.alert_count == REPEATS_RAISE {
            incident.severity = raised(incident.severity);
        }
    }

    /// The timeline text of the alerts added: how many, by which rules, how many in all.
    pub fn added_text(&self) -> String {
        let rules: BTreeSet<&str> = self
            .incident
            .rule_ids
            .iter()
            .map(String::as_str)
            .take(MAX_RULES_NAMED)
            .collect();
        format!(
            "{} alert{} added ({}); {} in all",
            self.added,
            if self.added == 1 { "" } else { "s" },
            rules.into_iter().collect::<Vec<_>>().join(", "),
            self.incident.alert_count
        )
    }
}

/// Adds the items not listed yet (ignoring case), up to [`MAX_ASSETS`].
fn merge(into: &mut Vec<String>, items: &[String]) {
    for item in items {
        if into.len() >= MAX_ASSETS {
            return;
        }
        if !item.is_empty() && !into.iter().any(|i| i.eq_ignore_ascii_case(item)) {
            into.push(item.clone());
        }
    }
}

/// What one key's alerts do: the incidents they join or open, and the incident of each.
#[derive(Debug, Clone, PartialEq)]
pub struct Grouping<'a> {
    /// The incidents to store, in order: the key's open incident (when there was one) and
    /// then those the alerts open.
    pub incidents: Vec<GroupedIncident>,
    /// Each alert with the position in `incidents` of the incident it joined.
    pub alerts: Vec<(usize, &'a Alert)>,
}

/// Decides the incidents of `tenant`'s `alerts` of one key (in time order, as
/// [`group_alerts`] gives them): each joins the current incident of the key when that
/// [accepts](GroupedIncident::accepts) it, else the first of the key's stored open
/// incidents (`open`, most recently seen first, as the store lists them) that accepts it,
/// else it opens a new incident at `now`; the incident it joined becomes the current one.
///
/// Looking through every open incident of the key, not only the most recent, makes the
/// grouping independent of the order in which alerts arrive: an alert older than the key's
/// latest incident still joins the earlier incident whose window it falls in.
///
/// Without alerts, the most recent open incident is listed with `added` 0 (the store then
/// writes it back, with a timeline entry and a change, as an incident that grew by none).
pub fn group<'a>(
    tenant: &str,
    key: &str,
    mut open: Vec<GroupedIncident>,
    alerts: &[&'a Alert],
    window: Duration,
    now: DateTime<Utc>,
) -> Grouping<'a> {
    if alerts.is_empty() {
        open.truncate(1);
        return Grouping {
            incidents: open,
            alerts: Vec::new(),
        };
    }
    let mut current: Option<GroupedIncident> = None;
    let mut incidents = Vec::new();
    let mut joined = Vec::with_capacity(alerts.len());
    for &alert in alerts {
        if !current.as_ref().is_some_and(|c| c.accepts(alert, window)) {
            incidents.extend(current.take());
            let stored = open.iter().position(|c| c.accepts(alert, window));
            current = Some(match stored {
                Some(index) => open.remove(index),
                None => GroupedIncident::open(tenant, key, alert, now),
            });
        }
        if let Some(incident) = current.as_mut() {
            incident.add(alert);
        }
        joined.push((incidents.len(), alert));
    }
    incidents.extend(current);
    Grouping {
        incidents,
        alerts: joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn alert(rule: &str, host: &str, time: &str) -> Alert {
        Alert {
            rule_id: rule.to_owned(),
            rule_title: format!("Rule {rule}"),
            severity: Severity::Medium,
            correlation: false,
            group_key: host.to_owned(),
            techniques: vec!["T1110".to_owned()],
            investigation: vec!["Look at the logons.".to_owned()],
            time: at(time),
            hosts: vec![host.to_owned()],
            users: vec!["bob".to_owned()],
            ips: Vec::new(),
            event_count: 1,
            event_key: None,
            detail: serde_json::Value::Null,
        }
    }

    const NOW: &str = "2024-06-01T00:00:00Z";

    fn open(key: &str, alert: &Alert) -> GroupedIncident {
        GroupedIncident::open("acme", key, alert, at(NOW))
    }

    #[test]
    fn severities_rise_and_rank() {
        assert_eq!(raised(Severity::Medium), Severity::High);
        assert_eq!(raised(Severity::Critical), Severity::Critical);
        assert!(severity_rank(Severity::High) > severity_rank(Severity::Low));
    }

    #[test]
    fn alerts_group_by_rule_and_key_in_time_order() {
        let alerts = [
            alert("r2", "dc01", "2024-05-01T10:00:00Z"),
            alert("r1", "dc01", "2024-05-01T10:05:00Z"),
            alert("r1", "dc01", "2024-05-01T09:55:00Z"),
            alert("r1", "ws7", "2024-05-01T10:00:00Z"),
        ];
        let groups = group_alerts(&alerts);
        let keys: Vec<&str> = groups.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["r1\u{1f}dc01", "r1\u{1f}ws7", "r2\u{1f}dc01"]);
        let times: Vec<_> = groups[0].1.iter().map(|a| a.time).collect();
        assert_eq!(
            times,
            [at("2024-05-01T09:55:00Z"), at("2024-05-01T10:05:00Z")]
        );
        assert_eq!(group_of(keys[1]), "ws7");
    }

    #[test]
    fn repeats_within_the_window_are_one_incident_and_a_gap_opens_another() {
        let alerts = [
            alert("r1", "dc01", "2024-05-01T09:55:00Z"),
            alert("r1", "dc01", "2024-05-01T10:05:00Z"),
            alert("r1", "dc01", "2024-05-04T10:00:00Z"),
        ];
        let sorted: Vec<&Alert> = alerts.iter().collect();
        let key = "r1\u{1f}dc01";
        let grouping = group(
            "acme",
            key,
            Vec::new(),
            &sorted,
            Duration::hours(24),
            at(NOW),
        );
        assert_eq!(grouping.incidents.len(), 2);
        let first = &grouping.incidents[0];
        assert_eq!((first.incident.alert_count, first.added), (2, 2));
        assert_eq!(first.incident.first_seen, at("2024-05-01T09:55:00Z"));
        assert_eq!(first.incident.last_seen, at("2024-05-01T10:05:00Z"));
        assert_eq!(first.incident.title, "Rule r1 — dc01");
        assert_eq!(first.incident.group_key, "dc01");
        assert_eq!((first.incident.status, first.stored), (Status::New, false));
        assert_eq!(first.incident.created_at, at(NOW));
        assert_eq!(first.opened_by(), "r1");
        let joined: Vec<usize> = grouping.alerts.iter().map(|(i, _)| *i).collect();
        assert_eq!(joined, [0, 0, 1]);
        assert_eq!(first.added_text(), "2 alerts added (r1); 2 in all");
    }

    #[test]
    fn alerts_join_the_open_incident_only_while_it_is_open() {
        let key = "r1\u{1f}dc01";
        let first = alert("r1", "dc01", "2024-05-01T10:00:00Z");
        let mut stored = open(key, &first);
        stored.incident.id = IncidentId(7);
        stored.add(&first);
        let stored = GroupedIncident::stored(stored.incident, key.to_owned());
        let later = alert("r1", "dc01", "2024-05-01T11:00:00Z");
        let window = Duration::hours(24);
        let grouping = group(
            "acme",
            key,
            vec![stored.clone()],
            &[&later],
            window,
            at(NOW),
        );
        assert_eq!(grouping.incidents.len(), 1);
        let joined = &grouping.incidents[0];
        assert_eq!((joined.incident.id, joined.stored), (IncidentId(7), true));
        assert_eq!((joined.incident.alert_count, joined.added), (2, 1));

        let mut resolved = stored;
        resolved.incident.status = Status::Resolved;
        let grouping = group("acme", key, vec![resolved], &[&later], window, at(NOW));
        let stored: Vec<bool> = grouping.incidents.iter().map(|i| i.stored).collect();
        // A new incident opens; the resolved one, which no alert joined, is left out (it
        // is not written, and its timeline gets no "0 alerts added").
        assert_eq!(stored, [false], "a new incident opens");
        assert_eq!(grouping.alerts[0].0, 0);
    }

    /// An alert older than the key's latest incident joins the earlier open incident whose
    /// window it falls in, as it would have had it arrived in time order.
    #[test]
    fn a_late_alert_joins_the_earlier_incident_whose_window_it_falls_in() {
        let key = "r1\u{1f}dc01";
        let stored = |id: i64, time: &str| {
            let first = alert("r1", "dc01", time);
            let mut incident = open(key, &first);
            incident.incident.id = IncidentId(id);
            incident.add(&first);
            GroupedIncident::stored(incident.incident, key.to_owned())
        };
        // Most recently seen first, as the store lists them.
        let open_incidents = vec![
            stored(9, "2024-05-10T10:00:00Z"),
            stored(7, "2024-05-01T10:00:00Z"),
        ];
        let late = alert("r1", "dc01", "2024-05-01T12:00:00Z");
        let newer = alert("r1", "dc01", "2024-05-10T11:00:00Z");
        let lost = alert("r1", "dc01", "2024-05-05T00:00:00Z");
        let window = Duration::hours(24);
        let grouping = group(
            "acme",
            key,
            open_incidents,
            &[&late, &lost, &newer],
            window,
            at(NOW),
        );
        let ids: Vec<(i64, u64)> = grouping
            .incidents
            .iter()
            .map(|i| (i.incident.id.0, i.added))
            .collect();
        assert_eq!(ids, [(7, 1), (0, 1), (9, 1)]);
        let joined: Vec<usize> = grouping.alerts.iter().map(|(i, _)| *i).collect();
        assert_eq!(joined, [0, 1, 2]);
    }

    #[test]
    fn the_window_reaches_before_the_first_and_after_the_last_alert() {
        let mut incident = open("k", &alert("r1", "dc01", "2024-05-02T00:00:00Z"));
        incident.incident.last_seen = at("2024-05-03T00:00:00Z");
        let window = Duration::hours(1);
        let accepts = |time: &str, window| incident.accepts(&alert("r1", "dc01", time), window);
        assert!(accepts("2024-05-01T23:00:00Z", window));
        assert!(!accepts("2024-05-01T22:59:59Z", window));
        assert!(accepts("2024-05-03T01:00:00Z", window));
        assert!(!accepts("2024-05-03T01:00:01Z", window));
        assert!(accepts("2030-01-01T00:00:00Z", Duration::MAX));
    }

    /// Per starting severity: after the 99th alert, the 100th, and the 250th (the raise
    /// happens once).
    #[test]
    fn the_hundredth_alert_raises_each_severity_once() {
        use Severity::*;
        for (start, at_100) in [
            (Informational, Low),
            (Low, Medium),
            (Medium, High),
            (High, Critical),
            (Critical, Critical),
        ] {
            let mut first = alert("r1", "dc01", "2024-05-01T10:00:00Z");
            first.severity = start;
            let mut grouped = open("k", &first);
            let mut next = first.clone();
            next.time = at("2024-05-01T10:01:00Z");
            while grouped.incident.alert_count < REPEATS_RAISE - 1 {
                grouped.add(&next);
            }
            assert_eq!(grouped.incident.severity, start, "99 alerts of {start:?}");
            grouped.add(&next);
            assert_eq!(grouped.incident.severity, at_100, "100 alerts of {start:?}");
            while grouped.incident.alert_count < 250 {
                grouped.add(&next);
            }
            assert_eq!(grouped.incident.severity, at_100, "250 alerts of {start:?}");
        }
    }

    #[test]
    fn adding_merges_assets_keeps_the_highest_severity_and_raises_repeats() {
        let mut grouped = open("k", &alert("r1", "dc01", "2024-05-01T10:00:00Z"));
        let mut high = alert("r2", "DC01", "2024-05-01T10:01:00Z");
        high.severity = Severity::High;
        high.users = vec!["BOB".to_owned(), "eve".to_owned(), String::new()];
        grouped.add(&alert("r1", "dc01", "2024-05-01T10:00:00Z"));
        grouped.add(&high);
        let incident = &grouped.incident;
        assert_eq!(incident.hosts, ["dc01"]);
        assert_eq!(incident.users, ["bob", "eve"]);
        assert_eq!(incident.rule_ids, ["r1", "r2"]);
        assert_eq!(incident.severity, Severity::High);
        for _ in grouped.incident.alert_count..REPEATS_RAISE - 1 {
            grouped.add(&alert("r1", "dc01", "2024-05-01T10:02:00Z"));
        }
        assert_eq!(grouped.incident.severity, Severity::High);
        grouped.add(&alert("r1", "dc01", "2024-05-01T10:03:00Z"));
        assert_eq!(
            grouped.incident.severity,
            Severity::Critical,
            "the 100th alert"
        );
        grouped.add(&alert("r1", "dc01", "2024-05-01T10:04:00Z"));
        assert_eq!(grouped.incident.alert_count, REPEATS_RAISE + 1);

        let mut wide = open("k", &alert("r1", "h0", NOW));
        for n in 0..(MAX_ASSETS + 10) {
            wide.add(&alert("r1", &format!("h{n}"), NOW));
        }
        assert_eq!(wide.incident.hosts.len(), MAX_ASSETS);
    }
}
