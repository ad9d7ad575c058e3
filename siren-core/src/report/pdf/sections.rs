//! What the PDF says: the period report (summary cards, charts, top lists, the incident list)
//! and the incident report (one incident per page: summary, timeline, resolution, next
//! steps).

use std::sync::Arc;

use super::layout::{Layout, col, num};
use super::page::{INK, MUTED};
use crate::report::chart;
use crate::report::model::{ReportIncident, Summary};
use crate::report::source::Source;

fn day(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

fn opt_day(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(day).unwrap_or_else(|| "—".to_owned())
}

fn counts(list: &[crate::report::model::Count]) -> impl Iterator<Item = Vec<String>> + '_ {
    list.iter()
        .map(|c| vec![c.name.clone(), c.count.to_string()])
}

pub(super) fn period(layout: &mut Layout, summary: &Summary, source: &Arc<Source>) {
    let span = |s: &Option<crate::report::model::Span>| {
        s.as_ref()
            .map(|s| s.text.clone())
            .unwrap_or_else(|| "—".to_owned())
    };
    layout.heading("Summary", 13.0);
    layout.cards(&[
        (summary.total.to_string(), "INCIDENTS"),
        (summary.new_in_period.to_string(), "NEW IN PERIOD"),
        (summary.resolved_in_period.to_string(), "RESOLVED IN PERIOD"),
        (summary.open.to_string(), "STILL OPEN"),
        (
            span(&summary.mean_time_to_acknowledge),
            "MEAN TIME TO ACKNOWLEDGE",
        ),
        (span(&summary.mean_time_to_resolve), "MEAN TIME TO RESOLVE"),
        (summary.acknowledged.to_string(), "ACKNOWLEDGED"),
        (
            summary
                .first_seen
                .map(|t| t.format("%Y-%m-%d").to_string())
                .unwrap_or_else(|| "—".to_owned()),
            "EARLIEST ACTIVITY",
        ),
    ]);
    layout.heading("Incidents over time", 13.0);
    layout.chart(chart::over_time(summary), 720.0, 260.0);
    layout.chart(chart::by_severity(summary), 720.0, 166.0);
    layout.heading("Breakdown", 13.0);
    layout.table(
        &[col("Severity", 3.0), num("Incidents", 1.0)],
        counts(&summary.by_severity),
    );
    layout.table(
        &[col("Status", 3.0), num("Incidents", 1.0)],
        counts(&summary.by_status),
    );
    layout.table(
        &[col("Top rule", 3.0), num("Incidents", 1.0)],
        counts(&summary.top_rules),
    );
    layout.table(
        &[col("Top host", 3.0), num("Incidents", 1.0)],
        counts(&summary.top_hosts),
    );
    layout.table(
        &[col("Top user", 3.0), num("Incidents", 1.0)],
        counts(&summary.top_users),
    );
    layout.heading(&format!("Incidents ({})", summary.total), 13.0);
    let rows = source.iter().map(|item| {
        let i = &item.incident;
        let mut status = i.status.as_str().to_owned();
        if let Some(r) = i.resolution {
            status = format!("{status} ({})", r.as_str());
        }
        vec![
            i.id.to_string(),
            i.title.clone(),
            i.severity.as_str().to_owned(),
            status,
            day(i.first_seen),
            day(i.last_seen),
            i.alert_count.to_string(),
            i.hosts.join(", "),
        ]
    });
    layout.table(
        &[
            num("#", 0.6),
            col("Title", 4.4),
            col("Severity", 1.2),
            col("Status", 1.3),
            col("First seen", 1.5),
            col("Last seen", 1.5),
            num("Alerts", 0.9),
            col("Hosts", 2.6),
        ],
        rows,
    );
}

