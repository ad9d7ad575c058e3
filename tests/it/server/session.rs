//! Browser sessions end to end: login, CSRF, and the analyst's work on incidents.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_session_csrf_and_incident_work() {
    for (url, dir) in backends().await {
        let server = start(&url, dir, config()).await;
        add_user(&server.store, "default", "alice", Role::Analyst).await;
        add_user(&server.store, "default", "bob", Role::Viewer).await;
        let agent = add_token(&server.store, "default", Role::Agent, false).await;
        let http = reqwest::Client::new();

        // Wrong password and unknown user: the same 401.
        for (user, password) in [("alice", "wrong password!"), ("nobody", PASSWORD)] {
            let response = http
                .post(server.at("/api/v1/auth/login"))
                .json(&json!({"username": user, "password": password}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 401);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "invalid user name or password");
        }

        // An agent sends events; one opens an incident.
        let batch = json!([logon("ws01", 1), log_cleared("ws01", 2)]);
        let response = http
            .post(server.at("/api/v1/events"))
            .bearer_auth(&agent)
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let outcome: Value = response.json().await.unwrap();
        assert_eq!(outcome["stored"], 2, "{outcome}");
        assert_eq!(outcome["incidents_created"], 1, "{outcome}");

        let alice = login(&server, "default", "alice").await;
        let me: Value = alice
            .client
            .get(server.at("/api/v1/auth/me"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["user"]["name"], "alice");
        assert_eq!(me["user"]["role"], "analyst");
        assert_eq!(me["csrf_token"], alice.csrf.as_str());

        let list: Value = alice
            .client
            .get(server.at("/api/v1/incidents?status=new"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let incidents = list["incidents"].as_array().unwrap();
        assert_eq!(incidents.len(), 1, "{list}");
        let id = incidents[0]["id"].as_i64().unwrap();
        assert_eq!(incidents[0]["severity"], "high");

        let detail: Value = alice
            .client
            .get(server.at(&format!("/api/v1/incidents/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(detail["incident"]["id"], id);
        assert_eq!(detail["events"].as_array().unwrap().len(), 1, "{detail}");
        assert_eq!(detail["events"][0]["fields"]["SubjectUserName"], "mallory");
        assert_eq!(detail["alerts"].as_array().unwrap().len(), 1);
        assert_eq!(detail["timeline"][0]["kind"], "created");
        assert_eq!(detail["timeline_total"], 2, "{detail}");
        assert!(detail["timeline_before"].is_null(), "{detail}");
        assert!(
            detail["alerts_after"].is_null() && detail["events_after"].is_null(),
            "{detail}"
        );
        for (part, key) in [("alerts", "alerts"), ("events", "events")] {
            let page: Value = alice
                .client
                .get(server.at(&format!("/api/v1/incidents/{id}/{part}")))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(page[key], detail[key], "{page}");
            assert!(page["after"].is_null(), "{page}");
        }

        // Without the CSRF token the session cannot change anything.
        let refused = alice
            .client
            .post(server.at(&format!("/api/v1/incidents/{id}/assign")))
            .json(&json!({"assignee": "alice"}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403);
        let forged = alice
            .client
            .post(server.at(&format!("/api/v1/incidents/{id}/assign")))
            .header("X-CSRF-Token", "0".repeat(64))
            .json(&json!({"assignee": "alice"}))
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 403);

        let post = |path: String, body: Value| {
            alice
                .client
                .post(server.at(&path))
                .header("X-CSRF-Token", &alice.csrf)
                .json(&body)
                .send()
        };
        let assigned: Value = post(
            format!("/api/v1/incidents/{id}/assign"),
            json!({"assignee": "alice"}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(assigned["assignee"], "alice");
        let moved = post(
            format!("/api/v1/incidents/{id}/status"),
            json!({"status": "closed"}),
        )
        .await
        .unwrap();
        assert_eq!(moved.status(), 422, "new → closed is not a lifecycle move");
        let moved: Value = post(
            format!("/api/v1/incidents/{id}/status"),
            json!({"status": "acknowledged", "note": "on it"}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(moved["status"], "acknowledged");
        let noted = post(
            format!("/api/v1/incidents/{id}/notes"),
            json!({"text": "<script>alert(1)</script>"}),
        )
        .await
        .unwrap();
        assert_eq!(noted.status(), 200);
        let detail: Value = alice
            .client
            .get(server.at(&format!("/api/v1/incidents/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let kinds: Vec<&str> = detail["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "created",
                "alert_added",
                "assigned",
                "status_changed",
                "note",
                "note"
            ],
            "{detail}"
        );
        let actors: Vec<&str> = detail["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["actor"].as_str().unwrap())
            .collect();
        assert_eq!(actors[2], "alice");
        assert_eq!(detail["notes"].as_array().unwrap().len(), 2, "{detail}");
        assert_eq!(detail["notes_total"], 2, "{detail}");

        // The timeline page by page: the newest entries first, then the older ones.
        let newest: Value = alice
            .client
            .get(server.at(&format!("/api/v1/incidents/{id}/timeline?limit=2")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(newest["total"], 6, "{newest}");
        let kinds = |page: &Value| -> Vec<String> {
            page["timeline"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["kind"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(kinds(&newest), ["note", "note"], "{newest}");
        let before = newest["before"].as_str().unwrap();
        let older: Value = alice
            .client
            .get(server.at(&format!(
                "/api/v1/incidents/{id}/timeline?before={before}&limit=10"
            )))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            kinds(&older),
            ["created", "alert_added", "assigned", "status_changed"],
            "{older}"
        );
        assert!(older["before"].is_null(), "{older}");
        let invalid = alice
            .client
            .get(server.at(&format!("/api/v1/incidents/{id}/timeline?before=nonsense")))
            .send()
            .await
            .unwrap();
        assert_eq!(invalid.status(), 422);

        // A viewer reads but cannot work the incident, CSRF token or not.
        let bob = login(&server, "default", "bob").await;
        let read = bob
            .client
            .get(server.at(&format!("/api/v1/incidents/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), 200);
        let work = bob
            .client
            .post(server.at(&format!("/api/v1/incidents/{id}/notes")))
            .header("X-CSRF-Token", &bob.csrf)
            .json(&json!({"text": "hi"}))
            .send()
            .await
            .unwrap();
        assert_eq!(work.status(), 403);

        // Stats, search, rules.
        let stats: Value = alice
            .client
            .get(server.at("/api/v1/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(stats["events_total"], 2, "{stats}");
        assert_eq!(stats["open_by_severity"]["high"], 1, "{stats}");
        assert_eq!(stats["events_per_minute"].as_array().unwrap().len(), 60);
        assert_eq!(
            stats["events_per_minute"]
                .as_array()
                .unwrap()
                .last()
                .unwrap()["count"],
            2
        );
        assert_eq!(stats["top_hosts"][0]["host"], "ws01");
        let events: Value = alice
            .client
            .get(server.at("/api/v1/events?event_id=4624&host=WS01"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(events["events"].as_array().unwrap().len(), 1, "{events}");
        let rules: Value = alice
            .client
            .get(server.at("/api/v1/rules"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            rules["rules"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["title"] == "Security Audit Log Cleared")
        );
        let search: Value = alice
            .client
            .get(server.at("/api/v1/incidents?q=WS01"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(search["incidents"].as_array().unwrap().len(), 1);
        let search: Value = alice
            .client
            .get(server.at("/api/v1/incidents?q=nothing-like-it"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(search["incidents"].as_array().unwrap().len(), 0);

        // Logging out ends the session server-side: the old cookie no longer works.
        let out = alice
            .client
            .post(server.at("/api/v1/auth/logout"))
            .header("X-CSRF-Token", &alice.csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(out.status(), 204);
        let after = alice
            .client
            .get(server.at("/api/v1/auth/me"))
            .send()
            .await
            .unwrap();
        assert_eq!(after.status(), 401);

        // Disabling a user ends their sessions at once.
        let tenant = TenantId::parse("default").unwrap();
        server
            .store
            .set_user_disabled(&tenant, "bob", true, &actor())
            .await
            .unwrap();
        let after = bob
            .client
            .get(server.at("/api/v1/incidents"))
            .send()
            .await
            .unwrap();
        assert_eq!(after.status(), 401);
        server.stop().await;
    }
}
