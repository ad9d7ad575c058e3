//! The agent's YAML configuration: parsing (unknown keys refused), defaults and validation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::filter::FilterConfig;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This agent's name as the server shows it (default: the host name).
    #[serde(default)]
    pub agent_id: Option<String>,
    /// Where and how to ship.
    pub server: ServerConfig,
    /// Folder for the spool, the acknowledged positions and the status file.
    pub state_dir: PathBuf,
    /// The on-disk spool.
    #[serde(default)]
    pub spool: SpoolConfig,
    /// Batching of requests.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Retries of failed requests.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// What to read (may be empty for `once`).
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
}

/// The server connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Base URL, e.g. `https://siren.example.org:8443`.
    pub url: String,
    /// The bearer token (`siren tokens create --role agent`): literal, `env:NAME` or `file:PATH`.
    pub token: String,
    /// PEM file of certificate authorities trusted for the server's certificate (in addition to
    /// the built-in web roots unless `builtin_roots: false`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Whether the built-in web PKI roots are trusted too.
    #[serde(default = "yes")]
    pub builtin_roots: bool,
    /// PEM client certificate (chain) for mutual TLS; needs `client_key`.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// Timeout of one request.
    #[serde(default = "default_timeout", with = "humantime_serde_lite")]
    pub timeout: Duration,
    /// Interval between heartbeats (0 disables them).
    #[serde(default = "default_heartbeat", with = "humantime_serde_lite")]
    pub heartbeat: Duration,
}

/// What the spool does when it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Delete the oldest segment (its unsent events are counted as dropped and reported).
    #[default]
    DropOldest,
    /// Stop reading until the server has acknowledged enough to make room (nothing is lost;
    /// an event log that wraps meanwhile may overwrite unread events).
    Block,
}

/// The on-disk spool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Upper bound of the spool on disk (`256MiB`, `1GB`, or a number of bytes).
    #[serde(default = "default_spool_bytes", deserialize_with = "de_bytes")]
    pub max_bytes: u64,
    /// Size of one segment file (default: an eighth of `max_bytes`, at most 16 MiB).
    #[serde(default, deserialize_with = "de_opt_bytes")]
    pub segment_bytes: Option<u64>,
    /// Policy when full.
    #[serde(default)]
    pub when_full: WhenFull,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            max_bytes: default_spool_bytes(),
            segment_bytes: None,
            when_full: WhenFull::default(),
        }
    }
}

impl SpoolConfig {
    /// The segment size actually used.
    pub fn segment_bytes(&self) -> u64 {
        self.segment_bytes
            .unwrap_or_else(|| (self.max_bytes / 8).clamp(4096, 16 << 20))
    }
}

/// Batching.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Most events in one request.
    #[serde(default = "default_batch_events")]
    pub max_events: usize,
    /// Most uncompressed bytes in one request.
    #[serde(default = "default_batch_bytes", deserialize_with = "de_bytes")]
    pub max_bytes: u64,
    /// How long a partial batch waits for more events.
    #[serde(default = "default_batch_wait", with = "humantime_serde_lite")]
    pub max_wait: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_events: default_batch_events(),
            max_bytes: default_batch_bytes(),
            max_wait: default_batch_wait(),
        }
    }
}

/// Retries with exponential backoff and full jitter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// First delay.
    #[serde(default = "default_retry_initial", with = "humantime_serde_lite")]
    pub initial: Duration,
    /// Longest delay.
    #[serde(default = "default_retry_max", with = "humantime_serde_lite")]
    pub max: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial: default_retry_initial(),
            max: default_retry_max(),
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Log file (rotated daily); without it logs go to stderr.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Rotated files kept (default 7).
    #[serde(default)]
    pub keep: Option<usize>,
    /// `error`, `warn`, `info` (default), `debug`, `trace`, or a tracing filter directive.
    #[serde(default)]
    pub level: Option<String>,
}

