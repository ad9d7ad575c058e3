//! Secrets in configuration: written literally, or as `env:NAME` (an environment variable) or
//! `file:PATH` (a file's contents), resolved the same way by every SIREN program. The caller
//! hands in how to read the environment; the library reads no environment itself.

use std::path::PathBuf;

/// Why a secret could not be resolved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// `env:NAME` names a variable that is not set.
    #[error("environment variable {0} is not set")]
    Unset(String),
    /// `file:PATH` names a file that cannot be read.
    #[error("cannot read secret file {path}: {source}", path = path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Whether `value` refers to a secret held elsewhere (`env:NAME`, `file:PATH`) rather than
/// being the secret itself.
pub fn is_reference(value: &str) -> bool {
    value.starts_with("env:") || value.starts_with("file:")
}

/// The secret `value` stands for: the variable `env:NAME` names (through `lookup_env`), the
/// contents of the file `file:PATH` names, or `value` itself. Whitespace around a secret read
/// from the environment or a file (a file's final newline) is not part of it.
///
/// ```
/// use siren_core::secret::resolve;
/// let env = |name: &str| (name == "DB").then(|| "postgres://db/siren\n".to_owned());
/// assert_eq!(resolve("env:DB", env).unwrap(), "postgres://db/siren");
/// assert_eq!(resolve("sqlite://siren.db", env).unwrap(), "sqlite://siren.db");
/// assert!(resolve("env:MISSING", env).is_err());
/// ```
pub fn resolve(
    value: &str,
    lookup_env: impl Fn(&str) -> Option<String>,
) -> Result<String, SecretError> {
    if let Some(name) = value.strip_prefix("env:") {
        return lookup_env(name)
            .map(|v| v.trim().to_owned())
            .ok_or_else(|| SecretError::Unset(name.to_owned()));
    }
    if let Some(path) = value.strip_prefix("file:") {
        return std::fs::read_to_string(path)
            .map(|text| text.trim().to_owned())
            .map_err(|source| SecretError::File {
                path: path.into(),
                source,
            });
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_lose_their_final_newline_and_missing_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret\r\n").unwrap();
        let none = |_: &str| None;
        let spec = format!("file:{}", file.display());
        assert_eq!(resolve(&spec, none).unwrap(), "s3cret");
        let missing = format!("file:{}", dir.path().join("nope").display());
        let error = resolve(&missing, none).unwrap_err().to_string();
        assert!(error.contains("nope"), "{error}");
        assert!(is_reference(&spec) && is_reference("env:X") && !is_reference("hunter2"));
    }
}
