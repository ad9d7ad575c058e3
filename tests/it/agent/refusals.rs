//! The agent against the real server's refusals: a batch over the server's body limit (413,
//! halved until it fits), an event over the limit on its own (413, dropped, counted and
//! reported), and a busy server (503 with `Retry-After`, honoured).

use std::net::TcpStream;
use std::process::Stdio;

use super::*;

/// The server's limit on a decompressed `POST /events` body in these tests.
const LIMIT: usize = 32 << 10;

/// Appends events `range` of about `size` bytes each to `path`.
fn sized_lines(path: &Path, range: std::ops::Range<usize>, size: usize) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in range {
        let padding = "x".repeat(size.saturating_sub(50));
        writeln!(
            f,
            "{}",
            json!({"seq": i, "tag": "sized", "message": format!("line {i}"), "padding": padding})
        )
        .unwrap();
    }
    f.sync_all().unwrap();
}

#[test]
fn a_batch_refused_as_too_large_is_halved_until_it_fits_and_each_event_arrives_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = RealServer::start(dir.path(), &format!("decompressed_limit: {LIMIT}\n"));
    let config = write_config(dir.path(), &server.url(), &server.token, "");
    let file = dir.path().join("events.jsonl");
    // 3000 events of 240 bytes: batches of up to 1000 (240 KB) are refused, and so are their
    // halves, down to 125 events (30 KB).
    sized_lines(&file, 0..3000, 240);
    let (code, out, err) = run_agent(agent(&config).args(["once", "--json"]).arg(&file));
    assert_eq!(code, 0, "{err}");
    let halved: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("the server refused the batch; sending it in halves"))
        .collect();
    assert!(
        !halved.is_empty()
            && halved
                .iter()
                .all(|l| l.contains("413") && l.contains("exceeds the limit of 32768 bytes")),
        "refused for its size: {err}"
    );
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["shipped"], 3000, "{status:#}");
    assert_eq!(status["rejected"], 0, "{status:#}");
    assert_eq!(status["spool"]["depth"], 0, "{status:#}");
    let (refused, accepted) = (server.event_posts(413), server.event_posts(200));
    assert!(refused > 0, "the server refused batches as too large");
    // Every accepted body was within the limit, so it took at least this many.
    let bytes = std::fs::metadata(&file).unwrap().len() as usize;
    assert!(
        accepted as usize >= bytes.div_ceil(LIMIT),
        "{accepted} accepted batches for {bytes} bytes"
    );
    assert_stored_once(&server, 0..3000);
}

#[test]
fn an_event_the_server_refuses_on_its_own_is_dropped_counted_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let server = RealServer::start(dir.path(), &format!("decompressed_limit: {LIMIT}\n"));
    let config = write_config(dir.path(), &server.url(), &server.token, "");
    let file = dir.path().join("events.jsonl");
    // Event 100 alone is over the server's limit; the agent takes lines up to 4 MiB.
    sized_lines(&file, 0..100, 200);
    sized_lines(&file, 100..101, LIMIT + 8000);
    sized_lines(&file, 101..200, 200);
    let (code, out, err) = run_agent(agent(&config).args(["once", "--json"]).arg(&file));
    assert_eq!(code, 65, "a refused event is bad input data: {err}");
    // Logged once, with where it came from and the server's reason; and in the exit summary.
    let logged: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("the server refused an event on its own"))
        .collect();
    assert_eq!(logged.len(), 1, "{err}");
    // Its position: the file and the offset just after its line.
    let text = std::fs::read_to_string(&file).unwrap();
    let offset: usize = text.split_inclusive('\n').take(101).map(str::len).sum();
    assert!(
        logged[0].contains("413")
            && logged[0].contains("exceeds the limit of 32768 bytes")
            && logged[0].contains(&file.display().to_string())
            && logged[0].contains(&format!(r#""offset":{offset}"#)),
        "offset {offset}: {}",
        logged[0]
    );
    assert!(err.contains("1 events rejected by the server"), "{err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["shipped"], 199, "{status:#}");
    assert_eq!(status["rejected"], 1, "{status:#}");
    assert_eq!(
        status["spool"]["depth"], 0,
        "not kept for another try: {status:#}"
    );
    // The status file says so too.
    let (_, out, _) = run_agent(agent(&config).args(["status", "--json"]));
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["rejected"], 1, "{status:#}");
    assert_stored_once(&server, (0..200).filter(|i| *i != 100));

    // Not sent again by the next run.
    let refused = server.event_posts(413);
    let (code, _, err) = run_agent(agent(&config).arg("once").arg(&file));
    assert_eq!(code, 0, "{err}");
    assert_eq!(server.event_posts(413), refused);
}

/// A `POST /api/v1/events` whose body never comes: it holds one of the server's ingest slots
/// until it is dropped (the server then fails to read the body, answers 400 and frees the
/// slot, storing nothing).
struct HeldPost(#[allow(dead_code)] TcpStream);

impl HeldPost {
    fn open(server: &RealServer) -> Self {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        write!(
            stream,
            "POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/x-ndjson\r\nContent-Length: 1000\r\n\r\n{{",
            server.token
        )
        .unwrap();
        stream.flush().unwrap();
        Self(stream)
    }
}

#[test]
fn a_busy_server_s_retry_after_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let server = RealServer::start(dir.path(), "max_pending_batches: 1\n");
    // The one ingest slot is taken: the server answers 503 with Retry-After: 1.
    let held = HeldPost::open(&server);
    let client = reqwest::blocking::Client::new();
    let mut busy = None;
    wait_until(
        "the held request to take the slot",
        Duration::from_secs(10),
        || {
            // An empty body: should the probe get the slot itself, it is refused (400), not stored.
            let answer = client
                .post(format!("{}/api/v1/events", server.url()))
                .bearer_auth(&server.token)
                .send()
                .unwrap();
            busy = (answer.status() == 503).then(|| answer.headers().get("retry-after").cloned());
            busy.is_some()
        },
    );
    assert_eq!(
        busy.flatten()
            .and_then(|v| v.to_str().ok().map(str::to_owned)),
        Some("1".to_owned()),
        "the server asks for a retry after 1 s"
    );
    let probes = server.event_posts(503);

    // Without Retry-After the agent would retry after 10, 20, 40, 80 ms.
    let config = write_config(
        dir.path(),
        &server.url(),
        &server.token,
        "retry:\n  initial: 10ms\n  max: 30s\n",
    );
    let file = dir.path().join("events.jsonl");
    lines_file(&file, 0..50, "a");
    let log = dir.path().join("agent.log");
    let mut child = agent(&config)
        .args(["once", "--json"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_until("four refused attempts", Duration::from_secs(30), || {
        server.event_posts(503) >= probes + 4
    });
    drop(held);
    let exit = child.wait().unwrap();
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(exit.success(), "{err}");

    let retries: Vec<chrono::DateTime<chrono::FixedOffset>> = err
        .lines()
        .filter(|l| l.contains("delivery failed; retrying") && l.contains("503"))
        .map(|l| {
            let time = l.split_whitespace().next().unwrap_or_default();
            chrono::DateTime::parse_from_rfc3339(time).unwrap()
        })
        .collect();
    assert!(retries.len() >= 4, "{err}");
    for pair in retries.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= chrono::TimeDelta::milliseconds(1000),
            "attempts {gap} apart: {err}"
        );
    }
    assert_stored_once(&server, 0..50);
}
