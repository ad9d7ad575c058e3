//! SIREN's HTTP server: the REST API, agent ingest, live updates and the embedded dashboard.
//!
//! [`router`] builds the application from the feature modules' own routers; [`serve`] runs it
//! on a listener (plain HTTP, or HTTPS with rustls when a certificate is configured) until the
//! shutdown future completes, then drains requests in flight.

pub mod admin;
pub mod agents;
pub mod archive;
pub mod auth;
pub mod cluster;
pub mod cluster_status;
pub mod config;
pub mod config_file;
mod dashboard;
pub mod disk;
pub mod error;
pub mod events;
pub mod extract;
pub mod incidents;
pub mod metrics;
pub mod openapi;
pub mod overview;
pub mod ratelimit;
pub mod reports;
pub mod retention;
pub mod rules;
pub mod stream;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use siren_core::ingest::{Pipeline, PipelineOptions};
use siren_core::notify::Dispatcher;
use siren_core::rules::RuleSet;
use siren_core::store::Store;
use tower_http::trace::TraceLayer;

pub use config::ServerConfig;
pub use error::{ApiError, ApiResult};

/// Shared state of the server's handlers (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    store: Arc<dyn Store>,
    pipeline: Pipeline,
    config: ServerConfig,
    limiter: ratelimit::LoginLimiter,
    metrics: metrics::Metrics,
    changes: stream::ChangeFeed,
    stats: overview::StatsCache,
    ingest_slots: Arc<tokio::sync::Semaphore>,
    /// Delivers notifications while the server runs (when `notify:` routes anything).
    dispatcher: std::sync::OnceLock<Dispatcher>,
    /// In the distributed mode, this process's place in the cluster.
    node: Option<Arc<cluster::Node>>,
    /// The retention policies and the background purge's progress.
    retention: std::sync::OnceLock<Arc<retention::Retention>>,
}

impl AppState {
    /// State for a server on `store`, detecting with `rules` (none: store events only).
    pub fn new(store: Arc<dyn Store>, rules: Option<Arc<RuleSet>>, config: ServerConfig) -> Self {
        Self::build(store, rules, config, None)
    }

