//! Shipping: batches from the spool to `POST /api/v1/events` (NDJSON, gzip, bearer token,
//! rustls), the server's per-item answers, retries with exponential backoff and jitter, and
//! acknowledgement of the spool (which is what advances read positions) only after the server
//! answered 200.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use serde_json::Value;
use siren_core::api::{AgentHeartbeat, BatchOutcome};

use crate::config::{BatchConfig, Config, RetryConfig};
use crate::spool::{Spool, SpoolRecord};
use crate::status::SharedStatus;

/// Builds the HTTPS client from the configuration (CA file, client certificate, timeout).
pub fn client(config: &Config) -> anyhow::Result<reqwest::blocking::Client> {
    let server = &config.server;
    let mut builder = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .timeout(server.timeout)
        .connect_timeout(server.timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("siren-agent/", env!("CARGO_PKG_VERSION")))
        .tls_built_in_root_certs(server.builtin_roots)
        .pool_max_idle_per_host(1);
    if let Some(path) = &server.ca_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("server.ca_file: cannot read {}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
            format!(
                "server.ca_file: {} holds no PEM certificate",
                path.display()
            )
        })?;
        if certs.is_empty() {
            anyhow::bail!(
                "server.ca_file: {} holds no PEM certificate",
                path.display()
            );
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if let (Some(cert), Some(key)) = (&server.client_cert, &server.client_key) {
        let mut pem = std::fs::read(cert)
            .with_context(|| format!("server.client_cert: cannot read {}", cert.display()))?;
        pem.push(b'\n');
        pem.extend(
            std::fs::read(key)
                .with_context(|| format!("server.client_key: cannot read {}", key.display()))?,
        );
        let identity = reqwest::Identity::from_pem(&pem)
            .context("server.client_cert / server.client_key: not a PEM certificate and key")?;
        builder = builder.identity(identity);
    }
    builder.build().context("cannot set up the HTTPS client")
}

/// Why a request failed.
#[derive(Debug)]
enum Failure {
    /// 401/403: the token is wrong, revoked or lacks the role.
    Auth(String),
    /// 413 or 400: the request as a whole was refused; smaller requests may pass.
    Refused(String),
    /// Anything that may pass later: connection, TLS, timeouts, 429, 5xx.
    Temporary {
        message: String,
        retry_after: Option<Duration>,
    },
}

impl Failure {
    fn message(&self) -> &str {
        match self {
            Failure::Auth(m) | Failure::Refused(m) | Failure::Temporary { message: m, .. } => m,
        }
    }
}

/// Every cause of an error on one line, with a hint for TLS trust problems.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = e.source();
    }
    let text = parts.join(": ");
    let lower = text.to_lowercase();
    if lower.contains("certificate") || lower.contains("unknownissuer") || lower.contains("tls") {
        format!(
            "TLS failure ({text}); if the server's certificate is issued by a private CA, name it in server.ca_file"
        )
    } else {
        text
    }
}

/// How the shipper ended.
#[derive(Debug)]
pub enum ShipEnd {
    /// Stopped on request, or everything was delivered.
    Done,
    /// The deadline passed with events undelivered; the last error.
    GaveUp {
        /// Whether the last error was the server refusing the token.
        auth: bool,
        /// The last error.
        error: String,
    },
}

/// Takes batches from the spool and delivers them.
pub struct Shipper {
    /// The HTTP client.
    pub client: reqwest::blocking::Client,
    /// `…/api/v1/events`.
    pub events_url: reqwest::Url,
    /// The bearer token.
    pub token: String,
    /// The spool.
    pub spool: Arc<Spool>,
    /// Counters.
    pub status: SharedStatus,
    /// Batch sizes.
    pub batch: BatchConfig,
    /// Retry delays.
    pub retry: RetryConfig,
    /// Set to stop.
    pub stop: Arc<AtomicBool>,
}

