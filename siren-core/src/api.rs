//! The REST API's wire types: the bodies `siren-server` answers with and `siren-agent` (or any
//! other client) reads back, in one place so that both sides agree by construction. Each type
//! is described in `siren-server/openapi.json`.
//!
//! Types that wrap store records (incident pages, users, tokens, agents) need the `store`
//! feature; the ones the agent uses do not.

use serde::{Deserialize, Serialize};

/// The answer to `POST /api/v1/events`: what a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BatchOutcome {
    /// Items in the batch.
    pub received: u64,
    /// Events stored that were not stored before.
    pub stored: u64,
    /// Events already stored (or repeated within the batch).
    pub duplicates: u64,
    /// Items that are not events, with why.
    pub rejected: Vec<Rejected>,
    /// Alerts raised by the new events.
    pub alerts: u64,
    /// Incidents opened.
    pub incidents_created: u64,
    /// Open incidents that received alerts.
    pub incidents_updated: u64,
}

/// An item of a batch that was not stored, with its position in the batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// Position in the batch (0-based).
    pub index: usize,
    /// Why.
    pub error: String,
}

/// What an agent reports about itself (`POST /api/v1/agents/heartbeat`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentHeartbeat {
    /// The agent's id.
    pub agent: String,
    /// The host it runs on.
    #[serde(default)]
    pub hostname: String,
    /// Its version.
    #[serde(default)]
    pub version: String,
    /// Events waiting in its spool.
    #[serde(default)]
    pub queue_depth: i64,
    /// Its latest error, if any.
    #[serde(default)]
    pub last_error: Option<String>,
}

/// The body of every answer that is not a success: `{"error": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
}

/// The signed-in caller (`POST /auth/login`, `GET /auth/me`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    /// Who.
    pub user: MeUser,
    /// The tenant the caller acts in.
    pub tenant: String,
    /// The token to send back in `X-CSRF-Token` with a session cookie; none for API tokens.
    pub csrf_token: Option<String>,
}

/// The user part of [`Me`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeUser {
    /// User or token name.
    pub name: String,
    /// Role (`admin`, `analyst`, `viewer`, `agent`).
    pub role: String,
    /// The tenant the account belongs to.
    pub tenant: String,
    /// Whether the account may act in every tenant.
    pub global: bool,
}

/// A rule the server detects with (`GET /api/v1/rules`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSummary {
    /// Its id (or name, for a correlation without an id).
    pub id: Option<String>,
    /// Its title.
    pub title: String,
    /// Its level.
    pub level: Option<String>,
    /// Its status.
    pub status: Option<String>,
    /// Its tags.
    pub tags: Vec<String>,
    /// The log source it reads, as written.
    pub logsource: crate::rules::LogSource,
    /// `detection`, `correlation`, `filter` or `other`.
    pub kind: String,
    /// Its description.
    pub description: Option<String>,
}

/// `GET /api/v1/rules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleList {
    /// The rules, in load order.
    pub rules: Vec<RuleSummary>,
}

/// One rule of the overview's top list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleCount {
    /// The rule's id.
    pub rule_id: String,
    /// Its title.
    pub title: String,
    /// Alerts it raised.
    pub count: u64,
}

/// One host of the overview's top list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCount {
    /// The host.
    pub host: String,
    /// Alerts on it.
    pub count: u64,
}

#[cfg(feature = "store")]
pub use with_store::*;

#[cfg(feature = "store")]
mod with_store {
    use serde::Serialize;

    use crate::incident::{Incident, TimelineEntry, TimelinePage};
    use crate::store::ApiToken;
    use crate::store::server::{AgentStatus, CountAt, DashboardStats};
    use crate::user::User;

