//! Notifications: the right person hears about an incident within seconds, exactly once.
//!
//! - [`config`] — channels (email over SMTP, webhooks with generic JSON, Slack and Teams
//!   presets, Standard Webhooks signatures) and policies (severity, rule, tag, tenant filters;
//!   re-notification of growing incidents; per-channel throttling with a digest; escalation of
//!   unacknowledged incidents; quiet hours), as the `notify:` section of the configuration.
//! - [`message`] — what a message says, worded by minijinja templates (`templates/notify/`).
//! - [`Notifier`] — sends one message on one channel.
//! - [`Dispatcher`] — the outbox's worker. The store records every incident change in the
//!   transaction that makes it ([`crate::store::Outbox`]); the dispatcher turns changes
//!   into per-channel deliveries by the policies (idempotently), claims due deliveries with a
//!   lease (so several servers sharing a database do not send twice), sends them, and retries
//!   failures with exponential backoff. Nothing is lost while an endpoint is down or SIREN
//!   restarts: the outbox is in the database.
//!
//! Time comes from a [`Clock`], so tests move it by hand instead of sleeping.

pub mod config;
mod dispatcher;
#[cfg(feature = "email")]
mod email;
pub mod message;
pub mod policy;
#[cfg(feature = "webhook")]
mod webhook;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use config::{ChannelConfig, NotifyConfig, Secret};
pub use dispatcher::{DispatchReport, Dispatcher, RuleTags, rule_tags_of};
pub use message::{Message, MessageKind, Templates};

use crate::incident::{Incident, IncidentId, Severity, Status};

/// What can go wrong setting up notifications.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// The `notify:` configuration is wrong.
    #[error("notify configuration: {0}")]
    Config(String),
    /// A template does not load or render.
    #[error("notification template {0}")]
    Template(String),
    /// A channel type this build cannot send on.
    #[error(
        "channel '{channel}' is of type {kind}, which this build does not include (cargo feature `{kind}`)"
    )]
    Unsupported {
        /// The channel.
        channel: String,
        /// `email` or `webhook`.
        kind: &'static str,
    },
    /// No channel of that name.
    #[error("no notification channel named '{0}'")]
    UnknownChannel(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// What happened (never a secret: no URL, no password).
    pub message: String,
    /// Whether trying again cannot help (the endpoint refused the message for good, or the
    /// template is broken).
    pub permanent: bool,
}

impl SendError {
    /// A failure that may pass.
    pub fn transient(message: impl std::fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            permanent: false,
        }
    }

    /// A failure that retrying will not mend.
    pub fn permanent(message: impl std::fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            permanent: true,
        }
    }
}

/// Where the dispatcher gets the time.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told: for tests and simulations.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now = policy::later(*now, by);
    }

    /// Sets the clock.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

enum Channel {
    #[cfg(feature = "email")]
    Email(email::EmailChannel),
    #[cfg(feature = "webhook")]
    Webhook(webhook::WebhookChannel),
}

/// Sends messages on the configured channels.
pub struct Notifier {
    templates: Templates,
    channels: BTreeMap<String, (Channel, &'static str)>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("channels", &self.channels.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Checks the configuration, loads the templates and sets up every channel (secrets must
    /// have been resolved with [`NotifyConfig::resolve_secrets`]).
    pub fn new(config: &NotifyConfig) -> Result<Self, NotifyError> {
        config.validate()?;
        let templates = Templates::load(config)?;
        let mut channels = BTreeMap::new();
        for channel in &config.channels {
            let built = match channel {
                #[cfg(feature = "email")]
                ChannelConfig::Email(c) => Channel::Email(email::EmailChannel::new(c)?),
                #[cfg(feature = "webhook")]
                ChannelConfig::Webhook(c) => Channel::Webhook(webhook::WebhookChannel::new(c)?),
                #[allow(unreachable_patterns)]
                other => {
                    return Err(NotifyError::Unsupported {
                        channel: other.name().to_owned(),
                        kind: other.kind(),
                    });
                }
            };
            channels.insert(channel.name().to_owned(), (built, channel.kind()));
        }
        Ok(Self {
            templates,
            channels,
        })
    }

    /// The templates.
    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    /// The channels' names and types.
    pub fn channels(&self) -> impl Iterator<Item = (&str, &'static str)> {
        self.channels
            .iter()
            .map(|(name, (_, kind))| (name.as_str(), *kind))
    }

    /// How long a send on `channel` may take.
    pub fn timeout(&self, channel: &str) -> Option<Duration> {
        self.channels.get(channel).map(|(c, _)| match c {
            #[cfg(feature = "email")]
            Channel::Email(e) => e.timeout,
            #[cfg(feature = "webhook")]
            Channel::Webhook(w) => w.timeout,
        })
    }

    /// Sends `message` on `channel`, within `limit` (and the channel's own timeout).
    pub async fn send(&self, message: &Message, limit: Option<Duration>) -> Result<(), SendError> {
        let (channel, _) = self.channels.get(&message.channel).ok_or_else(|| {
            SendError::permanent(format!("no channel named '{}'", message.channel))
        })?;
        let timeout = self
            .timeout(&message.channel)
            .unwrap_or(Duration::from_secs(10))
            .min(limit.unwrap_or(Duration::MAX));
        let send = async {
            match channel {
                #[cfg(feature = "email")]
                Channel::Email(c) => c.send(&self.templates, message).await,
                #[cfg(feature = "webhook")]
                Channel::Webhook(c) => c.send(&self.templates, message).await,
            }
        };
        match tokio::time::timeout(timeout, send).await {
            Ok(result) => result,
            Err(_) => Err(SendError::transient(format!(
                "no answer within {}",
                humantime::format_duration(timeout)
            ))),
        }
    }

    /// Sends a test message about a made-up incident on `channel`.
    pub async fn send_test(
        &self,
        channel: &str,
        tenant: &str,
        now: DateTime<Utc>,
    ) -> Result<(), SendError> {
        if !self.channels.contains_key(channel) {
            return Err(SendError::permanent(format!(
                "no channel named '{channel}'"
            )));
        }
        let message = Message {
            kind: MessageKind::Test,
            tenant: tenant.to_owned(),
            channel: channel.to_owned(),
            incidents: vec![test_incident(tenant, now)],
            escalate_after: None,
            now,
            id: format!("siren-test-{}", now.timestamp_micros()),
        };
        self.send(&message, None).await
    }
}

/// The made-up incident of a test message.
fn test_incident(tenant: &str, now: DateTime<Utc>) -> Incident {
    Incident {
        id: IncidentId(0),
        tenant: tenant.to_owned(),
        title: "SIREN test notification — nothing happened".to_owned(),
        severity: Severity::Informational,
        status: Status::New,
        resolution: None,
        assignee: None,
        rule_ids: vec!["siren-notify-test".to_owned()],
        techniques: Vec::new(),
        hosts: vec!["siren".to_owned()],
        users: Vec::new(),
        ips: Vec::new(),
        first_seen: now,
        last_seen: now,
        alert_count: 0,
        event_count: 0,
        investigation: vec!["Nothing to do: this message only tests the channel.".to_owned()],
        group_key: String::new(),
        created_at: now,
        updated_at: now,
    }
}
