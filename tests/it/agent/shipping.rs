//! The agent against the real server: configuration errors, `once`, outages, tokens, TLS, a
//! full spool, followed files.

use std::process::Stdio;

use super::spool_files::SpoolFiles;
use super::*;

#[test]
fn check_config_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_config(dir.path(), "https://siren.example.org", "t", "");
    let (code, out, err) = run_agent(agent(&good).arg("check-config"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("valid"), "{out}");

    let cases = [
        ("spool:\n  max_byte: 1MiB\n", "unknown field `max_byte`"),
        (
            "sources:\n  - {type: jsonl, name: a, path: /x, follow: yes}\n",
            "unknown field `follow`",
        ),
        ("spool:\n  max_bytes: 1KiB\n", "spool.max_bytes"),
        (
            "sources:\n  - {type: jsonl, name: a, path: /x, filter: {levels: [loud]}}\n",
            "sources[0].filter.levels",
        ),
        (
            "sources:\n  - {type: syslog, name: a}\n",
            "unknown variant `syslog`",
        ),
    ];
    for (extra, expected) in cases {
        let config = write_config(dir.path(), "https://siren.example.org", "t", extra);
        let (code, out, err) = run_agent(agent(&config).arg("check-config"));
        assert_eq!(code, 78, "{extra}: {out}{err}");
        assert!(
            err.contains(expected),
            "{extra}: expected {expected:?} in {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let config = write_config(dir.path(), "not a url", "t", "");
    let (code, _, err) = run_agent(agent(&config).arg("check-config"));
    assert_eq!(code, 78);
    assert!(err.contains("server.url"), "{err}");
    let (code, _, err) = run_agent(agent(&dir.path().join("missing.yaml")).arg("check-config"));
    assert_eq!(code, 78);
    assert!(err.contains("missing.yaml"), "{err}");
}

#[test]
fn once_ships_json_lines_and_reports_rejected_items() {
    let dir = tempfile::tempdir().unwrap();
    let server = RealServer::start(dir.path(), "");
    let config = write_config(dir.path(), &server.url(), &server.token, "");
    let file = dir.path().join("events.jsonl");
    lines_file(&file, 0..2500, "a");
    // A JSON value that is not an object: the server rejects that one item.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(b"42\n")
        .unwrap();
    let (code, out, err) = run_agent(agent(&config).arg("once").arg("--json").arg(&file));
    assert_eq!(code, 65, "one rejected item is bad input data: {err}");
    assert!(err.contains("rejected"), "{err}");
    assert_stored_once(&server, 0..2500);
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["shipped"], 2500, "{status:#}");
    assert_eq!(status["rejected"], 1, "{status:#}");
    assert_eq!(status["spool"]["depth"], 0, "{status:#}");
    assert_eq!(server.metric("siren_events_rejected_total", &[]), 1);
    assert!(server.event_posts(200) >= 3, "batches of at most 1000");

    // Shipped again with the same state: positions say it is all done.
    let posts = server.event_posts(200);
    let (code, _, err) = run_agent(agent(&config).arg("once").arg(&file));
    assert_eq!(code, 0, "{err}");
    assert_eq!(server.event_posts(200), posts, "nothing sent again");
    assert_stored_once(&server, 0..2500);
}

#[test]
fn unreachable_server_keeps_everything_in_the_spool_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on its port yet.
    let mut server = RealServer::new(dir.path(), "");
    let url = server.url();
    let config = write_config(dir.path(), &url, &server.token, "");
    let file = dir.path().join("events.jsonl");
    lines_file(&file, 0..300, "a");
    let (code, _, err) = run_agent(agent(&config).args(["once", "--timeout", "2s"]).arg(&file));
    assert_eq!(code, 75, "{err}");
    assert!(err.contains("300 events wait in the spool"), "{err}");
    assert!(err.contains(&url), "the message names the server: {err}");
    assert!(!err.contains("panicked"), "{err}");

    let (code, out, _) = run_agent(agent(&config).args(["status", "--json"]));
    assert_eq!(code, 69, "not running");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["spool"]["depth"], 300);
    assert!(status["last_error"].as_str().unwrap().contains(&url));
    // The spool's files say the same as the agent.
    let files = SpoolFiles::read(&dir.path().join("state"));
    assert_eq!(files.unacknowledged_in(&files), 300);

    // The server comes up on that port; more lines were written meanwhile.
    server.restart();
    lines_file(&file, 300..400, "a");
    let (code, _, err) = run_agent(agent(&config).arg("once").arg(&file));
    assert_eq!(code, 0, "{err}");
    assert_stored_once(&server, 0..400);
    let files = SpoolFiles::read(&dir.path().join("state"));
    assert_eq!(files.unacknowledged_in(&files), 0);
}

#[test]
fn wrong_token_is_a_clear_error_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let server = RealServer::start(dir.path(), "");
    let config = write_config(dir.path(), &server.url(), "wrong", "");
    let file = dir.path().join("events.jsonl");
    lines_file(&file, 0..50, "a");
    let (code, _, err) = run_agent(agent(&config).args(["once", "--timeout", "2s"]).arg(&file));
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("401") && err.contains("server.token"), "{err}");
    assert!(err.contains("50 events wait in the spool"), "{err}");
    assert!(server.events().is_empty());
    // Fixed token (from a file): the spooled events go.
    std::fs::write(dir.path().join("token"), format!("{}\n", server.token)).unwrap();
    let config = write_config(
        dir.path(),
        &server.url(),
        &format!("file:{}", dir.path().join("token").display()),
        "",
    );
    let (code, _, err) = run_agent(agent(&config).arg("once").arg(&file));
    assert_eq!(code, 0, "{err}");
    assert_stored_once(&server, 0..50);
}