    /// A live change of an incident (`GET /api/v1/stream`, event `incident`).
    #[derive(Debug, Clone, Serialize)]
    pub struct IncidentEvent<'a> {
        /// `created` or `updated`.
        pub kind: &'a str,
        /// The incident as it is now.
        pub incident: &'a Incident,
    }

    /// A page of an incident's timeline, newest entries first.
    #[derive(Debug, Clone, PartialEq, Serialize)]
    pub struct Timeline {
        /// The entries.
        pub timeline: Vec<TimelineEntry>,
        /// How many entries the timeline has in all.
        pub total: u64,
        /// Pass as `before` for the older entries; none on the oldest page.
        pub before: Option<String>,
    }

    impl From<TimelinePage> for Timeline {
        fn from(page: TimelinePage) -> Self {
            Self {
                timeline: page.entries,
                total: page.total,
                before: page.before,
            }
        }
    }

    /// `GET /api/v1/users`.
    #[derive(Debug, Clone, PartialEq, Serialize)]
    pub struct UserList {
        /// The tenant's users.
        pub users: Vec<User>,
    }

    /// A user created, changed or read.
    #[derive(Debug, Clone, PartialEq, Serialize)]
    pub struct UserAnswer {
        /// The user.
        pub user: User,
        /// Whether the user was created global (only on creation).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub global: Option<bool>,
    }

    /// `GET /api/v1/tokens`.
    #[derive(Debug, Clone, PartialEq, Serialize)]
    pub struct TokenList {
        /// The tenant's API tokens.
        pub tokens: Vec<ApiToken>,
    }

    /// An API token created (with its secret, shown once) or changed (without).
    #[derive(Debug, Clone, PartialEq, Serialize)]
    pub struct TokenAnswer {
        /// The token.
        pub token: ApiToken,
        /// The secret, only when the token was just created.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub secret: Option<String>,
    }

    /// `GET /api/v1/agents`.
    #[derive(Debug, Clone, PartialEq, Serialize)]
    pub struct AgentList {
        /// The agents, as each last reported.
        pub agents: Vec<AgentStatus>,
    }

    /// `GET /api/v1/stats`: the dashboard overview of one tenant.
    #[derive(Debug, Clone, PartialEq, Serialize)]
    pub struct Overview {
        /// Open incidents by severity (every severity present, zero included).
        pub open_by_severity: std::collections::BTreeMap<String, u64>,
        /// Incidents by status (every status present).
        pub by_status: std::collections::BTreeMap<String, u64>,
        /// Events stored.
        pub events_total: u64,
        /// Open incidents.
        pub incidents_open: u64,
        /// Events stored per minute over the last 60 minutes (by ingest time), oldest first.
        pub events_per_minute: Vec<CountAt>,
        /// Incidents opened per day over the last 30 days, oldest first.
        pub incidents_over_time: Vec<CountAt>,
        /// Rules with the most alerts over the last 7 days.
        pub top_rules: Vec<super::RuleCount>,
        /// Hosts with the most alerts over the last 7 days.
        pub top_hosts: Vec<super::HostCount>,
        /// The tenant.
        pub tenant: String,
    }

    impl Overview {
        /// The overview of `tenant` from its counts.
        pub fn new(tenant: &str, stats: &DashboardStats) -> Self {
            Self {
                open_by_severity: stats.open_by_severity.clone(),
                by_status: stats.by_status.clone(),
                events_total: stats.events_total,
                incidents_open: stats.incidents_open,
                events_per_minute: stats.events_per_minute.clone(),
                incidents_over_time: stats.incidents_over_time.clone(),
                top_rules: stats
                    .top_rules
                    .iter()
                    .map(|r| super::RuleCount {
                        rule_id: r.name.clone(),
                        title: r.title.clone(),
                        count: r.count,
                    })
                    .collect(),
                top_hosts: stats
                    .top_hosts
                    .iter()
                    .map(|h| super::HostCount {
                        host: h.name.clone(),
                        count: h.count,
                    })
                    .collect(),
                tenant: tenant.to_owned(),
            }
        }
    }
}
