//! [`restore`]: bringing archived days back into the store, de-duplicated and held.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::objects::{Archive, ArchiveError};
use crate::event::TenantId;
use crate::store::{AuditLog, EventRow, Retention, StoreError};
use crate::user::Actor;

/// What to restore.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// One tenant's parts (`None`: every tenant's).
    pub tenant: Option<TenantId>,
    /// The first day.
    pub from: NaiveDate,
    /// The last day, included.
    pub to: NaiveDate,
    /// Until when the restored events are kept whatever the retention policy says.
    pub until: DateTime<Utc>,
}

/// What a restore did for one tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TenantRestore {
    /// Tenant.
    pub tenant: String,
    /// Parts read.
    pub parts: u64,
    /// Events in them.
    pub events: u64,
    /// Events stored again (the others were still stored).
    pub new: u64,
    /// Parts that failed their check (each named by object, with why), skipped.
    pub failed: Vec<String>,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    /// Until when the restored events are held.
    pub kept_until: DateTime<Utc>,
    /// Per tenant.
    pub tenants: Vec<TenantRestore>,
}

impl RestoreReport {
    /// Parts that failed their check, over every tenant.
    pub fn failed(&self) -> usize {
        self.tenants.iter().map(|t| t.failed.len()).sum()
    }
}

/// Restores the parts of `request`'s days: each is checked against its manifest, then its
/// events are stored again under their archived keys (an event still stored, or restored
/// before, is stored once) and held until `request.until`. A part that fails its check is
/// reported and skipped; the others are restored. Each tenant restored gets an audit entry
/// (`archive.restore`) by `actor`. Listing the archive failing is an error.
pub async fn restore<S>(
    store: &S,
    archive: &Archive,
    request: &RestoreRequest,
    actor: &Actor,
) -> Result<RestoreReport, StoreError>
where
    S: Retention + AuditLog + ?Sized,
{
    let parts = archive
        .list(
            request.tenant.as_ref(),
            Some(request.from),
            Some(request.to),
        )
        .await?;
    let mut tenants: Vec<TenantRestore> = Vec::new();
    for part in &parts {
        if tenants.last().is_none_or(|t| t.tenant != part.tenant) {
            tenants.push(TenantRestore {
                tenant: part.tenant.clone(),
                ..TenantRestore::default()
            });
        }
        let Some(entry) = tenants.last_mut() else {
            continue;
        };
        let tenant = match TenantId::parse(&part.tenant) {
            Ok(tenant) => tenant,
            Err(error) => {
                entry
                    .failed
                    .push(format!("{}: invalid tenant: {error}", part.object));
                continue;
            }
        };
        let events = match archive.read(part).await {
            Ok(events) => events,
            Err(error @ ArchiveError::Store { .. }) => return Err(error.into()),
            Err(error) => {
                entry.failed.push(error.to_string());
                continue;
            }
        };
        let mut rows = Vec::with_capacity(events.len());
        for archived in &events {
            let mut event = archived.event.clone();
            event.tenant = tenant.clone();
            let mut row = EventRow::from_event(&event);
            // A key that does not parse (a hand-edited part) is computed anew.
            if let Ok(key) = archived.key_bytes() {
                row.dedup_key = key;
            }
            rows.push(row);
        }
        for chunk in rows.chunks(1000) {
            entry.new += store.restore_events(&tenant, chunk, request.until).await?;
        }
        entry.parts += 1;
        entry.events += events.len() as u64;
    }
    for entry in &tenants {
        let Ok(tenant) = TenantId::parse(&entry.tenant) else {
            continue;
        };
        let detail = serde_json::json!({
            "archive": archive.location(),
            "from": request.from,
            "to": request.to,
            "parts": entry.parts,
            "events": entry.events,
            "new": entry.new,
            "failed": entry.failed.len(),
            "kept_until": request.until,
        });
        store
            .record_audit(
                &tenant,
                actor,
                "archive.restore",
                &format!("tenant:{}", entry.tenant),
                &detail.to_string(),
            )
            .await?;
    }
    Ok(RestoreReport {
        kept_until: request.until,
        tenants,
    })
}
