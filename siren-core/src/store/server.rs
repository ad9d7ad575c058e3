//! What the HTTP server keeps besides events and incidents: API tokens, browser sessions,
//! global admins, agent heartbeats, the incident change feed, alerts of an incident and the
//! dashboard's counts. One implementation for both backends, like `incidents.rs`: the SQL is
//! written once and the macro below instantiates it per backend.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::StoreError;
use crate::event::TenantId;
use crate::incident::{IncidentId, Severity};
use crate::user::{Actor, Role};

/// An active user's login details (never serialised: it holds the password hash).
#[derive(Debug, Clone)]
pub struct LoginRecord {
    /// Login name.
    pub name: String,
    /// The user's own tenant.
    pub tenant: String,
    /// Role.
    pub role: Role,
    /// A global admin may work on every tenant.
    pub global: bool,
    /// argon2id hash.
    pub password_hash: String,
}

/// A live browser session, with its user as it is now (disabled users have none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The user's tenant.
    pub tenant: String,
    /// Login name.
    pub user: String,
    /// The user's role.
    pub role: Role,
    /// Whether the user is a global admin.
    pub global: bool,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
}

/// A bearer API token as listed (never with its secret or hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    /// Id (to revoke it).
    pub id: i64,
    /// The tenant it works on.
    pub tenant: String,
    /// What it is for (`agent dc01`, `ci export`).
    pub name: String,
    /// Role.
    pub role: Role,
    /// Whether it may work on every tenant (admin tokens only).
    pub global: bool,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new token's details; the secret's hash is computed by the caller.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    /// The tenant it works on.
    pub tenant: &'a TenantId,
    /// What it is for.
    pub name: &'a str,
    /// Role.
    pub role: Role,
    /// Every tenant (admin only).
    pub global: bool,
    /// Keyed hash of the secret.
    pub secret_hash: &'a [u8],
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
}

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

/// An incident that changed, from the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentChange {
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

