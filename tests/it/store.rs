//! One conformance suite for every store backend: SQLite always, PostgreSQL when
//! `SIREN_TEST_POSTGRES_URL` names a server (CI sets it; each run gets a fresh database).

use std::sync::Arc;

use serde_json::json;
use siren_core::store::{self, Checkpoint, EventQuery, EventRow, Store};
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
    Event::from_fields(
        fields.into_iter().collect(),
        TenantId::parse(tenant).unwrap(),
    )
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
        assert_eq!(
            store.insert_events(&rows).await.unwrap().len(),
            4,
            "{backend}"
        );
        // The same events again, and a repeat inside one batch: nothing new.
        let mut again = rows.clone();
        again.push(rows[0].clone());
        assert!(
            store.insert_events(&again).await.unwrap().is_empty(),
            "{backend}"
        );

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

fn alert(
    rule: &str,
    host: &str,
    time: &str,
    user: &str,
    key: Option<[u8; 16]>,
) -> siren_core::incident::Alert {
    siren_core::incident::Alert {
        rule_id: rule.to_owned(),
        rule_title: format!("Rule {rule}"),
        severity: siren_core::incident::Severity::Medium,
        correlation: false,
        group_key: host.to_owned(),
        techniques: vec!["T1110".to_owned()],
        investigation: vec!["Look at the logons.".to_owned()],
        time: time.parse().unwrap(),
        hosts: vec![host.to_owned()],
        users: vec![user.to_owned()],
        ips: vec!["10.0.0.5".to_owned()],
        event_count: 1,
        event_key: key,
        detail: json!({}),
    }
}

