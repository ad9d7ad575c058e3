//! Policy decisions that need no IO: does an incident match a policy, is it quiet hours, how
//! long to wait before the next attempt.

use std::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveTime, TimeZone, Utc};

use super::config::{PolicyConfig, QuietHours, RetryConfig};
use crate::incident::{Incident, Severity};

/// A tag in the one form comparisons use: lower case, `_` as `-`, a bare technique id
/// (`T1110.003`) as `attack.t1110.003`.
pub fn normalise_tag(tag: &str) -> String {
    let tag = tag.trim().to_ascii_lowercase().replace('_', "-");
    let is_technique =
        tag.starts_with('t') && tag[1..].chars().next().is_some_and(|c| c.is_ascii_digit());
    if is_technique {
        format!("attack.{tag}")
    } else {
        tag
    }
}

/// The tags an incident carries for policy matching: its techniques, and the tags of its
/// rules when the caller knows them.
pub fn incident_tags(incident: &Incident, rule_tags: &dyn Fn(&str) -> Vec<String>) -> Vec<String> {
    let mut tags: Vec<String> = incident
        .techniques
        .iter()
        .map(|t| normalise_tag(t))
        .collect();
    for rule in &incident.rule_ids {
        tags.extend(rule_tags(rule).iter().map(|t| normalise_tag(t)));
    }
    tags.sort();
    tags.dedup();
    tags
}

/// Whether an incident (with its tags from [`incident_tags`]) is one the policy routes.
pub fn matches(policy: &PolicyConfig, incident: &Incident, tags: &[String]) -> bool {
    if policy
        .min_severity
        .is_some_and(|min| incident.severity < min)
    {
        return false;
    }
    if !policy.tenants.is_empty()
        && !policy
            .tenants
            .iter()
            .any(|t| t.eq_ignore_ascii_case(&incident.tenant))
    {
        return false;
    }
    if !policy.rules.is_empty()
        && !policy.rules.iter().any(|r| {
            incident
                .rule_ids
                .iter()
                .any(|id| id.eq_ignore_ascii_case(r))
        })
    {
        return false;
    }
    if !policy.tags.is_empty() {
        let wanted: Vec<String> = policy.tags.iter().map(|t| normalise_tag(t)).collect();
        let hit = wanted.iter().any(|w| {
            tags.iter().any(|t| {
                t == w || (t.starts_with(w.as_str()) && t.as_bytes().get(w.len()) == Some(&b'.'))
            })
        });
        if !hit {
            return false;
        }
    }
    true
}

/// Quiet hours, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietWindow {
    from: NaiveTime,
    to: NaiveTime,
    offset: FixedOffset,
    min_severity: Option<Severity>,
}

impl QuietWindow {
    /// Parses `from`, `to` (`HH:MM`) and `utc_offset` (`+01:00`).
    pub fn parse(config: &QuietHours) -> Result<Self, String> {
        let time = |text: &str| {
            NaiveTime::parse_from_str(text.trim(), "%H:%M")
                .map_err(|_| format!("quiet_hours: invalid time '{text}': expected HH:MM"))
        };
        let offset = match config.utc_offset.as_deref() {
            None => FixedOffset::east_opt(0),
            Some(text) => parse_offset(text),
        }
        .ok_or_else(|| {
            format!(
                "quiet_hours: invalid utc_offset '{}': expected ±HH:MM",
                config.utc_offset.as_deref().unwrap_or_default()
            )
        })?;
        Ok(Self {
            from: time(&config.from)?,
            to: time(&config.to)?,
            offset,
            min_severity: config.min_severity,
        })
    }

    /// When a message about an incident of `severity` may go out, if not at `now`: the end of
    /// the quiet hours `now` falls in, unless the incident is severe enough to go at once.
    pub fn defer(&self, now: DateTime<Utc>, severity: Severity) -> Option<DateTime<Utc>> {
        if self.min_severity.is_some_and(|min| severity >= min) || self.from == self.to {
            return None;
        }
        let local = now.with_timezone(&self.offset);
        let time = local.time();
        let quiet = if self.from < self.to {
            time >= self.from && time < self.to
        } else {
            time >= self.from || time < self.to
        };
        if !quiet {
            return None;
        }
        let mut end_date = local.date_naive();
        if self.from > self.to && time >= self.from {
            end_date = end_date.succ_opt()?;
        }
        let end = self
            .offset
            .from_local_datetime(&end_date.and_time(self.to))
            .single()?;
        Some(end.with_timezone(&Utc))
    }
}

fn parse_offset(text: &str) -> Option<FixedOffset> {
    let text = text.trim();
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => (1, text),
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let seconds = h
        .parse::<i32>()
        .ok()?
        .checked_mul(3600)?
        .checked_add(m.parse::<i32>().ok()?.checked_mul(60)?)?;
    FixedOffset::east_opt(sign * seconds)
}