impl Shipper {
    /// Ships until `stop` is set, or — when `finished` says the sources are done — until the
    /// spool is drained; gives up at `deadline` if given.
    pub fn run(&self, finished: &dyn Fn() -> bool, deadline: Option<Instant>) -> ShipEnd {
        // Unacknowledged records of a previous run are sent first.
        self.spool.rewind();
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return ShipEnd::Done;
            }
            let done_reading = finished();
            let batch = match self.collect(done_reading) {
                Ok(b) => b,
                Err(error) => {
                    tracing::error!(%error, "cannot read the spool");
                    self.status
                        .update(|s| s.set_error(format!("spool: {error}")));
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            };
            if batch.is_empty() {
                if done_reading && self.spool.is_drained() {
                    return ShipEnd::Done;
                }
                continue;
            }
            match self.deliver(&batch, deadline) {
                Ok(()) => {}
                Err(end) => return end,
            }
        }
    }

    /// A batch: up to `max_events`, waiting up to `max_wait` for it to fill unless `flush`.
    fn collect(&self, flush: bool) -> Result<Vec<(u64, SpoolRecord)>, crate::spool::SpoolError> {
        let max_events = self.batch.max_events;
        let max_bytes = self.batch.max_bytes;
        let mut batch = self
            .spool
            .read(max_events, max_bytes, Duration::from_millis(250))?;
        if batch.is_empty() {
            return Ok(batch);
        }
        // None: a wait beyond what the clock can represent (until the batch is full).
        let deadline = Instant::now().checked_add(self.batch.max_wait);
        let mut bytes: u64 = batch.iter().map(|(_, r)| event_len(r)).sum();
        while batch.len() < max_events && bytes < max_bytes && !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                break;
            }
            let wait = if flush {
                Duration::ZERO
            } else {
                deadline.map_or(Duration::from_millis(200), |d| {
                    (d - now).min(Duration::from_millis(200))
                })
            };
            let more = self
                .spool
                .read(max_events - batch.len(), max_bytes - bytes, wait)?;
            if more.is_empty() && flush {
                break;
            }
            bytes += more.iter().map(|(_, r)| event_len(r)).sum::<u64>();
            batch.extend(more);
        }
        Ok(batch)
    }

    /// Delivers one batch (splitting it when the server finds it too large), then
    /// acknowledges it in the spool with the positions it carries.
    fn deliver(
        &self,
        batch: &[(u64, SpoolRecord)],
        deadline: Option<Instant>,
    ) -> Result<(), ShipEnd> {
        let mut parts: VecDeque<&[(u64, SpoolRecord)]> = VecDeque::from([batch]);
        let mut attempt: u32 = 0;
        let mut auth_reported = false;
        while let Some(part) = parts.pop_front() {
            let events: Vec<&(u64, SpoolRecord)> =
                part.iter().filter(|(_, r)| r.event.is_some()).collect();
            if events.is_empty() {
                continue;
            }
            loop {
                match self.post(&events) {
                    Ok(answer) => {
                        attempt = 0;
                        for item in &answer.rejected {
                            let source = events.get(item.index).map(|(seq, r)| (*seq, r));
                            tracing::error!(index = item.index, seq = ?source.map(|s| s.0), key = ?source.map(|s| &s.1.key), position = ?source.map(|s| s.1.position.to_string()), reason = %item.error, "the server rejected an event; it is not sent again");
                        }
                        let rejected = answer.rejected.len() as u64;
                        self.status.update(|s| {
                            s.shipped += events.len() as u64 - rejected;
                            s.duplicates += answer.duplicates;
                            s.rejected += rejected;
                            s.batches += 1;
                            s.last_success = Some(chrono::Utc::now());
                            s.last_error = None;
                        });
                        tracing::debug!(
                            events = events.len(),
                            stored = answer.stored,
                            duplicates = answer.duplicates,
                            rejected,
                            "batch acknowledged"
                        );
                        break;
                    }
                    Err(Failure::Refused(message)) if events.len() > 1 => {
                        tracing::warn!(events = events.len(), %message, "the server refused the batch; sending it in halves");
                        let (a, b) = part.split_at(part.len() / 2);
                        parts.push_front(b);
                        parts.push_front(a);
                        break;
                    }
                    Err(Failure::Refused(message)) => {
                        let (seq, record) = events[0];
                        tracing::error!(seq, key = %record.key, position = %record.position, reason = %message, "the server refused an event on its own; it is not sent again");
                        self.status.update(|s| {
                            s.rejected += 1;
                            s.set_error(format!("event refused: {message}"));
                        });
                        break;
                    }
                    Err(failure) => {
                        let auth = matches!(failure, Failure::Auth(_));
                        let message = failure.message().to_owned();
                        if auth {
                            if !auth_reported {
                                tracing::error!(error = %message, "the server refused the agent's token; events stay in the spool until it is fixed");
                                auth_reported = true;
                            }
                        } else {
                            tracing::warn!(error = %message, attempt, "delivery failed; retrying");
                        }
                        self.status.update(|s| s.set_error(message.clone()));
                        if deadline.is_some_and(|d| Instant::now() >= d) {
                            return Err(ShipEnd::GaveUp {
                                auth,
                                error: message,
                            });
                        }
                        let retry_after = match &failure {
                            Failure::Temporary { retry_after, .. } => *retry_after,
                            _ => None,
                        };
                        let mut delay = backoff(&self.retry, attempt, auth);
                        if let Some(at_least) = retry_after {
                            delay = delay.max(at_least.min(self.retry.max));
                        }
                        if let Some(d) = deadline {
                            delay = delay.min(d.saturating_duration_since(Instant::now()));
                        }
                        attempt = attempt.saturating_add(1);
                        if !self.sleep(delay) {
                            return Err(ShipEnd::Done);
                        }
                    }
                }
            }
        }
        let through = batch.last().map_or(0, |(seq, _)| seq + 1);
        let mut positions: BTreeMap<String, Value> = BTreeMap::new();
        for (_, record) in batch {
            positions.insert(record.key.clone(), record.position.clone());
        }
        if let Err(error) = self.spool.ack(through, &positions) {
            // The batch will be sent again after a restart; the server de-duplicates.
            tracing::error!(%error, "cannot record the acknowledgement in the spool");
            self.status
                .update(|s| s.set_error(format!("spool: {error}")));
        }
        Ok(())
    }

    /// Sleeps unless stopped; false when stopped.
    fn sleep(&self, delay: Duration) -> bool {
        // None: a delay beyond what the clock can represent (until stopped).
        let until = Instant::now().checked_add(delay);
        while until.is_none_or(|u| Instant::now() < u) {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            let left = until.map_or(Duration::MAX, |u| u - Instant::now());
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
        !self.stop.load(Ordering::Relaxed)
    }

    fn post(&self, events: &[&(u64, SpoolRecord)]) -> Result<BatchOutcome, Failure> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        for (_, record) in events {
            if let Some(event) = &record.event {
                let _ = gz.write_all(event.as_bytes());
                let _ = gz.write_all(b"\n");
            }
        }
        let body = gz.finish().map_err(|e| Failure::Temporary {
            message: format!("compressing a batch: {e}"),
            retry_after: None,
        })?;
        let response = self
            .client
            .post(self.events_url.clone())
            .bearer_auth(&self.token)
            .header(CONTENT_TYPE, "application/x-ndjson")
            .header(CONTENT_ENCODING, "gzip")
            .body(body)
            .send()
            .map_err(|e| Failure::Temporary {
                message: format!("{}: {}", self.events_url, describe(&e)),
                retry_after: None,
            })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.text().unwrap_or_default();
        let reason = || {
            let detail = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| text.chars().take(200).collect());
            format!("{} answered {status}: {detail}", self.events_url)
        };
        match status {
            StatusCode::OK => serde_json::from_str(&text).map_err(|e| Failure::Temporary {
                message: format!(
                    "{}: unexpected answer ({e}): {}",
                    self.events_url,
                    text.chars().take(200).collect::<String>()
                ),
                retry_after: None,
            }),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(Failure::Auth(format!(
                "{} (check server.token: it must be a token with role agent, analyst or admin)",
                reason()
            ))),
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::BAD_REQUEST => {
                Err(Failure::Refused(reason()))
            }
            _ => Err(Failure::Temporary {
                message: reason(),
                retry_after,
            }),
        }
    }
}

