//! Retention: how long each kind of data is kept, per tenant with a default, and the purge
//! that enforces it, in small batches (the server in the background, `siren purge` from
//! cron). What each kind covers, and what is never removed (open incidents and their
//! evidence, the audit log), is stated in [`crate::store::retention`].
//!
//! ```yaml
//! retention:
//!   events: 90d
//!   incidents: 400d      # closed ones, by their last change
//!   outbox: 30d
//!   sessions: 7d         # after they expire
//!   correlation: 30d
//!   archive: true        # events go to the `archive:` section's archive before they go
//!   tenants:
//!     acme: { events: 365d }
//!     lab: { events: forever, archive: false }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::archive::{Archive, ArchivedEvent};
use crate::event::TenantId;
use crate::store::{AuditLog, Cutoffs, Purged, Retention, StoreError};
use crate::user::Actor;

/// How long something is kept: an age (`90d`, `12h`, `1y`) or `forever`.
#[derive(Clone, PartialEq, Eq)]
pub struct Keep {
    /// The age; `None` for `forever`.
    age: Option<Duration>,
    /// As written.
    text: String,
}

impl Keep {
    /// Parses `90d`, `36h`, `2w`, `1y`, … or `forever`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("forever") {
            return Ok(Self {
                age: None,
                text: "forever".to_owned(),
            });
        }
        let age = humantime::parse_duration(text).map_err(|e| {
            format!("invalid retention '{text}' ({e}): use an age such as 90d, 12h, 1y, or forever")
        })?;
        Ok(Self {
            age: Some(age),
            text: text.to_owned(),
        })
    }

    /// As written (`90d`, `forever`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Until when something taken at `now` is kept this long (the end of time for
    /// `forever`, or an age past it).
    pub fn until(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.cutoff(now)
            .and_then(|cutoff| now.checked_add_signed(now - cutoff))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// The time before which data kept this long goes, at `now` (`None`: kept forever).
    pub fn cutoff(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let age = chrono::Duration::from_std(self.age?).ok()?;
        Some(
            now.checked_sub_signed(age)
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        )
    }
}

impl fmt::Debug for Keep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Keep {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Keep {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// How long each kind is kept (a kind not given: its default's, else forever).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Events, by their time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Keep>,
    /// Resolved and closed incidents, by their last change; never an open one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incidents: Option<Keep>,
    /// Dispatched outbox changes and finished notification deliveries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbox: Option<Keep>,
    /// Browser sessions, after they expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<Keep>,
    /// Correlation checkpoints not saved since.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation: Option<Keep>,
    /// Whether events are written to the archive before they are deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<bool>,
}

impl Policy {
    /// Whether events are archived before they go.
    pub fn archives(&self) -> bool {
        self.archive == Some(true)
    }

    /// This policy, with `default`'s value for each kind it does not give.
    fn or(&self, default: &Policy) -> Policy {
        Policy {
            events: self.events.clone().or_else(|| default.events.clone()),
            incidents: self.incidents.clone().or_else(|| default.incidents.clone()),
            outbox: self.outbox.clone().or_else(|| default.outbox.clone()),
            sessions: self.sessions.clone().or_else(|| default.sessions.clone()),
            correlation: self
                .correlation
                .clone()
                .or_else(|| default.correlation.clone()),
            archive: self.archive.or(default.archive),
        }
    }

    /// The cutoffs at `now`.
    pub fn cutoffs(&self, now: DateTime<Utc>) -> Cutoffs {
        let at = |keep: &Option<Keep>| keep.as_ref().and_then(|k| k.cutoff(now));
        Cutoffs {
            events: at(&self.events),
            incidents: at(&self.incidents),
            outbox: at(&self.outbox),
            sessions: at(&self.sessions),
            correlation: at(&self.correlation),
            now: Some(now),
        }
    }
}

/// The `retention:` section: the default policy, per-tenant policies, and how the server
/// runs the purge. Without it nothing is purged.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Events, by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Keep>,
    /// Closed incidents, by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incidents: Option<Keep>,
    /// The outbox, by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbox: Option<Keep>,
    /// Expired sessions, by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<Keep>,
    /// Correlation checkpoints, by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation: Option<Keep>,
    /// Whether events are archived before they go, by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<bool>,
    /// Per-tenant policies, each over the default.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tenants: BTreeMap<String, Policy>,
    /// How often the server purges.
    #[serde(default = "default_interval", with = "humantime_serde_compat")]
    pub interval: Duration,
    /// Rows of each kind per transaction.
    #[serde(default = "default_batch")]
    pub batch: u32,
    /// The pause between two batches, which lets ingest in.
    #[serde(default = "default_pause", with = "humantime_serde_compat")]
    pub pause: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            events: None,
            incidents: None,
            outbox: None,
            sessions: None,
            correlation: None,
            archive: None,
            tenants: BTreeMap::new(),
            interval: default_interval(),
            batch: default_batch(),
            pause: default_pause(),
        }
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(3600)
}

