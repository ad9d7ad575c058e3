//! SIREN's library: it turns raw security events into a short, prioritised list of incidents.
//!
//! Load a Sigma rule, turn a raw record into an [`Event`], and ask which rules it matches:
//!
//! ```
//! use siren_core::normalize::flatten::flatten;
//! use siren_core::rules::{LoadOptions, RuleSet};
//! use siren_core::{Event, TenantId};
//!
//! let rule = r#"
//! title: Failed logon for bob
//! level: medium
//! logsource: {product: windows, service: security}
//! detection:
//!     selection: {EventID: 4625, TargetUserName: bob}
//!     condition: selection
//! "#;
//! let (rules, diagnostics) = RuleSet::from_yaml("bob.yml", rule, &LoadOptions::default());
//! assert!(diagnostics.is_empty());
//!
//! let doc = serde_json::json!({"Event": {"System": {"EventID": 4625, "Channel": "Security",
//!     "Computer": "dc01"}, "EventData": {"TargetUserName": "bob"}}});
//! let event = Event::from_fields(flatten(doc).unwrap(), TenantId::default());
//! assert_eq!(event.event_id, Some(4625));
//! assert_eq!(event.get_str("TargetUserName").as_deref(), Some("bob"));
//!
//! let titles: Vec<&str> = rules.matches(&event).map(|r| r.title.as_str()).collect();
//! assert_eq!(titles, ["Failed logon for bob"]);
//! ```
//!
//! The pieces, in the order events flow through them:
//! - [`normalize`] reads EVTX, Windows XML, JSON / JSON Lines, syslog and CSV into [`Event`]s
//!   that keep every original field, flattened, plus a normalised core;
//! - [`rules`] loads Sigma rules and matches them against events;
//! - [`hunt`] reads inputs and matches every event against the rules, without a database;
//! - [`store`] keeps events, alerts and incidents in SQLite or PostgreSQL;
//! - [`ingest`] runs the whole pipeline over a set of inputs;
//! - `notify` (cargo features `email`, `webhook`) tells people about incidents through a
//!   durable outbox.
//! - `report` (feature `report`, PDF with feature `pdf`) renders incident reports and period
//!   summaries.
//!
//! The library does no process-level IO: it never prints, exits or reads the environment.
//! Callers pass in what it needs.
//!
//! # Embedding
//!
//! The crate's `examples/` folder holds whole programs, run with
//! `cargo run -p siren-core --example NAME`: `match_event` (one rule from a YAML string, one
//! JSON event), `hunt_folder` (a folder of logs against a folder of rules, no database) and
//! `ingest_sqlite` (files into a SQLite database with detection, then the incidents).
//!
//! With a store (feature `sqlite` or `postgres`), [`store::open`] picks the backend from the
//! URL and runs the migrations; [`ingest::ingest`] stores the events, de-duplicated, and groups
//! the alerts of new ones into incidents:
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use siren_core::TenantId;
//! use siren_core::incident::IncidentFilter;
//! use siren_core::ingest::{IngestOptions, ingest};
//! use siren_core::normalize::Quiet;
//! use siren_core::normalize::Input;
//! use siren_core::rules::{LoadOptions, RuleSet};
//! use siren_core::store;
//!
//! let dir = tempfile::tempdir()?;
//! let url = format!("sqlite://{}", dir.path().join("siren.db").display());
//! let store = store::open(&url).await?;
//!
//! let rule = r#"
//! title: Security event log cleared
//! level: high
//! logsource: {product: windows, service: security}
//! detection:
//!     selection: {EventID: 1102}
//!     condition: selection
//! "#;
//! let (rules, _) = RuleSet::from_yaml("cleared.yml", rule, &LoadOptions::default());
//!
//! let log = dir.path().join("security.jsonl");
//! std::fs::write(
//!     &log,
//!     r#"{"EventID": 1102, "Channel": "Security", "Computer": "dc01", "EventRecordID": 7}
//! {"EventID": 4624, "Channel": "Security", "Computer": "dc01", "EventRecordID": 8}
//! "#,
//! )?;
//! let options = IngestOptions::default().with_rules(Arc::new(rules));
//! let inputs = vec![Input::Named(log)];
//! let summary = ingest(store.clone(), inputs, options, Arc::new(Quiet)).await?;
//! assert_eq!((summary.stored, summary.alerts, summary.incidents_created), (2, 1, 1));
//!
//! let filter = IncidentFilter {
//!     limit: 10,
//!     ..IncidentFilter::default()
//! };
//! let page = store.list_incidents(&TenantId::default(), &filter).await?;
//! assert!(page.incidents[0].title.starts_with("Security event log cleared"));
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "sqlite"))]
//! # fn main() {}
//! ```
#![deny(missing_docs)]

pub mod api;
pub mod archive;
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
#[cfg(feature = "store")]
pub mod retention;
pub mod rules;
pub mod secret;
#[cfg(feature = "store")]
pub mod store;
#[cfg(test)]
mod test_corpus;
pub mod user;

pub use event::{Event, Fields, TenantId};
