//! `siren demo`: a fresh SQLite database holding SIREN's rules and a built-in sample of attack
//! events, a global admin user with a random password, and the server with its dashboard.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine as _;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};
use siren_core::ingest::IngestOptions;
use siren_core::normalize::Quiet;
use siren_core::normalize::{Input, ReadOptions};
use siren_core::user::{Actor, Role, hash_password};

use crate::Context;
use crate::exit::{CommandResult, Exit, Failure};

/// A small day at a Windows shop, as `evtx_dump` writes events in JSON: a brute force that
/// succeeds, a password spray, Kerberoasting, PsExec and a malicious service, LSASS dumped,
/// an account made administrator, the logs cleared — among routine logons and service events.
const SAMPLE: &str = include_str!("../../demo/events.json");

/// How long before now the sample's last event happened, once its times are moved to today.
const LAST_EVENT_AGO: i64 = 2;

/// Arguments of `siren demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address the server listens on (port 0 picks a free one; the URL printed says which).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// Folder for the demo's database (created if needed; it must not hold a siren.db yet).
    /// Without it the demo uses a temporary folder, removed when the demo stops.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Name of the admin user to create.
    #[arg(long, default_value = "admin", value_name = "NAME")]
    user: String,
}

/// Runs `siren demo`.
pub async fn run(context: &Context, args: Args) -> CommandResult {
    let (folder, _temporary) = match &args.dir {
        Some(dir) => {
            siren_core::owner_only::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))
                .map_err(|e| Failure::new(Exit::Config, e))?;
            (dir.clone(), None)
        }
        None => {
            let temporary = tempfile::Builder::new()
                .prefix("siren-demo-")
                .tempdir()
                .context("cannot create a temporary folder")
                .map_err(|e| Failure::new(Exit::Config, e))?;
            (temporary.path().to_owned(), Some(temporary))
        }
    };
    let database = folder.join("siren.db");
    if database.exists() {
        return Err(Failure::new(
            Exit::Usage,
            anyhow::anyhow!(
                "{} already exists: the demo starts from a fresh database (pick another --dir)",
                database.display()
            ),
        ));
    }
    // Bind first, so a busy port fails before any work is done.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (is another server running? try --listen 127.0.0.1:0)",
                args.listen
            )
        })
        .map_err(|e| Failure::new(Exit::Unavailable, e))?;
    let address = listener
        .local_addr()
        .map_err(|e| Failure::new(Exit::Software, e))?;

    let url = format!("sqlite://{}", database.display());
    let store = siren_core::store::open(&url).await?;
    let (rules, problems) = super::load_builtin_rules(None, &[])?;
    if !problems.is_empty() {
        context.printer.warn(format!(
            "{} built-in rules not loaded (see siren rules validate)",
            problems.len()
        ));
    }
    let rules = Arc::new(rules);
    let sample = folder.join("demo-events.json");
    write_sample(&sample, Utc::now())?;
    let options = IngestOptions::default()
        .with_read(ReadOptions::default().with_tenant(context.tenant.clone()))
        .with_rules(rules.clone());
    let summary = siren_core::ingest::ingest(
        store.clone(),
        vec![Input::Named(sample)],
        options,
        Arc::new(Quiet),
    )
    .await
    .map_err(|e| Failure::new(Exit::Software, e))?;

    let password = random_password().map_err(|e| Failure::new(Exit::Software, e))?;
    let hash =
        hash_password(&password).map_err(|e| Failure::new(Exit::Software, anyhow::anyhow!(e)))?;
    let actor = Actor {
        name: super::os_user(),
        origin: "siren demo".to_owned(),
    };
    // The demo's one user administers the whole installation (a global admin), so every
    // page is there to see, the Cluster page included.
    store
        .add_user(&context.tenant, &args.user, Role::Admin, &hash, &actor)
        .await?;
    store
        .set_user_global(&context.tenant, &args.user, true, &actor)
        .await?;

    // Events past the policy go to an archive in the demo's folder before they are deleted.
    let retention = demo_retention(context);
    let archive_config = context
        .archive
        .clone()
        .unwrap_or_else(|| siren_core::archive::ArchiveConfig::folder(folder.join("archive")));
    let archive = siren_core::archive::Archive::open(&archive_config)
        .map_err(|e| Failure::new(Exit::Config, e))?;

    let dashboard = format!("http://{address}/");
    let kept = if args.dir.is_some() {
        "kept"
    } else {
        "removed when the demo stops"
    };
    let document = json!({
        "url": dashboard,
        "user": args.user,
        "password": password,
        "tenant": context.tenant,
        "database": url,
        "events": summary.stored,
        "alerts": summary.alerts,
        "incidents": summary.incidents_created,
        "archive": archive.location(),
    });
    let table = vec![
        ("dashboard".to_owned(), dashboard.clone()),
        ("user".to_owned(), args.user.clone()),
        ("password".to_owned(), password.clone()),
        ("tenant".to_owned(), context.tenant.to_string()),
        ("database".to_owned(), format!("{url} ({kept})")),
        (
            "sample".to_owned(),
            format!(
                "{} events, {} alerts, {} incidents",
                summary.stored, summary.alerts, summary.incidents_created
            ),
        ),
        (
            "archive".to_owned(),
            format!(
                "{} (events past {} go there before they are deleted)",
                archive.location(),
                retention
                    .events
                    .as_ref()
                    .map_or("forever", |keep| keep.as_str())
            ),
        ),
    ];
    context
        .printer
        .document("SIREN demo", &document, table)
        .map_err(|e| Failure::new(Exit::Software, e))?;
    context.printer.note(format!(
        "Open {dashboard} and sign in; Ctrl-C stops the demo."
    ));

    let state =
        siren_server::AppState::new(store, Some(rules), siren_server::ServerConfig::default())
            .with_retention(retention, Some(archive));
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    siren_server::serve(listener, state, shutdown)
        .await
        .map_err(|e| Failure::new(Exit::Software, e))?;
    Ok(Exit::Ok)
}

