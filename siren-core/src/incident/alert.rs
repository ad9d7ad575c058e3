//! Building alerts: a detection's from its rule and the event it matched, a correlation
//! hit's from its rule and the events behind it, and the investigation steps both carry.

use crate::correlation::CorrelationHit;
use crate::event::Event;
use crate::rules::Rule;

use super::{Alert, raised};

impl Alert {
    /// The alert `rule` raises for `event`, which the store keeps under `key`. It groups by
    /// the rule's `group_by` fields, else by the host.
    pub fn of_detection(rule: &Rule, event: &Event, key: [u8; 16]) -> Alert {
        let group_key = if rule.siren.group_by.is_empty() {
            event
                .host
                .clone()
                .unwrap_or_else(|| "unknown host".to_owned())
        } else {
            rule.siren
                .group_by
                .iter()
                .map(|field| format!("{field}={}", event.get_str(field).unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Alert {
            rule_id: rule.key(),
            rule_title: rule.title.clone(),
            severity: rule.severity(),
            correlation: false,
            group_key,
            techniques: rule.attack_techniques(),
            investigation: investigation(rule),
            time: event.timestamp.unwrap_or_default(),
            hosts: event.host.iter().cloned().collect(),
            users: event.user.iter().cloned().collect(),
            ips: event
                .src_ip
                .iter()
                .chain(event.dst_ip.iter())
                .cloned()
                .collect(),
            event_count: 1,
            event_key: Some(key),
            detail: serde_json::json!({
                "channel": event.source, "event_id": event.event_id, "record_id": event.record_id,
            }),
        }
    }

    /// The alert of the correlation `rule`'s `hit`, one severity step above the rule's own;
    /// `event_key` is the store's key of the first event behind it that has one. Its accounts
    /// and addresses are the group's values of fields that name them (see
    /// [`add_event_context`](Self::add_event_context) for those of the events).
    pub fn of_correlation(rule: &Rule, hit: &CorrelationHit, event_key: Option<[u8; 16]>) -> Alert {
        let values = |keep: fn(&str) -> bool| -> Vec<String> {
            hit.group
                .iter()
                .filter(|(f, _)| keep(f))
                .filter_map(|(_, v)| v.clone())
                .collect()
        };
        let mut hosts: Vec<String> = Vec::new();
        for host in hit.events.iter().filter_map(|e| e.host.clone()) {
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        let group_key = hit
            .group
            .iter()
            .map(|(f, v)| format!("{f}={}", v.as_deref().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(", ");
        Alert {
            rule_id: hit.reference.clone(),
            rule_title: hit.title.clone(),
            severity: raised(rule.severity()),
            correlation: true,
            group_key,
            techniques: rule.attack_techniques(),
            investigation: investigation(rule),
            time: hit.last_seen,
            hosts,
            users: values(is_user_field),
            ips: values(is_ip_field),
            event_count: hit.matches as u64,
            event_key,
            detail: serde_json::json!({
                "correlation": format!("{:?}", hit.kind), "value": hit.value,
                "first_seen": hit.first_seen, "last_seen": hit.last_seen,
                "events": hit.events.iter().filter_map(|e| e.key.clone()).collect::<Vec<_>>(),
            }),
        }
    }

    /// Adds the account and addresses of `event`, one of the events behind this correlation
    /// alert, to those it names (each once, ignoring case).
    pub fn add_event_context(&mut self, event: &Event) {
        add_unique(&mut self.users, event.user.as_deref());
        add_unique(&mut self.ips, event.src_ip.as_deref());
        add_unique(&mut self.ips, event.dst_ip.as_deref());
    }
}

fn add_unique(list: &mut Vec<String>, value: Option<&str>) {
    if let Some(value) = value {
        if !list.iter().any(|v| v.eq_ignore_ascii_case(value)) {
            list.push(value.to_owned());
        }
    }
}

/// Whether a group-by field names an account.
fn is_user_field(field: &str) -> bool {
    let f = field.to_ascii_lowercase();
    f.contains("user") || f.contains("account")
}

/// Whether a group-by field names an address.
fn is_ip_field(field: &str) -> bool {
    let f = field.to_ascii_lowercase();
    f.contains("ip") || f.contains("address")
}

/// The rule's own investigation steps, else the defaults for its tactics.
fn investigation(rule: &Rule) -> Vec<String> {
    if rule.siren.investigation.is_empty() {
        default_investigation(&rule.tags)
    } else {
        rule.siren.investigation.clone()
    }
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

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use serde_json::json;

    use super::*;
    use crate::correlation::EventRef;
    use crate::event::TenantId;
    use crate::incident::Severity;
    use crate::rules::{CorrelationType, LoadOptions, RuleSet};

    const RULES: &str = r#"
title: Failed logon
id: 00000000-0000-0000-0000-000000004625
logsource: {product: windows, service: security}
detection:
  selection: {EventID: 4625}
  condition: selection
level: medium
tags: [attack.credential-access, attack.t1110]
---
title: Account changed
name: account_changed
logsource: {product: windows, service: security}
detection:
  selection: {EventID: 4738}
  condition: selection
level: low
siren:
  group_by: [SubjectUserName]
  investigation: [Ask the account's owner.]
"#;

    fn rules() -> RuleSet {
        let (set, problems) = RuleSet::from_yaml("t.yml", RULES, &LoadOptions::default());
        assert!(problems.is_empty(), "{problems:#?}");
        set
    }

    fn event(id: i64, user: &str) -> Event {
        let fields = json!({"EventID": id, "Channel": "Security", "Computer": "dc01",
            "EventRecordID": 7, "TimeCreated": "2024-05-01T10:00:00Z",
            "SubjectUserName": user, "TargetUserName": user, "IpAddress": "10.0.0.5"});
        let serde_json::Value::Object(fields) = fields else {
            unreachable!()
        };
        Event::from_fields(fields.into_iter().collect(), TenantId::default())
    }

    #[test]
    fn a_detection_groups_by_host_unless_its_rule_names_fields() {
        let set = rules();
        let key = [7u8; 16];
        let failed = Alert::of_detection(&set.rules()[0], &event(4625, "bob"), key);
        assert_eq!(failed.group_key, "dc01");
        assert_eq!(failed.hosts, ["dc01"]);
        assert_eq!((failed.event_count, failed.event_key), (1, Some(key)));
        assert_eq!(failed.severity, Severity::Medium);
        assert!(!failed.correlation);
        assert_eq!(failed.detail["event_id"], json!(4625));
        assert_eq!(
            failed.investigation,
            default_investigation(&["attack.credential-access".to_owned()])
        );
        let changed = Alert::of_detection(&set.rules()[1], &event(4738, "eve"), key);
        assert_eq!(changed.group_key, "SubjectUserName=eve");
        assert_eq!(changed.investigation, ["Ask the account's owner."]);
    }

    #[test]
    fn a_correlation_is_a_step_above_its_rule_and_names_what_it_groups_on() {
        let set = rules();
        let at: DateTime<Utc> = "2024-05-01T10:05:00Z".parse().unwrap();
        let hit = CorrelationHit {
            rule: 0,
            reference: "brute".to_owned(),
            title: "Brute force".to_owned(),
            kind: CorrelationType::EventCount,
            group: vec![
                ("TargetUserName".to_owned(), Some("bob".to_owned())),
                ("IpAddress".to_owned(), Some("10.0.0.5".to_owned())),
            ],
            first_seen: at,
            last_seen: at,
            value: 5.0,
            matches: 5,
            events: vec![EventRef {
                time: at,
                host: Some("dc01".to_owned()),
                record_id: None,
                key: Some("k1".to_owned()),
            }],
            events_omitted: 0,
            reported: true,
        };
        let mut alert = Alert::of_correlation(&set.rules()[0], &hit, None);
        assert_eq!(alert.severity, Severity::High);
        assert_eq!(alert.group_key, "TargetUserName=bob, IpAddress=10.0.0.5");
        assert_eq!(
            (alert.users.clone(), alert.ips.clone()),
            (vec!["bob".to_owned()], vec!["10.0.0.5".to_owned()])
        );
        assert_eq!(
            (alert.hosts.clone(), alert.event_count),
            (vec!["dc01".to_owned()], 5)
        );
        assert_eq!(alert.detail["events"], json!(["k1"]));
        let mut other = event(4625, "BOB");
        other.dst_ip = Some("10.0.0.9".to_owned());
        alert.add_event_context(&other);
        assert_eq!(alert.users, ["bob"]);
        assert_eq!(alert.ips, ["10.0.0.5", "10.0.0.9"]);
    }

    #[test]
    fn rules_without_steps_get_the_defaults_of_their_tactics() {
        let steps = default_investigation(&["attack.execution".to_owned()]);
        assert_eq!(steps.len(), 1);
        assert!(steps[0].contains("process tree"));
        assert_eq!(default_investigation(&[]).len(), 2);
    }
}
