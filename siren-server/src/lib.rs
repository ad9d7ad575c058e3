//! SIREN's HTTP server: the REST API, agent ingest, live updates and the embedded dashboard.

use axum::Router;
use axum::routing::get;

/// Shared state of the server's handlers.
#[derive(Clone, Default)]
pub struct AppState {}

/// The server's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
