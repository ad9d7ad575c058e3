//! The live stream: new incidents from this server and from other processes.

use super::*;

/// Reads server-sent events until one satisfies `want` or `timeout` passes.
async fn wait_for_event(
    response: &mut reqwest::Response,
    timeout: Duration,
    want: impl Fn(&Value) -> bool,
) -> Option<Value> {
    let deadline = Instant::now() + timeout;
    let mut buffer = String::new();
    while Instant::now() < deadline {
        let chunk = tokio::time::timeout(deadline - Instant::now(), response.chunk()).await;
        let Ok(Ok(Some(chunk))) = chunk else {
            return None;
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let message: String = buffer.drain(..end + 2).collect();
            let data: String = message
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .collect();
            if message.lines().any(|l| l.trim() == "event: incident") {
                let value: Value = serde_json::from_str(&data).unwrap();
                if want(&value) {
                    return Some(value);
                }
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_stream_shows_new_incidents_from_this_server_and_other_processes() {
    for (url, dir) in backends().await {
        let server = start(&url, dir, config()).await;
        add_user(&server.store, "default", "vera", Role::Viewer).await;
        add_user(&server.store, "other", "olga", Role::Viewer).await;
        let agent = add_token(&server.store, "default", Role::Agent, false).await;
        let vera = login(&server, "default", "vera").await;
        let olga = login(&server, "other", "olga").await;
        let mut stream = vera
            .client
            .get(server.at("/api/v1/stream"))
            .send()
            .await
            .unwrap();
        assert_eq!(stream.status(), 200);
        assert!(
            stream.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let mut other_stream = olga
            .client
            .get(server.at("/api/v1/stream"))
            .send()
            .await
            .unwrap();

        let posted = Instant::now();
        let response = reqwest::Client::new()
            .post(server.at("/api/v1/events"))
            .bearer_auth(&agent)
            .json(&json!([log_cleared("dc09", 7)]))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let event = wait_for_event(&mut stream, Duration::from_secs(5), |v| {
            v["incident"]["hosts"][0] == "dc09"
        })
        .await
        .expect("the new incident on the stream");
        assert_eq!(event["kind"], "created");
        assert!(
            posted.elapsed() < Duration::from_secs(2),
            "{:?}",
            posted.elapsed()
        );

        // A change made by another process (here: the library on the same database, as
        // `siren ingest` from cron would) reaches the stream too.
        let other_process = siren_core::store::open(&server.url).await.unwrap();
        let pipeline = siren_core::ingest::Pipeline::new(
            other_process.clone(),
            Some(Arc::new(siren_server::load_rules(&[], None, &[]).unwrap())),
            siren_core::ingest::PipelineOptions::default(),
        );
        let tenant = TenantId::parse("default").unwrap();
        pipeline
            .ingest_json(&tenant, vec![Ok(log_cleared("dc10", 8))])
            .await
            .unwrap();
        let event = wait_for_event(&mut stream, Duration::from_secs(5), |v| {
            v["incident"]["hosts"][0] == "dc10"
        })
        .await
        .expect("another process's incident on the stream");
        assert_eq!(event["kind"], "created");

        // The other tenant saw none of it.
        let leaked = wait_for_event(&mut other_stream, Duration::from_millis(800), |_| true).await;
        assert!(leaked.is_none(), "{leaked:?}");
        server.stop().await;
    }
}