fn default_batch() -> u32 {
    1000
}

fn default_pause() -> Duration {
    Duration::from_millis(20)
}

/// Durations written as `1h`, `20ms`.
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim())
            .map_err(|e| serde::de::Error::custom(format!("invalid duration '{text}': {e}")))
    }

    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*value).to_string())
    }
}

impl RetentionConfig {
    /// The default policy.
    pub fn default_policy(&self) -> Policy {
        Policy {
            events: self.events.clone(),
            incidents: self.incidents.clone(),
            outbox: self.outbox.clone(),
            sessions: self.sessions.clone(),
            correlation: self.correlation.clone(),
            archive: self.archive,
        }
    }

    /// The archive `config` names, opened, checking that a policy that archives has one.
    pub fn open_archive(
        &self,
        config: Option<&crate::archive::ArchiveConfig>,
    ) -> Result<Option<Archive>, String> {
        match config {
            Some(config) => Archive::open(config).map(Some).map_err(|e| e.to_string()),
            None if self.archives() => Err(
                "retention: a policy archives events (`archive: true`) and no `archive:` section says where"
                    .to_owned(),
            ),
            None => Ok(None),
        }
    }

    /// Whether any policy archives events.
    pub fn archives(&self) -> bool {
        self.archive == Some(true) || self.tenants.values().any(|p| p.archive == Some(true))
    }

    /// The policy that applies to `tenant`.
    pub fn policy(&self, tenant: &TenantId) -> Policy {
        let default = self.default_policy();
        match self.tenants.get(tenant.as_str()) {
            Some(own) => own.or(&default),
            None => default,
        }
    }

    /// Whether no policy keeps anything for less than forever.
    pub fn is_empty(&self) -> bool {
        let ages = |p: &Policy| {
            [
                &p.events,
                &p.incidents,
                &p.outbox,
                &p.sessions,
                &p.correlation,
            ]
            .into_iter()
            .flatten()
            .all(|keep| keep.age.is_none())
        };
        ages(&self.default_policy()) && self.tenants.values().all(ages)
    }

    /// Refuses tenant names that are not valid, naming them.
    pub fn validate(&self) -> Result<(), String> {
        for name in self.tenants.keys() {
            TenantId::parse(name)
                .map_err(|e| format!("retention.tenants: invalid tenant '{name}': {e}"))?;
        }
        if self.batch == 0 {
            return Err("retention.batch: must be at least 1".to_owned());
        }
        Ok(())
    }
}

/// A kind of data a purge can be limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Events.
    Events,
    /// Closed incidents with their alerts and timeline.
    Incidents,
    /// The notification outbox.
    Outbox,
    /// Sessions.
    Sessions,
    /// Correlation checkpoints.
    Correlation,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 5] = [
        Kind::Events,
        Kind::Incidents,
        Kind::Outbox,
        Kind::Sessions,
        Kind::Correlation,
    ];

    /// Parses a kind's name.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == text.trim())
            .ok_or_else(|| {
                format!("unknown kind '{text}': expected events, incidents, outbox, sessions or correlation")
            })
    }

    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Events => "events",
            Kind::Incidents => "incidents",
            Kind::Outbox => "outbox",
            Kind::Sessions => "sessions",
            Kind::Correlation => "correlation",
        }
    }
}

/// What to purge, and how.
#[derive(Debug, Clone)]
pub struct PurgeRequest {
    /// The time the policies count back from.
    pub now: DateTime<Utc>,
    /// Instead of the policies: remove what is older than this, of every kind asked.
    pub before: Option<DateTime<Utc>>,
    /// The kinds (empty: all).
    pub kinds: Vec<Kind>,
    /// One tenant (`None`: every tenant that has data).
    pub tenant: Option<TenantId>,
    /// Count only.
    pub dry_run: bool,
    /// Where events go before they are deleted, for the policies that archive them.
    pub archive: Option<Archive>,
}

