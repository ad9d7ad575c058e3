//! The `server:` section of the configuration file, typed: where to listen, TLS, limits,
//! sessions and login rate limits. Unknown keys are an error naming the key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The longest browser session (`session_seconds`): a year.
pub const MAX_SESSION_SECONDS: u64 = 366 * 86_400;

/// Server settings (`server:` in `siren.yaml`). Every field has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// PEM certificate chain; with `tls_key`, the server speaks HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    pub tls_key: Option<PathBuf>,
    /// Largest request body accepted by `POST /events` (bytes, before decompression).
    pub body_limit: usize,
    /// Largest decompressed body of a gzip request (bytes).
    pub decompressed_limit: usize,
    /// Largest batch (items) of one `POST /events`.
    pub max_batch: usize,
    /// `POST /events` requests waiting for the store beyond which the server answers 503.
    pub max_pending_batches: usize,
    /// How long a browser session lasts (seconds).
    pub session_seconds: u64,
    /// Failed logins per user within `login_window_seconds` before logins are refused.
    pub login_failures_per_user: u32,
    /// Failed logins per client address within `login_window_seconds` before refusal.
    pub login_failures_per_ip: u32,
    /// The login rate limit's window (seconds).
    pub login_window_seconds: u64,
    /// Serve `/metrics` without authentication (for a Prometheus on a trusted network);
    /// otherwise it needs a global admin.
    pub metrics_public: bool,
    /// Mark the session cookie `Secure` even without TLS here (TLS ends at a proxy).
    pub secure_cookies: bool,
    /// How often the live stream looks for incidents changed by other processes (ms).
    pub stream_poll_ms: u64,
    /// The distributed mode's bus (`nats://HOST:PORT`): set, this process publishes the
    /// correlation input of the events it accepts to NATS JetStream, and correlates the
    /// partitions it owns when its `role` says so. Unset (the default), it correlates in
    /// process.
    pub bus: Option<String>,
    /// In the distributed mode: the cluster's name, which every stream and bucket on the bus
    /// starts with (letters, digits, `_` and `-`; default `siren`). One per database.
    pub cluster: String,
    /// In the distributed mode: `front-end`, `worker` or `both` (the default).
    pub role: crate::cluster::Role,
    /// In the distributed mode: how many partitions correlation groups are spread over (the
    /// same on every process; at least as many as workers are ever wanted).
    pub partitions: u32,
    /// In the distributed mode: this process's name (default: host name and process id).
    pub node_id: Option<String>,
    /// Warn (log, metric, an incident) when the embedded database's file system has less
    /// than this share free, in percent.
    pub disk_warn_percent: u8,
    /// How often the free space is looked at (seconds).
    pub disk_check_seconds: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls_cert: None,
            tls_key: None,
            body_limit: 16 << 20,
            decompressed_limit: 64 << 20,
            max_batch: 10_000,
            max_pending_batches: 64,
            session_seconds: 12 * 3600,
            login_failures_per_user: 5,
            login_failures_per_ip: 20,
            login_window_seconds: 300,
            metrics_public: false,
            secure_cookies: false,
            stream_poll_ms: 1000,
            bus: None,
            cluster: "siren".to_owned(),
            role: crate::cluster::Role::Both,
            partitions: 16,
            node_id: None,
            disk_warn_percent: 10,
            disk_check_seconds: 30,
        }
    }
}

impl ServerConfig {
    /// Checks the settings that depend on each other.
    pub fn validate(&self) -> Result<(), String> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                return Err("server.tls_cert is set but server.tls_key is not".into());
            }
            (None, Some(_)) => {
                return Err("server.tls_key is set but server.tls_cert is not".into());
            }
            _ => {}
        }
        if self.body_limit == 0 || self.decompressed_limit == 0 || self.max_batch == 0 {
            return Err(
                "server.body_limit, decompressed_limit and max_batch must be above 0".into(),
            );
        }
        if self.disk_warn_percent > 99 || self.disk_check_seconds == 0 {
            return Err(
                "server.disk_warn_percent must be 0 to 99 and disk_check_seconds above 0".into(),
            );
        }
        if !(60..=MAX_SESSION_SECONDS).contains(&self.session_seconds) {
            return Err(format!(
                "server.session_seconds must be 60 to {MAX_SESSION_SECONDS}, not {}",
                self.session_seconds
            ));
        }
        let name_ok = !self.cluster.is_empty()
            && self.cluster.len() <= 32
            && self
                .cluster
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok {
            return Err(format!(
                "server.cluster must be 1 to 32 letters, digits, '_' or '-', not '{}'",
                self.cluster
            ));
        }
        if !(1..=4096).contains(&self.partitions) {
            return Err(format!(
                "server.partitions must be 1 to 4096, not {}",
                self.partitions
            ));
        }
        if self.max_pending_batches == 0 {
            return Err("server.max_pending_batches must be above 0".into());
        }
        Ok(())
    }

    /// Whether HTTPS is configured.
    pub fn tls(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some()
    }

    /// The session lifetime.
    pub fn session_lifetime(&self) -> Duration {
        Duration::from_secs(self.session_seconds.clamp(60, MAX_SESSION_SECONDS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let error = serde_yaml::from_str::<ServerConfig>("listen: 127.0.0.1:1\nbody_limt: 5\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("body_limt"), "{error}");
        let config: ServerConfig =
            serde_yaml::from_str("listen: 0.0.0.0:9000\nbody_limit: 1024\n").unwrap_or_default();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.body_limit, 1024);
        assert_eq!(config.max_batch, ServerConfig::default().max_batch);
        let half_tls = ServerConfig {
            tls_cert: Some("c.pem".into()),
            ..ServerConfig::default()
        };
        assert!(half_tls.validate().is_err());
        for seconds in [0, MAX_SESSION_SECONDS + 1, u64::MAX] {
            let endless = ServerConfig {
                session_seconds: seconds,
                ..ServerConfig::default()
            };
            let error = endless.validate().err().unwrap_or_default();
            assert!(error.contains("session_seconds"), "{seconds}: {error}");
            assert!(endless.session_lifetime().as_secs() <= MAX_SESSION_SECONDS);
        }
    }
}