#[tokio::test]
async fn alerts_group_into_incidents_that_analysts_work() {
    use siren_core::incident::{IncidentFilter, Resolution, Status, TimelineQuery};
    use siren_core::store::StoreError;
    use siren_core::user::{Actor, Role};

    let window = chrono::Duration::hours(24);
    let now = chrono::Utc::now();
    let actor = Actor {
        name: "lead".to_owned(),
        origin: "test".to_owned(),
    };
    for (backend, store, _guard) in backends().await {
        let acme = TenantId::parse("acme").unwrap();
        let other = TenantId::parse("globex").unwrap();
        let stored = event("acme", 9, "dc01", "2024-05-01T10:00:00Z", "bob");
        let row = EventRow::from_event(&stored);
        store
            .insert_events(std::slice::from_ref(&row))
            .await
            .unwrap();

        // Three repeats on dc01 are one incident; ws7 gets its own; three days later is a new one.
        let alerts = [
            alert(
                "r1",
                "dc01",
                "2024-05-01T10:00:00Z",
                "bob",
                Some(row.dedup_key),
            ),
            alert("r1", "dc01", "2024-05-01T10:05:00Z", "eve", None),
            alert("r1", "dc01", "2024-05-01T09:55:00Z", "bob", None),
            alert("r1", "ws7", "2024-05-01T10:00:00Z", "bob", None),
            alert("r1", "dc01", "2024-05-04T10:00:00Z", "bob", None),
        ];
        let outcome = store
            .record_alerts(&acme, &alerts, window, now)
            .await
            .unwrap();
        assert_eq!(
            (
                outcome.alerts,
                outcome.incidents_created,
                outcome.incidents_updated
            ),
            (5, 3, 0),
            "{backend}"
        );
        // A repeat later joins the open incident.
        let outcome = store
            .record_alerts(
                &acme,
                &[alert("r1", "ws7", "2024-05-01T11:00:00Z", "amy", None)],
                window,
                now,
            )
            .await
            .unwrap();
        assert_eq!(
            (outcome.incidents_created, outcome.incidents_updated),
            (0, 1),
            "{backend}"
        );

        let all = IncidentFilter {
            limit: 10,
            ..Default::default()
        };
        let page = store.list_incidents(&acme, &all).await.unwrap();
        assert_eq!(page.incidents.len(), 3, "{backend}");
        assert!(
            store
                .list_incidents(&other, &all)
                .await
                .unwrap()
                .incidents
                .is_empty(),
            "{backend}: tenant isolation"
        );
        let first = page
            .incidents
            .iter()
            .find(|i| i.hosts == ["dc01"] && i.alert_count == 3)
            .expect("the dc01 incident");
        assert_eq!(first.users, ["bob", "eve"], "{backend}");
        assert_eq!(
            first.first_seen.to_rfc3339(),
            "2024-05-01T09:55:00+00:00",
            "{backend}"
        );
        assert_eq!(first.status, Status::New);
        assert_eq!(first.techniques, ["T1110"]);
        assert!(
            matches!(
                store.get_incident(&other, first.id).await,
                Err(StoreError::NotFound(_))
            ),
            "{backend}"
        );

        // Cursor pagination walks every incident once.
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = store
                .list_incidents(
                    &acme,
                    &IncidentFilter {
                        limit: 1,
                        cursor: cursor.clone(),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            seen.extend(page.incidents.iter().map(|i| i.id));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen.len(), 3, "{backend}: {seen:?}");

        // The triggering event is linked.
        let events = store.incident_events(&acme, first.id, 10).await.unwrap();
        assert_eq!(
            events.iter().map(|e| e.record_id).collect::<Vec<_>>(),
            [Some(9)],
            "{backend}"
        );
        let page = store
            .incident_events_page(&acme, first.id, None, 1)
            .await
            .unwrap();
        assert_eq!(
            page.events.iter().map(|e| e.record_id).collect::<Vec<_>>(),
            [Some(9)],
            "{backend}"
        );
        let alerts = store
            .incident_alerts(&acme, first.id, None, 500)
            .await
            .unwrap();
        assert!(
            !alerts.alerts.is_empty() && alerts.after.is_none(),
            "{backend}"
        );
        // Page by page, one alert at a time, the alerts come in the same order.
        let mut paged = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .incident_alerts(&acme, first.id, after.as_deref(), 1)
                .await
                .unwrap();
            paged.extend(page.alerts.iter().map(|a| a.id));
            match page.after {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
        assert_eq!(
            paged,
            alerts.alerts.iter().map(|a| a.id).collect::<Vec<_>>(),
            "{backend}"
        );

        // Assignment needs an active user.
        let refused = store
            .assign_incident(&acme, first.id, "nobody", &actor)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("unknown user 'nobody'"),
            "{backend}: {refused}"
        );
        let hash = siren_core::user::hash_password("a long enough password").unwrap();
        store
            .add_user(&acme, "alice", Role::Analyst, &hash, &actor)
            .await
            .unwrap();
        assert!(
            store
                .add_user(&acme, "alice", Role::Viewer, &hash, &actor)
                .await
                .is_err(),
            "{backend}: duplicate user"
        );
        let assigned = store
            .assign_incident(&acme, first.id, "alice", &actor)
            .await
            .unwrap();
        assert_eq!(assigned.assignee.as_deref(), Some("alice"));
        let mine = store
            .list_incidents(
                &acme,
                &IncidentFilter {
                    assignee: Some("alice".into()),
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(mine.incidents.len(), 1, "{backend}");
        assert!(siren_core::user::verify_password(
            "a long enough password",
            &store.password_hash(&acme, "alice").await.unwrap().unwrap()
        ));

        // The lifecycle, with invalid moves refused.
        let refused = store
            .change_status(&acme, first.id, Status::Closed, None, None, &actor)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("cannot move an incident from new to closed"),
            "{backend}: {refused}"
        );
        store
            .change_status(&acme, first.id, Status::Acknowledged, None, None, &actor)
            .await
            .unwrap();
        store
            .change_status(
                &acme,
                first.id,
                Status::InProgress,
                None,
                Some("looking at dc01"),
                &actor,
            )
            .await
            .unwrap();
        assert!(
            store
                .change_status(&acme, first.id, Status::Resolved, None, None, &actor)
                .await
                .is_err(),
            "{backend}"
        );
        let resolved = store
            .change_status(
                &acme,
                first.id,
                Status::Resolved,
                Some(Resolution::TruePositive),
                None,
                &actor,
            )
            .await
            .unwrap();
        assert_eq!(resolved.resolution, Some(Resolution::TruePositive));
        store
            .add_note(&acme, first.id, "password reset done", &actor)
            .await
            .unwrap();
        let timeline: Vec<String> = store
            .incident_timeline(&acme, first.id)
            .await
            .unwrap()
            .into_iter()
            .map(|t| format!("{} {}", t.kind, t.detail))
            .collect();
        assert_eq!(timeline[0], "created opened by rule r1", "{backend}");
        assert!(
            timeline.contains(&"assigned assigned to alice".to_owned()),
            "{backend}: {timeline:?}"
        );
        assert!(
            timeline.contains(&"status_changed in_progress → resolved (true_positive)".to_owned()),
            "{backend}: {timeline:?}"
        );
        assert_eq!(
            timeline.last().unwrap(),
            "note password reset done",
            "{backend}"
        );

        // Paged from the newest entry back, the timeline is the same, each page oldest first.
        let mut paged: Vec<String> = Vec::new();
        let mut before = None;
        loop {
            let page = store
                .incident_timeline_page(
                    &acme,
                    first.id,
                    &TimelineQuery {
                        before: before.clone(),
                        limit: 2,
                        ..TimelineQuery::default()
                    },
                )
                .await
                .unwrap();
            assert_eq!(page.total, timeline.len() as u64, "{backend}");
            assert!(page.entries.len() <= 2, "{backend}");
            let mut older: Vec<String> = page
                .entries
                .iter()
                .map(|t| format!("{} {}", t.kind, t.detail))
                .collect();
            older.append(&mut paged);
            paged = older;
            match page.before {
                Some(cursor) => before = Some(cursor),
                None => break,
            }
        }
        assert_eq!(paged, timeline, "{backend}");
        let notes = store
            .incident_timeline_page(
                &acme,
                first.id,
                &TimelineQuery {
                    notes_only: true,
                    limit: 10,
                    ..TimelineQuery::default()
                },
            )
            .await
            .unwrap();
        let noted: Vec<&str> = notes.entries.iter().map(|t| t.detail.as_str()).collect();
        assert_eq!(
            noted,
            ["looking at dc01", "password reset done"],
            "{backend}"
        );
        assert_eq!((notes.total, notes.before), (2, None), "{backend}");
        // Another tenant sees none of it.
        let foreign = store
            .incident_timeline_page(
                &other,
                first.id,
                &TimelineQuery {
                    limit: 10,
                    ..TimelineQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!((foreign.entries.len(), foreign.total), (0, 0), "{backend}");

        // A resolved incident takes no more alerts: a new one opens.
        let outcome = store
            .record_alerts(
                &acme,
                &[alert("r1", "dc01", "2024-05-01T10:06:00Z", "bob", None)],
                window,
                now,
            )
            .await
            .unwrap();
        assert_eq!(outcome.incidents_created, 1, "{backend}");

        // Everything above is in the audit log, which cannot be rewritten.
        let audit = store.audit_log(&acme, 100).await.unwrap();
        let actions: Vec<_> = audit.iter().map(|a| a.action.as_str()).collect();
        for action in [
            "user.add",
            "incident.assign",
            "incident.status",
            "incident.note",
        ] {
            assert!(actions.contains(&action), "{backend}: {actions:?}");
        }
        assert!(
            audit
                .iter()
                .all(|a| a.actor == "lead" && a.origin == "test")
        );

        // An alert too late for the open incident of its key opens another and leaves that
        // one as it was: not counted as updated, no "0 alerts added" in its timeline.
        let open_before = store.list_incidents(&acme, &all).await.unwrap().incidents;
        let outcome = store
            .record_alerts(
                &acme,
                &[alert("r1", "ws7", "2024-06-01T10:00:00Z", "amy", None)],
                window,
                now,
            )
            .await
            .unwrap();
        assert_eq!(
            (outcome.incidents_created, outcome.incidents_updated),
            (1, 0),
            "{backend}"
        );
        for incident in open_before {
            let timeline = store.incident_timeline(&acme, incident.id).await.unwrap();
            assert!(
                timeline.iter().all(|e| !e.detail.starts_with("0 alerts")),
                "{backend}: {timeline:?}"
            );
        }

        // Correlation state: checkpoints round-trip, an older one does not replace a newer
        // one, and the journal appended by batches is read back after a sequence number and
        // pruned up to the checkpoint saved.
        assert_eq!(
            store.load_correlation_state(&acme, "engine").await.unwrap(),
            None
        );
        let mut seqs = Vec::new();
        for entry in [&b"e1"[..], b"e2", b"e3"] {
            let mut batch = store.begin_batch(&acme, "engine").await.unwrap();
            seqs.push(batch.append_journal(entry).await.unwrap());
            batch.commit().await.unwrap();
        }
        assert_eq!(seqs, [1, 2, 3], "{backend}");
        // A batch that is dropped rolls back, its entry and head with it.
        let mut dropped = store.begin_batch(&acme, "engine").await.unwrap();
        assert_eq!(dropped.journal_head(), 3);
        dropped.append_journal(b"lost").await.unwrap();
        drop(dropped);
        let batch = store.begin_batch(&acme, "engine").await.unwrap();
        assert_eq!(batch.journal_head(), 3, "{backend}");
        drop(batch);
        let journal = store.correlation_journal(&acme, "engine", 1).await.unwrap();
        assert_eq!(journal, vec![(2, b"e2".to_vec()), (3, b"e3".to_vec())]);
        store
            .save_correlation_state(&acme, "engine", b"v2", 2)
            .await
            .unwrap();
        store
            .save_correlation_state(&acme, "engine", b"v1", 1)
            .await
            .unwrap();
        assert_eq!(
            store.load_correlation_state(&acme, "engine").await.unwrap(),
            Some(Checkpoint {
                state: b"v2".to_vec(),
                seq: 2
            })
        );
        assert_eq!(
            store.correlation_journal(&acme, "engine", 0).await.unwrap(),
            vec![(3, b"e3".to_vec())]
        );
    }
}

/// The migrations up to (not including) `version`, from the repository's folder for `backend`.
async fn migrations_before(backend: &str, version: i64) -> sqlx::migrate::Migrator {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(backend);
    let mut migrator = sqlx::migrate::Migrator::new(dir).await.unwrap();
    let older: Vec<_> = migrator
        .migrations
        .iter()
        .filter(|m| m.version < version)
        .cloned()
        .collect();
    migrator.migrations = older.into();
    migrator
}

/// An incident (id 1) and its alert, whose event has the key `$1` (both schemas alike).
const OLD_INCIDENT: &str = "INSERT INTO incidents (id, tenant, group_key, rule_id, title, severity, \
    severity_rank, status, rule_ids, techniques, hosts, users, ips, investigation, first_seen, last_seen, \
    alert_count, event_count, created_at, updated_at) VALUES (1, 'acme', 'dc01', 'det-1', 'Brute force', \
    'medium', 2, 'new', '[\"det-1\"]', '[]', '[\"dc01\"]', '[]', '[]', '[]', 0, 0, 1, 1, 0, 0)";
const OLD_ALERT: &str = "INSERT INTO alerts (tenant, incident_id, rule_id, rule_title, severity, event_key, ts, \
    detail, created_at) VALUES ('acme', 1, 'det-1', 'Brute force', 'medium', $1, 0, '{}', 0)";

/// A database of the schema before de-duplication keys led with the event's time, holding
/// an event and an alert with a key of the former kind (and an event without a time), is
/// migrated to keys that the current code computes for the same event: storing it again is a
/// duplicate, and the incident still finds its event.
#[tokio::test]
async fn former_dedup_keys_are_migrated_to_keys_by_time() {
    const KEYS_BY_TIME: i64 = 20261203000008;
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}", dir.path().join("old.db").display());
    let mut urls = vec![("sqlite", sqlite_url)];
    if let Some(pg) = crate::support::fresh_postgres_database().await {
        urls.push(("postgres", pg));
    }
    let ev = event("acme", 7, "dc01", "2024-05-01T10:00:00.25Z", "bob");
    let row = EventRow::from_event(&ev);
    // A former key: a 16-byte digest of which the new key keeps the first 11 bytes.
    let mut former = [0xEE_u8; 16];
    former[..11].copy_from_slice(&row.dedup_key[5..]);
    let timeless = [0x11_u8; 16];
    let ts = ev.timestamp.unwrap();
    let acme = TenantId::parse("acme").unwrap();
    for (backend, url) in urls {
        let migrator = migrations_before(backend, KEYS_BY_TIME).await;
        if backend == "sqlite" {
            let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&url)
                .unwrap()
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            migrator.run(&pool).await.unwrap();
            let insert = "INSERT INTO events (tenant, dedup_key, ts, fields, ingested_at) \
                VALUES ('acme', $1, $2, '{}', 0)";
            for (key, ts) in [(former, Some(ts.timestamp_micros())), (timeless, None)] {
                sqlx::query(insert)
                    .bind(&key[..])
                    .bind(ts)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            sqlx::query(OLD_INCIDENT).execute(&pool).await.unwrap();
            sqlx::query(OLD_ALERT)
                .bind(&former[..])
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        } else {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            migrator.run(&pool).await.unwrap();
            let insert = "INSERT INTO events (tenant, dedup_key, ts, fields, ingested_at) \
                VALUES ('acme', $1, $2, '{}', now())";
            for (key, ts) in [(former, Some(ts)), (timeless, None)] {
                sqlx::query(insert)
                    .bind(&key[..])
                    .bind(ts)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            sqlx::query(OLD_INCIDENT).execute(&pool).await.unwrap();
            sqlx::query(OLD_ALERT)
                .bind(&former[..])
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        let store = store::open(&url).await.unwrap();
        assert!(
            store
                .insert_events(std::slice::from_ref(&row))
                .await
                .unwrap()
                .is_empty(),
            "{backend}: the migrated key is the one computed now"
        );
        assert_eq!(store.count_events(&acme).await.unwrap(), 2, "{backend}");
        let events = store
            .incident_events(&acme, siren_core::incident::IncidentId(1), 10)
            .await
            .unwrap();
        assert_eq!(
            events.len(),
            1,
            "{backend}: the alert follows its event's key"
        );
    }
}

/// Runs `sql` on the database at `url` with a connection of its own, past the store.
async fn execute_directly(url: &str, sql: &str) -> Result<(), sqlx::Error> {
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await?;
        let result = sqlx::query(sql).execute(&pool).await.map(|_| ());
        pool.close().await;
        result
    } else {
        let pool = sqlx::PgPool::connect(url).await?;
        let result = sqlx::query(sql).execute(&pool).await.map(|_| ());
        pool.close().await;
        result
    }
}

/// The audit log cannot be edited or emptied, whoever holds the database: the schema's
/// triggers refuse an UPDATE and a DELETE on both backends, and the entry stays as written.
#[tokio::test]
async fn audit_log_is_append_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut urls = vec![format!(
        "sqlite://{}",
        dir.path().join("audit.db").display()
    )];
    if let Some(pg) = crate::support::fresh_postgres_database().await {
        urls.push(pg);
    }
    let acme = TenantId::parse("acme").unwrap();
    let actor = siren_core::user::Actor {
        name: "alice".into(),
        origin: "test".into(),
    };
    for url in urls {
        let store = store::open(&url).await.unwrap();
        store
            .record_audit(&acme, &actor, "login.lockout", "user:bob", "5 failures")
            .await
            .unwrap();
        let before = store.audit_log(&acme, 10).await.unwrap();
        assert_eq!(before.len(), 1, "{url}");
        for sql in [
            "UPDATE audit_log SET action = 'nothing.happened'",
            "DELETE FROM audit_log",
        ] {
            let error = execute_directly(&url, sql)
                .await
                .expect_err(sql)
                .to_string();
            assert!(error.contains("append-only"), "{url}: {sql}: {error}");
        }
        let after = store.audit_log(&acme, 10).await.unwrap();
        assert_eq!(after.len(), 1, "{url}");
        assert_eq!(after[0].action, "login.lockout", "{url}");
        assert_eq!(after[0].detail, before[0].detail, "{url}");
    }
}
