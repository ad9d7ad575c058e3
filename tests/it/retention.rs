//! Retention with the clock set forward, on both backends: what the policy no longer keeps
//! is purged, open incidents and their events stay, the audit log is only added to, and a
//! dry run counts exactly what the real run then removes.

use chrono::{Duration, Utc};
use siren_core::TenantId;
use siren_core::incident::IncidentFilter;
use siren_core::retention::{self, PurgeRequest, RetentionConfig};
use siren_core::store::{self, Purged};
use siren_core::user::Actor;

use crate::support::{fresh_postgres_database, json_output, siren, stdout_of_success};

const POLICY: &str = "events: 30d\nincidents: 30d\noutbox: 30d\nsessions: 1d\ncorrelation: 30d\n";

/// Events ten days old: the sample on two hosts (two incidents), 200 that raise nothing,
/// and 3 without a time (their ingest time counts).
fn events_ten_days_old() -> String {
    let day = (Utc::now() - Duration::days(10))
        .format("%Y-%m-%d")
        .to_string();
    let sample = std::fs::read_to_string(
        crate::support::workspace_root().join("tests/fixtures/inputs/sample.jsonl"),
    )
    .unwrap()
    .replace("2024-03-04", &day);
    let mut text = sample.clone();
    text.push_str(&sample.replace("WS042", "WS043"));
    for n in 0..200 {
        text.push_str(&format!(
            "{{\"EventID\": 1000, \"Channel\": \"Application\", \"Computer\": \"quiet\", \
             \"EventRecordID\": {n}, \"TimeCreated\": \"{day}T12:{:02}:00Z\"}}\n",
            n % 60
        ));
    }
    for n in 0..3 {
        text.push_str(&format!("{{\"Message\": \"no time {n}\"}}\n"));
    }
    text
}

fn request(dry_run: bool) -> PurgeRequest {
    PurgeRequest {
        now: Utc::now() + Duration::days(100),
        before: None,
        kinds: Vec::new(),
        tenant: None,
        dry_run,
        archive: None,
    }
}

fn actor() -> Actor {
    Actor {
        name: "retention-test".to_owned(),
        origin: "test".to_owned(),
    }
}

#[tokio::test]
async fn a_clock_set_forward_purges_what_the_policy_no_longer_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let mut urls = vec![format!(
        "sqlite://{}",
        dir.path().join("retention.db").display()
    )];
    urls.extend(fresh_postgres_database().await);
    std::fs::write(dir.path().join("events.jsonl"), events_ten_days_old()).unwrap();
    std::fs::write(
        dir.path().join("siren.yaml"),
        format!(
            "retention:\n{}",
            POLICY
                .lines()
                .map(|l| format!("  {l}\n"))
                .collect::<String>()
        ),
    )
    .unwrap();
    for url in urls {
        let backend = url.split(':').next().unwrap().to_owned();
        stdout_of_success(siren(dir.path()).args(["--db", &url, "ingest", "events.jsonl"]));
        let store = store::open(&url).await.unwrap();
        let tenant = TenantId::parse("default").unwrap();
        let incidents = store
            .list_incidents(
                &tenant,
                &IncidentFilter {
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .incidents;
        assert_eq!(incidents.len(), 2, "{backend}: one incident per host");
        let (closed, open) = (&incidents[0], &incidents[1]);
        let id = closed.id.to_string();
        for status in [
            vec!["resolved", "--resolution", "false_positive"],
            vec!["closed"],
        ] {
            let mut args = vec!["--db", &url, "incidents", "status", &id];
            args.extend(status);
            stdout_of_success(siren(dir.path()).args(&args));
        }
        let open_events = store
            .incident_events_page(&tenant, open.id, None, 1000)
            .await
            .unwrap();
        let audit_before = store.audit_log(&tenant, 10_000).await.unwrap();
        let events_before = store.count_events(&tenant).await.unwrap();
        // The sample's DC01 events are the same in both copies: stored once.
        assert_eq!(events_before, 209, "{backend}");

        // At the real time nothing is due yet: the events are ten days old.
        let (code, now) = json_output(siren(dir.path()).args([
            "--db",
            &url,
            "purge",
            "--dry-run",
            "--format",
            "json",
        ]));
        assert_eq!(code, 0, "{backend}");
        assert_eq!(
            now["total"],
            serde_json::to_value(Purged::default()).unwrap()
        );

        let config: RetentionConfig = serde_yaml::from_str(POLICY).unwrap();
        let dry = retention::purge(&*store, &config, &request(true), &actor())
            .await
            .unwrap();
        assert_eq!(
            store.count_events(&tenant).await.unwrap(),
            events_before,
            "{backend}: a dry run removes nothing"
        );
        let done = retention::purge(&*store, &config, &request(false), &actor())
            .await
            .unwrap();
        assert_eq!(dry.total, done.total, "{backend}: the dry run is exact");
        let kept_events = open_events.events.len() as u64;
        assert_eq!(done.total.incidents, 1, "{backend}");
        assert_eq!(done.total.alerts, closed.alert_count, "{backend}");
        assert_eq!(done.total.events, events_before - kept_events, "{backend}");
        assert!(done.total.timeline >= 2, "{backend}: {:?}", done.total);

        // The open incident and its evidence stay; the closed one is gone.
        assert_eq!(store.count_events(&tenant).await.unwrap(), kept_events);
        assert_eq!(
            store
                .incident_events_page(&tenant, open.id, None, 1000)
                .await
                .unwrap(),
            open_events,
            "{backend}"
        );
        assert_eq!(
            store
                .get_incident(&tenant, open.id)
                .await
                .unwrap()
                .alert_count,
            open.alert_count
        );
        assert!(
            store.get_incident(&tenant, closed.id).await.is_err(),
            "{backend}: the closed incident is purged"
        );
        let stats = store.dashboard_stats(&tenant, Utc::now()).await.unwrap();
        assert_eq!(stats.events_total, kept_events, "{backend}: counts follow");

        // The audit log keeps every entry, and says what the purge removed.
        let audit_after = store.audit_log(&tenant, 10_000).await.unwrap();
        let (purges, others): (Vec<_>, Vec<_>) = audit_after
            .into_iter()
            .partition(|e| e.action == "retention.purge");
        assert_eq!(others, audit_before, "{backend}");
        assert_eq!(purges.len(), 1, "{backend}");
        let removed = format!("\"events\":{}", done.total.events);
        assert!(purges[0].detail.contains(&removed), "{}", purges[0].detail);

        // `siren status` says what is left and what the policy keeps.
        let (code, status) =
            json_output(siren(dir.path()).args(["--db", &url, "status", "--format", "json"]));
        assert_eq!(code, 0, "{backend}");
        let default = &status["tenants"][0];
        assert_eq!(default["tenant"], "default", "{status}");
        assert_eq!(default["events"], kept_events, "{status}");
        assert_eq!(default["policy"]["events"], "30d", "{status}");
        assert!(status["database_bytes"].as_u64().unwrap() > 0, "{status}");
        assert_eq!(status["disk"].is_object(), backend == "sqlite", "{status}");

        let again = retention::purge(&*store, &config, &request(true), &actor())
            .await
            .unwrap();
        assert_eq!(again.total, Purged::default(), "{backend}");
    }
}
