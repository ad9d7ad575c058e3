//! Retention in the server: the background purge that enforces the `retention:` policies
//! (every `retention.interval`, in batches of `retention.batch` rows with a pause between
//! them, so ingest is never held for long), and its API:
//!
//! - `GET /api/v1/retention` — the tenant's policy, its cutoffs now, its oldest event and
//!   event count, the database's size, and the last and next background purge (admin);
//! - `POST /api/v1/retention/purge` — purges the tenant now, or counts (`dry_run`), by its
//!   policy or by `before`, optionally only some `kinds` (admin; audited).

use std::sync::Mutex;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use siren_core::archive::{Archive, Usage};
use siren_core::retention::{self, Kind, Policy, PurgeReport, PurgeRequest, RetentionConfig};
use siren_core::store::{Cutoffs, Purged};
use siren_core::user::Actor;

use crate::AppState;
use crate::auth::{Access, Administer};
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;

/// `/api/v1/retention…`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/retention", get(status))
        .route("/api/v1/retention/purge", post(purge_now))
}

/// The background purge's last run.
#[derive(Debug, Clone, Serialize)]
pub struct LastRun {
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Rows removed over every tenant.
    pub removed: Purged,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

/// The policies and what the background purge did and will do.
pub struct Retention {
    config: RetentionConfig,
    archive: Option<Archive>,
    usage: Mutex<Option<Usage>>,
    last: Mutex<Option<LastRun>>,
    next: Mutex<Option<DateTime<Utc>>>,
}

impl Retention {
    /// The policies of `config` (no background purge runs when none limits anything), with
    /// the archive events go to before they are deleted, if any.
    pub fn new(config: RetentionConfig, archive: Option<Archive>) -> Self {
        Self {
            config,
            archive,
            usage: Mutex::new(None),
            last: Mutex::new(None),
            next: Mutex::new(None),
        }
    }

    /// The policies.
    pub fn config(&self) -> &RetentionConfig {
        &self.config
    }

    /// The archive, if one is configured.
    pub fn archive(&self) -> Option<&Archive> {
        self.archive.as_ref()
    }

    /// What the archive held when last looked at (after each background run).
    pub fn archive_usage(&self) -> Option<Usage> {
        self.usage.lock().map(|u| *u).unwrap_or_default()
    }

    /// Looks at what the archive holds now.
    pub async fn refresh_archive_usage(&self) {
        let Some(archive) = &self.archive else {
            return;
        };
        match archive.usage(None).await {
            Ok(usage) => {
                if let Ok(mut slot) = self.usage.lock() {
                    *slot = Some(usage);
                }
            }
            Err(error) => tracing::warn!(%error, "cannot list the archive"),
        }
    }

