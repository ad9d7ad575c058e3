//! The `notify:` section of SIREN's configuration: channels, policies, retries. Unknown keys
//! are refused; secrets are written `env:NAME` or `file:PATH` and resolved by the caller
//! ([`NotifyConfig::resolve_secrets`]), and no `Debug` output shows them.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::NotifyError;
use crate::incident::Severity;

/// Notification channels and the policies that route incidents to them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The dashboard's public address: messages link to `<public_url>/#/incidents/<id>`.
    pub public_url: Option<String>,
    /// A folder of templates replacing the built-in ones of the same name
    /// (`email.subject.j2`, `email.html.j2`, `email.txt.j2`, `webhook.json.j2`,
    /// `slack.json.j2`, `teams.json.j2`).
    pub templates: Option<PathBuf>,
    /// Where messages go.
    #[serde(default)]
    pub channels: Vec<ChannelConfig>,
    /// Which incidents go where.
    #[serde(default)]
    pub policies: Vec<PolicyConfig>,
    /// How failed deliveries are retried.
    #[serde(default)]
    pub retry: RetryConfig,
}

/// One channel.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChannelConfig {
    /// Email over SMTP.
    Email(EmailConfig),
    /// An HTTP POST.
    Webhook(WebhookConfig),
}

impl ChannelConfig {
    /// The channel's name.
    pub fn name(&self) -> &str {
        match self {
            ChannelConfig::Email(c) => &c.name,
            ChannelConfig::Webhook(c) => &c.name,
        }
    }

    /// The channel's throttle.
    pub fn throttle(&self) -> Option<&Throttle> {
        match self {
            ChannelConfig::Email(c) => c.throttle.as_ref(),
            ChannelConfig::Webhook(c) => c.throttle.as_ref(),
        }
    }

    /// `email` or `webhook`.
    pub fn kind(&self) -> &'static str {
        match self {
            ChannelConfig::Email(_) => "email",
            ChannelConfig::Webhook(_) => "webhook",
        }
    }
}

/// How an SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required: no mail goes out unencrypted).
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// No encryption: only for a relay on the same host or network.
    None,
}

/// An email channel.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The channel's name, as policies and `siren notify test` name it.
    pub name: String,
    /// The SMTP server: `smtp://host[:port]` (STARTTLS, default port 587) or
    /// `smtps://host[:port]` (TLS, default port 465). May be a secret.
    pub smtp: Secret,
    /// Overrides the protection the URL's scheme implies (`none` for a local relay).
    pub tls: Option<SmtpTls>,
    /// SMTP user name (a secret).
    pub username: Option<Secret>,
    /// SMTP password (a secret).
    pub password: Option<Secret>,
    /// A PEM file of certificate authorities to trust besides the usual ones.
    pub ca_file: Option<PathBuf>,
    /// The sender.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
    /// How long a delivery may take.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// At most this many messages per window; the rest wait for a digest.
    pub throttle: Option<Throttle>,
}

/// What a webhook's body looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookPreset {
    /// SIREN's own JSON document.
    #[default]
    Json,
    /// A Slack incoming webhook message (`text` and Block Kit `blocks`).
    Slack,
    /// A Microsoft Teams Workflows message with an Adaptive Card.
    Teams,
}

impl WebhookPreset {
    /// The built-in template the preset uses.
    pub fn template(self) -> &'static str {
        match self {
            WebhookPreset::Json => "webhook.json.j2",
            WebhookPreset::Slack => "slack.json.j2",
            WebhookPreset::Teams => "teams.json.j2",
        }
    }
}

/// A webhook channel.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The channel's name.
    pub name: String,
    /// Where to POST (a secret: Slack and Teams URLs carry their key).
    pub url: Secret,
    /// The body's shape.
    #[serde(default)]
    pub preset: WebhookPreset,
    /// A template file for the body (JSON), replacing the preset's.
    pub template: Option<PathBuf>,
    /// A Standard Webhooks secret (`whsec_` + base64): requests are signed with
    /// `webhook-id`, `webhook-timestamp` and `webhook-signature` headers.
    pub secret: Option<Secret>,
    /// More request headers (values may be secrets, e.g. an `Authorization` header).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, Secret>,
    /// How long a delivery may take.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// At most this many messages per window; the rest wait for a digest.
    pub throttle: Option<Throttle>,
}

/// At most `max` messages per `per` on a channel; what is held back goes out as one digest
/// when the window allows again.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    /// Messages per window.
    pub max: u32,
    /// The window.
    #[serde(deserialize_with = "duration")]
    pub per: Duration,
}