    /// State for a process of the distributed mode (`server.bus`): connects to the bus and
    /// publishes each batch's correlation input there instead of correlating in process.
    pub async fn distributed(
        store: Arc<dyn Store>,
        rules: Option<Arc<RuleSet>>,
        config: ServerConfig,
        listen: String,
    ) -> anyhow::Result<Self> {
        let url = config
            .bus
            .clone()
            .ok_or_else(|| anyhow::anyhow!("server.bus is not set"))?;
        let bus = cluster::Bus::connect(&url, &config.cluster, config.partitions).await?;
        let id = config.node_id.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "siren".to_owned());
            format!("{host}-{}", std::process::id())
        });
        let node = Arc::new(cluster::Node {
            bus,
            id,
            role: config.role,
            listen,
            local: Arc::default(),
        });
        Ok(Self::build(store, rules, config, Some(node)))
    }

    /// State per `config`: [`AppState::distributed`] when `server.bus` is set, else
    /// [`AppState::new`]. `listen` is the address served (announced to the cluster).
    pub async fn for_config(
        store: Arc<dyn Store>,
        rules: Option<Arc<RuleSet>>,
        config: ServerConfig,
        listen: String,
    ) -> anyhow::Result<Self> {
        if config.bus.is_some() {
            Self::distributed(store, rules, config, listen).await
        } else {
            Ok(Self::new(store, rules, config))
        }
    }

    fn build(
        store: Arc<dyn Store>,
        rules: Option<Arc<RuleSet>>,
        config: ServerConfig,
        node: Option<Arc<cluster::Node>>,
    ) -> Self {
        let mut pipeline = Pipeline::new(store.clone(), rules, PipelineOptions::default());
        if let Some(node) = &node {
            let partitions = node.bus.partitions();
            pipeline = pipeline.with_bus(Arc::new(node.bus.clone()), partitions);
        }
        let limiter = ratelimit::LoginLimiter::new(
            std::time::Duration::from_secs(config.login_window_seconds.max(1)),
            config.login_failures_per_user.max(1),
            config.login_failures_per_ip.max(1),
        );
        let ingest_slots = Arc::new(tokio::sync::Semaphore::new(config.max_pending_batches));
        Self {
            inner: Arc::new(Shared {
                store,
                pipeline,
                limiter,
                metrics: metrics::Metrics::new(),
                changes: stream::ChangeFeed::new(),
                stats: overview::StatsCache::default(),
                ingest_slots,
                config,
                dispatcher: std::sync::OnceLock::new(),
                node,
                retention: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Delivers notifications with `dispatcher` while serving: it is woken as soon as
    /// ingested events open or grow incidents, and polls the outbox every second besides.
    pub fn with_dispatcher(self, dispatcher: Dispatcher) -> Self {
        // Set once, before serving; a second call keeps the first dispatcher.
        let _ = self.inner.dispatcher.set(dispatcher);
        self
    }

    /// Delivers notifications per `config` (secrets resolved) while serving, through a
    /// [`Dispatcher`] on the system clock whose policies know the server's rules' tags.
    pub fn with_notifications(
        self,
        config: siren_core::notify::NotifyConfig,
    ) -> Result<Self, siren_core::notify::NotifyError> {
        let mut dispatcher = Dispatcher::new(
            self.store().clone(),
            config,
            Arc::new(siren_core::notify::SystemClock),
        )?;
        if let Some(rules) = self.pipeline().rules() {
            dispatcher = dispatcher.with_rule_tags(siren_core::notify::rule_tags_of(rules));
        }
        Ok(self.with_dispatcher(dispatcher))
    }

    /// Enforces `config`'s retention policies in the background while serving (writing
    /// events to `archive` before they go, where a policy says so), and answers
    /// `/api/v1/retention` with them.
    pub fn with_retention(
        self,
        config: siren_core::retention::RetentionConfig,
        archive: Option<siren_core::archive::Archive>,
    ) -> Self {
        // Set once, before serving; a second call keeps the first.
        let _ = self
            .inner
            .retention
            .set(Arc::new(retention::Retention::new(config, archive)));
        self
    }

    /// The retention policies (none configured: nothing is purged).
    pub fn retention(&self) -> &Arc<retention::Retention> {
        self.inner
            .retention
            .get_or_init(|| Arc::new(retention::Retention::new(Default::default(), None)))
    }

    /// The notification dispatcher, when one is configured.
    pub fn dispatcher(&self) -> Option<&Dispatcher> {
        self.inner.dispatcher.get()
    }

    /// Tells the live stream and the notification dispatcher that incidents changed.
    pub fn incidents_changed(&self) {
        self.changes().wake();
        if let Some(dispatcher) = self.dispatcher() {
            dispatcher.waker().notify_one();
        }
    }

    /// In the distributed mode, this process's place in the cluster.
    pub fn node(&self) -> Option<&Arc<cluster::Node>> {
        self.inner.node.as_ref()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The ingest pipeline.
    pub fn pipeline(&self) -> &Pipeline {
        &self.inner.pipeline
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The login rate limiter.
    pub fn login_limiter(&self) -> &ratelimit::LoginLimiter {
        &self.inner.limiter
    }

    /// The metrics.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }

    /// The incident change feed behind `/stream`.
    pub fn changes(&self) -> &stream::ChangeFeed {
        &self.inner.changes
    }

    pub(crate) fn stats_cache(&self) -> &overview::StatsCache {
        &self.inner.stats
    }

    pub(crate) fn ingest_slots(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.inner.ingest_slots
    }

    /// Whether the session cookie is marked `Secure`.
    pub fn secure_cookies(&self) -> bool {
        self.inner.config.secure_cookies || self.inner.config.tls()
    }
}

/// The server's routes: every feature module's router, the dashboard, request logs and
/// metrics.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(metrics::router())
        .merge(openapi::router())
        .merge(auth::router())
        .merge(events::router())
        .merge(incidents::router())
        .merge(rules::router())
        .merge(overview::router())
        .merge(reports::router())
        .merge(agents::router())
        .merge(cluster_status::router())
        .merge(retention::router())
        .merge(archive::router())
        .merge(admin::router())
        .merge(stream::router())
        .merge(dashboard::router())
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track_request,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves the application on `listener` until `shutdown` completes, then lets requests in
/// flight finish. With `tls_cert` and `tls_key` configured it speaks HTTPS (rustls) only.
/// Background work (the live stream's change feed, session clean-up, notification delivery)
/// runs while it serves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let background = tokio::spawn(stream::run_change_feed(state.clone(), stop_rx.clone()));
    let sweeper = tokio::spawn(sweep_sessions(state.clone(), stop_rx.clone()));
    let checkpoints = tokio::spawn(checkpoint_correlations(state.clone(), stop_rx.clone()));
    let purge = tokio::spawn(retention::run(state.clone(), stop_rx.clone()));
    let disk = tokio::spawn(disk::watch(state.clone(), stop_rx.clone()));
    let cluster = state.node().cloned().map(|node| {
        tokio::spawn(cluster::run(
            node,
            state.store().clone(),
            state.pipeline().rules().cloned(),
            PipelineOptions::default(),
            stop_rx.clone(),
        ))
    });
    let notifications = state.dispatcher().cloned().map(|dispatcher| {
        let mut stop = stop_rx;
        tokio::spawn(dispatcher.run(async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        }))
    });
    let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let closing = state.clone();
    let shutdown = async move {
        shutdown.await;
        // Live streams never end on their own: end them so the drain completes.
        closing.changes().close();
    };
    let result = match (&state.config().tls_cert, &state.config().tls_key) {
        (Some(cert), Some(key)) => {
            let tls = tls_config(cert, key).await?;
            let handle = axum_server::Handle::new();
            let waiter = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                waiter.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
            });
            axum_server::from_tcp_rustls(listener.into_std()?, tls)
                .handle(handle)
                .serve(app)
                .await
        }
        _ => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    };
    let _ = stop_tx.send(true);
    let _ = background.await;
    let _ = sweeper.await;
    let _ = purge.await;
    let _ = disk.await;
    // Writes the correlation state changed since the last checkpoint.
    let _ = checkpoints.await;
    if let Some(cluster) = cluster {
        let _ = cluster.await;
    }
    if let Some(notifications) = notifications {
        let _ = notifications.await;
    }
    result
}

/// The rustls configuration from PEM files (ring as the crypto provider).
async fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> std::io::Result<axum_server::tls_rustls::RustlsConfig> {
    // Installing fails only when a provider is installed already, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
        .await
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot load the TLS certificate {} / key {}: {e}",
                    cert.display(),
                    key.display()
                ),
            )
        })
}

