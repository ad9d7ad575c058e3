//! Disk awareness: every `server.disk_check_seconds` the server looks at the free space of
//! the file system that holds the embedded database. Under `server.disk_warn_percent` it
//! warns before writes fail: a log line, `siren_disk_low 1` in `/metrics`, and a high
//! incident for the admins of the default tenant (one while the condition lasts: later
//! warnings join it). A write that still fails for lack of space is answered 503 with
//! Retry-After and keeps nothing of the batch (`StoreError::is_disk_full`), so agents keep
//! their spool and send it again once space is freed.

use std::path::Path;

use chrono::Utc;
use serde_json::json;
use siren_core::TenantId;
use siren_core::incident::{Alert, Severity};

use crate::AppState;

/// The rule id of the incidents the server opens about its own disk.
pub const DISK_LOW_RULE: &str = "siren-disk-low";

/// Free and total bytes of the file system holding `path` (Unix only).
#[cfg(unix)]
pub fn space(path: &Path) -> std::io::Result<(u64, u64)> {
    let stats = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    let unit = stats.fragment_size() as u64;
    Ok((
        stats.blocks_available() as u64 * unit,
        stats.blocks() as u64 * unit,
    ))
}

#[cfg(not(unix))]
pub fn space(_path: &Path) -> std::io::Result<(u64, u64)> {
    Err(std::io::Error::other(
        "free space is only looked at on Unix",
    ))
}

/// Looks at the free space until `stop` (nothing to do for a database on a server).
pub async fn watch(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let file = match state.store().database_file().await {
        Ok(Some(file)) => file,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%error, "cannot tell where the database is: free space is not watched");
            return;
        }
    };
    let folder = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let every = std::time::Duration::from_secs(state.config().disk_check_seconds.max(1));
    let threshold = f64::from(state.config().disk_warn_percent);
    let mut was_low = false;
    loop {
        match space(&folder) {
            Ok((free, total)) => {
                let percent = if total == 0 {
                    100.0
                } else {
                    free as f64 * 100.0 / total as f64
                };
                let low = percent < threshold;
                state.metrics().disk(free, total, low);
                if low && !was_low {
                    tracing::warn!(
                        folder = %folder.display(),
                        free_bytes = free,
                        free_percent = format!("{percent:.1}"),
                        "the database's disk is nearly full: writes fail when it is; purge, archive or add space"
                    );
                    open_incident(&state, &folder, free, percent).await;
                }
                was_low = low;
            }
            Err(error) => {
                tracing::warn!(%error, folder = %folder.display(), "cannot read the free space")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// Opens (or adds to) the default tenant's incident about the disk.
async fn open_incident(state: &AppState, folder: &Path, free: u64, percent: f64) {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "siren-server".to_owned());
    let now = Utc::now();
    let alert = Alert {
        rule_id: DISK_LOW_RULE.to_owned(),
        rule_title: "SIREN's database disk is nearly full".to_owned(),
        severity: Severity::High,
        correlation: false,
        group_key: format!("{DISK_LOW_RULE}:{host}"),
        techniques: Vec::new(),
        investigation: vec![
            "Purge what the retention policy no longer keeps (`siren purge`), or shorten it"
                .to_owned(),
            "Move old events to an archive, or give the database's file system more space"
                .to_owned(),
            "Writes that fail for lack of space are answered 503; agents keep their spool"
                .to_owned(),
        ],
        time: now,
        hosts: vec![host],
        users: Vec::new(),
        ips: Vec::new(),
        event_count: 0,
        event_key: None,
        detail: json!({
            "folder": folder.display().to_string(),
            "free_bytes": free,
            "free_percent": (percent * 10.0).round() / 10.0,
            "warn_percent": state.config().disk_warn_percent,
        }),
    };
    let tenant = TenantId::default();
    let window = chrono::Duration::days(1);
    match state
        .store()
        .record_alerts(&tenant, &[alert], window, now)
        .await
    {
        Ok(_) => state.incidents_changed(),
        Err(error) => tracing::warn!(%error, "cannot open the disk incident"),
    }
}