/// Which incidents go to which channels.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Where matching incidents go at once.
    pub channels: Vec<String>,
    /// Only incidents at least this severe.
    pub min_severity: Option<Severity>,
    /// Only incidents holding alerts of one of these rules (id, name or title).
    #[serde(default)]
    pub rules: Vec<String>,
    /// Only incidents with one of these ATT&CK techniques or tags (`T1110` also matches
    /// `T1110.003`; `attack.t1110` is the same as `T1110`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Only incidents of these tenants.
    #[serde(default)]
    pub tenants: Vec<String>,
    /// A growing incident is told again at most this often, with its new count
    /// (default 1h; `0s` never tells growth).
    #[serde(default, deserialize_with = "optional_duration")]
    pub renotify_after: Option<Duration>,
    /// Escalate when the incident is still `new` (not acknowledged) this long after it opened.
    #[serde(default, deserialize_with = "optional_duration")]
    pub escalate_after: Option<Duration>,
    /// Where escalations go. Without it, the policy's own channels hear of the incident only
    /// when it is escalated.
    #[serde(default)]
    pub escalate_to: Vec<String>,
    /// Hours in which messages below a severity wait until the hours end.
    pub quiet_hours: Option<QuietHours>,
}

/// Default re-notification interval for growing incidents.
pub const DEFAULT_RENOTIFY: Duration = Duration::from_secs(3600);

impl PolicyConfig {
    /// How often a growing incident is told again (`None`: never).
    pub fn renotify(&self) -> Option<Duration> {
        match self.renotify_after {
            None => Some(DEFAULT_RENOTIFY),
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
        }
    }
}

/// Quiet hours, e.g. `{ from: "22:00", to: "07:00", utc_offset: "+01:00", min_severity: critical }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// Start (local time, `HH:MM`).
    pub from: String,
    /// End (local time, `HH:MM`); before `from` means the next day.
    pub to: String,
    /// The local time's offset from UTC (`+01:00`, default `+00:00`).
    pub utc_offset: Option<String>,
    /// Incidents at least this severe go out at once even in quiet hours (default: none do).
    pub min_severity: Option<Severity>,
}

/// How failed deliveries are retried: after `initial`, doubling up to `max`, for `attempts`
/// attempts in all.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts before a delivery is given up.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// The first wait.
    #[serde(default = "default_initial", deserialize_with = "duration")]
    pub initial: Duration,
    /// The longest wait.
    #[serde(default = "default_max", deserialize_with = "duration")]
    pub max: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            attempts: default_attempts(),
            initial: default_initial(),
            max: default_max(),
        }
    }
}

fn default_attempts() -> u32 {
    12
}

fn default_initial() -> Duration {
    Duration::from_secs(10)
}

fn default_max() -> Duration {
    Duration::from_secs(3600)
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(text.trim())
        .map_err(|e| serde::de::Error::custom(format!("invalid duration '{text}': {e}")))
}

fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// Whether the URL `url` carries a password (`scheme://user:password@host…`).
pub fn url_has_password(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .is_some_and(|(user_info, _)| user_info.contains(':'))
}