/// Writes the tenants' changed correlation state every few seconds, and once more when the
/// server stops (after the last request), so a restart resumes correlating where it was.
async fn checkpoint_correlations(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let every = PipelineOptions::default().checkpoint_interval;
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(every) => false,
            _ = stop.wait_for(|stopped| *stopped) => true,
        };
        if let Err(error) = state.pipeline().checkpoint().await {
            tracing::warn!(%error, "saving the correlation state failed");
        }
        if stopping {
            return;
        }
    }
}

/// Removes expired sessions every ten minutes.
async fn sweep_sessions(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        match state.store().purge_sessions(chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "expired sessions removed"),
            Err(error) => tracing::warn!(%error, "removing expired sessions failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(600)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Completes on Ctrl-C or SIGTERM (the service manager's stop).
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}

/// Loads the rules the server detects with: the Sigma files or folders named, else SIREN's
/// built-in pack. Rules that do not load are logged and skipped.
pub fn load_rules(
    folders: &[std::path::PathBuf],
    logsources: Option<&std::path::Path>,
    pipelines: &[std::path::PathBuf],
) -> anyhow::Result<RuleSet> {
    let (rules, problems) = if folders.is_empty() {
        rules::builtin_rules(logsources, pipelines)?
    } else {
        for folder in folders {
            if !folder.exists() {
                anyhow::bail!("{}: no such file or directory", folder.display());
            }
        }
        let mut options =
            siren_core::rules::LoadOptions::default().with_pipeline_files(pipelines)?;
        if let Some(file) = logsources {
            options = options.with_logsources(siren_core::rules::LogSourceMap::load(file)?);
        }
        RuleSet::load(folders, &options)
    };
    for problem in &problems {
        tracing::warn!(problem = %problem, "rule not loaded");
    }
    tracing::info!(
        rules = rules.rules().len(),
        skipped = problems.len(),
        "rules loaded"
    );
    Ok(rules)
}