/// `at` plus `span`, or the latest representable time when that is beyond it (a
/// configured duration of a million years means "never").
pub fn later(at: DateTime<Utc>, span: Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(span)
        .ok()
        .and_then(|span| at.checked_add_signed(span))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `at` minus `span`, or the earliest representable time when that is before it.
pub fn earlier(at: DateTime<Utc>, span: Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(span)
        .ok()
        .and_then(|span| at.checked_sub_signed(span))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The wait before attempt `attempts + 1`, after `attempts` failed: `initial`, doubling, at
/// most `max`.
pub fn backoff(retry: &RetryConfig, attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(30);
    retry
        .initial
        .checked_mul(1u32 << doublings)
        .unwrap_or(retry.max)
        .min(retry.max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{IncidentId, Status};

    fn incident(severity: Severity, techniques: &[&str]) -> Incident {
        let now = Utc::now();
        Incident {
            id: IncidentId(7),
            tenant: "acme".to_owned(),
            title: "t".to_owned(),
            severity,
            status: Status::New,
            resolution: None,
            assignee: None,
            rule_ids: vec!["rule-a".to_owned()],
            techniques: techniques.iter().map(|t| (*t).to_owned()).collect(),
            hosts: vec![],
            users: vec![],
            ips: vec![],
            first_seen: now,
            last_seen: now,
            alert_count: 1,
            event_count: 1,
            investigation: vec![],
            group_key: String::new(),
            created_at: now,
            updated_at: now,
        }
    }

    fn policy(yaml: &str) -> PolicyConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn severity_tenant_rule_and_tag_filters() {
        let p = policy("{channels: [a], min_severity: high}");
        assert!(matches(&p, &incident(Severity::High, &[]), &[]));
        assert!(matches(&p, &incident(Severity::Critical, &[]), &[]));
        assert!(!matches(&p, &incident(Severity::Medium, &[]), &[]));

        let p = policy("{channels: [a], tenants: [ACME], rules: [rule-a]}");
        assert!(matches(&p, &incident(Severity::Low, &[]), &[]));
        let p = policy("{channels: [a], tenants: [globex]}");
        assert!(!matches(&p, &incident(Severity::Low, &[]), &[]));
        let p = policy("{channels: [a], rules: [rule-b]}");
        assert!(!matches(&p, &incident(Severity::Low, &[]), &[]));

        let lookup = |rule: &str| {
            if rule == "rule-a" {
                vec![
                    "attack.credential_access".to_owned(),
                    "attack.t1110.003".to_owned(),
                ]
            } else {
                vec![]
            }
        };
        let i = incident(Severity::Low, &["T1110.003"]);
        let tags = incident_tags(&i, &lookup);
        assert!(matches(
            &policy("{channels: [a], tags: [T1110]}"),
            &i,
            &tags
        ));
        assert!(matches(
            &policy("{channels: [a], tags: [attack.t1110.003]}"),
            &i,
            &tags
        ));
        assert!(matches(
            &policy("{channels: [a], tags: [attack.credential-access]}"),
            &i,
            &tags
        ));
        assert!(
            !matches(&policy("{channels: [a], tags: [T111]}"), &i, &tags),
            "prefix of a number is no match"
        );
        assert!(!matches(
            &policy("{channels: [a], tags: [attack.execution]}"),
            &i,
            &tags
        ));
    }

    #[test]
    fn quiet_hours_defer_to_their_end() {
        let window = QuietWindow::parse(&QuietHours {
            from: "22:00".to_owned(),
            to: "07:00".to_owned(),
            utc_offset: Some("+01:00".to_owned()),
            min_severity: Some(Severity::Critical),
        })
        .unwrap();
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        // 23:30 local (22:30 UTC): quiet until 07:00 local the next day (06:00 UTC).
        assert_eq!(
            window.defer(at("2026-03-01T22:30:00Z"), Severity::High),
            Some(at("2026-03-02T06:00:00Z"))
        );
        // 05:00 local: quiet until 07:00 local the same day.
        assert_eq!(
            window.defer(at("2026-03-02T04:00:00Z"), Severity::High),
            Some(at("2026-03-02T06:00:00Z"))
        );
        assert_eq!(
            window.defer(at("2026-03-02T12:00:00Z"), Severity::High),
            None
        );
        assert_eq!(
            window.defer(at("2026-03-01T22:30:00Z"), Severity::Critical),
            None
        );
        assert!(
            QuietWindow::parse(&QuietHours {
                from: "25:00".to_owned(),
                to: "07:00".to_owned(),
                utc_offset: None,
                min_severity: None
            })
            .is_err()
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let retry = RetryConfig {
            attempts: 5,
            initial: Duration::from_secs(10),
            max: Duration::from_secs(60),
        };
        let waits: Vec<u64> = (1..=5).map(|a| backoff(&retry, a).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 60, 60]);
        assert_eq!(backoff(&retry, 1000).as_secs(), 60);
    }

    #[test]
    fn configured_durations_and_offsets_never_overflow() {
        let now = Utc::now();
        let ages = Duration::from_secs(u64::MAX);
        assert_eq!(later(now, ages), DateTime::<Utc>::MAX_UTC);
        assert_eq!(earlier(now, ages), DateTime::<Utc>::MIN_UTC);
        // Within chrono's range as a delta, beyond it as a time.
        let million_years = Duration::from_secs(1_000_000 * 365 * 86_400);
        assert_eq!(later(now, million_years), DateTime::<Utc>::MAX_UTC);
        assert_eq!(
            later(now, Duration::from_secs(60)),
            now + chrono::TimeDelta::seconds(60)
        );
        assert!(parse_offset("+99999999:00").is_none());
        assert!(parse_offset("+01:99999999").is_none());
        assert_eq!(parse_offset("+01:30"), FixedOffset::east_opt(5400));
    }
}
