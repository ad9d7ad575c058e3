//! `/metrics` in the Prometheus (OpenMetrics) text format: events received, stored, duplicate
//! and rejected; incidents by status; request latencies by route; retention (rows purged,
//! the next purge, each tenant's oldest event and events, the database's size). Open when
//! `server.metrics_public` is set, else for global admins only (it counts every tenant).

use std::time::Instant;

use axum::Router;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use siren_core::ingest::BatchOutcome;

use crate::AppState;
use crate::auth::{Access, Administer};
use crate::error::{ApiError, ApiResult};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabel {
    table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabel {
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabel {
    partition: String,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.25 ms … 8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    events_received: Counter,
    events_stored: Counter,
    events_duplicate: Counter,
    events_rejected: Counter,
    batches_refused_busy: Counter,
    incidents: Family<StatusLabel, Gauge>,
    latency: LatencyFamily,
    partition_lag: Family<PartitionLabel, Gauge>,
    partition_applied: Family<PartitionLabel, Gauge>,
    partitions_owned: Gauge,
    purged: Family<TableLabel, Counter>,
    oldest_event: Family<TenantLabel, Gauge>,
    tenant_events: Family<TenantLabel, Gauge>,
    database_bytes: Gauge,
    archive_bytes: Gauge,
    archive_parts: Gauge,
    next_purge: Gauge,
    disk_free: Gauge,
    disk_total: Gauge,
    disk_low: Gauge,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("siren");
        let metrics = Self {
            events_received: Counter::default(),
            events_stored: Counter::default(),
            events_duplicate: Counter::default(),
            events_rejected: Counter::default(),
            batches_refused_busy: Counter::default(),
            incidents: Family::default(),
            latency: LatencyFamily::new_with_constructor(latency_histogram),
            partition_lag: Family::default(),
            partition_applied: Family::default(),
            partitions_owned: Gauge::default(),
            purged: Family::default(),
            oldest_event: Family::default(),
            tenant_events: Family::default(),
            database_bytes: Gauge::default(),
            archive_bytes: Gauge::default(),
            archive_parts: Gauge::default(),
            next_purge: Gauge::default(),
            disk_free: Gauge::default(),
            disk_total: Gauge::default(),
            disk_low: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "cluster_partitions_owned",
            "Distributed mode: partitions this process correlates",
            metrics.partitions_owned.clone(),
        );
        registry.register(
            "cluster_partition_lag",
            "Distributed mode: messages of an owned partition not applied yet",
            metrics.partition_lag.clone(),
        );
        registry.register(
            "cluster_partition_applied",
            "Distributed mode: the last stream sequence applied of an owned partition",
            metrics.partition_applied.clone(),
        );
        registry.register(
            "events_received",
            "Events received by POST /events",
            metrics.events_received.clone(),
        );
        registry.register(
            "events_stored",
            "Events stored (new)",
            metrics.events_stored.clone(),
        );
        registry.register(
            "events_duplicate",
            "Events already stored",
            metrics.events_duplicate.clone(),
        );
        registry.register(
            "events_rejected",
            "Items of POST /events that were not events",
            metrics.events_rejected.clone(),
        );
        registry.register(
            "ingest_busy",
            "POST /events answered 503 because the store was busy",
            metrics.batches_refused_busy.clone(),
        );
        registry.register(
            "incidents",
            "Incidents by status (every tenant)",
            metrics.incidents.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            metrics.latency.clone(),
        );
        registry.register(
            "retention_purged_rows",
            "Rows removed by retention purges, by table",
            metrics.purged.clone(),
        );
        registry.register(
            "retention_next_purge_timestamp_seconds",
            "When the background purge runs next (0: not scheduled or running)",
            metrics.next_purge.clone(),
        );
        registry.register(
            "oldest_event_timestamp_seconds",
            "The oldest stored event's time, by tenant",
            metrics.oldest_event.clone(),
        );
        registry.register(
            "tenant_events",
            "Events stored, by tenant",
            metrics.tenant_events.clone(),
        );
        registry.register(
            "database_size_bytes",
            "The database's size on disk",
            metrics.database_bytes.clone(),
        );
        registry.register(
            "archive_size_bytes",
            "The archive's parts' bytes, every tenant's (as of the last purge run)",
            metrics.archive_bytes.clone(),
        );
        registry.register(
            "archive_parts",
            "The archive's parts, every tenant's (as of the last purge run)",
            metrics.archive_parts.clone(),
        );
        registry.register(
            "disk_free_bytes",
            "Free space of the embedded database's file system",
            metrics.disk_free.clone(),
        );
        registry.register(
            "disk_size_bytes",
            "Size of the embedded database's file system",
            metrics.disk_total.clone(),
        );
        registry.register(
            "disk_low",
            "1 while the database's file system has less than server.disk_warn_percent free",
            metrics.disk_low.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    /// Records the database file system's free space.
    pub fn disk(&self, free: u64, total: u64, low: bool) {
        let clamp = |n: u64| n.min(i64::MAX as u64) as i64;
        self.disk_free.set(clamp(free));
        self.disk_total.set(clamp(total));
        self.disk_low.set(i64::from(low));
    }

    /// Counts rows a purge removed.
    pub fn purged(&self, removed: &siren_core::store::Purged) {
        let Ok(serde_json::Value::Object(tables)) = serde_json::to_value(removed) else {
            return;
        };
        for (table, n) in tables {
            let n = n.as_u64().unwrap_or(0);
            if n > 0 {
                self.purged.get_or_create(&TableLabel { table }).inc_by(n);
            }
        }
    }

    /// Counts a batch.
    pub fn ingested(&self, outcome: &BatchOutcome) {
        self.events_received.inc_by(outcome.received);
        self.events_stored.inc_by(outcome.stored);
        self.events_duplicate.inc_by(outcome.duplicates);
        self.events_rejected.inc_by(outcome.rejected.len() as u64);
    }

    /// Counts a batch refused because the store was busy.
    pub fn busy(&self) {
        self.batches_refused_busy.inc();
    }

    fn observe(&self, method: &str, route: String, status: u16, seconds: f64) {
        self.latency
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route,
                status,
            })
            .observe(seconds);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Records every request's latency under its route pattern (never the raw path, so ids do
/// not multiply the series).
pub async fn track_request(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics().observe(
        method.as_str(),
        route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `/metrics`.
pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    if !state.config().metrics_public {
        let (mut parts, _) = request.into_parts();
        let access = Access::<Administer>::from_request_parts(&mut parts, &state).await?;
        if !access.global {
            return Err(ApiError::Forbidden(
                "metrics cover every tenant: a global admin only".to_owned(),
            ));
        }
    }
    let metrics = state.metrics();
    metrics.incidents.clear();
    for (status, count) in state.store().incidents_by_status().await? {
        metrics
            .incidents
            .get_or_create(&StatusLabel { status })
            .set(count.min(i64::MAX as u64) as i64);
    }
    metrics.oldest_event.clear();
    metrics.tenant_events.clear();
    for span in state.store().spans().await? {
        let label = TenantLabel {
            tenant: span.tenant,
        };
        if let Some(oldest) = span.oldest_event {
            metrics
                .oldest_event
                .get_or_create(&label)
                .set(oldest.timestamp());
        }
        let events = span.events.min(i64::MAX as u64) as i64;
        metrics.tenant_events.get_or_create(&label).set(events);
    }
    let bytes = state.store().database_bytes().await?;
    metrics
        .database_bytes
        .set(bytes.min(i64::MAX as u64) as i64);
    if let Some(usage) = state.retention().archive_usage() {
        let clamp = |n: u64| n.min(i64::MAX as u64) as i64;
        metrics.archive_bytes.set(clamp(usage.bytes));
        metrics.archive_parts.set(clamp(usage.parts));
    }
    let next = state.retention().next();
    metrics.next_purge.set(next.map_or(0, |t| t.timestamp()));
    metrics.partition_lag.clear();
    metrics.partition_applied.clear();
    let owned = state.node().map(|n| n.local.progress()).unwrap_or_default();
    metrics.partitions_owned.set(owned.len() as i64);
    for progress in owned {
        let label = PartitionLabel {
            partition: progress.partition.to_string(),
        };
        let clamp = |n: u64| n.min(i64::MAX as u64) as i64;
        metrics
            .partition_lag
            .get_or_create(&label)
            .set(clamp(progress.lag));
        metrics
            .partition_applied
            .get_or_create(&label)
            .set(clamp(progress.applied));
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &metrics.registry)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
