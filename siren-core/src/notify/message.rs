//! What a notification says, and the minijinja templates that word it: built-in ones from
//! `templates/notify/`, replaced by same-named files from the configured folder, and a
//! webhook channel's own body template.

use std::time::Duration;

use chrono::{DateTime, Utc};
use minijinja::{AutoEscape, Environment, Value};
use serde::Serialize;

use super::NotifyError;
use super::config::{ChannelConfig, NotifyConfig};
use crate::incident::Incident;

/// The built-in templates, by name.
const BUILTIN: [(&str, &str); 6] = [
    (
        "email.subject.j2",
        include_str!("../../../templates/notify/email.subject.j2"),
    ),
    (
        "email.txt.j2",
        include_str!("../../../templates/notify/email.txt.j2"),
    ),
    (
        "email.html.j2",
        include_str!("../../../templates/notify/email.html.j2"),
    ),
    (
        "webhook.json.j2",
        include_str!("../../../templates/notify/webhook.json.j2"),
    ),
    (
        "slack.json.j2",
        include_str!("../../../templates/notify/slack.json.j2"),
    ),
    (
        "teams.json.j2",
        include_str!("../../../templates/notify/teams.json.j2"),
    ),
];

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// A new incident (the first message about it on this channel).
    New,
    /// An incident grew.
    Update,
    /// An incident was not acknowledged in time.
    Escalation,
    /// Incidents the channel's throttle held back.
    Digest,
    /// `siren notify test`.
    Test,
}

impl MessageKind {
    /// The kind's name (as templates see it).
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::New => "new",
            MessageKind::Update => "update",
            MessageKind::Escalation => "escalation",
            MessageKind::Digest => "digest",
            MessageKind::Test => "test",
        }
    }
}

/// One message to render and send.
#[derive(Debug, Clone)]
pub struct Message {
    /// What it is about.
    pub kind: MessageKind,
    /// The tenant.
    pub tenant: String,
    /// The channel it goes to.
    pub channel: String,
    /// The incidents it speaks of (one, or a digest's).
    pub incidents: Vec<Incident>,
    /// For an escalation: how long the incident went unacknowledged.
    pub escalate_after: Option<Duration>,
    /// When it is sent.
    pub now: DateTime<Utc>,
    /// A stable id: the same for every attempt at the same delivery.
    pub id: String,
}

impl Message {
    /// The message's one-line headline.
    pub fn headline(&self) -> String {
        let first = self.incidents.first();
        let severity = first.map_or("", |i| i.severity.as_str());
        match self.kind {
            MessageKind::New => format!("New {severity} incident"),
            MessageKind::Update => format!(
                "{} incident now has {} alerts",
                capitalise(severity),
                first.map_or(0, |i| i.alert_count)
            ),
            MessageKind::Escalation => format!(
                "Escalation: {severity} incident not acknowledged after {}",
                humantime::format_duration(self.escalate_after.unwrap_or_default())
            ),
            MessageKind::Digest => {
                let n = self.incidents.len();
                format!(
                    "Digest: {n} incident{} held back by the throttle of {}",
                    if n == 1 { "" } else { "s" },
                    self.channel
                )
            }
            MessageKind::Test => "SIREN test message".to_owned(),
        }
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The templates every channel renders with.
pub struct Templates {
    env: Environment<'static>,
    public_url: Option<String>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

impl Templates {
    /// The built-in templates, replaced by same-named files in `config.templates`, plus each
    /// webhook channel's own template (named `channel:<name>`).
    pub fn load(config: &NotifyConfig) -> Result<Self, NotifyError> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|name| {
            if name.contains(".html") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        env.add_filter("clip", clip);
        env.add_filter("slack", slack_escape);
        for (name, source) in BUILTIN {
            let source = match &config.templates {
                Some(dir) if dir.join(name).is_file() => {
                    let path = dir.join(name);
                    std::fs::read_to_string(&path).map_err(|e| {
                        NotifyError::Template(format!("cannot read {}: {e}", path.display()))
                    })?
                }
                _ => source.to_owned(),
            };
            env.add_template_owned(name.to_owned(), source)
                .map_err(|e| NotifyError::Template(format!("{name}: {e:#}")))?;
        }
        for channel in &config.channels {
            if let ChannelConfig::Webhook(hook) = channel
                && let Some(path) = &hook.template
            {
                let source = std::fs::read_to_string(path).map_err(|e| {
                    NotifyError::Template(format!("cannot read {}: {e}", path.display()))
                })?;
                env.add_template_owned(format!("channel:{}", hook.name), source)
                    .map_err(|e| NotifyError::Template(format!("{}: {e:#}", path.display())))?;
            }
        }
        Ok(Self {
            env,
            public_url: config
                .public_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_owned()),
        })
    }

    /// The dashboard link of an incident, when a public URL is configured.
    pub fn incident_url(&self, incident: &Incident) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|base| format!("{base}/#/incidents/{}", incident.id))
    }

    /// Renders the template `name` for `message`.
    pub fn render(&self, name: &str, message: &Message) -> Result<String, NotifyError> {
        let template = self
            .env
            .get_template(name)
            .map_err(|e| NotifyError::Template(format!("{name}: {e:#}")))?;
        template
            .render(self.context(message, None))
            .map_err(|e| NotifyError::Template(format!("{name}: {e:#}")))
    }

