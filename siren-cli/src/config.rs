//! The configuration file (`--config FILE`, `SIREN_CONFIG`, else `./siren.yaml` if present).
//! Flags and `SIREN_…` variables win over it; unknown keys are an error naming the key and line.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// The file's shape. Sections not used yet by this build are accepted as they are.
#[derive(Debug, Default, Deserialize)]
#[allow(dead_code)] // `rules`, `logsources`, `server` and `notify` are read by commands to come.
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Database URL (`sqlite://…`, `postgres://…`), or `env:NAME` / `file:PATH`.
    pub database: Option<String>,
    /// Tenant name.
    pub tenant: Option<String>,
    /// Rule folders.
    #[serde(default)]
    pub rules: Vec<PathBuf>,
    /// Log-source mapping file.
    pub logsources: Option<PathBuf>,
    /// Server settings.
    pub server: Option<serde_yaml::Value>,
    /// Notification channels and policies.
    pub notify: Option<serde_yaml::Value>,
}

impl Config {
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
        serde_yaml::from_str(&text)
            .with_context(|| format!("invalid configuration file {}", path.display()))
    }
}

/// Resolves a secret given as `env:NAME`, `file:PATH` or literally.
pub fn resolve_secret(
    value: &str,
    lookup_env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<String> {
    if let Some(name) = value.strip_prefix("env:") {
        return match lookup_env(name) {
            Some(v) => Ok(v),
            None => bail!("environment variable {name} is not set"),
        };
    }
    if let Some(path) = value.strip_prefix("file:") {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read secret file {path}"))?;
        return Ok(text.trim_end_matches(['\r', '\n']).to_owned());
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_name_the_key_and_line() {
        let error = serde_yaml::from_str::<Config>("tenant: a\ndatabse: x\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("databse") && error.contains("line 2"),
            "{error}"
        );
    }

    #[test]
    fn secrets_from_env_and_literal() {
        let env = |name: &str| (name == "DB").then(|| "postgres://x".to_owned());
        assert_eq!(resolve_secret("env:DB", env).unwrap(), "postgres://x");
        assert!(resolve_secret("env:NOPE", env).is_err());
        assert_eq!(
            resolve_secret("sqlite://a.db", env).unwrap(),
            "sqlite://a.db"
        );
    }
}