/// What a purge removed (or would) for one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantPurge {
    /// Tenant.
    pub tenant: String,
    /// The times before which each kind went (absent: kept).
    pub cutoffs: Cutoffs,
    /// Rows per table.
    pub removed: Purged,
    /// What went to the archive.
    pub archived: Archived,
}

/// What a purge wrote to the archive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Archived {
    /// Events.
    pub events: u64,
    /// Parts.
    pub parts: u64,
    /// Bytes, compressed.
    pub bytes: u64,
}

impl std::ops::AddAssign for Archived {
    fn add_assign(&mut self, other: Self) {
        self.events += other.events;
        self.parts += other.parts;
        self.bytes += other.bytes;
    }
}

/// What a purge removed (or, dry run, would remove).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    /// Counted only.
    pub dry_run: bool,
    /// When it ran.
    pub at: DateTime<Utc>,
    /// Per tenant.
    pub tenants: Vec<TenantPurge>,
    /// Over all tenants.
    pub total: Purged,
    /// Written to the archive, over all tenants.
    pub archived: Archived,
}

impl RetentionConfig {
    /// The cutoffs of `tenant` under `request`.
    pub fn cutoffs(&self, tenant: &TenantId, request: &PurgeRequest) -> Cutoffs {
        let all = match request.before {
            Some(before) => Cutoffs {
                events: Some(before),
                incidents: Some(before),
                outbox: Some(before),
                sessions: Some(before),
                correlation: Some(before),
                now: Some(request.now),
            },
            None => self.policy(tenant).cutoffs(request.now),
        };
        let asked = |kind: Kind| request.kinds.is_empty() || request.kinds.contains(&kind);
        let keep = |kind: Kind, at: Option<DateTime<Utc>>| if asked(kind) { at } else { None };
        Cutoffs {
            events: keep(Kind::Events, all.events),
            incidents: keep(Kind::Incidents, all.incidents),
            outbox: keep(Kind::Outbox, all.outbox),
            sessions: keep(Kind::Sessions, all.sessions),
            correlation: keep(Kind::Correlation, all.correlation),
            now: Some(request.now),
        }
    }
}

/// Purges (or, dry run, counts) what `config` no longer keeps, tenant by tenant, in batches
/// of `config.batch` rows with `config.pause` between them. Each tenant that lost rows gets
/// an audit entry by `actor` saying how many of each kind.
pub async fn purge<S>(
    store: &S,
    config: &RetentionConfig,
    request: &PurgeRequest,
    actor: &Actor,
) -> Result<PurgeReport, StoreError>
where
    S: Retention + AuditLog + ?Sized,
{
    let tenants = match &request.tenant {
        Some(tenant) => vec![tenant.clone()],
        None => store.tenants().await?,
    };
    let mut report = PurgeReport {
        dry_run: request.dry_run,
        at: request.now,
        tenants: Vec::new(),
        total: Purged::default(),
        archived: Archived::default(),
    };
    for tenant in tenants {
        let cutoffs = config.cutoffs(&tenant, request);
        if cutoffs.keeps_all() {
            continue;
        }
        let archiving = config.policy(&tenant).archives() && cutoffs.events.is_some();
        let archive = match (&request.archive, archiving) {
            (Some(archive), true) => Some(archive),
            (None, true) => {
                return Err(StoreError::Refused(format!(
                    "the retention policy of tenant '{}' archives events, and no archive is configured",
                    tenant.as_str()
                )));
            }
            (_, false) => None,
        };
        let mut archived = Archived::default();
        let removed = if request.dry_run {
            store.purge_count(&tenant, &cutoffs).await?
        } else {
            let mut removed = Purged::default();
            if let Some(archive) = archive {
                (removed.events, archived) =
                    archive_events(store, archive, &tenant, &cutoffs, config).await?;
            }
            // Archiving took the due events; the batches below take the other kinds.
            let cutoffs = Cutoffs {
                events: cutoffs.events.filter(|_| archive.is_none()),
                ..cutoffs
            };
            loop {
                let batch = store.purge_batch(&tenant, &cutoffs, config.batch).await?;
                removed += batch;
                if batch.total() == 0 {
                    break;
                }
                tokio::time::sleep(config.pause).await;
            }
            if removed.total() > 0 {
                let detail = serde_json::json!({
                    "cutoffs": cutoffs,
                    "removed": removed,
                    "archived": archived,
                });
                let object = format!("tenant:{}", tenant.as_str());
                store
                    .record_audit(
                        &tenant,
                        actor,
                        "retention.purge",
                        &object,
                        &detail.to_string(),
                    )
                    .await?;
            }
            removed
        };
        report.total += removed;
        report.archived += archived;
        report.tenants.push(TenantPurge {
            tenant: tenant.as_str().to_owned(),
            cutoffs,
            removed,
            archived,
        });
    }
    Ok(report)
}

