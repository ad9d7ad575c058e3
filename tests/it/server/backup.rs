//! `siren backup` of the embedded store while a stream of POSTs runs, then `siren restore`
//! into a new database: the copy passes its integrity check and holds every event
//! acknowledged before the backup started. Refusals: an existing backup file, a target that
//! is not empty, a damaged file, a PostgreSQL database.

use std::sync::atomic::{AtomicBool, Ordering};

use super::operations::{free_port, spawn_server_binary, wait_healthy};
use super::*;
use crate::support::siren;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_every_event_acknowledged_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("siren.db");
    let url = format!("sqlite://{}", db.display());
    let store = siren_core::store::open(&url).await.unwrap();
    let token = add_token(&store, "default", Role::Agent, false).await;
    drop(store);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = spawn_server_binary(&url, port);
    wait_healthy(&base).await;

    // Two senders post batches of 100 until told to stop; each records what was answered.
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<(String, i64)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for sender in 0..2 {
        let (base, token) = (base.clone(), token.clone());
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        senders.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let host = format!("backup-{sender}");
            for batch in 0.. {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let events: Vec<Value> = (0..100)
                    .map(|i| match i {
                        0 => log_cleared(&host, batch * 100),
                        _ => logon(&host, batch * 100 + i),
                    })
                    .collect();
                let response = http
                    .post(format!("{base}/api/v1/events"))
                    .bearer_auth(&token)
                    .json(&events)
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success(), "{}", response.status());
                acknowledged
                    .lock()
                    .unwrap()
                    .extend((0..100).map(|i| (host.clone(), batch * 100 + i)));
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before: Vec<(String, i64)> = acknowledged.lock().unwrap().clone();
    assert!(
        before.len() >= 200,
        "batches were answered before the backup"
    );
    let backup = dir.path().join("backup.db");
    let output = tokio::task::spawn_blocking({
        let (url, backup, d) = (url.clone(), backup.clone(), dir.path().to_owned());
        move || {
            siren(&d)
                .args(["--db", &url, "--format", "json", "backup"])
                .arg(&backup)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let during = acknowledged.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        output.status.success(),
        "siren backup: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["integrity"], "ok", "{summary}");
    eprintln!(
        "backup under load: {} events acknowledged before it, {} by its end, {} in all",
        before.len(),
        during,
        acknowledged.lock().unwrap().len()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&backup).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the backup is its owner's only: {mode:o}");
    }

    // Restored into a new database: it checks out and holds every event acknowledged
    // before the backup started.
    let restored = dir.path().join("restored.db");
    let restored_url = format!("sqlite://{}", restored.display());
    let run = |args: Vec<String>| {
        let d = dir.path().to_owned();
        async move {
            tokio::task::spawn_blocking(move || siren(&d).args(&args).output().unwrap())
                .await
                .unwrap()
        }
    };
    let restore = run(vec![
        "--db".into(),
        restored_url.clone(),
        "--format".into(),
        "json".into(),
        "restore".into(),
        backup.display().to_string(),
    ])
    .await;
    assert!(
        restore.status.success(),
        "siren restore: {}",
        String::from_utf8_lossy(&restore.stderr)
    );
    let check = run(vec![
        "--db".into(),
        restored_url.clone(),
        "--format".into(),
        "json".into(),
        "backup".into(),
        "--check".into(),
    ])
    .await;
    assert!(check.status.success());
    let check: Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(check["integrity"], "ok");
    assert_eq!(check["events"], summary["events"], "{check} vs {summary}");
    let store = siren_core::store::open(&restored_url).await.unwrap();
    let stored = stored_records(&store, (0..2).map(|s| format!("backup-{s}"))).await;
    let missing = before.iter().filter(|e| !stored.contains(*e)).count();
    assert_eq!(missing, 0, "{missing} of {} events missing", before.len());

    // Refusals, each with its reason and exit code.
    let refused = |args: Vec<String>, code: i32, reason: &'static str| {
        let run = run(args);
        async move {
            let output = run.await;
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            assert_eq!(output.status.code(), Some(code), "{stderr}");
            assert!(stderr.contains(reason), "{stderr}");
        }
    };
    let path = |p: &std::path::Path| p.display().to_string();
    refused(
        vec!["--db".into(), url.clone(), "backup".into(), path(&backup)],
        2,
        "exists",
    )
    .await;
    refused(
        vec!["--db".into(), restored_url, "restore".into(), path(&backup)],
        2,
        "not empty",
    )
    .await;
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![7u8; 8192]).unwrap();
    refused(
        vec![
            "--db".into(),
            url.clone(),
            "backup".into(),
            "--check".into(),
            path(&junk),
        ],
        65,
        "not an SQLite database",
    )
    .await;
    refused(
        vec![
            "--db".into(),
            dir.path().join("other.db").display().to_string(),
            "restore".into(),
            path(&junk),
        ],
        65,
        "not an SQLite database",
    )
    .await;
    refused(
        vec![
            "--db".into(),
            "postgres://nobody@127.0.0.1:1/none".into(),
            "backup".into(),
            path(&dir.path().join("pg.db")),
        ],
        2,
        "pg_dump",
    )
    .await;
}
