//! One conformance suite for every store backend: SQLite always, PostgreSQL when
//! `SIREN_TEST_POSTGRES_URL` names a server (CI sets it; each run gets a fresh database).

use std::sync::Arc;

use serde_json::json;
use siren_core::store::{self, EventQuery, EventRow, Store};
use siren_core::{Event, TenantId};

/// The backends to test, each on an empty database.
async fn backends() -> Vec<(String, Arc<dyn Store>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("conformance.db").display());
    let mut list = vec![(
        "sqlite".to_owned(),
        store::open(&url).await.unwrap(),
        Some(dir),
    )];
    if let Some(pg) = crate::support::fresh_postgres_database().await {
        list.push(("postgres".to_owned(), store::open(&pg).await.unwrap(), None));
    }
    list
}

fn event(tenant: &str, record: i64, host: &str, ts: &str, user: &str) -> Event {
    let fields = json!({"EventID": 4625, "Channel": "Security", "Computer": host, "EventRecordID": record,
        "TimeCreated": ts, "TargetUserName": user, "Note": "nul\u{0}byte"});
    let serde_json::Value::Object(fields) = fields else {
        unreachable!()
    };
    Event::from_fields(fields, TenantId::parse(tenant).unwrap())
}

#[tokio::test]
async fn events_are_stored_once_and_listed_per_tenant() {
    for (backend, store, _guard) in backends().await {
        let rows: Vec<EventRow> = [
            event("acme", 1, "dc01", "2024-05-01T10:00:00Z", "bob"),
            event("acme", 2, "dc01", "2024-05-01T10:01:00Z", "eve"),
            event("acme", 3, "WS7", "2024-05-01T10:02:00Z", "bob"),
            event("globex", 1, "dc01", "2024-05-01T10:00:00Z", "bob"),
        ]
        .iter()
        .map(EventRow::from_event)
        .collect();
        assert_eq!(store.insert_events(&rows).await.unwrap(), 4, "{backend}");
        // The same events again, and a repeat inside one batch: nothing new.
        let mut again = rows.clone();
        again.push(rows[0].clone());
        assert_eq!(store.insert_events(&again).await.unwrap(), 0, "{backend}");

        let acme = TenantId::parse("acme").unwrap();
        assert_eq!(store.count_events(&acme).await.unwrap(), 3, "{backend}");
        let all = store
            .list_events(
                &acme,
                &EventQuery {
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let records: Vec<_> = all.iter().map(|e| e.record_id.unwrap()).collect();
        assert_eq!(records, [3, 2, 1], "{backend}: newest first");
        assert!(
            all.iter().all(|e| e.tenant == acme),
            "{backend}: tenant isolation"
        );
        assert_eq!(all[2].fields["TargetUserName"], json!("bob"), "{backend}");
        assert_eq!(all[2].fields["EventID"], json!(4625), "{backend}");

        let by_host = EventQuery {
            host: Some("ws7".into()),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(
            store.list_events(&acme, &by_host).await.unwrap().len(),
            1,
            "{backend}: host is case-insensitive"
        );
        let window = EventQuery {
            since: Some("2024-05-01T10:00:30Z".parse().unwrap()),
            until: Some("2024-05-01T10:02:00Z".parse().unwrap()),
            limit: 10,
            ..Default::default()
        };
        let in_window = store.list_events(&acme, &window).await.unwrap();
        assert_eq!(
            in_window
                .iter()
                .map(|e| e.record_id.unwrap())
                .collect::<Vec<_>>(),
            [2],
            "{backend}"
        );
        let by_id = EventQuery {
            event_id: Some(4624),
            limit: 10,
            ..Default::default()
        };
        assert!(
            store.list_events(&acme, &by_id).await.unwrap().is_empty(),
            "{backend}"
        );
        let limited = EventQuery {
            limit: 1,
            ..Default::default()
        };
        assert_eq!(
            store.list_events(&acme, &limited).await.unwrap().len(),
            1,
            "{backend}"
        );
    }
}
