//! A small file system (tmpfs with a size limit, mounted by the test; skipped with a notice
//! where mounting is not allowed) filled up under the server: the low-disk warning fires
//! first (metric and incident), then POSTs are answered 503 with nothing of them kept, and
//! after space is freed every event sent again arrives exactly once.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::StatusCode;

use super::*;

/// A tmpfs mounted for the test, unmounted when dropped.
struct SmallFs(PathBuf);

impl SmallFs {
    fn mount(at: &Path, megabytes: u32) -> Option<SmallFs> {
        std::fs::create_dir_all(at).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            assert!(
                std::env::var_os("SIREN_REQUIRE_CORPUS").is_none(),
                "mounting a tmpfs is required where the full suite runs (run as root)"
            );
            eprintln!("notice: skipping the full-disk test: cannot mount a tmpfs here");
            return None;
        }
        Some(SmallFs(at.to_owned()))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A batch of `n` events of host `disk`, from record `first`, each with 2 KB of padding.
fn batch(first: i64, n: i64) -> Vec<Value> {
    (first..first + n)
        .map(|record| {
            let mut event = logon("disk", record);
            event["Padding"] = json!(format!("{record:0>2000}"));
            event
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_warned_about_then_refused_with_503_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let Some(small) = SmallFs::mount(&dir.path().join("small"), 16) else {
        return;
    };
    // Ballast: freed later, as an operator would make room.
    let ballast = small.0.join("ballast");
    std::fs::write(&ballast, vec![0u8; 4 << 20]).unwrap();
    let url = format!("sqlite://{}", small.0.join("siren.db").display());
    let store = siren_core::store::open(&url).await.unwrap();
    let token = add_token(&store, "default", Role::Agent, false).await;
    drop(store);
    let config = ServerConfig {
        disk_warn_percent: 40,
        disk_check_seconds: 1,
        metrics_public: true,
        ..config()
    };
    let server = start(&url, None, config).await;
    let http = reqwest::Client::new();
    let post = |events: Vec<Value>| {
        http.post(server.at("/api/v1/events"))
            .bearer_auth(&token)
            .json(&events)
            .send()
    };

    // Batches of 50 every 150 ms until one is refused.
    let mut sent: HashSet<(String, i64)> = HashSet::new();
    let mut refused: Vec<i64> = Vec::new();
    let mut refused_at = None;
    for n in 0..2000i64 {
        let first = n * 50;
        let status = post(batch(first, 50)).await.unwrap().status();
        sent.extend((first..first + 50).map(|r| ("disk".to_owned(), r)));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            refused.push(first);
            refused_at = Some(chrono::Utc::now());
            break;
        }
        assert!(status.is_success(), "batch {n}: {status}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let refused_at = refused_at.expect("the small file system filled up");

    // The warning came first: the metric, and an incident opened before the refusal.
    let metrics = http
        .get(server.at("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("siren_disk_low 1"), "{metrics}");
    let incidents = server
        .store
        .list_incidents(
            &TenantId::parse("default").unwrap(),
            &siren_core::incident::IncidentFilter {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .incidents;
    let warning = incidents
        .iter()
        .find(|i| {
            i.rule_ids
                .iter()
                .any(|r| r == siren_server::disk::DISK_LOW_RULE)
        })
        .expect("an incident about the disk");
    assert!(warning.created_at < refused_at, "warned before refusing");

    // Room is made; the refused batch (an agent's spool) is sent again until it is taken,
    // and more follow.
    std::fs::remove_file(&ballast).unwrap();
    for first in refused {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let status = post(batch(first, 50)).await.unwrap().status();
            if status.is_success() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "still {status}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let next = sent.len() as i64 + 1_000_000;
    let status = post(batch(next, 20)).await.unwrap().status();
    assert!(status.is_success(), "{status}");
    sent.extend((next..next + 20).map(|r| ("disk".to_owned(), r)));

    let stored = stored_records(&server.store, ["disk".to_owned()]).await;
    assert_eq!(stored, sent, "every event sent arrives");
    let count = events_stored(&server.store, "default").await;
    assert_eq!(count, sent.len() as u64, "exactly once");
    server.stop().await;
    drop(small);
}