fn event_len(record: &SpoolRecord) -> u64 {
    record.event.as_ref().map_or(0, |e| e.len() as u64 + 1)
}

/// Exponential backoff with jitter: a random delay between half and all of
/// `initial * 2^attempt` (capped at `max`); authentication failures wait the longest delay.
pub fn backoff(retry: &RetryConfig, attempt: u32, auth: bool) -> Duration {
    let ceiling = if auth {
        retry.max
    } else {
        retry
            .initial
            .saturating_mul(1u32 << attempt.min(20))
            .min(retry.max)
    };
    let half = ceiling / 2;
    half + Duration::from_millis(fastrand::u64(0..=half.as_millis() as u64))
}

/// Sends a heartbeat; errors are only logged.
pub fn heartbeat(
    client: &reqwest::blocking::Client,
    url: &reqwest::Url,
    token: &str,
    status: &SharedStatus,
    queue_depth: u64,
) {
    let snapshot = status.snapshot();
    let body = AgentHeartbeat {
        agent: snapshot.agent_id,
        hostname: gethostname::gethostname().to_string_lossy().into_owned(),
        version: snapshot.version,
        queue_depth: i64::try_from(queue_depth).unwrap_or(i64::MAX),
        last_error: snapshot.last_error,
    };
    match client
        .post(url.clone())
        .bearer_auth(token)
        .json(&body)
        .send()
    {
        Ok(r) if r.status().is_success() => tracing::debug!("heartbeat sent"),
        Ok(r) => tracing::warn!(status = %r.status(), "heartbeat refused"),
        Err(e) => tracing::debug!(error = %describe(&e), "heartbeat failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_up_to_the_cap() {
        let retry = RetryConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        for attempt in 0..30 {
            let ceiling = (Duration::from_millis(100) * 2u32.pow(attempt.min(10))).min(retry.max);
            let d = backoff(&retry, attempt, false);
            assert!(d >= ceiling / 2 && d <= ceiling, "{attempt}: {d:?}");
        }
        assert!(backoff(&retry, 0, true) >= Duration::from_secs(1));
    }
}
