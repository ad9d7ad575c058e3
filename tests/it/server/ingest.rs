//! Hostile event batches: clear errors, and nothing accepted is lost.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_event_batches_get_clear_errors_and_lose_nothing() {
    for (url, dir) in backends().await {
        let server = start(
            &url,
            dir,
            ServerConfig {
                body_limit: 64 * 1024,
                decompressed_limit: 256 * 1024,
                max_batch: 1000,
                ..config()
            },
        )
        .await;
        let token = add_token(&server.store, "default", Role::Agent, false).await;
        let http = reqwest::Client::new();
        let send = |body: Vec<u8>, content_type: &'static str, gzip: bool| {
            let mut request = http
                .post(server.at("/api/v1/events"))
                .bearer_auth(&token)
                .header("Content-Type", content_type)
                .body(body);
            if gzip {
                request = request.header("Content-Encoding", "gzip");
            }
            request.send()
        };
        let json = "application/json";
        let ndjson = "application/x-ndjson";

        // A good batch first: it must survive everything below.
        let good: Vec<Value> = (0..50).map(|i| logon("ws02", i)).collect();
        let response = send(serde_json::to_vec(&good).unwrap(), json, false)
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(events_stored(&server.store, "default").await, 50);

        // Per-item errors carry their index; the rest is stored.
        let mixed = json!([logon("ws03", 1), 42, "text", logon("ws03", 2), [1, 2], null]);
        let outcome: Value = send(serde_json::to_vec(&mixed).unwrap(), json, false)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(outcome["received"], 6);
        assert_eq!(outcome["stored"], 2);
        let indexes: Vec<i64> = outcome["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["index"].as_i64().unwrap())
            .collect();
        assert_eq!(indexes, [1, 2, 4, 5], "{outcome}");
        assert!(
            outcome["rejected"][0]["error"]
                .as_str()
                .unwrap()
                .contains("expected a JSON object")
        );

        // NDJSON with a broken line and a line of invalid UTF-8: those lines are rejected.
        let mut body = Vec::new();
        body.extend_from_slice(serde_json::to_string(&logon("ws04", 1)).unwrap().as_bytes());
        body.extend_from_slice(b"\n{\"EventID\": 4624, \"Computer\": \"ws04\"\n");
        body.extend_from_slice(b"{\"EventID\": 4624, \"Computer\": \"ws\xff\xfe04\"}\n\n");
        body.extend_from_slice(serde_json::to_string(&logon("ws04", 2)).unwrap().as_bytes());
        let outcome: Value = send(body, ndjson, false)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(outcome["stored"], 2, "{outcome}");
        let indexes: Vec<i64> = outcome["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["index"].as_i64().unwrap())
            .collect();
        assert_eq!(indexes, [1, 2], "{outcome}");

        // Whole bodies that are not JSON at all, bad gzip, deep nesting, invalid UTF-8 in an array.
        let mut deep = String::new();
        for _ in 0..10_000 {
            deep.push_str("{\"a\":");
        }
        deep.push('1');
        for _ in 0..10_000 {
            deep.push('}');
        }
        let cases: Vec<(Vec<u8>, &str, bool, u16)> = vec![
            (b"this is not json".to_vec(), json, false, 400),
            (b"[{\"EventID\": 1},".to_vec(), json, false, 400),
            (b"".to_vec(), json, false, 400),
            (b"\x1f\x8b\x08\x00garbage".to_vec(), json, true, 400),
            (b"not gzip at all".to_vec(), json, true, 400),
            (format!("[{deep}]").into_bytes(), json, false, 400),
            (b"[{\"Computer\": \"\xff\xfe\"}]".to_vec(), json, false, 400),
            (b"<xml/>".to_vec(), "application/xml", false, 415),
            (vec![b' '; 100 * 1024], json, false, 413),
            // A small gzip that unpacks past the decompressed limit.
            (gzip(&vec![b' '; 1024 * 1024]), json, true, 413),
        ];
        for (i, (body, content_type, gzipped, expected)) in cases.into_iter().enumerate() {
            let response = send(body, content_type, gzipped).await.unwrap();
            assert_eq!(response.status().as_u16(), expected, "case {i}");
            let body: Value = response.json().await.unwrap();
            assert!(
                body["error"].as_str().is_some_and(|e| !e.is_empty()),
                "case {i}: {body}"
            );
        }
        // NDJSON in which a line nests too deep: that line is rejected, the others stored.
        let body = format!(
            "{}\n{deep}\n",
            serde_json::to_string(&logon("ws05", 1)).unwrap()
        );
        let outcome: Value = send(body.into_bytes(), ndjson, false)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(outcome["stored"], 1, "{outcome}");
        assert_eq!(outcome["rejected"][0]["index"], 1);
        // Too many items.
        let many: Vec<Value> = (0..1001).map(|_| json!({})).collect();
        let response = send(serde_json::to_vec(&many).unwrap(), json, false)
            .await
            .unwrap();
        assert_eq!(response.status(), 413);

        // gzip + NDJSON works, and a resend is all duplicates.
        let lines: String = (0..100)
            .map(|i| serde_json::to_string(&logon("ws06", i)).unwrap() + "\n")
            .collect();
        let outcome: Value = send(gzip(lines.as_bytes()), ndjson, true)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(outcome["stored"], 100, "{outcome}");
        let outcome: Value = send(gzip(lines.as_bytes()), ndjson, true)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            (outcome["stored"].as_u64(), outcome["duplicates"].as_u64()),
            (Some(0), Some(100))
        );

        // Nothing accepted was lost along the way.
        assert_eq!(
            events_stored(&server.store, "default").await,
            50 + 2 + 2 + 1 + 100
        );
        // The server is still healthy.
        let health = http.get(server.at("/healthz")).send().await.unwrap();
        assert_eq!(health.text().await.unwrap(), "ok");
        server.stop().await;
    }
}
