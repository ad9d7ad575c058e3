//! One module per `siren` subcommand: parse → validated settings → library call → printer.

pub mod archive;
pub mod backup;
pub mod cluster;
pub mod demo;
pub mod events;
pub mod hunt;
pub mod incidents;
pub mod ingest;
pub mod notify;
pub mod purge;
pub mod report;
pub mod rules;
pub mod serve;
pub mod status;
pub mod tokens;
pub mod users;

use std::sync::Arc;

use crate::exit::Failure;

/// Opens the store the context names.
pub async fn open_store(
    context: &crate::Context,
) -> Result<Arc<dyn siren_core::store::Store>, Failure> {
    Ok(siren_core::store::open(&context.database_url).await?)
}

/// Where rules come from, shared by `hunt`, `rules …` and (later) `ingest`.
#[derive(Debug, Clone, clap::Args)]
pub struct RuleSource {
    /// Rule files or folders (searched for .yml / .yaml), e.g. SigmaHQ's rules/windows.
    #[arg(long = "rules", short = 'r', value_name = "DIR", required = true)]
    pub rules: Vec<std::path::PathBuf>,
    /// Log-source mapping that replaces the built-in one (see rules/logsources.yml).
    #[arg(long, value_name = "FILE", env = "SIREN_LOGSOURCES")]
    pub logsources: Option<std::path::PathBuf>,
    /// pySigma processing pipeline applied to the rules before they are compiled
    /// (repeatable; run in `priority` order).
    #[arg(long = "pipeline", value_name = "FILE")]
    pub pipelines: Vec<std::path::PathBuf>,
}

/// Loads SIREN's built-in rule pack (and the mapping `logsources` names, if any).
pub fn load_builtin_rules(
    logsources: Option<&std::path::Path>,
    pipelines: &[std::path::PathBuf],
) -> Result<
    (
        siren_core::rules::RuleSet,
        Vec<siren_core::rules::RuleDiagnostic>,
    ),
    Failure,
> {
    use siren_core::rules::{LoadOptions, LogSourceMap};
    let mut options = LoadOptions::default()
        .with_pipeline_files(pipelines)
        .map_err(|e| Failure::new(crate::exit::Exit::Config, e))?;
    if let Some(file) = logsources {
        let map =
            LogSourceMap::load(file).map_err(|e| Failure::new(crate::exit::Exit::Config, e))?;
        options = options.with_logsources(map);
    }
    Ok(siren_core::rules::builtin(&options))
}

/// Loads rules; per-rule problems are returned, not fatal. A missing path or a bad mapping is.
pub fn load_rules(
    context: &crate::Context,
    source: &RuleSource,
) -> Result<
    (
        siren_core::rules::RuleSet,
        Vec<siren_core::rules::RuleDiagnostic>,
    ),
    Failure,
> {
    use crate::exit::Exit;
    use siren_core::rules::{LoadOptions, LogSourceMap, RuleSet};
    for path in &source.rules {
        if !path.exists() {
            return Err(Failure::new(
                Exit::NoInput,
                anyhow::anyhow!("{}: no such file or directory", path.display()),
            ));
        }
    }
    let mut options = LoadOptions::default()
        .with_cache_dir(context.rule_cache.clone())
        .with_pipeline_files(&source.pipelines)
        .map_err(|e| Failure::new(Exit::Config, e))?;
    if let Some(file) = &source.logsources {
        let map = LogSourceMap::load(file).map_err(|e| Failure::new(Exit::Config, e))?;
        options = options.with_logsources(map);
    }
    Ok(RuleSet::load(&source.rules, &options))
}

/// One detection as the public JSON object of `siren hunt` and `siren rules test`
/// (serialised straight from the rule and the event, without an intermediate JSON tree).
#[derive(serde::Serialize)]
pub struct DetectionJson<'a> {
    timestamp: Option<String>,
    rule_id: Option<&'a str>,
    rule_title: &'a str,
    level: Option<&'static str>,
    tags: &'a [String],
    host: Option<&'a str>,
    channel: Option<&'a str>,
    event_id: Option<i64>,
    record_id: Option<i64>,
    file: &'a str,
    fields: &'a siren_core::event::Fields,
}

/// The public JSON object of one detection: `rule` (an index into `rules`) matching `event`
/// read from `file`.
pub fn detection_json<'a>(
    rules: &'a siren_core::rules::RuleSet,
    hit: siren_core::hunt::Hit<'a>,
) -> DetectionJson<'a> {
    let rule = &rules.rules()[hit.rule];
    let event = hit.event;
    DetectionJson {
        timestamp: event
            .timestamp
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        rule_id: rule.id.as_ref().map(|id| id.as_str()),
        rule_title: &rule.title,
        level: rule.level.map(|l| l.as_str()),
        tags: &rule.tags,
        host: event.host.as_deref(),
        channel: event.source.as_deref(),
        event_id: event.event_id,
        record_id: event.record_id,
        file: hit.file,
        fields: &event.fields,
    }
}

impl DetectionJson<'_> {
    /// The object as one line of JSON (UTF-8, without the newline), in an allocation of
    /// its own size: a hunt's timeline holds tens of thousands of them.
    pub fn to_json(&self) -> Vec<u8> {
        thread_local! {
            /// Per thread: the buffer lines are serialised into before they are copied out.
            static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        LINE.with(|buffer| {
            let mut buffer = buffer.borrow_mut();
            buffer.clear();
            // Serialising borrowed strings, numbers and a JSON map cannot fail. `sonic-rs`
            // writes the same JSON as `serde_json` (the same escapes and number forms) but
            // escapes strings with SIMD instead of byte by byte, and the event's fields are
            // most of every line.
            match sonic_rs::to_writer(&mut *buffer, self) {
                Ok(()) => buffer.as_slice().to_vec(),
                Err(_) => Vec::new(),
            }
        })
    }
}

/// The operating-system user running the command, as the actor of the changes it makes
/// (`SIREN_USER` overrides it).
pub fn os_user() -> String {
    ["SIREN_USER", "USER", "USERNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "cli".to_owned())
}

/// The operating-system user as the actor of a change made from the command line.
pub fn cli_actor() -> siren_core::user::Actor {
    siren_core::user::Actor {
        name: os_user(),
        origin: "cli".to_owned(),
    }
}

/// A store error as a command's failure: a refused change or an unknown name is a finding
/// (exit 1), the rest as any store error.
pub fn refused_is_finding(error: siren_core::store::StoreError) -> Failure {
    use siren_core::store::StoreError;
    match error {
        StoreError::Refused(_) | StoreError::NotFound(_) => {
            Failure::new(crate::exit::Exit::Findings, error)
        }
        other => Failure::from(other),
    }
}