/// One source of events (`type:` picks the kind).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(not(windows), allow(dead_code))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// A Windows Event Log channel (Windows only).
    Eventlog {
        /// Unique name; the bookmark is kept under it.
        name: String,
        /// Channel, e.g. `Security` or `Microsoft-Windows-Sysmon/Operational`.
        channel: String,
        /// XPath query (default `*`).
        #[serde(default)]
        query: Option<String>,
        /// Where to start when no bookmark exists: `oldest` or `newest` (default).
        #[serde(default)]
        start_at: StartAt,
        /// Local filtering.
        #[serde(default)]
        filter: Option<FilterConfig>,
    },
    /// EVTX files: one file, or a folder (optionally watched for new `.evtx` files).
    Evtx {
        /// Unique name; positions are kept under it.
        name: String,
        /// File or folder.
        path: PathBuf,
        /// Keep watching the folder for new files.
        #[serde(default)]
        watch: bool,
        /// Local filtering.
        #[serde(default)]
        filter: Option<FilterConfig>,
    },
    /// A JSON-lines file followed like `tail -F`.
    Jsonl {
        /// Unique name; the position is kept under it.
        name: String,
        /// The file.
        path: PathBuf,
        /// Where to start when no position exists: `oldest` (default, the whole file) or
        /// `newest` (only lines written from now on).
        #[serde(default = "oldest")]
        start_at: StartAt,
        /// Local filtering.
        #[serde(default)]
        filter: Option<FilterConfig>,
    },
}

impl SourceConfig {
    /// The source's unique name.
    pub fn name(&self) -> &str {
        match self {
            Self::Eventlog { name, .. } | Self::Evtx { name, .. } | Self::Jsonl { name, .. } => {
                name
            }
        }
    }

    /// Its filter, if any.
    pub fn filter(&self) -> Option<&FilterConfig> {
        match self {
            Self::Eventlog { filter, .. }
            | Self::Evtx { filter, .. }
            | Self::Jsonl { filter, .. } => filter.as_ref(),
        }
    }
}

/// Where a source starts without a saved position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// From the start.
    Oldest,
    /// Only what is written from now on.
    #[default]
    Newest,
}

fn oldest() -> StartAt {
    StartAt::Oldest
}
fn yes() -> bool {
    true
}
fn default_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_heartbeat() -> Duration {
    Duration::from_secs(60)
}
fn default_spool_bytes() -> u64 {
    256 << 20
}
fn default_batch_events() -> usize {
    1000
}
fn default_batch_bytes() -> u64 {
    4 << 20
}
fn default_batch_wait() -> Duration {
    Duration::from_secs(2)
}
fn default_retry_initial() -> Duration {
    Duration::from_millis(500)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(60)
}

/// Durations written as `500ms`, `30s`, `5m`.
mod humantime_serde_lite {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("bad duration {text:?}: {e}")))
    }
}

/// A size: a number of bytes or a number with a unit (`KiB`, `MiB`, `GiB`, `KB`, `MB`, `GB`).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("bad size {text:?}: expected e.g. 256MiB"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => return Err(format!("bad size unit {other:?} in {text:?}")),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Size {
    Number(u64),
    Text(String),
}

fn de_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match Size::deserialize(d)? {
        Size::Number(n) => Ok(n),
        Size::Text(t) => parse_bytes(&t).map_err(serde::de::Error::custom),
    }
}

