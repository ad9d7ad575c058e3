//! SIREN's library: it turns raw security events into a short, prioritised list of incidents.
//!
//! The pieces, in the order events flow through them:
//! - [`normalize`] reads EVTX, Windows XML, JSON / JSON Lines, syslog and CSV into [`Event`]s
//!   that keep every original field, flattened, plus a normalised core;
//! - [`rules`] loads Sigma rules and matches them against events;
//! - [`store`] keeps events (and later alerts and incidents) in SQLite or PostgreSQL;
//! - [`ingest`] runs the whole pipeline over a set of inputs;
//! - `notify` (cargo features `email`, `webhook`) tells people about incidents through a
//!   durable outbox.
//! - `report` (feature `report`, PDF with feature `pdf`) renders incident reports and period
//!   summaries.
//!
//! The library does no process-level IO: it never prints, exits or reads the environment.
//! Callers pass in what it needs.
//!
//! ```
//! use siren_core::normalize::flatten::flatten;
//! use siren_core::{Event, TenantId};
//!
//! let doc = serde_json::json!({"Event": {"System": {"EventID": 4625, "Channel": "Security",
//!     "Computer": "dc01"}, "EventData": {"TargetUserName": "bob"}}});
//! let event = Event::from_fields(flatten(doc).unwrap(), TenantId::default());
//! assert_eq!(event.event_id, Some(4625));
//! assert_eq!(event.get_str("TargetUserName").as_deref(), Some("bob"));
//! ```
#![deny(missing_docs)]

pub mod api;
pub mod correlation;
pub mod csv_safe;
pub mod event;
pub mod exit;
pub mod hunt;
pub mod incident;
#[cfg(feature = "store")]
pub mod ingest;
pub mod normalize;
#[cfg(feature = "notify")]
pub mod notify;
pub mod owner_only;
#[cfg(feature = "report")]
pub mod report;
pub mod rules;
pub mod secret;
#[cfg(feature = "store")]
pub mod store;
pub mod user;

pub use event::{Event, Fields, TenantId};
