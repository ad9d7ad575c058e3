//! Policies: severity filters, dedup, throttling with digests, escalation, two dispatchers.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn severity_filter_and_dedup_of_a_growing_incident() {
    for (backend, store, _guard) in backends().await {
        let receiver = Receiver::start().await;
        let clock = Arc::new(ManualClock::new(start_time()));
        let config = config(&format!(
            r#"
channels:
  - {{ name: chat, type: webhook, url: "{}" }}
policies:
  - {{ channels: [chat], min_severity: high, renotify_after: 10m }}
"#,
            receiver.url("chat")
        ));
        let dispatcher = Dispatcher::new(store.clone(), config, clock.clone()).unwrap();
        let t = start_time();

        // Severity filter: a medium incident goes nowhere, a high one goes out.
        open(
            &store,
            &clock,
            &[alert("r-medium", "h1", Severity::Medium, t)],
        )
        .await;
        open(&store, &clock, &[alert("r-high", "h1", Severity::High, t)]).await;
        dispatcher.tick(None).await.unwrap();
        let hooks = receiver.hooks();
        assert_eq!(hooks.len(), 1, "{backend}");
        assert_eq!(
            hooks[0].json()["incident"]["title"],
            "Rule r-high — h1",
            "{backend}"
        );
        let high = hooks[0].json()["incident"]["id"].as_i64().unwrap();

        // It grows five times within the interval: nothing more.
        for n in 1..=5 {
            clock.advance(Duration::from_secs(60));
            open(
                &store,
                &clock,
                &[alert(
                    "r-high",
                    "h1",
                    Severity::High,
                    t + chrono::Duration::minutes(n),
                )],
            )
            .await;
            dispatcher.tick(None).await.unwrap();
        }
        assert_eq!(receiver.hooks().len(), 1, "{backend}: still one message");

        // Ten minutes after the first message: one update with the new count.
        clock.advance(Duration::from_secs(5 * 60));
        dispatcher.tick(None).await.unwrap();
        let hooks = receiver.hooks();
        assert_eq!(hooks.len(), 2, "{backend}");
        let update = hooks[1].json();
        assert_eq!(update["type"], "incident.update", "{backend}");
        assert_eq!(update["incident"]["id"], high, "{backend}");
        assert_eq!(update["incident"]["alert_count"], 6, "{backend}");
        assert!(
            update["headline"].as_str().unwrap().contains("6 alerts"),
            "{backend}"
        );

        // No growth, no message, however long we wait.
        clock.advance(Duration::from_secs(3600));
        dispatcher.tick(None).await.unwrap();
        assert_eq!(receiver.hooks().len(), 2, "{backend}");

        // The medium incident has no delivery at all.
        let all = store
            .list_deliveries(
                &acme(),
                &DeliveryFilter {
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(
            all.iter().all(|d| d.incident_id == Some(IncidentId(high))),
            "{backend}: {all:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_holds_back_and_sends_a_digest() {
    for (backend, store, _guard) in backends().await {
        let receiver = Receiver::start().await;
        let clock = Arc::new(ManualClock::new(start_time()));
        let config = config(&format!(
            r#"
channels:
  - {{ name: chat, type: webhook, url: "{}", throttle: {{ max: 2, per: 1h }} }}
policies:
  - {{ channels: [chat], min_severity: high }}
"#,
            receiver.url("chat")
        ));
        let dispatcher = Dispatcher::new(store.clone(), config, clock.clone()).unwrap();
        let alerts: Vec<Alert> = (1..=5)
            .map(|n| alert("burst", &format!("host{n}"), Severity::High, start_time()))
            .collect();
        open(&store, &clock, &alerts).await;
        let report = dispatcher.tick(None).await.unwrap();
        assert_eq!((report.sent, report.held), (2, 3), "{backend}: {report:?}");
        assert_eq!(receiver.hooks().len(), 2, "{backend}");

        // Within the window nothing more goes out.
        clock.advance(Duration::from_secs(30 * 60));
        dispatcher.tick(None).await.unwrap();
        assert_eq!(receiver.hooks().len(), 2, "{backend}");

        // Once the window allows: one digest of the three held back.
        clock.advance(Duration::from_secs(31 * 60));
        let report = dispatcher.tick(None).await.unwrap();
        assert_eq!(
            (report.digests, report.sent),
            (1, 1),
            "{backend}: {report:?}"
        );
        let hooks = receiver.hooks();
        assert_eq!(hooks.len(), 3, "{backend}");
        let digest = hooks[2].json();
        assert_eq!(digest["type"], "incident.digest", "{backend}");
        assert!(
            digest["headline"]
                .as_str()
                .unwrap()
                .contains("3 incidents held back"),
            "{backend}"
        );
        let mut first_two = ids(&hooks[..2]);
        let mut held = ids(&hooks[2..]);
        assert_eq!(held.len(), 3, "{backend}");
        first_two.append(&mut held);
        first_two.sort_unstable();
        assert_eq!(
            first_two,
            [1, 2, 3, 4, 5],
            "{backend}: every incident told exactly once"
        );
        let digested = store
            .list_deliveries(
                &acme(),
                &DeliveryFilter {
                    state: Some(DeliveryState::Digested),
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(digested.len(), 3, "{backend}");
        // The digest is in each held incident's timeline.
        let timeline = store
            .incident_timeline(&acme(), IncidentId(held_first(&hooks[2])))
            .await
            .unwrap();
        assert!(
            timeline
                .iter()
                .any(|e| e.kind == "notification_sent" && e.detail.contains("digest")),
            "{backend}: {timeline:?}"
        );
    }
}

fn held_first(hook: &Hook) -> i64 {
    hook.json()["incidents"][0]["id"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_after_the_acknowledgement_timeout() {
    for (backend, store, _guard) in backends().await {
        let receiver = Receiver::start().await;
        let clock = Arc::new(ManualClock::new(start_time()));
        let config = config(&format!(
            r#"
channels:
  - {{ name: chat, type: webhook, url: "{}" }}
  - {{ name: pager, type: webhook, url: "{}" }}
policies:
  - {{ channels: [chat], min_severity: high, escalate_after: 15m, escalate_to: [pager] }}
"#,
            receiver.url("chat"),
            receiver.url("pager")
        ));
        let dispatcher = Dispatcher::new(store.clone(), config, clock.clone()).unwrap();
        open(
            &store,
            &clock,
            &[
                alert("r", "ignored-host", Severity::High, start_time()),
                alert("r", "acked-host", Severity::High, start_time()),
            ],
        )
        .await;
        dispatcher.tick(None).await.unwrap();
        assert_eq!(receiver.on("chat").len(), 2, "{backend}");
        assert!(receiver.on("pager").is_empty(), "{backend}");

        // An analyst acknowledges one of them.
        let acked = ids(&receiver.on("chat"))
            .into_iter()
            .find(|id| {
                receiver.on("chat").iter().any(|h| {
                    h.json()["incident"]["id"] == *id
                        && h.json()["incident"]["hosts"][0] == "acked-host"
                })
            })
            .unwrap();
        let actor = Actor {
            name: "alice".to_owned(),
            origin: "test".to_owned(),
        };
        store
            .change_status(
                &acme(),
                IncidentId(acked),
                Status::Acknowledged,
                None,
                None,
                &actor,
            )
            .await
            .unwrap();

        clock.advance(Duration::from_secs(14 * 60));
        dispatcher.tick(None).await.unwrap();
        assert!(receiver.on("pager").is_empty(), "{backend}: not yet");

        clock.advance(Duration::from_secs(2 * 60));
        dispatcher.tick(None).await.unwrap();
        let pages = receiver.on("pager");
        assert_eq!(pages.len(), 1, "{backend}: only the unacknowledged one");
        let page = pages[0].json();
        assert_eq!(page["type"], "incident.escalation", "{backend}");
        assert_eq!(page["incident"]["hosts"][0], "ignored-host", "{backend}");
        assert!(
            page["headline"]
                .as_str()
                .unwrap()
                .contains("not acknowledged after 15m"),
            "{backend}"
        );
        let cancelled = store
            .list_deliveries(
                &acme(),
                &DeliveryFilter {
                    state: Some(DeliveryState::Cancelled),
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(cancelled.len(), 1, "{backend}");
        assert_eq!(
            cancelled[0].incident_id,
            Some(IncidentId(acked)),
            "{backend}"
        );

        // Later rounds add nothing.
        clock.advance(Duration::from_secs(3600));
        dispatcher.tick(None).await.unwrap();
        assert_eq!(receiver.hooks().len(), 3, "{backend}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dispatchers_sharing_a_database_send_each_delivery_once() {
    for (backend, store, _guard) in backends().await {
        let receiver = Receiver::start().await;
        let clock = Arc::new(ManualClock::new(start_time()));
        let yaml = format!(
            "channels:\n  - {{ name: chat, type: webhook, url: \"{}\" }}\npolicies:\n  - {{ channels: [chat] }}\n",
            receiver.url("chat")
        );
        let alerts: Vec<Alert> = (0..40)
            .map(|n| alert("spread", &format!("host{n}"), Severity::High, start_time()))
            .collect();
        open(&store, &clock, &alerts).await;
        let a = Dispatcher::new(store.clone(), config(&yaml), clock.clone())
            .unwrap()
            .with_owner("replica-a");
        let b = Dispatcher::new(store.clone(), config(&yaml), clock.clone())
            .unwrap()
            .with_owner("replica-b");
        let (ra, rb) = tokio::join!(a.tick(None), b.tick(None));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        // Whatever one of them had not claimed yet, a second round picks up.
        let (rc, rd) = tokio::join!(a.tick(None), b.tick(None));
        let sent = ra.sent + rb.sent + rc.unwrap().sent + rd.unwrap().sent;
        assert_eq!(sent, 40, "{backend}");
        let got = ids(&receiver.hooks());
        assert_eq!(
            got,
            (1..=40).collect::<Vec<_>>(),
            "{backend}: each incident exactly once"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Through the CLI: the outbox survives endpoints that are down and a restart
// ---------------------------------------------------------------------------------------------