/// A value that may be secret: written literally, or as `env:NAME` / `file:PATH` and resolved
/// by [`NotifyConfig::resolve_secrets`]. Its `Debug` form never shows it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A secret with this value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value (after resolution, the secret itself).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is written literally (not `env:NAME` or `file:PATH`).
    pub fn is_literal(&self) -> bool {
        !crate::secret::is_reference(&self.0)
    }

    fn resolve(
        &mut self,
        what: &str,
        resolver: &mut dyn FnMut(&str) -> Result<String, String>,
    ) -> Result<(), NotifyError> {
        self.0 =
            resolver(&self.0).map_err(|reason| NotifyError::Config(format!("{what}: {reason}")))?;
        Ok(())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl NotifyConfig {
    /// Whether it sends anything anywhere (a channel and a policy).
    pub fn routes_anything(&self) -> bool {
        !self.channels.is_empty() && !self.policies.is_empty()
    }

    /// Replaces every secret (`env:NAME`, `file:PATH`, or a literal) with its value, through
    /// `resolver` (the caller reads the environment or files; the library does not).
    pub fn resolve_secrets(
        &mut self,
        mut resolver: impl FnMut(&str) -> Result<String, String>,
    ) -> Result<(), NotifyError> {
        for channel in &mut self.channels {
            match channel {
                ChannelConfig::Email(c) => {
                    let name = c.name.clone();
                    c.smtp
                        .resolve(&format!("channel '{name}' smtp"), &mut resolver)?;
                    if let Some(s) = &mut c.username {
                        s.resolve(&format!("channel '{name}' username"), &mut resolver)?;
                    }
                    if let Some(s) = &mut c.password {
                        s.resolve(&format!("channel '{name}' password"), &mut resolver)?;
                    }
                }
                ChannelConfig::Webhook(c) => {
                    let name = c.name.clone();
                    c.url
                        .resolve(&format!("channel '{name}' url"), &mut resolver)?;
                    if let Some(s) = &mut c.secret {
                        s.resolve(&format!("channel '{name}' secret"), &mut resolver)?;
                    }
                    for (header, value) in &mut c.headers {
                        value
                            .resolve(&format!("channel '{name}' header {header}"), &mut resolver)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The settings whose secret is written literally in the configuration rather than as
    /// `env:NAME` or `file:PATH`: SMTP passwords (and SMTP URLs with one), Slack and Teams
    /// webhook URLs (and other webhook URLs with a password or a query), signing secrets and
    /// header values. Read before [`NotifyConfig::resolve_secrets`].
    pub fn literal_secrets(&self) -> Vec<String> {
        let mut found = Vec::new();
        for channel in &self.channels {
            match channel {
                ChannelConfig::Email(c) => {
                    if c.smtp.is_literal() && url_has_password(c.smtp.expose()) {
                        found.push(format!("channel '{}' smtp", c.name));
                    }
                    if c.password.as_ref().is_some_and(Secret::is_literal) {
                        found.push(format!("channel '{}' password", c.name));
                    }
                }
                ChannelConfig::Webhook(c) => {
                    // Slack and Teams URLs are keys; other URLs are when they carry a
                    // password or a query.
                    let url = c.url.expose();
                    let keyed = c.preset != WebhookPreset::Json
                        || url_has_password(url)
                        || url.contains('?');
                    if c.url.is_literal() && keyed {
                        found.push(format!("channel '{}' url", c.name));
                    }
                    if c.secret.as_ref().is_some_and(Secret::is_literal) {
                        found.push(format!("channel '{}' secret", c.name));
                    }
                    for (header, value) in &c.headers {
                        if value.is_literal() {
                            found.push(format!("channel '{}' header {header}", c.name));
                        }
                    }
                }
            }
        }
        found
    }

    /// Checks names and references: unique channel names, policies naming channels that
    /// exist, sensible throttles, parseable quiet hours.
    pub fn validate(&self) -> Result<(), NotifyError> {
        // Links are written into HTML attributes as they are: only plain http(s) URLs.
        if let Some(url) = &self.public_url
            && (!(url.starts_with("https://") || url.starts_with("http://"))
                || url
                    .chars()
                    .any(|c| matches!(c, '"' | '\'' | '<' | '>' | '`') || c.is_whitespace()))
        {
            return Err(NotifyError::Config(format!(
                "public_url '{url}' must be a plain http:// or https:// URL"
            )));
        }
        let mut names = std::collections::BTreeSet::new();
        for channel in &self.channels {
            let name = channel.name();
            if name.trim().is_empty() {
                return Err(NotifyError::Config(
                    "a channel has an empty name".to_owned(),
                ));
            }
            if !names.insert(name) {
                return Err(NotifyError::Config(format!(
                    "channel '{name}' is defined twice"
                )));
            }
            if let Some(t) = channel.throttle()
                && (t.max == 0 || t.per.is_zero())
            {
                return Err(NotifyError::Config(format!(
                    "channel '{name}': throttle needs max ≥ 1 and a window longer than 0s"
                )));
            }
            if let ChannelConfig::Email(c) = channel
                && c.to.is_empty()
            {
                return Err(NotifyError::Config(format!(
                    "channel '{name}': no recipients ('to')"
                )));
            }
        }
        for (index, policy) in self.policies.iter().enumerate() {
            for channel in policy.channels.iter().chain(&policy.escalate_to) {
                if !names.contains(channel.as_str()) {
                    return Err(NotifyError::Config(format!(
                        "policy {} names channel '{channel}', which is not defined",
                        index + 1
                    )));
                }
            }
            if !policy.escalate_to.is_empty() && policy.escalate_after.is_none() {
                return Err(NotifyError::Config(format!(
                    "policy {}: escalate_to needs escalate_after",
                    index + 1
                )));
            }
            if let Some(quiet) = &policy.quiet_hours {
                super::policy::QuietWindow::parse(quiet)
                    .map_err(|e| NotifyError::Config(format!("policy {}: {e}", index + 1)))?;
            }
        }
        if self.retry.attempts == 0 {
            return Err(NotifyError::Config(
                "retry.attempts must be at least 1".to_owned(),
            ));
        }
        Ok(())
    }

    /// The channel of this name.
    pub fn channel(&self, name: &str) -> Option<&ChannelConfig> {
        self.channels.iter().find(|c| c.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
public_url: https://siren.example.org
channels:
  - { name: soc-mail, type: email, smtp: "smtp://relay:587", from: siren@example.org, to: [soc@example.org], password: "env:SMTP_PASSWORD", username: siren }
  - { name: soc-chat, type: webhook, preset: slack, url: "env:SLACK_URL" }
  - { name: pager, type: webhook, url: "https://hooks.example.org/siren", secret: "env:HOOK_SECRET", timeout: 5s, throttle: { max: 10, per: 1h } }
policies:
  - { channels: [soc-chat, soc-mail], min_severity: high, renotify_after: 30m }
  - { channels: [pager], min_severity: critical, escalate_after: 15m }
"#;

    #[test]
    fn the_documented_shape_loads_and_validates() {
        let config: NotifyConfig = serde_yaml::from_str(SAMPLE).unwrap();
        config.validate().unwrap();
        assert_eq!(config.channels.len(), 3);
        assert_eq!(
            config.policies[0].renotify(),
            Some(Duration::from_secs(1800))
        );
        assert_eq!(
            config.policies[1].escalate_after,
            Some(Duration::from_secs(900))
        );
        let ChannelConfig::Webhook(pager) = &config.channels[2] else {
            panic!("a webhook")
        };
        assert_eq!(pager.timeout, Duration::from_secs(5));
        assert_eq!(pager.throttle.as_ref().unwrap().max, 10);
    }

    #[test]
    fn secrets_are_resolved_and_never_shown() {
        let mut config: NotifyConfig = serde_yaml::from_str(SAMPLE).unwrap();
        config
            .resolve_secrets(|spec| match spec {
                "env:SMTP_PASSWORD" => Ok("hunter2-smtp".to_owned()),
                "env:SLACK_URL" => {
                    Ok("https://hooks.slack.com/services/T0/B0/XYZSECRET".to_owned())
                }
                "env:HOOK_SECRET" => Ok("whsec_c2VjcmV0".to_owned()),
                other => Ok(other.to_owned()),
            })
            .unwrap();
        let debug = format!("{config:?}");
        for secret in [
            "hunter2-smtp",
            "XYZSECRET",
            "whsec_c2VjcmV0",
            "env:SLACK_URL",
        ] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
        let ChannelConfig::Email(mail) = &config.channels[0] else {
            panic!("email")
        };
        assert_eq!(mail.password.as_ref().unwrap().expose(), "hunter2-smtp");
        let error = config
            .clone()
            .resolve_secrets(|_| Err("variable X is not set".to_owned()));
        assert!(
            error
                .unwrap_err()
                .to_string()
                .contains("channel 'soc-mail' smtp")
        );
    }

    #[test]
    fn literal_secrets_are_found() {
        let config: NotifyConfig = serde_yaml::from_str(SAMPLE).unwrap();
        assert!(config.literal_secrets().is_empty(), "env: and plain URLs");
        let config: NotifyConfig = serde_yaml::from_str(
            r#"
channels:
  - { name: m, type: email, smtp: "smtp://u:pw@relay:587", from: a@b, to: [c@d], password: hunter2 }
  - { name: s, type: webhook, preset: slack, url: "https://hooks.slack.com/services/T0/B0/X" }
  - { name: h, type: webhook, url: "https://h.example/x?key=1", secret: "file:/s", headers: { Authorization: "Bearer x", X-Id: "env:ID" } }
"#,
        )
        .unwrap();
        assert_eq!(
            config.literal_secrets(),
            [
                "channel 'm' smtp",
                "channel 'm' password",
                "channel 's' url",
                "channel 'h' url",
                "channel 'h' header Authorization"
            ]
        );
        assert!(url_has_password("postgres://siren:pw@db/siren"));
        assert!(!url_has_password("postgres://siren@db/siren"));
        assert!(!url_has_password("https://h.example/a:b@c"));
        assert!(!url_has_password("sqlite://siren.db"));
    }

    #[test]
    fn unknown_keys_and_dangling_names_are_refused() {
        let error = serde_yaml::from_str::<NotifyConfig>("channels: []\npolicys: []\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("policys"), "{error}");
        let error = serde_yaml::from_str::<NotifyConfig>(
            "channels:\n  - { name: a, type: webhook, url: http://x, sekret: y }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("sekret"), "{error}");
        let config: NotifyConfig = serde_yaml::from_str(
            "channels:\n  - { name: a, type: webhook, url: http://x }\npolicies:\n  - { channels: [b] }\n",
        )
        .unwrap();
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("'b'"), "{error}");
    }
}