/// The configured retention, else a typical policy (the sample is recent: nothing is due),
/// so the overview's "Data kept" card has something to show.
fn demo_retention(context: &Context) -> siren_core::retention::RetentionConfig {
    if !context.retention.is_empty() {
        return context.retention.clone();
    }
    serde_yaml::from_str(DEMO_RETENTION).unwrap_or_default()
}

const DEMO_RETENTION: &str =
    "events: 90d\nincidents: 400d\noutbox: 30d\nsessions: 7d\ncorrelation: 30d\narchive: true\n";

/// Writes the sample with its times moved so that its last event happened a moment ago.
fn write_sample(path: &Path, now: DateTime<Utc>) -> Result<(), Failure> {
    let mut events: Vec<Value> =
        serde_json::from_str(SAMPLE).map_err(|e| Failure::new(Exit::Software, e))?;
    let latest = events.iter().filter_map(time_of).max();
    if let Some(latest) = latest {
        let shift = now - Duration::minutes(LAST_EVENT_AGO) - latest;
        for event in &mut events {
            if let Some(time) = time_of(event) {
                event["Event"]["System"]["TimeCreated"]["#attributes"]["SystemTime"] =
                    json!((time + shift).to_rfc3339_opts(SecondsFormat::Millis, true));
            }
        }
    }
    let text = serde_json::to_vec(&events).map_err(|e| Failure::new(Exit::Software, e))?;
    siren_core::owner_only::write(path, &text)
        .with_context(|| format!("cannot write {}", path.display()))
        .map_err(|e| Failure::new(Exit::Config, e))
}

fn time_of(event: &Value) -> Option<DateTime<Utc>> {
    event["Event"]["System"]["TimeCreated"]["#attributes"]["SystemTime"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// 20 characters from the operating system's random generator (120 bits).
fn random_password() -> anyhow::Result<String> {
    let mut bytes = [0u8; 15];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random numbers: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_moves_to_now_and_keeps_its_spacing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.json");
        let now = Utc::now();
        write_sample(&path, now).unwrap();
        let original: Vec<Value> = serde_json::from_str(SAMPLE).unwrap();
        let moved: Vec<Value> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(original.len(), moved.len());
        let last = moved.iter().filter_map(time_of).max().unwrap();
        assert!(
            (now - Duration::minutes(LAST_EVENT_AGO) - last)
                .num_seconds()
                .abs()
                <= 1
        );
        let span = |events: &[Value]| {
            let times: Vec<_> = events.iter().filter_map(time_of).collect();
            *times.iter().max().unwrap() - *times.iter().min().unwrap()
        };
        assert_eq!(span(&original), span(&moved));
        assert!(original.iter().all(|e| time_of(e).is_some()));
    }

    #[test]
    fn passwords_are_long_and_differ() {
        let a = random_password().unwrap();
        assert_eq!(a.len(), 20);
        assert_ne!(a, random_password().unwrap());
    }
}