fn de_opt_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    de_bytes(d).map(Some)
}

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("configuration {}", path.display()))
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let config: Self = serde_yaml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let url = reqwest::Url::parse(&self.server.url)
            .map_err(|e| anyhow::anyhow!("server.url: {:?} is not a URL: {e}", self.server.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!(
                "server.url: the scheme must be https (or http), not {:?}",
                url.scheme()
            );
        }
        if self.server.token.trim().is_empty() {
            bail!("server.token: empty");
        }
        if self.server.client_cert.is_some() != self.server.client_key.is_some() {
            bail!("server.client_cert and server.client_key: give both or neither");
        }
        if url.scheme() == "http"
            && (self.server.ca_file.is_some() || self.server.client_cert.is_some())
        {
            bail!("server.ca_file / server.client_cert: only meaningful with an https:// url");
        }
        if self.spool.max_bytes < 64 << 10 {
            bail!("spool.max_bytes: at least 64KiB");
        }
        let segment = self.spool.segment_bytes();
        if segment < 4096 || segment * 2 > self.spool.max_bytes {
            bail!("spool.segment_bytes: between 4KiB and half of spool.max_bytes");
        }
        if self.batch.max_events == 0 {
            bail!("batch.max_events: at least 1");
        }
        if self.batch.max_bytes < 1024 {
            bail!("batch.max_bytes: at least 1KiB");
        }
        if self.retry.initial.is_zero() || self.retry.max < self.retry.initial {
            bail!("retry: initial must be above zero and max at least initial");
        }
        let mut names = std::collections::HashSet::new();
        for (i, source) in self.sources.iter().enumerate() {
            let name = source.name();
            if name.is_empty() || name.contains(['\n', '\0']) {
                bail!("sources[{i}].name: must be a non-empty single line");
            }
            if !names.insert(name) {
                bail!("sources[{i}].name: {name:?} is used twice");
            }
            if let SourceConfig::Eventlog { channel, .. } = source {
                if channel.is_empty() {
                    bail!("sources[{i}].channel: empty");
                }
                if !cfg!(windows) {
                    bail!(
                        "sources[{i}] ({name}): type eventlog needs Windows; use evtx or jsonl here"
                    );
                }
            }
            if let Some(filter) = source.filter() {
                filter
                    .validate()
                    .map_err(|e| anyhow::anyhow!("sources[{i}].filter.{e}"))?;
            }
        }
        if let Some(level) = &self.log.level {
            tracing_subscriber::EnvFilter::try_new(level)
                .map_err(|e| anyhow::anyhow!("log.level: {level:?}: {e}"))?;
        }
        Ok(())
    }

    /// The agent's id (configured, else the host name).
    pub fn agent_id(&self) -> String {
        self.agent_id
            .clone()
            .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned())
    }

    /// The bearer token, resolved from `env:` / `file:` if so written.
    pub fn token(&self) -> anyhow::Result<String> {
        siren_core::secret::resolve(&self.server.token, |name| std::env::var(name).ok())
            .context("server.token")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "server: {url: 'http://127.0.0.1:1', token: t}\nstate_dir: /tmp/x\n";

    #[test]
    fn minimal_config_has_defaults() {
        let c = Config::parse(MINIMAL).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(c.spool.max_bytes, 256 << 20);
        assert_eq!(c.batch.max_events, 1000);
        assert_eq!(c.spool.when_full, WhenFull::DropOldest);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let text = format!("{MINIMAL}spool:\n  max_byte: 1MiB\n");
        let e = format!(
            "{:#}",
            Config::parse(&text).err().unwrap_or_else(|| panic!())
        );
        assert!(e.contains("max_byte") && e.contains("line 4"), "{e}");
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("1MiB"), Ok(1 << 20));
        assert_eq!(parse_bytes("10 KB"), Ok(10_000));
        assert!(parse_bytes("ten").is_err());
        assert!(parse_bytes("1 parsec").is_err());
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            (
                "server: {url: 'ftp://x', token: t}\nstate_dir: /x\n",
                "server.url",
            ),
            (
                "server: {url: 'http://x', token: t}\nstate_dir: /x\nspool: {max_bytes: 10}\n",
                "spool.max_bytes",
            ),
            (
                "server: {url: 'http://x', token: t}\nstate_dir: /x\nsources: [{name: a, type: jsonl, path: /a}, {name: a, type: jsonl, path: /b}]\n",
                "sources[1].name",
            ),
        ];
        for (text, key) in cases {
            let e = format!(
                "{:#}",
                Config::parse(text).err().unwrap_or_else(|| panic!())
            );
            assert!(e.contains(key), "{key}: {e}");
        }
    }
}
