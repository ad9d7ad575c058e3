//! `GET /api/v1/stats`: the dashboard overview's counts. They are computed by the store
//! (counting over a million events takes a while), kept per tenant for [`FRESH`], and
//! refreshed in the background while the previous answer is served, so at most one count
//! per tenant runs at a time however many dashboards are open (when there is no answer yet,
//! the first caller counts and the others wait for its answer).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use siren_core::TenantId;
use siren_core::api::Overview;
use siren_core::store::server::DashboardStats;

use crate::AppState;
use crate::auth::{Access, Read};
use crate::error::ApiResult;

/// How long counts are served without a refresh.
pub const FRESH: Duration = Duration::from_secs(2);
/// Counts older than this are recomputed before answering.
pub const STALE: Duration = Duration::from_secs(30);

/// `/api/v1/stats`.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/stats", get(stats))
}

struct Entry {
    at: Instant,
    stats: Arc<DashboardStats>,
    refreshing: bool,
}

/// The latest counts per tenant.
#[derive(Default)]
pub struct StatsCache {
    entries: Mutex<HashMap<TenantId, Entry>>,
    /// Held while counts are computed for a caller that has none to be served: callers
    /// arriving meanwhile wait for them instead of counting too.
    counting: tokio::sync::Mutex<()>,
}

impl StatsCache {
    fn lookup(&self, tenant: &TenantId) -> (Option<Arc<DashboardStats>>, bool) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match entries.get_mut(tenant) {
            Some(entry) if entry.at.elapsed() < FRESH => (Some(entry.stats.clone()), false),
            Some(entry) if entry.at.elapsed() < STALE => {
                let refresh = !entry.refreshing;
                entry.refreshing = true;
                (Some(entry.stats.clone()), refresh)
            }
            _ => (None, false),
        }
    }

    /// Counts that may be served as they are (younger than [`STALE`]), changing nothing.
    fn servable(&self, tenant: &TenantId) -> Option<Arc<DashboardStats>> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .get(tenant)
            .filter(|entry| entry.at.elapsed() < STALE)
            .map(|entry| entry.stats.clone())
    }

    fn store(&self, tenant: &TenantId, stats: Arc<DashboardStats>) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.insert(
            tenant.clone(),
            Entry {
                at: Instant::now(),
                stats,
                refreshing: false,
            },
        );
    }

    fn refresh_failed(&self, tenant: &TenantId) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = entries.get_mut(tenant) {
            entry.refreshing = false;
        }
    }
}

/// The tenant's counts, at most [`FRESH`] old (or [`STALE`] while a refresh runs).
pub async fn tenant_stats(state: &AppState, tenant: &TenantId) -> ApiResult<Arc<DashboardStats>> {
    let cache = state.stats_cache();
    match cache.lookup(tenant) {
        (Some(stats), false) => Ok(stats),
        (Some(stats), true) => {
            let (state, tenant) = (state.clone(), tenant.clone());
            tokio::spawn(async move {
                match state
                    .store()
                    .dashboard_stats(&tenant, chrono::Utc::now())
                    .await
                {
                    Ok(fresh) => state.stats_cache().store(&tenant, Arc::new(fresh)),
                    Err(error) => {
                        tracing::warn!(%error, tenant = %tenant, "refreshing the overview failed");
                        state.stats_cache().refresh_failed(&tenant);
                    }
                }
            });
            Ok(stats)
        }
        (None, _) => {
            let _counting = cache.counting.lock().await;
            if let Some(stats) = cache.servable(tenant) {
                return Ok(stats);
            }
            let stats = Arc::new(
                state
                    .store()
                    .dashboard_stats(tenant, chrono::Utc::now())
                    .await?,
            );
            cache.store(tenant, stats.clone());
            Ok(stats)
        }
    }
}

async fn stats(State(state): State<AppState>, access: Access<Read>) -> ApiResult<Json<Overview>> {
    let stats = tenant_stats(&state, &access.tenant).await?;
    Ok(Json(Overview::new(access.tenant.as_str(), &stats)))
}