    /// Renders the template `name` for `message` with the email subject in the context.
    pub fn render_with_subject(
        &self,
        name: &str,
        message: &Message,
        subject: &str,
    ) -> Result<String, NotifyError> {
        let template = self
            .env
            .get_template(name)
            .map_err(|e| NotifyError::Template(format!("{name}: {e:#}")))?;
        template
            .render(self.context(message, Some(subject)))
            .map_err(|e| NotifyError::Template(format!("{name}: {e:#}")))
    }

    /// Whether a template of this name exists.
    pub fn has(&self, name: &str) -> bool {
        self.env.get_template(name).is_ok()
    }

    fn context(&self, message: &Message, subject: Option<&str>) -> Value {
        let incidents: Vec<serde_json::Value> = message
            .incidents
            .iter()
            .map(|incident| {
                let mut value = serde_json::to_value(incident).unwrap_or_default();
                if let Some(map) = value.as_object_mut() {
                    map.insert(
                        "url".to_owned(),
                        serde_json::to_value(self.incident_url(incident)).unwrap_or_default(),
                    );
                }
                value
            })
            .collect();
        let mut context = serde_json::json!({
            "kind": message.kind.as_str(),
            "headline": message.headline(),
            "tenant": message.tenant,
            "channel": message.channel,
            "now": message.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "message_id": message.id,
            "public_url": self.public_url,
            "escalate_after": message.escalate_after.map(|d| humantime::format_duration(d).to_string()),
            "incidents": incidents,
        });
        if message.kind != MessageKind::Digest
            && let Some(first) = incidents.first()
        {
            context["incident"] = first.clone();
        }
        if let Some(subject) = subject {
            context["subject"] = subject.into();
        }
        Value::from_serialize(&context)
    }
}

/// `text|clip(n)`: at most `n` characters, with `…` when cut.
fn clip(text: String, n: usize) -> String {
    if text.chars().count() <= n {
        return text;
    }
    let mut out: String = text.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `text|slack`: escapes the three characters Slack's mrkdwn gives meaning (`&`, `<`, `>`).
fn slack_escape(text: String) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{IncidentId, Severity, Status};

    pub(crate) fn sample_incident() -> Incident {
        let at = DateTime::parse_from_rfc3339("2026-11-22T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        Incident {
            id: IncidentId(42),
            tenant: "acme".to_owned(),
            title: "Brute force <script>alert(1)</script> & more — dc01".to_owned(),
            severity: Severity::High,
            status: Status::New,
            resolution: None,
            assignee: None,
            rule_ids: vec!["brute-force".to_owned()],
            techniques: vec!["T1110".to_owned()],
            hosts: vec!["dc01".to_owned()],
            users: vec!["bob".to_owned()],
            ips: vec!["10.0.0.5".to_owned()],
            first_seen: at,
            last_seen: at,
            alert_count: 3,
            event_count: 17,
            investigation: vec!["Check logons".to_owned()],
            group_key: "dc01".to_owned(),
            created_at: at,
            updated_at: at,
        }
    }

    fn message(kind: MessageKind, incidents: Vec<Incident>) -> Message {
        Message {
            kind,
            tenant: "acme".to_owned(),
            channel: "chat".to_owned(),
            incidents,
            escalate_after: Some(Duration::from_secs(900)),
            now: Utc::now(),
            id: "siren-1".to_owned(),
        }
    }

    fn templates() -> Templates {
        Templates::load(&NotifyConfig {
            public_url: Some("https://siren.example.org/".to_owned()),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn html_is_escaped_and_links_to_the_incident() {
        let t = templates();
        let m = message(MessageKind::New, vec![sample_incident()]);
        let subject = t.render("email.subject.j2", &m).unwrap();
        assert_eq!(
            subject,
            "[SIREN] New high incident: Brute force <script>alert(1)</script> & more — dc01 (#42)"
        );
        let html = t
            .render_with_subject("email.html.j2", &m, &subject)
            .unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("https://siren.example.org/#/incidents/42"));
        let text = t.render_with_subject("email.txt.j2", &m, &subject).unwrap();
        assert!(
            text.contains("Open:        https://siren.example.org/#/incidents/42"),
            "{text}"
        );
    }

    #[test]
    fn every_json_template_renders_valid_json_for_every_kind() {
        let t = templates();
        let mut second = sample_incident();
        second.id = IncidentId(43);
        second.title = "quote \" backslash \\ newline \n".to_owned();
        for kind in [
            MessageKind::New,
            MessageKind::Update,
            MessageKind::Escalation,
            MessageKind::Digest,
            MessageKind::Test,
        ] {
            let incidents = if kind == MessageKind::Digest {
                vec![sample_incident(), second.clone()]
            } else {
                vec![second.clone()]
            };
            for name in ["webhook.json.j2", "slack.json.j2", "teams.json.j2"] {
                let body = t.render(name, &message(kind, incidents.clone())).unwrap();
                let value: serde_json::Value = serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("{name} {kind:?}: {e}\n{body}"));
                assert!(value.is_object(), "{name}");
            }
        }
    }

    #[test]
    fn slack_text_is_escaped() {
        let t = templates();
        let body = t
            .render(
                "slack.json.j2",
                &message(MessageKind::New, vec![sample_incident()]),
            )
            .unwrap();
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        let section = value["blocks"][1]["text"]["text"].as_str().unwrap();
        assert!(
            section.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"),
            "{section}"
        );
        assert!(
            section.starts_with("*<https://siren.example.org/#/incidents/42|#42 "),
            "{section}"
        );
    }

    #[test]
    fn clip_counts_characters() {
        assert_eq!(clip("héllo".to_owned(), 10), "héllo");
        assert_eq!(clip("héllo wörld".to_owned(), 5), "héll…");
    }
}
