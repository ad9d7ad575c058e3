//! The configuration file, `siren.yaml`, read the same way by `siren` and `siren-server`
//! (`--config FILE`, `SIREN_CONFIG`, else `./siren.yaml` if present). Flags and `SIREN_…`
//! variables win over it; unknown keys are an error naming the key and line.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// The file's shape. Sections not used yet by this build are accepted as they are.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Database URL (`sqlite://…`, `postgres://…`), or `env:NAME` / `file:PATH`.
    pub database: Option<String>,
    /// Tenant name.
    pub tenant: Option<String>,
    /// Rule folders.
    #[serde(default)]
    pub rules: Vec<PathBuf>,
    /// Log-source mapping file.
    pub logsources: Option<PathBuf>,
    /// pySigma processing pipeline files applied to the server's rules (in `priority`
    /// order), before those of `siren serve --pipeline`.
    #[serde(default)]
    pub pipelines: Vec<PathBuf>,
    /// Server settings (`siren serve`), typed: unknown keys are refused.
    pub server: Option<crate::ServerConfig>,
    /// Notification channels and policies (secrets resolved when a command notifies).
    pub notify: Option<siren_core::notify::NotifyConfig>,
    /// Report settings.
    pub report: Option<ReportConfig>,
    /// How long each kind of data is kept (nothing is purged without it).
    pub retention: Option<siren_core::retention::RetentionConfig>,
    /// Where events go before retention deletes them, and where `siren archive` and
    /// `siren hunt --archive` read them.
    pub archive: Option<siren_core::archive::ArchiveConfig>,
    /// The file it was read from.
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

/// The `report:` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// A folder whose `period.html`, `incident.html`, `period.md`, `incident.md` replace the
    /// built-in templates.
    pub templates: Option<PathBuf>,
}

impl ConfigFile {
    /// Loads the file named by `path`, else `./siren.yaml` when it exists, else defaults.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let path = match path {
            Some(path) => path.to_owned(),
            None if Path::new("siren.yaml").is_file() => PathBuf::from("siren.yaml"),
            None => return Ok(Self::default()),
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read configuration file {}", path.display()))?;
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let mut config: Self = serde_yaml::from_str(&text)
            .with_context(|| format!("invalid configuration file {}", path.display()))?;
        config.path = Some(path);
        Ok(config)
    }

    /// The settings whose secret is written literally (not `env:NAME` / `file:PATH`).
    pub fn literal_secrets(&self) -> Vec<String> {
        let mut found = Vec::new();
        if let Some(url) = &self.database
            && !siren_core::secret::is_reference(url)
            && siren_core::notify::config::url_has_password(url)
        {
            found.push("database".to_owned());
        }
        if let Some(notify) = &self.notify {
            found.extend(notify.literal_secrets());
        }
        if let Some(archive) = &self.archive {
            found.extend(archive.literal_secrets());
        }
        found
    }

    /// A warning when the file holds literal secrets and its group or others may read it.
    pub fn exposure_warning(&self) -> Option<String> {
        let path = self.path.as_ref()?;
        let secrets = self.literal_secrets();
        if secrets.is_empty() {
            return None;
        }
        let mode = siren_core::owner_only::readable_by_others(path)?;
        Some(format!(
            "the configuration file {} holds secrets written literally ({}) and others can \
             read it (mode {mode:03o}): chmod 600 it, or write them as env:NAME or file:PATH",
            path.display(),
            secrets.join(", ")
        ))
    }
}

/// The secret `value` stands for (`env:NAME`, `file:PATH` or literal), read from this
/// process's environment.
pub fn resolve_secret(value: &str) -> Result<String, siren_core::secret::SecretError> {
    siren_core::secret::resolve(value, |name| std::env::var(name).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_name_the_key_and_line() {
        let error = serde_yaml::from_str::<ConfigFile>("tenant: a\ndatabse: x\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("databse") && error.contains("line 2"),
            "{error}"
        );
        let error =
            serde_yaml::from_str::<ConfigFile>("server:\n  listen: 127.0.0.1:1\n  tls_crt: a\n")
                .unwrap_err()
                .to_string();
        assert!(error.contains("tls_crt"), "{error}");
        let config: ConfigFile =
            serde_yaml::from_str("server:\n  listen: 0.0.0.0:9443\n  body_limit: 1048576\n")
                .unwrap();
        let server = config.server.unwrap();
        assert_eq!(server.listen.port(), 9443);
        assert_eq!(server.body_limit, 1 << 20);
    }

    #[test]
    fn the_notify_section_is_typed() {
        let config: ConfigFile = serde_yaml::from_str(
            "notify:\n  channels:\n    - { name: hook, type: webhook, url: \"env:HOOK_URL\" }\n  policies:\n    - { channels: [hook], min_severity: high }\n",
        )
        .unwrap();
        let notify = config.notify.unwrap();
        assert_eq!(notify.channels[0].name(), "hook");
        let error = serde_yaml::from_str::<ConfigFile>("notify:\n  chanels: []\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("chanels"), "{error}");
    }
}