    /// The last background run.
    pub fn last(&self) -> Option<LastRun> {
        self.last.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// When the next background run starts (none: not scheduled, or running now).
    pub fn next(&self) -> Option<DateTime<Utc>> {
        self.next.lock().map(|n| *n).unwrap_or_default()
    }
}

/// The server's own actor for the purges it runs.
fn siren_actor() -> Actor {
    Actor {
        name: siren_core::incident::SYSTEM_ACTOR.to_owned(),
        origin: "retention".to_owned(),
    }
}

/// Purges every tenant by its policy every `retention.interval` until `stop`; a run in
/// progress when the server stops is abandoned between batches (each batch commits whole).
pub async fn run(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let retention = state.retention().clone();
    retention.refresh_archive_usage().await;
    if retention.config.is_empty() {
        return;
    }
    let actor = siren_actor();
    loop {
        if let Ok(mut next) = retention.next.lock() {
            *next = None;
        }
        let started_at = Utc::now();
        let request = PurgeRequest {
            now: started_at,
            before: None,
            kinds: Vec::new(),
            tenant: None,
            dry_run: false,
            archive: retention.archive.clone(),
        };
        let purge = retention::purge(&**state.store(), &retention.config, &request, &actor);
        let outcome = tokio::select! {
            outcome = purge => outcome,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        let (removed, error) = match outcome {
            Ok(report) => (report.total, None),
            Err(error) => {
                tracing::warn!(%error, "the retention purge failed; it runs again next time");
                (Purged::default(), Some(error.to_string()))
            }
        };
        if removed.total() > 0 {
            tracing::info!(?removed, "retention purge");
        }
        state.metrics().purged(&removed);
        retention.refresh_archive_usage().await;
        let interval = retention.config.interval;
        if let Ok(mut last) = retention.last.lock() {
            *last = Some(LastRun {
                started_at,
                finished_at: Utc::now(),
                removed,
                error,
            });
        }
        if let Ok(mut next) = retention.next.lock() {
            *next = chrono::Duration::from_std(interval)
                .ok()
                .and_then(|d| Utc::now().checked_add_signed(d));
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// What `GET /api/v1/retention` answers.
#[derive(Debug, Serialize)]
pub struct RetentionView {
    /// The tenant.
    pub tenant: String,
    /// Its policy (a kind absent: kept forever).
    pub policy: Policy,
    /// The times before which each kind goes, now.
    pub cutoffs: Cutoffs,
    /// The oldest stored event's time.
    pub oldest_event: Option<DateTime<Utc>>,
    /// Events stored.
    pub events: u64,
    /// The whole database's size in bytes (every tenant).
    pub database_bytes: u64,
    /// How often the server purges (none: no background purge, no policy limits anything).
    pub interval_seconds: Option<u64>,
    /// The last background purge (every tenant's rows).
    pub last_run: Option<LastRun>,
    /// The next background purge.
    pub next_run: Option<DateTime<Utc>>,
    /// The archive events go to before they are deleted, if one is configured.
    pub archive: Option<ArchiveView>,
}

/// The archive, as `GET /api/v1/retention` shows it.
#[derive(Debug, Serialize)]
pub struct ArchiveView {
    /// Where it is (`s3://BUCKET/PREFIX` or a folder).
    pub location: String,
    /// Whether the tenant's policy archives events before deleting them.
    pub archives_events: bool,
    /// The tenant's parts.
    pub parts: u64,
    /// Their bytes, compressed.
    pub bytes: u64,
    /// Why the archive could not be listed, if it could not.
    pub error: Option<String>,
}

async fn status(
    State(state): State<AppState>,
    access: Access<Administer>,
) -> ApiResult<Json<RetentionView>> {
    let retention = state.retention();
    let config = retention.config();
    let policy = config.policy(&access.tenant);
    let span = state
        .store()
        .spans()
        .await?
        .into_iter()
        .find(|s| s.tenant == access.tenant.as_str())
        .unwrap_or_default();
    let archive = match retention.archive() {
        Some(archive) => {
            let (usage, error) = match archive.usage(Some(&access.tenant)).await {
                Ok(usage) => (usage, None),
                Err(error) => (Usage::default(), Some(error.to_string())),
            };
            Some(ArchiveView {
                location: archive.location().to_owned(),
                archives_events: policy.archives(),
                parts: usage.parts,
                bytes: usage.bytes,
                error,
            })
        }
        None => None,
    };
    Ok(Json(RetentionView {
        tenant: access.tenant.as_str().to_owned(),
        archive,
        cutoffs: policy.cutoffs(Utc::now()),
        policy,
        oldest_event: span.oldest_event,
        events: span.events,
        database_bytes: state.store().database_bytes().await?,
        interval_seconds: (!config.is_empty()).then_some(config.interval.as_secs()),
        last_run: retention.last(),
        next_run: retention.next(),
    }))
}

/// `POST /api/v1/retention/purge`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeBody {
    /// Count only.
    #[serde(default)]
    dry_run: bool,
    /// Instead of the policy: what is older than this goes.
    before: Option<DateTime<Utc>>,
    /// Only these kinds.
    #[serde(default)]
    kinds: Vec<Kind>,
}

async fn purge_now(
    State(state): State<AppState>,
    access: Access<Administer>,
    JsonBody(body): JsonBody<PurgeBody>,
) -> ApiResult<Json<PurgeReport>> {
    let now = Utc::now();
    if body.before.is_some_and(|before| before > now) {
        return Err(ApiError::BadRequest(
            "before: a time in the future would purge what is being stored now".to_owned(),
        ));
    }
    let request = PurgeRequest {
        now,
        before: body.before,
        kinds: body.kinds,
        tenant: Some(access.tenant.clone()),
        dry_run: body.dry_run,
        archive: state.retention().archive.clone(),
    };
    let report = retention::purge(
        &**state.store(),
        state.retention().config(),
        &request,
        &access.actor(),
    )
    .await?;
    if !report.dry_run {
        state.metrics().purged(&report.total);
        state.incidents_changed();
    }
    Ok(Json(report))
}
