//! Alerts and incidents: the records, the lifecycle, building alerts from detections and
//! correlation hits, and grouping alerts into incidents.
//!
//! A detection or correlation hit is an [`Alert`]. Alerts with the same rule and grouping key
//! (default: the host) join the open incident of that key while it is open and the alert is
//! within the grouping window of it; otherwise a new incident opens. So 10,000 repeats are one
//! incident with a count. What grouping decides ([`group`]) is pure; the store persists it.

mod alert;
mod grouping;
mod lifecycle;
mod model;

pub use crate::rules::Level as Severity;
pub use alert::default_investigation;
pub use grouping::{
    GroupedIncident, Grouping, MAX_ASSETS, REPEATS_RAISE, group, group_alerts, group_of,
    incident_key, raised, severity_rank,
};
pub use lifecycle::{Resolution, Status, TransitionError};
pub use model::{
    Alert, AlertOutcome, Incident, IncidentFilter, IncidentId, IncidentPage, SYSTEM_ACTOR,
    TimelineEntry, TimelinePage, TimelineQuery,
};
