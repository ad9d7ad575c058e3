//! What the HTTP server reads and keeps besides events, incidents and credentials
//! ([`ServerStore`]): agent heartbeats, the incident change feed the live stream follows,
//! pages of an incident's alerts, and the dashboard's and metrics' counts.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::StoreError;
use crate::event::TenantId;
use crate::incident::{IncidentId, Severity};

pub use crate::api::AgentHeartbeat;

/// An agent as it last reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentStatus {
    /// Tenant.
    pub tenant: String,
    /// What it reported.
    #[serde(flatten)]
    pub heartbeat: AgentHeartbeat,
    /// The address it reported from.
    pub origin: String,
    /// When.
    pub last_seen: DateTime<Utc>,
}

/// An incident that changed, as the change feed ([`ServerStore::incidents_changed_since`])
/// reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedChange {
    /// Tenant.
    pub tenant: TenantId,
    /// Incident.
    pub id: IncidentId,
    /// When it was opened (microseconds).
    pub created_at: i64,
    /// When it last changed (microseconds).
    pub updated_at: i64,
}

/// An alert of an incident, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredAlert {
    /// Id.
    pub id: i64,
    /// Rule.
    pub rule_id: String,
    /// Rule title.
    pub rule_title: String,
    /// Severity.
    pub severity: Severity,
    /// The triggering event's de-duplication key (hex), for detections.
    pub event_key: Option<String>,
    /// Event time.
    pub time: DateTime<Utc>,
    /// Host.
    pub host: Option<String>,
    /// Account.
    pub user: Option<String>,
    /// Source address.
    pub src_ip: Option<String>,
    /// Details (channel, event id, correlation value…).
    pub detail: serde_json::Value,
    /// When SIREN recorded it.
    pub created_at: DateTime<Utc>,
}

/// A page of an incident's alerts and the cursor of the next one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertPage {
    /// The alerts, oldest first.
    pub alerts: Vec<StoredAlert>,
    /// Pass back to [`ServerStore::incident_alerts`] for the alerts after these; `None` on
    /// the last page.
    pub after: Option<String>,
}

/// One point of a count series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CountAt {
    /// The period's start (RFC 3339 for minutes, `YYYY-MM-DD` for days).
    pub t: String,
    /// How many.
    pub count: u64,
}

/// A named count (a rule, a host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamedCount {
    /// The rule id or host name.
    pub name: String,
    /// Its title (rules), else the name.
    pub title: String,
    /// How many.
    pub count: u64,
}

/// The dashboard overview's counts for one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct DashboardStats {
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
    pub top_rules: Vec<NamedCount>,
    /// Hosts with the most alerts over the last 7 days.
    pub top_hosts: Vec<NamedCount>,
}

/// The server's own reads and writes: agents, the change feed, alert pages, counts.
#[async_trait::async_trait]
pub trait ServerStore: Send + Sync {
    /// Records an agent's heartbeat.
    async fn agent_heartbeat(
        &self,
        tenant: &TenantId,
        heartbeat: &AgentHeartbeat,
        origin: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// The tenant's agents, most recently seen first.
    async fn list_agents(&self, tenant: &TenantId) -> Result<Vec<AgentStatus>, StoreError>;
    /// Incidents of every tenant changed at or after `since` (microseconds), oldest change
    /// first: the live stream's feed of changes made by any process.
    async fn incidents_changed_since(
        &self,
        since: i64,
        limit: u32,
    ) -> Result<Vec<FeedChange>, StoreError>;
    /// A page of an incident's alerts, oldest first: the first `limit`, or those after the
    /// cursor a previous page handed back (an unknown incident has none).
    async fn incident_alerts(
        &self,
        tenant: &TenantId,
        id: IncidentId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<AlertPage, StoreError>;
    /// The overview's counts.
    async fn dashboard_stats(
        &self,
        tenant: &TenantId,
        now: DateTime<Utc>,
    ) -> Result<DashboardStats, StoreError>;
    /// Incidents of every tenant by status (for metrics).
    async fn incidents_by_status(&self) -> Result<Vec<(String, u64)>, StoreError>;
}
