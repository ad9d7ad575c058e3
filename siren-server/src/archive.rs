//! The archive in the API (admin, the caller's tenant only):
//!
//! - `GET /api/v1/archive?from=DAY&to=DAY` — where the archive is and the tenant's parts
//!   (their manifests) of those days;
//! - `POST /api/v1/archive/restore` — brings the tenant's events of `from`..`to` back into
//!   the store, de-duplicated, held for `keep` (audited, `archive.restore`).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use siren_core::archive::{PartManifest, RestoreReport, RestoreRequest};
use siren_core::retention::Keep;
use siren_core::store::StoreError;

use crate::AppState;
use crate::auth::{Access, Administer};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams};

/// `/api/v1/archive…`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/archive", get(list))
        .route("/api/v1/archive/restore", post(restore))
}

/// `GET /api/v1/archive`'s query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// The first day.
    from: Option<NaiveDate>,
    /// The last day, included.
    to: Option<NaiveDate>,
}

/// What `GET /api/v1/archive` answers.
#[derive(Debug, Serialize)]
pub struct ArchiveListing {
    /// Where the archive is (none configured: null, and no parts).
    pub location: Option<String>,
    /// The tenant's parts, by day.
    pub parts: Vec<PartManifest>,
}

/// An archive failure as the API answers it: unreachable is 503 (retry), a part or manifest
/// that is not what it should be is 500 (logged).
fn archive_error(error: siren_core::archive::ArchiveError) -> ApiError {
    ApiError::from(StoreError::Archive(error))
}

async fn list(
    State(state): State<AppState>,
    access: Access<Administer>,
    QueryParams(query): QueryParams<ListQuery>,
) -> ApiResult<Json<ArchiveListing>> {
    let Some(archive) = state.retention().archive() else {
        return Ok(Json(ArchiveListing {
            location: None,
            parts: Vec::new(),
        }));
    };
    let parts = archive
        .list(Some(&access.tenant), query.from, query.to)
        .await
        .map_err(archive_error)?;
    Ok(Json(ArchiveListing {
        location: Some(archive.location().to_owned()),
        parts,
    }))
}

/// `POST /api/v1/archive/restore`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreBody {
    /// The first day.
    from: NaiveDate,
    /// The last day, included (default: `from`).
    to: Option<NaiveDate>,
    /// How long the restored events are kept (default 30d).
    keep: Option<String>,
}

async fn restore(
    State(state): State<AppState>,
    access: Access<Administer>,
    JsonBody(body): JsonBody<RestoreBody>,
) -> ApiResult<Json<RestoreReport>> {
    let Some(archive) = state.retention().archive() else {
        return Err(ApiError::Refused(
            "no archive is configured (the `archive:` section)".to_owned(),
        ));
    };
    let to = body.to.unwrap_or(body.from);
    if to < body.from {
        return Err(ApiError::BadRequest(format!(
            "to: {to} is before from: {}",
            body.from
        )));
    }
    let keep = Keep::parse(body.keep.as_deref().unwrap_or("30d"))
        .map_err(|e| ApiError::BadRequest(format!("keep: {e}")))?;
    let request = RestoreRequest {
        tenant: Some(access.tenant.clone()),
        from: body.from,
        to,
        until: keep.until(Utc::now()),
    };
    let report =
        siren_core::archive::restore(&**state.store(), archive, &request, &access.actor()).await?;
    for failure in report.tenants.iter().flat_map(|t| &t.failed) {
        tracing::warn!(%failure, "an archived part was skipped");
    }
    Ok(Json(report))
}
