//! `/api/v1/agents`: heartbeats from endpoint agents, and the list of agents with when each
//! was last seen.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use siren_core::api::{AgentHeartbeat, AgentList};

use crate::AppState;
use crate::auth::{Access, Heartbeat, Read};
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;

/// `/api/v1/agents…`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/agents", get(list))
        .route("/api/v1/agents/heartbeat", post(heartbeat))
}

fn limited(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.chars().count() > max {
        return Err(ApiError::BadRequest(format!(
            "{field} has more than {max} characters"
        )));
    }
    Ok(())
}

async fn heartbeat(
    State(state): State<AppState>,
    access: Access<Heartbeat>,
    JsonBody(beat): JsonBody<AgentHeartbeat>,
) -> ApiResult<StatusCode> {
    if beat.agent.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "agent (the agent's id) is required".to_owned(),
        ));
    }
    limited("agent", &beat.agent, 200)?;
    limited("hostname", &beat.hostname, 255)?;
    limited("version", &beat.version, 100)?;
    limited("last_error", beat.last_error.as_deref().unwrap_or(""), 4000)?;
    state
        .store()
        .agent_heartbeat(&access.tenant, &beat, &access.origin, chrono::Utc::now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list(State(state): State<AppState>, access: Access<Read>) -> ApiResult<Json<AgentList>> {
    let agents = state.store().list_agents(&access.tenant).await?;
    Ok(Json(AgentList { agents }))
}