#[test]
fn untrusted_certificate_fails_with_a_tls_message_and_a_ca_file_fixes_it() {
    // A private CA and a server certificate it issued.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "SIREN test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    std::fs::write(&cert, server_cert.pem()).unwrap();
    std::fs::write(&key, server_key.serialize_pem()).unwrap();
    let server = RealServer::start(
        dir.path(),
        &format!("tls_cert: {}\ntls_key: {}\n", cert.display(), key.display()),
    );
    let url = server.url();
    assert!(url.starts_with("https://localhost:"), "{url}");
    let file = dir.path().join("events.jsonl");
    lines_file(&file, 0..20, "a");
    let config = write_config(dir.path(), &url, &server.token, "");
    let (code, _, err) = run_agent(agent(&config).args(["once", "--timeout", "2s"]).arg(&file));
    assert_eq!(code, 75, "{err}");
    assert!(
        err.contains("TLS failure") && err.contains("server.ca_file"),
        "{err}"
    );
    assert!(server.events().is_empty());

    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let config = write_config(
        dir.path(),
        &url,
        &server.token,
        &format!("server:\n  ca_file: {}\n", ca_file.display()),
    );
    let (code, _, err) = run_agent(agent(&config).arg("once").arg(&file));
    assert_eq!(code, 0, "{err}");
    assert_stored_once(&server, 0..20);
}

#[test]
fn full_spool_drops_the_oldest_counts_them_and_stays_within_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on its port yet.
    let mut server = RealServer::new(dir.path(), "");
    let config = write_config(
        dir.path(),
        &server.url(),
        &server.token,
        "spool:\n  max_bytes: 64KiB\n  segment_bytes: 8KiB\n",
    );
    let file = dir.path().join("events.jsonl");
    lines_file(&file, 0..3000, "a");
    let (code, out, err) = run_agent(
        agent(&config)
            .args(["once", "--json", "--timeout", "3s"])
            .arg(&file),
    );
    assert_eq!(code, 75, "{err}");
    assert!(err.contains("spool full"), "the drop is logged: {err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    let depth = status["spool"]["depth"].as_u64().unwrap();
    let dropped = status["spool"]["dropped"].as_u64().unwrap();
    assert!(dropped > 0, "{status:#}");
    // Markers aside, every line is either dropped (counted) or waiting.
    assert!(depth + dropped >= 3000, "{status:#}");
    assert!(spool_bytes(&dir.path().join("state")) <= 64 << 10);
    assert!(status["spool"]["bytes"].as_u64().unwrap() <= 64 << 10);

    // The newest lines wait and are delivered once the server is there: the oldest segments
    // went, so what arrives is every line after the dropped ones.
    server.restart();
    let (code, _, err) = run_agent(agent(&config).arg("once").arg(&file));
    assert_eq!(code, 0, "{err}");
    assert_stored_once(&server, dropped as usize..3000);
}

#[test]
fn followed_file_appended_to_and_rotated_arrives_line_for_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = RealServer::start(dir.path(), "");
    let file = dir.path().join("app.jsonl");
    let config = write_config(
        dir.path(),
        &server.url(),
        &server.token,
        &format!(
            "sources:\n  - type: jsonl\n    name: app\n    path: {}\n    start_at: oldest\n",
            file.display()
        ),
    );
    lines_file(&file, 0..100, "a");
    let mut child = agent(&config)
        .arg("run")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let got = |n: u64| server.metric("siren_events_stored_total", &[]) >= n;
    wait_until("the first lines", Duration::from_secs(30), || got(100));
    // Appended in pieces, including a line written in two halves.
    lines_file(&file, 100..200, "a");
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        f.write_all(br#"{"seq": 200, "tag": "split"#).unwrap();
        f.sync_all().unwrap();
        std::thread::sleep(Duration::from_millis(600));
        f.write_all(b"\"}\n").unwrap();
    }
    wait_until("the appended lines", Duration::from_secs(30), || got(201));
    // Rotation: renamed away after a last line without a newline; a new file takes the name.
    lines_file(&file, 201..300, "a");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(br#"{"seq": 300, "tag": "unterminated"}"#)
        .unwrap();
    std::fs::rename(&file, dir.path().join("app.jsonl.1")).unwrap();
    lines_file(&file, 301..400, "b");
    wait_until("the rotated lines", Duration::from_secs(30), || got(400));

    // Stopped and restarted: resumes where it was; rotated again while it was stopped.
    sigterm(&child);
    assert!(child.wait().unwrap().success());
    lines_file(&file, 400..450, "b");
    std::fs::rename(&file, dir.path().join("app.jsonl.2")).unwrap();
    lines_file(&file, 450..500, "c");
    let mut child = agent(&config)
        .arg("run")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        "lines written while stopped",
        Duration::from_secs(30),
        || got(500),
    );
    // Truncated in place: read from the top again.
    std::fs::write(&file, "").unwrap();
    std::thread::sleep(Duration::from_millis(800));
    lines_file(&file, 500..510, "d");
    wait_until("lines after truncation", Duration::from_secs(30), || {
        got(510)
    });
    std::thread::sleep(Duration::from_secs(1));

    let (code, out, _) = run_agent(agent(&config).args(["status", "--json"]));
    assert_eq!(code, 0, "running: {out}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["alive"], true);
    assert_eq!(status["spool"]["depth"], 0, "{status:#}");
    assert_eq!(server.agents().len(), 1, "heartbeats sent");
    sigterm(&child);
    assert!(child.wait().unwrap().success());
    assert_stored_once(&server, 0..510);
}
