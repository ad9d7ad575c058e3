//! Benchmark of period reports over a large store: 100,000 incidents (created through the
//! store API in SQLite, 1% of them acknowledged and resolved), rendered in every format, each
//! in its own process so its peak RSS (`VmHWM`) is its own; the same with 10,000 incidents
//! is the baseline that shows memory does not grow with the incident count (except PDF,
//! whose document the PDF library holds until it is finished).
//!
//! `cargo bench -p siren-core --bench report -- [INCIDENTS...]` (default: 10000 100000).

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::Instant;

use siren_core::TenantId;
use siren_core::incident::{Alert, IncidentFilter, Resolution, Severity, Status};
use siren_core::report::{ReportFormat, ReportRequest, render_to};
use siren_core::store::{self, Store};
use siren_core::user::Actor;

const FORMATS: [&str; 5] = ["csv", "json", "md", "html", "pdf"];

/// Counts bytes and drops them.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    // Child mode: render one report from an existing database.
    if args.first().map(String::as_str) == Some("render") {
        let url = &args[1];
        let format = ReportFormat::parse(&args[2]).unwrap();
        let store = store::open(url).await.unwrap();
        let before = peak_rss_mib();
        let started = Instant::now();
        let out = render_to(
            store,
            &TenantId::default(),
            &ReportRequest::new(format),
            Counter(0),
        )
        .await
        .unwrap();
        println!(
            "{:.3} {} {:.1} {:.1}",
            started.elapsed().as_secs_f64(),
            out.0,
            before,
            peak_rss_mib()
        );
        return;
    }
    let sizes: Vec<usize> = if args.is_empty() {
        vec![10_000, 100_000]
    } else {
        args.iter().filter_map(|a| a.parse().ok()).collect()
    };
    let dir = tempfile::tempdir().unwrap();
    println!("format  incidents  seconds  output_MiB  rss_after_open_MiB  peak_rss_MiB");
    for n in sizes {
        let url = format!("sqlite://{}", dir.path().join(format!("r{n}.db")).display());
        let started = Instant::now();
        load(&*store::open(&url).await.unwrap(), n).await;
        println!(
            "# {n} incidents created in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        for format in FORMATS {
            let exe = std::env::current_exe().unwrap();
            let output = std::process::Command::new(exe)
                .args(["render", &url, format])
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            let line = String::from_utf8_lossy(&output.stdout);
            let f: Vec<f64> = line
                .split_whitespace()
                .map(|v| v.parse().unwrap())
                .collect();
            println!(
                "{format:<6}  {n:>9}  {:>7.2}  {:>10.1}  {:>18.1}  {:>12.1}",
                f[0],
                f[1] / 1_048_576.0,
                f[2],
                f[3]
            );
        }
    }
}

async fn load(store: &dyn Store, n: usize) {
    let tenant = TenantId::default();
    let severities = [
        Severity::Informational,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];
    let start = chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    for chunk in (0..n).collect::<Vec<_>>().chunks(5000) {
        let alerts: Vec<Alert> = chunk
            .iter()
            .map(|&i| Alert {
                rule_id: format!("rule-{}", i % 300),
                rule_title: format!("Suspicious activity pattern {}", i % 300),
                severity: severities[i % 5],
                correlation: false,
                group_key: format!("host{i:06}.corp.example"),
                techniques: vec!["T1110.003".to_owned()],
                investigation: vec!["Review the host's activity.".to_owned()],
                // Spread over a year.
                time: start + chrono::Duration::seconds((i as i64 * 315) % 31_536_000),
                hosts: vec![format!("host{i:06}.corp.example")],
                users: vec![format!("user{}", i % 2000)],
                ips: vec![format!(
                    "10.{}.{}.{}",
                    i / 65536 % 256,
                    i / 256 % 256,
                    i % 256
                )],
                event_count: 1,
                event_key: None,
                detail: serde_json::json!({}),
            })
            .collect();
        store
            .record_alerts(
                &tenant,
                &alerts,
                chrono::Duration::hours(1),
                chrono::Utc::now(),
            )
            .await
            .unwrap();
    }
    // Work 1% of them so the MTTA / MTTR figures have data.
    let actor = Actor {
        name: "bench".to_owned(),
        origin: "bench".to_owned(),
    };
    let page = store
        .list_incidents(
            &tenant,
            &IncidentFilter {
                limit: (n / 100).max(1) as u32,
                ..IncidentFilter::default()
            },
        )
        .await
        .unwrap();
    for incident in page.incidents {
        store
            .change_status(
                &tenant,
                incident.id,
                Status::Acknowledged,
                None,
                None,
                &actor,
            )
            .await
            .unwrap();
        store
            .change_status(
                &tenant,
                incident.id,
                Status::Resolved,
                Some(Resolution::TruePositive),
                None,
                &actor,
            )
            .await
            .unwrap();
    }
}
