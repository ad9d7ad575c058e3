//! Incidents as analysts work them: [`IncidentStore`] groups alerts into incidents (as
//! [`crate::incident::group`] decides), lists and reads them with their timeline and
//! triggering events, and records assignments, status moves and notes. Every change is
//! written with its timeline entry, its audit record and its outbox change in one
//! transaction.

use chrono::{DateTime, Utc};

use super::{StoreError, StoredEvent};
use crate::event::TenantId;
use crate::incident::{
    Alert, AlertOutcome, Incident, IncidentFilter, IncidentId, IncidentPage, Resolution, Status,
    TimelineEntry, TimelinePage, TimelineQuery,
};
use crate::user::Actor;

/// A page of an incident's triggering events and the cursor of the next one.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EventPage {
    /// The events, in the order of their alerts (oldest first).
    pub events: Vec<StoredEvent>,
    /// Pass back to [`IncidentStore::incident_events_page`] for the events after these;
    /// `None` on the last page.
    pub after: Option<String>,
}

/// Incidents, their alerts, timeline and triggering events. Every method is scoped to one
/// tenant.
#[async_trait::async_trait]
pub trait IncidentStore: Send + Sync {
    /// Groups alerts into incidents: each joins the open incident of its rule and grouping
    /// key when it falls within `window` of it, else opens a new one.
    async fn record_alerts(
        &self,
        tenant: &TenantId,
        alerts: &[Alert],
        window: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<AlertOutcome, StoreError>;
    /// A page of incidents, most recently seen first.
    async fn list_incidents(
        &self,
        tenant: &TenantId,
        filter: &IncidentFilter,
    ) -> Result<IncidentPage, StoreError>;
    /// One incident.
    async fn get_incident(&self, tenant: &TenantId, id: IncidentId)
    -> Result<Incident, StoreError>;
    /// Everything that happened to an incident, oldest first.
    async fn incident_timeline(
        &self,
        tenant: &TenantId,
        id: IncidentId,
    ) -> Result<Vec<TimelineEntry>, StoreError>;
    /// A page of an incident's timeline: the newest entries `query` asks for, with the
    /// timeline's size (an unknown incident has an empty timeline).
    async fn incident_timeline_page(
        &self,
        tenant: &TenantId,
        id: IncidentId,
        query: &TimelineQuery,
    ) -> Result<TimelinePage, StoreError>;
    /// The events that triggered an incident's alerts, oldest first.
    async fn incident_events(
        &self,
        tenant: &TenantId,
        id: IncidentId,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError>;
    /// A page of the events that triggered an incident's alerts, in alert order: the first
    /// `limit`, or those after the cursor a previous page handed back (an unknown incident has
    /// none).
    async fn incident_events_page(
        &self,
        tenant: &TenantId,
        id: IncidentId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<EventPage, StoreError>;
    /// Assigns an incident to an active user.
    async fn assign_incident(
        &self,
        tenant: &TenantId,
        id: IncidentId,
        assignee: &str,
        actor: &Actor,
    ) -> Result<Incident, StoreError>;
    /// Moves an incident along its lifecycle (refused when the move is invalid).
    async fn change_status(
        &self,
        tenant: &TenantId,
        id: IncidentId,
        to: Status,
        resolution: Option<Resolution>,
        note: Option<&str>,
        actor: &Actor,
    ) -> Result<Incident, StoreError>;
    /// Adds a note to an incident.
    async fn add_note(
        &self,
        tenant: &TenantId,
        id: IncidentId,
        text: &str,
        actor: &Actor,
    ) -> Result<Incident, StoreError>;
}