pub(super) fn incident(layout: &mut Layout, item: &ReportIncident, first: bool) {
    let i = &item.incident;
    if !first {
        layout.new_page();
    }
    layout.paragraph(&format!("#{} · {}", i.id, i.title), 15.0, true, INK);
    layout.heading("Summary", 11.0);
    let or_dash = |list: &[String]| {
        if list.is_empty() {
            "—".to_owned()
        } else {
            list.join(", ")
        }
    };
    layout.facts(&[
        ("Severity", i.severity.as_str().to_owned()),
        ("Status", i.status.as_str().to_owned()),
        (
            "Resolution",
            i.resolution
                .map(|r| r.as_str().to_owned())
                .unwrap_or_else(|| "—".to_owned()),
        ),
        (
            "Assignee",
            i.assignee
                .clone()
                .unwrap_or_else(|| "unassigned".to_owned()),
        ),
        ("First seen", day(i.first_seen)),
        ("Last seen", day(i.last_seen)),
        ("Opened", day(i.created_at)),
        ("Acknowledged", opt_day(item.acknowledged_at)),
        ("Resolved", opt_day(item.resolved_at)),
        (
            "Alerts / events",
            format!("{} / {}", i.alert_count, i.event_count),
        ),
        ("Rules", or_dash(&i.rule_ids)),
        ("ATT&CK techniques", or_dash(&i.techniques)),
    ]);
    layout.heading("Affected assets", 11.0);
    layout.facts(&[
        ("Hosts", or_dash(&i.hosts)),
        ("Users", or_dash(&i.users)),
        ("IP addresses", or_dash(&i.ips)),
    ]);
    layout.heading("Status history", 11.0);
    let history = item.status_history.clone().unwrap_or_default();
    if history.is_empty() {
        layout.paragraph("No status change yet.", 8.5, false, MUTED);
    } else {
        layout.table(
            &[
                col("When", 1.6),
                col("Who", 1.2),
                col("From", 1.2),
                col("To", 1.2),
                col("Resolution", 1.3),
            ],
            history.into_iter().map(|c| {
                vec![
                    day(c.at),
                    c.actor,
                    c.from,
                    c.to,
                    c.resolution.unwrap_or_default(),
                ]
            }),
        );
    }
    layout.heading("Timeline", 11.0);
    layout.table(
        &[
            col("When", 1.6),
            col("Who", 1.1),
            col("What", 1.3),
            col("Detail", 5.0),
        ],
        item.timeline
            .iter()
            .flatten()
            .map(|e| vec![day(e.at), e.actor.clone(), e.kind.clone(), e.detail.clone()]),
    );
    layout.heading("Triggering events", 11.0);
    let events = item.events.clone().unwrap_or_default();
    if events.is_empty() {
        layout.paragraph("No stored triggering event.", 8.5, false, MUTED);
    } else {
        layout.table(
            &[
                col("Time", 1.5),
                col("Host", 1.4),
                col("Event", 1.2),
                col("User", 1.1),
                col("Addresses", 1.2),
                col("Details", 3.6),
            ],
            events.into_iter().map(|e| {
                let mut details: Vec<String> = Vec::new();
                if let Some(c) = e.command_line.as_ref().or(e.process.as_ref()) {
                    details.push(c.clone());
                }
                details.extend(e.fields.iter().map(|(k, v)| format!("{k}: {v}")));
                vec![
                    opt_day(e.time),
                    e.host.unwrap_or_default(),
                    format!(
                        "{} {}",
                        e.source.unwrap_or_default(),
                        e.event_id.map(|i| i.to_string()).unwrap_or_default()
                    ),
                    e.user.unwrap_or_default(),
                    match (e.src_ip, e.dst_ip) {
                        (Some(s), Some(d)) => format!("{s} → {d}"),
                        (Some(s), None) => s,
                        (None, Some(d)) => format!("→ {d}"),
                        (None, None) => String::new(),
                    },
                    details.join("\n"),
                ]
            }),
        );
    }
    layout.heading("Notes", 11.0);
    let notes = item.notes.clone().unwrap_or_default();
    if notes.is_empty() {
        layout.paragraph("No notes.", 8.5, false, MUTED);
    }
    for note in notes {
        layout.paragraph(
            &format!("{} · {}", day(note.at), note.actor),
            7.5,
            false,
            MUTED,
        );
        layout.paragraph(&note.detail, 9.0, false, INK);
    }
    layout.heading("Resolution", 11.0);
    let resolution = match (i.resolution, item.resolved_at) {
        (Some(r), Some(at)) => format!("Resolved as {} on {}.", r.as_str(), day(at)),
        (Some(r), None) => format!("Resolved as {}.", r.as_str()),
        _ => format!("Not resolved yet ({}).", i.status.as_str()),
    };
    layout.paragraph(&resolution, 9.0, false, INK);
    layout.heading("Recommended next steps", 11.0);
    for step in &i.investigation {
        layout.paragraph(&format!("• {step}"), 9.0, false, INK);
    }
}