/// Moves `tenant`'s due events to `archive`, batch by batch: each batch is written whole
/// (parts and manifests) before it is deleted, so an interrupted purge loses nothing (it
/// may leave events both archived and stored, which restoring de-duplicates). Events that
/// came from the archive are deleted without being written again.
async fn archive_events<S>(
    store: &S,
    archive: &Archive,
    tenant: &TenantId,
    cutoffs: &Cutoffs,
    config: &RetentionConfig,
) -> Result<(u64, Archived), StoreError>
where
    S: Retention + ?Sized,
{
    let mut removed = 0;
    let mut archived = Archived::default();
    loop {
        let due = store.due_events(tenant, cutoffs, config.batch).await?;
        if due.is_empty() {
            break;
        }
        let records: Vec<ArchivedEvent> = due
            .iter()
            .filter(|due| !due.restored)
            .map(|due| ArchivedEvent {
                key: ArchivedEvent::key_text(&due.key),
                ingested_at: due.ingested_at,
                event: due.event.clone(),
            })
            .collect();
        for part in archive.write(tenant, &records).await? {
            archived += Archived {
                events: part.events,
                parts: 1,
                bytes: part.bytes,
            };
        }
        let ids: Vec<i64> = due.iter().map(|due| due.id).collect();
        let gone = store.remove_events(tenant, cutoffs, &ids).await?;
        removed += gone;
        if gone == 0 {
            // Every one was claimed by an alert meanwhile: they stay, and so would the next
            // batch's.
            break;
        }
        tokio::time::sleep(config.pause).await;
    }
    Ok((removed, archived))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_tenant_policy_overrides_the_default_kind_by_kind() {
        let config: RetentionConfig = serde_yaml::from_str(
            "events: 90d\nincidents: 400d\ntenants:\n  acme: { events: 365d }\n  lab: { events: forever }\n",
        )
        .unwrap();
        let now = at("2026-06-01T00:00:00Z");
        let request = PurgeRequest {
            now,
            before: None,
            kinds: Vec::new(),
            tenant: None,
            dry_run: false,
            archive: None,
        };
        let cutoffs = |name: &str| config.cutoffs(&TenantId::parse(name).unwrap(), &request);
        assert_eq!(cutoffs("other").events, Some(at("2026-03-03T00:00:00Z")));
        assert_eq!(cutoffs("acme").events, Some(at("2025-06-01T00:00:00Z")));
        assert_eq!(cutoffs("acme").incidents, cutoffs("other").incidents);
        assert_eq!(cutoffs("lab").events, None);
        assert_eq!(cutoffs("lab").outbox, None);

        let only_events = PurgeRequest {
            kinds: vec![Kind::Events],
            before: Some(at("2026-01-01T00:00:00Z")),
            ..request
        };
        let cut = config.cutoffs(&TenantId::parse("lab").unwrap(), &only_events);
        assert_eq!(cut.events, Some(at("2026-01-01T00:00:00Z")));
        assert_eq!(cut.incidents, None);
    }

    #[test]
    fn bad_ages_and_unknown_keys_are_refused_by_name() {
        let error = serde_yaml::from_str::<RetentionConfig>("events: ninety days\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("invalid retention 'ninety days'"), "{error}");
        let error = serde_yaml::from_str::<RetentionConfig>("event: 90d\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("event"), "{error}");
        assert!(
            Kind::parse("audit").is_err(),
            "the audit log is never purged"
        );
    }
}