/// What the server keeps besides events and incidents. Token and session lookups take the
/// secret's hash, never the secret.
#[async_trait::async_trait]
pub trait ServerStore: Send + Sync {
    /// An active (not disabled) user's login details.
    async fn login_record(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<LoginRecord>, StoreError>;
    /// Makes an admin global (or not).
    async fn set_user_global(
        &self,
        tenant: &TenantId,
        name: &str,
        global: bool,
        actor: &Actor,
    ) -> Result<(), StoreError>;
    /// Stores a new session under the hash of its secret.
    async fn create_session(
        &self,
        id_hash: &[u8],
        tenant: &TenantId,
        user: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// The live session with this hash, with its user's current role (none when expired or
    /// the user is disabled).
    async fn session(
        &self,
        id_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<SessionRecord>, StoreError>;
    /// Ends a session.
    async fn delete_session(&self, id_hash: &[u8]) -> Result<(), StoreError>;
    /// Appends an entry to the tenant's audit log (what the server saw happen: a login
    /// lockout, …).
    async fn record_audit(
        &self,
        tenant: &TenantId,
        actor: &Actor,
        action: &str,
        object: &str,
        detail: &str,
    ) -> Result<(), StoreError>;
    /// Removes expired sessions; returns how many.
    async fn purge_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Creates a token (audited).
    async fn create_token(
        &self,
        token: &NewToken<'_>,
        actor: &Actor,
    ) -> Result<ApiToken, StoreError>;
    /// The tenant's tokens, revoked ones included.
    async fn list_tokens(&self, tenant: &TenantId) -> Result<Vec<ApiToken>, StoreError>;
    /// Revokes a token of the tenant (audited).
    async fn revoke_token(
        &self,
        tenant: &TenantId,
        id: i64,
        actor: &Actor,
    ) -> Result<ApiToken, StoreError>;
    /// The valid (not revoked, not expired) token with this secret hash.
    async fn token_by_hash(
        &self,
        secret_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<ApiToken>, StoreError>;
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
    ) -> Result<Vec<IncidentChange>, StoreError>;
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

/// Minutes in the overview's events-per-minute series.
pub(super) const STATS_MINUTES: i64 = 60;
/// Days in the overview's incidents-over-time series.
pub(super) const STATS_DAYS: i64 = 30;
/// Days the top rules and hosts look back.
pub(super) const TOP_DAYS: i64 = 7;
/// Entries in each top list.
pub(super) const TOP_N: i64 = 10;

pub(super) const MINUTE: i64 = 60_000_000;
pub(super) const DAY: i64 = 86_400_000_000;

/// Fills gaps in a count series: `buckets` periods of `step` microseconds ending at `now`.
pub(super) fn series(
    counts: &[(i64, i64)],
    now: i64,
    step: i64,
    buckets: i64,
    label: fn(DateTime<Utc>) -> String,
) -> Vec<CountAt> {
    let last = now.div_euclid(step);
    let first = last - buckets + 1;
    (first..=last)
        .map(|bucket| CountAt {
            t: label(super::incidents::time(bucket * step)),
            count: counts
                .iter()
                .find(|(b, _)| *b == bucket)
                .map_or(0, |(_, n)| (*n).max(0) as u64),
        })
        .collect()
}

pub(super) fn minute_label(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(super) fn day_label(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

pub(super) fn parse_role(text: &str) -> Result<Role, StoreError> {
    Role::parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown role '{text}'")))
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SQL, shared by both instantiations.
pub(super) mod sql {
    pub const LOGIN: &str = "SELECT name, role, is_global, password_hash FROM users \
        WHERE tenant = $1 AND name = $2 AND disabled = 0";
    pub const USER_ROLE: &str = "SELECT role FROM users WHERE tenant = $1 AND name = $2";
    pub const SET_GLOBAL: &str = "UPDATE users SET is_global = $1 WHERE tenant = $2 AND name = $3";
    pub const INSERT_SESSION: &str = "INSERT INTO sessions (id_hash, tenant, user_name, created_at, expires_at) \
        VALUES ($1, $2, $3, $4, $5)";
    pub const SESSION: &str = "SELECT s.tenant, s.user_name, s.expires_at, u.role, u.is_global FROM sessions s \
        JOIN users u ON u.tenant = s.tenant AND u.name = s.user_name \
        WHERE s.id_hash = $1 AND s.expires_at > $2 AND u.disabled = 0";
    pub const DELETE_SESSION: &str = "DELETE FROM sessions WHERE id_hash = $1";
    pub const PURGE_SESSIONS: &str = "DELETE FROM sessions WHERE expires_at <= $1";
    pub const INSERT_TOKEN: &str = "INSERT INTO api_tokens (tenant, name, role, is_global, secret_hash, \
        created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id";
    pub const TOKEN: &str = "SELECT id, tenant, name, role, is_global, created_by, created_at, expires_at, revoked_at \
        FROM api_tokens WHERE tenant = $1 AND id = $2";
    pub const TOKENS: &str = "SELECT id, tenant, name, role, is_global, created_by, created_at, expires_at, revoked_at \
        FROM api_tokens WHERE tenant = $1 ORDER BY id";
    pub const REVOKE_TOKEN: &str = "UPDATE api_tokens SET revoked_at = $1 WHERE tenant = $2 AND id = $3 \
        AND revoked_at IS NULL";
    pub const TOKEN_BY_HASH: &str = "SELECT id, tenant, name, role, is_global, created_by, created_at, expires_at, \
        revoked_at FROM api_tokens WHERE secret_hash = $1 AND revoked_at IS NULL \
        AND (expires_at IS NULL OR expires_at > $2)";
    pub const HEARTBEAT: &str = "INSERT INTO agents (tenant, agent, hostname, version, queue_depth, last_error, \
        origin, last_seen) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant, agent) DO UPDATE SET \
        hostname = excluded.hostname, version = excluded.version, queue_depth = excluded.queue_depth, \
        last_error = excluded.last_error, origin = excluded.origin, last_seen = excluded.last_seen";
    pub const AGENTS: &str = "SELECT tenant, agent, hostname, version, queue_depth, last_error, origin, last_seen \
        FROM agents WHERE tenant = $1 ORDER BY last_seen DESC, agent";
    pub const CHANGED: &str = "SELECT tenant, id, created_at, updated_at FROM incidents WHERE updated_at >= $1 \
        ORDER BY updated_at, id LIMIT $2";
    pub const ALERTS: &str = "SELECT id, rule_id, rule_title, severity, event_key, ts, host, user_name, src_ip, \
        detail, created_at FROM alerts WHERE tenant = $1 AND incident_id = $2 ORDER BY ts, id LIMIT $3";
    pub const ALERTS_AFTER: &str = "SELECT id, rule_id, rule_title, severity, event_key, ts, host, user_name, \
        src_ip, detail, created_at FROM alerts WHERE tenant = $1 AND incident_id = $2 AND (ts, id) > ($3, $4) \
        ORDER BY ts, id LIMIT $5";
    pub const OPEN_BY_SEVERITY: &str = "SELECT severity, COUNT(*) AS n FROM incidents WHERE tenant = $1 \
        AND status NOT IN ('resolved', 'closed') GROUP BY severity";
    pub const BY_STATUS: &str =
        "SELECT status, COUNT(*) AS n FROM incidents WHERE tenant = $1 GROUP BY status";
    pub const ALL_BY_STATUS: &str = "SELECT status, COUNT(*) AS n FROM incidents GROUP BY status";
    /// Adds `$3` events stored by `$1` in minute `$2` (since the epoch) to `event_counts`, in
    /// the transaction that stores them.
    pub const COUNT_STORED: &str = "INSERT INTO event_counts (tenant, minute, n) VALUES ($1, $2, $3) \
        ON CONFLICT (tenant, minute) DO UPDATE SET n = event_counts.n + excluded.n";
    /// Events stored, from `event_counts` (counting a million events takes a while).
    pub const EVENTS_TOTAL: &str =
        "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM event_counts WHERE tenant = $1";
    /// Events per minute of ingest from minute `$2` (since the epoch).
    pub const EVENTS_PER_MINUTE: &str =
        "SELECT minute AS bucket, n FROM event_counts WHERE tenant = $1 AND minute >= $2";
    pub const INCIDENTS_PER_DAY: &str = "SELECT created_at / 86400000000 AS bucket, COUNT(*) AS n FROM incidents \
        WHERE tenant = $1 AND created_at >= $2 GROUP BY created_at / 86400000000";
    pub const TOP_RULES: &str = "SELECT rule_id, MAX(rule_title) AS title, COUNT(*) AS n FROM alerts \
        WHERE tenant = $1 AND created_at >= $2 GROUP BY rule_id ORDER BY n DESC, rule_id LIMIT $3";
    pub const TOP_HOSTS: &str = "SELECT host, COUNT(*) AS n FROM alerts WHERE tenant = $1 AND created_at >= $2 \
        AND host IS NOT NULL GROUP BY host ORDER BY n DESC, host LIMIT $3";
}

/// Instantiates [`ServerStore`] for one backend (`$db` is the sqlx database type).
macro_rules! server_methods {
    ($store:ty, $db:ty) => {
        use chrono::{DateTime, Utc};
        use sqlx::Row as _;
        use $crate::event::TenantId;
        use $crate::incident::{IncidentId, Severity, Status};
        use $crate::store::StoreError;
        use $crate::store::incidents::{self as common, sql as incident_sql};
        use $crate::store::server::{self as shared, sql};
        use $crate::store::server::{
            AgentHeartbeat, AgentStatus, AlertPage, ApiToken, DashboardStats, IncidentChange,
            LoginRecord, NamedCount, NewToken, SessionRecord, StoredAlert,
        };
        use $crate::user::{Actor, Role};

        type Row = <$db as sqlx::Database>::Row;

        fn decode_token(row: &Row) -> Result<ApiToken, StoreError> {
            let role: String = row.try_get("role")?;
            let global: i64 = row.try_get("is_global")?;
            let expires: Option<i64> = row.try_get("expires_at")?;
            let revoked: Option<i64> = row.try_get("revoked_at")?;
            Ok(ApiToken {
                id: row.try_get("id")?,
                tenant: row.try_get("tenant")?,
                name: row.try_get("name")?,
                role: shared::parse_role(&role)?,
                global: global != 0,
                created_by: row.try_get("created_by")?,
                created_at: common::time(row.try_get("created_at")?),
                expires_at: expires.map(common::time),
                revoked_at: revoked.map(common::time),
            })
        }

        async fn audit(
            executor: impl sqlx::Executor<'_, Database = $db>,
            tenant: &str,
            at: i64,
            actor: &Actor,
            action: &str,
            object: &str,
            detail: &str,
        ) -> Result<(), StoreError> {
            sqlx::query(incident_sql::INSERT_AUDIT)
                .bind(tenant)
                .bind(at)
                .bind(&actor.name)
                .bind(&actor.origin)
                .bind(action)
                .bind(object)
                .bind(detail)
                .execute(executor)
                .await?;
            Ok(())
        }

        fn count(row: &Row) -> Result<u64, StoreError> {
            let n: i64 = row.try_get("n")?;
            Ok(n.max(0) as u64)
        }

        /// The `(bucket, n)` rows of a count-per-period `query` for `tenant` from `since`.
        async fn bucket_counts(
            executor: impl sqlx::Executor<'_, Database = $db>,
            query: &str,
            tenant: &str,
            since: i64,
        ) -> Result<Vec<(i64, i64)>, StoreError> {
            let rows = sqlx::query(query)
                .bind(tenant)
                .bind(since)
                .fetch_all(executor)
                .await?;
            rows.iter()
                .map(|row| Ok((row.try_get("bucket")?, row.try_get("n")?)))
                .collect()
        }

        #[async_trait::async_trait]
        impl $crate::store::ServerStore for $store {
            async fn login_record(
                &self,
                tenant: &TenantId,
                name: &str,
            ) -> Result<Option<LoginRecord>, StoreError> {
                let row = sqlx::query(sql::LOGIN)
                    .bind(tenant.as_str())
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|row| {
                    let role: String = row.try_get("role")?;
                    let global: i64 = row.try_get("is_global")?;
                    Ok(LoginRecord {
                        name: row.try_get("name")?,
                        tenant: tenant.as_str().to_owned(),
                        role: shared::parse_role(&role)?,
                        global: global != 0,
                        password_hash: row.try_get("password_hash")?,
                    })
                })
                .transpose()
            }

            async fn set_user_global(
                &self,
                tenant: &TenantId,
                name: &str,
                global: bool,
                actor: &Actor,
            ) -> Result<(), StoreError> {
                let now = Utc::now().timestamp_micros();
                let mut tx = self.writer.begin().await?;
                let role: Option<String> = sqlx::query_scalar(sql::USER_ROLE)
                    .bind(tenant.as_str())
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
                match role.as_deref().map(shared::parse_role).transpose()? {
                    None => return Err(StoreError::NotFound(format!("user '{name}'"))),
                    Some(role) if global && role != Role::Admin => {
                        return Err(StoreError::Refused(format!(
                            "only an admin can be global; '{name}' is {}",
                            role.as_str()
                        )));
                    }
                    Some(_) => {}
                }
                sqlx::query(sql::SET_GLOBAL)
                    .bind(i64::from(global))
                    .bind(tenant.as_str())
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                let action = if global { "user.global" } else { "user.local" };
                audit(
                    &mut *tx,
                    tenant.as_str(),
                    now,
                    actor,
                    action,
                    &format!("user:{name}"),
                    "",
                )
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn create_session(
                &self,
                id_hash: &[u8],
                tenant: &TenantId,
                user: &str,
                expires_at: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                let now = Utc::now().timestamp_micros();
                sqlx::query(sql::INSERT_SESSION)
                    .bind(id_hash)
                    .bind(tenant.as_str())
                    .bind(user)
                    .bind(now)
                    .bind(expires_at.timestamp_micros())
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn session(
                &self,
                id_hash: &[u8],
                now: DateTime<Utc>,
            ) -> Result<Option<SessionRecord>, StoreError> {
                let row = sqlx::query(sql::SESSION)
                    .bind(id_hash)
                    .bind(now.timestamp_micros())
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|row| {
                    let role: String = row.try_get("role")?;
                    let global: i64 = row.try_get("is_global")?;
                    Ok(SessionRecord {
                        tenant: row.try_get("tenant")?,
                        user: row.try_get("user_name")?,
                        role: shared::parse_role(&role)?,
                        global: global != 0,
                        expires_at: common::time(row.try_get("expires_at")?),
                    })
                })
                .transpose()
            }

            async fn delete_session(&self, id_hash: &[u8]) -> Result<(), StoreError> {
                sqlx::query(sql::DELETE_SESSION)
                    .bind(id_hash)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn record_audit(
                &self,
                tenant: &TenantId,
                actor: &Actor,
                action: &str,
                object: &str,
                detail: &str,
            ) -> Result<(), StoreError> {
                let now = Utc::now().timestamp_micros();
                audit(
                    &self.writer,
                    tenant.as_str(),
                    now,
                    actor,
                    action,
                    object,
                    detail,
                )
                .await
            }

            async fn purge_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
                let done = sqlx::query(sql::PURGE_SESSIONS)
                    .bind(now.timestamp_micros())
                    .execute(&self.writer)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn create_token(
                &self,
                token: &NewToken<'_>,
                actor: &Actor,
            ) -> Result<ApiToken, StoreError> {
                if token.global && token.role != Role::Admin {
                    return Err(StoreError::Refused(
                        "only an admin token can be global".to_owned(),
                    ));
                }
                let name = token.name.trim();
                if name.is_empty() || name.len() > 200 {
                    return Err(StoreError::Refused(
                        "a token needs a name of 1 to 200 characters".to_owned(),
                    ));
                }
                let now = Utc::now().timestamp_micros();
                let tenant = token.tenant.as_str();
                let mut tx = self.writer.begin().await?;
                let id: i64 = sqlx::query_scalar(sql::INSERT_TOKEN)
                    .bind(tenant)
                    .bind(name)
                    .bind(token.role.as_str())
                    .bind(i64::from(token.global))
                    .bind(token.secret_hash)
                    .bind(&actor.name)
                    .bind(now)
                    .bind(token.expires_at.map(|t| t.timestamp_micros()))
                    .fetch_one(&mut *tx)
                    .await?;
                let detail = format!(
                    "{name} (role {}{})",
                    token.role.as_str(),
                    if token.global { ", global" } else { "" }
                );
                audit(
                    &mut *tx,
                    tenant,
                    now,
                    actor,
                    "token.create",
                    &format!("token:{id}"),
                    &detail,
                )
                .await?;
                let row = sqlx::query(sql::TOKEN)
                    .bind(tenant)
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                let created = decode_token(&row)?;
                tx.commit().await?;
                Ok(created)
            }

            async fn list_tokens(&self, tenant: &TenantId) -> Result<Vec<ApiToken>, StoreError> {
                let rows = sqlx::query(sql::TOKENS)
                    .bind(tenant.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(decode_token).collect()
            }

            async fn revoke_token(
                &self,
                tenant: &TenantId,
                id: i64,
                actor: &Actor,
            ) -> Result<ApiToken, StoreError> {
                let now = Utc::now().timestamp_micros();
                let mut tx = self.writer.begin().await?;
                let Some(row) = sqlx::query(sql::TOKEN)
                    .bind(tenant.as_str())
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                else {
                    return Err(StoreError::NotFound(format!("token {id}")));
                };
                let before = decode_token(&row)?;
                if before.revoked_at.is_none() {
                    sqlx::query(sql::REVOKE_TOKEN)
                        .bind(now)
                        .bind(tenant.as_str())
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    audit(
                        &mut *tx,
                        tenant.as_str(),
                        now,
                        actor,
                        "token.revoke",
                        &format!("token:{id}"),
                        &before.name,
                    )
                    .await?;
                }
                let row = sqlx::query(sql::TOKEN)
                    .bind(tenant.as_str())
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                let after = decode_token(&row)?;
                tx.commit().await?;
                Ok(after)
            }

            async fn token_by_hash(
                &self,
                secret_hash: &[u8],
                now: DateTime<Utc>,
            ) -> Result<Option<ApiToken>, StoreError> {
                let row = sqlx::query(sql::TOKEN_BY_HASH)
                    .bind(secret_hash)
                    .bind(now.timestamp_micros())
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(decode_token).transpose()
            }

            async fn agent_heartbeat(
                &self,
                tenant: &TenantId,
                heartbeat: &AgentHeartbeat,
                origin: &str,
                now: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                sqlx::query(sql::HEARTBEAT)
                    .bind(tenant.as_str())
                    .bind(&heartbeat.agent)
                    .bind(&heartbeat.hostname)
                    .bind(&heartbeat.version)
                    .bind(heartbeat.queue_depth)
                    .bind(heartbeat.last_error.as_deref())
                    .bind(origin)
                    .bind(now.timestamp_micros())
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn list_agents(&self, tenant: &TenantId) -> Result<Vec<AgentStatus>, StoreError> {
                let rows = sqlx::query(sql::AGENTS)
                    .bind(tenant.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|row| {
                        Ok(AgentStatus {
                            tenant: row.try_get("tenant")?,
                            heartbeat: AgentHeartbeat {
                                agent: row.try_get("agent")?,
                                hostname: row.try_get("hostname")?,
                                version: row.try_get("version")?,
                                queue_depth: row.try_get("queue_depth")?,
                                last_error: row.try_get("last_error")?,
                            },
                            origin: row.try_get("origin")?,
                            last_seen: common::time(row.try_get("last_seen")?),
                        })
                    })
                    .collect()
            }

            async fn incidents_changed_since(
                &self,
                since: i64,
                limit: u32,
            ) -> Result<Vec<IncidentChange>, StoreError> {
                let rows = sqlx::query(sql::CHANGED)
                    .bind(since)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|row| {
                        let tenant: String = row.try_get("tenant")?;
                        Ok(IncidentChange {
                            tenant: TenantId::parse(&tenant)
                                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                            id: IncidentId(row.try_get("id")?),
                            created_at: row.try_get("created_at")?,
                            updated_at: row.try_get("updated_at")?,
                        })
                    })
                    .collect()
            }

            async fn incident_alerts(
                &self,
                tenant: &TenantId,
                id: IncidentId,
                after: Option<&str>,
                limit: u32,
            ) -> Result<AlertPage, StoreError> {
                let size = i64::from(limit.clamp(1, 10_000));
                // One more row than asked tells whether more follow.
                let rows = match after {
                    Some(cursor) => {
                        let (ts, alert) = common::decode_cursor(cursor)?;
                        sqlx::query(sql::ALERTS_AFTER)
                            .bind(tenant.as_str())
                            .bind(id.0)
                            .bind(ts)
                            .bind(alert)
                            .bind(size + 1)
                            .fetch_all(&self.pool)
                            .await?
                    }
                    None => {
                        sqlx::query(sql::ALERTS)
                            .bind(tenant.as_str())
                            .bind(id.0)
                            .bind(size + 1)
                            .fetch_all(&self.pool)
                            .await?
                    }
                };
                let mut page = AlertPage {
                    alerts: Vec::with_capacity(rows.len().min(size as usize)),
                    after: None,
                };
                let mut last = None;
                for (n, row) in rows.iter().enumerate() {
                    if n as i64 == size {
                        page.after = last.map(|(ts, alert)| common::encode_cursor(ts, alert));
                        break;
                    }
                    let severity: String = row.try_get("severity")?;
                    let key: Option<Vec<u8>> = row.try_get("event_key")?;
                    let detail: String = row.try_get("detail")?;
                    let ts: i64 = row.try_get("ts")?;
                    let alert: i64 = row.try_get("id")?;
                    last = Some((ts, alert));
                    page.alerts.push(StoredAlert {
                        id: alert,
                        rule_id: row.try_get("rule_id")?,
                        rule_title: row.try_get("rule_title")?,
                        severity: common::parse_severity(&severity)?,
                        event_key: key.as_deref().map(shared::hex),
                        time: common::time(ts),
                        host: row.try_get("host")?,
                        user: row.try_get("user_name")?,
                        src_ip: row.try_get("src_ip")?,
                        detail: serde_json::from_str(&detail)
                            .unwrap_or(serde_json::Value::String(detail)),
                        created_at: common::time(row.try_get("created_at")?),
                    });
                }
                Ok(page)
            }

            async fn dashboard_stats(
                &self,
                tenant: &TenantId,
                now: DateTime<Utc>,
            ) -> Result<DashboardStats, StoreError> {
                let t = tenant.as_str();
                let now = now.timestamp_micros();
                let mut stats = DashboardStats::default();
                for severity in [
                    Severity::Critical,
                    Severity::High,
                    Severity::Medium,
                    Severity::Low,
                    Severity::Informational,
                ] {
                    stats
                        .open_by_severity
                        .insert(severity.as_str().to_owned(), 0);
                }
                for status in Status::ALL {
                    stats.by_status.insert(status.as_str().to_owned(), 0);
                }
                for row in sqlx::query(sql::OPEN_BY_SEVERITY)
                    .bind(t)
                    .fetch_all(&self.pool)
                    .await?
                {
                    let severity: String = row.try_get("severity")?;
                    let n = count(&row)?;
                    stats.incidents_open += n;
                    stats.open_by_severity.insert(severity, n);
                }
                for row in sqlx::query(sql::BY_STATUS)
                    .bind(t)
                    .fetch_all(&self.pool)
                    .await?
                {
                    let status: String = row.try_get("status")?;
                    stats.by_status.insert(status, count(&row)?);
                }
                let total: i64 = sqlx::query_scalar(sql::EVENTS_TOTAL)
                    .bind(t)
                    .fetch_one(&self.pool)
                    .await?;
                stats.events_total = total.max(0) as u64;
                let since =
                    (now.div_euclid(shared::MINUTE) - shared::STATS_MINUTES + 1) * shared::MINUTE;
                let per_minute = bucket_counts(
                    &self.pool,
                    sql::EVENTS_PER_MINUTE,
                    t,
                    since.div_euclid(shared::MINUTE),
                )
                .await?;
                stats.events_per_minute = shared::series(
                    &per_minute,
                    now,
                    shared::MINUTE,
                    shared::STATS_MINUTES,
                    shared::minute_label,
                );
                let since = (now.div_euclid(shared::DAY) - shared::STATS_DAYS + 1) * shared::DAY;
                let per_day = bucket_counts(&self.pool, sql::INCIDENTS_PER_DAY, t, since).await?;
                stats.incidents_over_time = shared::series(
                    &per_day,
                    now,
                    shared::DAY,
                    shared::STATS_DAYS,
                    shared::day_label,
                );
                let since = now - shared::TOP_DAYS * shared::DAY;
                for row in sqlx::query(sql::TOP_RULES)
                    .bind(t)
                    .bind(since)
                    .bind(shared::TOP_N)
                    .fetch_all(&self.pool)
                    .await?
                {
                    stats.top_rules.push(NamedCount {
                        name: row.try_get("rule_id")?,
                        title: row.try_get("title")?,
                        count: count(&row)?,
                    });
                }
                for row in sqlx::query(sql::TOP_HOSTS)
                    .bind(t)
                    .bind(since)
                    .bind(shared::TOP_N)
                    .fetch_all(&self.pool)
                    .await?
                {
                    let host: String = row.try_get("host")?;
                    stats.top_hosts.push(NamedCount {
                        title: host.clone(),
                        name: host,
                        count: count(&row)?,
                    });
                }
                Ok(stats)
            }

            async fn incidents_by_status(&self) -> Result<Vec<(String, u64)>, StoreError> {
                let rows = sqlx::query(sql::ALL_BY_STATUS)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|row| Ok((row.try_get("status")?, count(row)?)))
                    .collect()
            }
        }
    };
}

pub(super) use server_methods;
