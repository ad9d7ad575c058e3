//! `GET /api/v1/cluster`: the distributed mode as this process sees it on the bus — each
//! partition with its owner, applied stream sequence and lag, and every front-end and worker
//! heard from — or that the server runs as a single node. The same document as
//! `siren cluster status --format json`. It covers every tenant's correlation, so only a
//! global admin may read it (as `/metrics`).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::AppState;
use crate::auth::{Access, Administer};
use crate::cluster::{Member, PartitionStatus, Role};
use crate::error::{ApiError, ApiResult};

/// `/api/v1/cluster`.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/cluster", get(status))
}

/// What `GET /api/v1/cluster` answers.
#[derive(Debug, Serialize)]
pub struct ClusterView {
    /// `single` (no bus: this process correlates everything) or `distributed`.
    pub mode: &'static str,
    /// The cluster's name (distributed mode).
    pub cluster: Option<String>,
    /// This process's id in the cluster.
    pub node: Option<String>,
    /// This process's role.
    pub role: Option<Role>,
    /// Every partition, its owner and progress (empty on a single node).
    pub partitions: Vec<PartitionStatus>,
    /// Every member heard from recently (empty on a single node).
    pub members: Vec<Member>,
}

async fn status(
    State(state): State<AppState>,
    access: Access<Administer>,
) -> ApiResult<Json<ClusterView>> {
    if !access.global {
        return Err(ApiError::Forbidden(
            "the cluster's state covers every tenant: a global admin only".to_owned(),
        ));
    }
    let Some(node) = state.node() else {
        return Ok(Json(ClusterView {
            mode: "single",
            cluster: None,
            node: None,
            role: None,
            partitions: Vec::new(),
            members: Vec::new(),
        }));
    };
    let status = node.bus.status().await.map_err(|e| {
        tracing::warn!("cluster status: the bus does not answer: {e:#}");
        ApiError::Busy(2)
    })?;
    Ok(Json(ClusterView {
        mode: "distributed",
        cluster: Some(state.config().cluster.clone()),
        node: Some(node.id.clone()),
        role: Some(node.role),
        partitions: status.partitions,
        members: status.members,
    }))
}
