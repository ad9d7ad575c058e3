//! The agent against the real server with the EVTX corpus, and crashes mid-shipping.

use std::collections::HashSet;

use super::real_server::Identity;
use super::spool_files::SpoolFiles;
use super::*;
use crate::support::shared_dir;

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walkdir(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The corpus's distinct records as the store identifies them (host, channel, record id,
/// time), computed with the `evtx` crate alone; and the number of records read.
fn corpus_identities(evtx_dir: &Path) -> (usize, HashSet<Identity>) {
    let mut total = 0;
    let mut keys = HashSet::new();
    for file in walkdir(evtx_dir) {
        if file.extension().is_none_or(|e| e != "evtx") {
            continue;
        }
        let mut parser = evtx::EvtxParser::from_path(&file).unwrap();
        for record in parser.records_json_value() {
            total += 1;
            let data = record.unwrap().data;
            let system = &data["Event"]["System"];
            let time = system["TimeCreated"]["#attributes"]["SystemTime"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map_or(i64::MIN, |t| t.timestamp_micros());
            keys.insert((
                system["Computer"]
                    .as_str()
                    .unwrap_or_default()
                    .to_lowercase(),
                system["Channel"]
                    .as_str()
                    .unwrap_or_default()
                    .to_lowercase(),
                system["EventRecordID"].as_i64().unwrap_or(-1),
                time,
            ));
        }
    }
    (total, keys)
}

#[test]
fn once_ships_the_corpus_to_the_real_server_exactly_once_and_opens_incidents() {
    let Some(shared) = shared_dir("once_ships_the_corpus_to_the_real_server") else {
        return;
    };
    let evtx_dir = shared.join("corpus/evtx");
    let (total, distinct) = corpus_identities(&evtx_dir);
    let dir = tempfile::tempdir().unwrap();
    let server = RealServer::start(dir.path(), "");
    let config = write_config(dir.path(), &server.url(), &server.token, "");
    let (code, out, err) = run_agent(agent(&config).args(["once", "--json"]).arg(&evtx_dir));
    assert_eq!(code, 0, "{err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["shipped"], total as u64, "{status:#}");
    assert_eq!(
        status["duplicates"],
        (total - distinct.len()) as u64,
        "{status:#}"
    );
    let (stored, keys, incidents) = server.stored();
    assert_eq!(stored, distinct.len(), "each distinct record stored once");
    assert_eq!(keys, distinct);
    assert!(
        incidents > 0,
        "the built-in rules open incidents on the corpus"
    );
}

#[test]
fn server_killed_and_agent_restarted_mid_shipping_lose_nothing() {
    let Some(shared) = shared_dir("server_killed_and_agent_restarted") else {
        return;
    };
    let evtx_dir = shared.join("corpus/evtx");
    let (_, distinct) = corpus_identities(&evtx_dir);
    let dir = tempfile::tempdir().unwrap();
    let mut server = RealServer::start(dir.path(), "");
    let bound: u64 = 2 << 20;
    let config = write_config(
        dir.path(),
        &server.url(),
        &server.token,
        "spool:\n  max_bytes: 2MiB\n  segment_bytes: 256KiB\n  when_full: block\nbatch:\n  max_events: 300\n",
    );
    let state = dir.path().join("state");
    let log = dir.path().join("agent.log");
    let spawn = || {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        agent(&config)
            .arg("once")
            .arg(&evtx_dir)
            .stderr(log)
            .spawn()
            .unwrap()
    };
    let mut child = spawn();
    let mut max_spool = 0;
    let mut watch = |ms: u64, child: &mut Child| {
        let until = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < until {
            max_spool = max_spool.max(spool_bytes(&state));
            if child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    for round in 0..4 {
        // Each kill comes once the server has acknowledged something new since the last
        // restart: the rounds then use a few batches each, however fast the machine is, and
        // the agent is still mid-corpus at the last one.
        let acked = SpoolFiles::read(&state).acked;
        let until = Instant::now() + Duration::from_secs(120);
        while SpoolFiles::read(&state).acked <= acked && Instant::now() < until {
            watch(20, &mut child);
        }
        assert_lands_mid_shipping(&format!("server kill {round}"), &state, &mut child, |_| {
            server.kill()
        });
        watch(1000, &mut child);
        if round == 1 {
            // The agent too, in the middle of it.
            assert_lands_mid_shipping("agent kill", &state, &mut child, |agent| {
                agent.kill().unwrap();
                agent.wait().unwrap();
            });
            child = spawn();
        }
        server.restart();
    }
    let until = Instant::now() + Duration::from_secs(600);
    let exit = loop {
        max_spool = max_spool.max(spool_bytes(&state));
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < until, "the agent did not finish");
        std::thread::sleep(Duration::from_millis(10));
    };
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(exit.success(), "{err}");
    assert!(max_spool <= bound, "the spool reached {max_spool} bytes");
    let (stored, keys, incidents) = server.stored();
    assert_eq!(stored, distinct.len(), "every record exactly once");
    assert_eq!(keys, distinct);
    assert!(incidents > 0);
}

/// Runs `kill` (of the server, or of the agent it is given) once the agent is seen running,
/// and asserts that the kill landed mid-shipping: events the agent had spooled before it were
/// still unacknowledged after it (acknowledgements only move forward, so they were
/// unacknowledged at the moment of the kill).
fn assert_lands_mid_shipping(
    what: &str,
    state: &Path,
    child: &mut Child,
    kill: impl FnOnce(&mut Child),
) {
    // The kill waits (briefly) for a moment when the spool holds events the server has not
    // acknowledged yet: between two batches the agent may have caught up.
    let until = Instant::now() + Duration::from_secs(10);
    let before = loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "{what}: the agent had already finished"
        );
        let reading = SpoolFiles::read(state);
        if reading.unacknowledged_in(&reading) > 0 || Instant::now() > until {
            break reading;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    kill(child);
    let pending = before.unacknowledged_in(&SpoolFiles::read(state));
    assert!(
        pending > 0,
        "{what}: no spooled event was waiting for acknowledgement"
    );
}
