//! `GET /api/v1/stream`: Server-Sent Events for new and changed incidents.
//!
//! One background task per server follows the store's change feed (incidents whose
//! `updated_at` moved), so changes made by any process — this server, `siren ingest` from
//! cron, another replica on the same PostgreSQL — reach the stream. It polls every
//! `stream_poll_ms` and at once when this server changed an incident itself ([`ChangeFeed::wake`]).
//! Each change is broadcast once to every subscriber; each subscriber only sees its tenant's.
//!
//! An open stream lives only as long as its credential: every [`CREDENTIAL_CHECK`], and at
//! once when this server revokes a token, disables a user or ends a session
//! ([`ChangeFeed::principals_changed`]), it looks its token or session up in the store
//! again ([`crate::auth::still_valid`]) and ends when it is revoked, expired, logged out, its
//! user disabled or its role changed — by this server, another replica or the CLI.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use futures_util::stream::Stream;
use siren_core::TenantId;
use siren_core::api::IncidentEvent;
use siren_core::incident::Incident;
use tokio::sync::{Notify, broadcast};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::BroadcastStream;

use crate::AppState;
use crate::auth::{Access, Principal, Read};

/// How far back each poll looks again, for changes committed late (a transaction's
/// `updated_at` is taken before it commits).
const OVERLAP_MICROS: i64 = 5_000_000;
/// Changes read per poll at most.
const POLL_LIMIT: u32 = 1000;
/// How often an open stream checks its credential in the store again.
pub const CREDENTIAL_CHECK: Duration = Duration::from_secs(2);

/// A change to an incident, as the live stream sends it to its subscribers.
#[derive(Debug, Clone)]
pub struct LiveChange {
    /// Owner.
    pub tenant: TenantId,
    /// `created` or `updated`.
    pub kind: &'static str,
    /// The incident as it is now.
    pub incident: Arc<Incident>,
}

/// The broadcast of incident changes and the poller's wake-up call.
pub struct ChangeFeed {
    sender: broadcast::Sender<LiveChange>,
    wake: Notify,
    /// Turns true when the server shuts down: open streams end so the drain can finish.
    closing: tokio::sync::watch::Sender<bool>,
    /// Bumped when this server revoked a token, disabled a user or ended a session.
    principals: tokio::sync::watch::Sender<u64>,
}

impl ChangeFeed {
    /// An idle feed.
    pub fn new() -> Self {
        Self {
            sender: broadcast::channel(1024).0,
            wake: Notify::new(),
            closing: tokio::sync::watch::channel(false).0,
            principals: tokio::sync::watch::channel(0).0,
        }
    }

    /// Asks the poller to look now (this server changed incidents).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Asks every open stream to check its credential now (this server revoked a token,
    /// disabled a user or ended a session).
    pub fn principals_changed(&self) {
        self.principals.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Ends every open stream (the server is shutting down).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static + use<> {
        let mut closing = self.closing.subscribe();
        async move {
            let _ = closing.wait_for(|closed| *closed).await;
        }
    }

    /// A new subscription.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveChange> {
        self.sender.subscribe()
    }
}

impl Default for ChangeFeed {
    fn default() -> Self {
        Self::new()
    }
}

/// Follows the store's change feed until `stop` turns true.
pub async fn run_change_feed(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let poll = Duration::from_millis(state.config().stream_poll_ms.max(50));
    let mut since = chrono::Utc::now().timestamp_micros();
    // What was announced, by incident: its `updated_at`.
    let mut announced: HashMap<i64, i64> = HashMap::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = state.changes().wake.notified() => {}
            _ = stop.changed() => return,
        }
        let changes = match state
            .store()
            .incidents_changed_since(since - OVERLAP_MICROS, POLL_LIMIT)
            .await
        {
            Ok(changes) => changes,
            Err(error) => {
                tracing::warn!(%error, "reading incident changes failed");
                continue;
            }
        };
        for change in changes {
            since = since.max(change.updated_at);
            if announced
                .get(&change.id.0)
                .is_some_and(|at| *at >= change.updated_at)
            {
                continue;
            }
            announced.insert(change.id.0, change.updated_at);
            let incident = match state.store().get_incident(&change.tenant, change.id).await {
                Ok(incident) => incident,
                Err(error) => {
                    tracing::warn!(%error, incident = change.id.0, "reading a changed incident failed");
                    continue;
                }
            };
            let kind = if change.created_at == change.updated_at {
                "created"
            } else {
                "updated"
            };
            // No subscriber is not an error.
            let _ = state.changes().sender.send(LiveChange {
                tenant: change.tenant,
                kind,
                incident: Arc::new(incident),
            });
        }
        announced.retain(|_, at| *at >= since - 2 * OVERLAP_MICROS);
    }
}

/// `/api/v1/stream`.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/stream", get(stream))
}

/// Returns once `principal`'s credential (sent as `headers`) no longer holds.
async fn credential_ends(state: AppState, principal: Principal, headers: HeaderMap) {
    let mut changed = state.changes().principals.subscribe();
    loop {
        let principals_changed = async {
            if changed.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(CREDENTIAL_CHECK) => {}
            _ = principals_changed => {}
        }
        match crate::auth::still_valid(&principal, &headers, &state).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(caller = %principal.name, "stream ended: its credential no longer holds");
                return;
            }
            // A store that cannot answer now is asked again at the next check.
            Err(error) => tracing::warn!(%error, "checking a stream's credential failed"),
        }
    }
}

async fn stream(
    State(state): State<AppState>,
    access: Access<Read>,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let tenant = access.tenant.clone();
    let changes = BroadcastStream::new(state.changes().subscribe()).filter_map(move |change| {
        // A subscriber that fell behind skips what it missed (the page reloads its list).
        let change = change.ok()?;
        if change.tenant != tenant {
            return None;
        }
        let data = IncidentEvent {
            kind: change.kind,
            incident: &change.incident,
        };
        Some(
            Event::default()
                .event("incident")
                .json_data(data)
                .or_else(|error| {
                    tracing::error!(%error, "cannot encode a live change");
                    Ok(Event::default().comment("skipped"))
                }),
        )
    });
    let hello = tokio_stream::once(Ok(Event::default().comment("connected")));
    let closed = state.changes().closed();
    let revoked = credential_ends(state.clone(), access.0, headers);
    let end = async move {
        tokio::select! {
            () = closed => {}
            () = revoked => {}
        }
    };
    let events = futures_util::StreamExt::take_until(hello.chain(changes), end);
    Sse::new(events).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("keep-alive"),
    )
}
