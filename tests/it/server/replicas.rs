//! Two replicas of the server on one database, without a bus: one tenant's batches take
//! turns across them (a lock on the tenant's correlation journal head), and each brings its
//! correlator up to date with the journal entries the other wrote, so a brute force whose
//! attempts are spread over both replicas opens exactly the incident one replica opens.

use siren_core::incident::IncidentFilter;

use super::*;

/// A refused logon of `user` on `host`, `second` seconds into a minute of today.
fn failed_logon(host: &str, user: &str, record: i64, at: chrono::DateTime<chrono::Utc>) -> Value {
    json!({
        "EventID": 4625, "Channel": "Security", "Provider_Name": "Microsoft-Windows-Security-Auditing",
        "Computer": host, "EventRecordID": record, "TargetUserName": user,
        "TargetDomainName": "CORP", "IpAddress": "10.9.8.7", "LogonType": 3,
        "Status": "0xc000006d", "SubStatus": "0xc000006a", "TimeCreated": at.to_rfc3339(),
    })
}

/// The titles of the tenant's incidents.
async fn incident_titles(store: &Arc<dyn Store>) -> Vec<String> {
    let page = store
        .list_incidents(
            &TenantId::parse("default").unwrap(),
            &IncidentFilter {
                limit: 100,
                ..IncidentFilter::default()
            },
        )
        .await
        .unwrap();
    page.incidents.into_iter().map(|i| i.title).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brute_force_spread_over_two_replicas_opens_one_incident() {
    for (url, dir) in backends().await {
        let backend = url.split(':').next().unwrap().to_owned();
        let first = start(&url, dir, config()).await;
        let second = start(&url, None, config()).await;
        let token = add_token(&first.store, "default", Role::Agent, false).await;
        let http = reqwest::Client::new();
        let start_time = chrono::Utc::now() - chrono::Duration::minutes(1);
        // Six attempts within six seconds, alternately to each replica, one per request;
        // then the same attempts on another host, all to the first replica.
        for (host, spread) in [("ws07", true), ("ws08", false)] {
            for i in 0..6 {
                let replica = if spread && i % 2 == 1 {
                    &second
                } else {
                    &first
                };
                let at = start_time + chrono::Duration::seconds(i);
                let response = http
                    .post(replica.at("/api/v1/events"))
                    .bearer_auth(&token)
                    .json(&json!([failed_logon(host, "carol", 100 + i, at)]))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200, "{backend}");
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["stored"], 1, "{backend}: {body}");
            }
        }
        let titles = incident_titles(&first.store).await;
        let brute_force = titles
            .iter()
            .filter(|t| t.starts_with("Brute Force Against One Account"))
            .count();
        assert_eq!(
            brute_force, 2,
            "{backend}: one per host, spread over two replicas or not: {titles:?}"
        );
        second.stop().await;
        first.stop().await;
    }
}
