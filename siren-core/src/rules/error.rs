//! Errors met while loading Sigma rules, and the per-rule diagnostics that carry them.

use std::fmt;

/// Why a rule (or a whole rule file) could not be loaded. The message names the construct.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Io(String),
    /// A processing pipeline refused the rule or could not rewrite it.
    #[error("{0}")]
    Pipeline(String),
    /// The YAML is malformed.
    #[error("invalid YAML at line {line}, column {column}: {message}")]
    Yaml {
        /// 1-based line, 0 when unknown.
        line: usize,
        /// 1-based column, 0 when unknown.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A YAML document that is not a mapping, or a document that is neither a detection,
    /// correlation nor filter rule.
    #[error("not a Sigma rule: {0}")]
    NotARule(String),
    /// A required key is missing.
    #[error("missing required key '{0}'")]
    MissingKey(String),
    /// A key has a value of the wrong shape or an invalid value.
    #[error("invalid '{key}': {reason}")]
    InvalidKey {
        /// The key, as a path (`logsource.product`, `detection.selection`).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A value modifier that does not exist.
    #[error("unknown modifier '{modifier}' in '{field}'")]
    UnknownModifier {
        /// The whole key (`CommandLine|contanis`).
        field: String,
        /// The offending modifier.
        modifier: String,
    },
    /// Modifiers that cannot be used together, or with this value.
    #[error("invalid modifier use in '{field}': {reason}")]
    InvalidModifier {
        /// The whole key.
        field: String,
        /// Why.
        reason: String,
    },
    /// A regular expression (from `re`, or from wildcards) that does not compile.
    #[error("invalid regular expression '{pattern}' in '{field}': {reason}")]
    BadRegex {
        /// The whole key.
        field: String,
        /// The pattern.
        pattern: String,
        /// The compiler's message.
        reason: String,
    },
    /// A placeholder used with `expand` that is not configured.
    #[error("unknown placeholder '%{placeholder}%' in '{field}' (configure it to use 'expand')")]
    UnknownPlaceholder {
        /// The whole key.
        field: String,
        /// The placeholder's name.
        placeholder: String,
    },
    /// The condition does not parse or refers to something that does not exist.
    #[error("invalid condition '{condition}': {reason}")]
    Condition {
        /// The condition text.
        condition: String,
        /// What is wrong.
        reason: String,
    },
    /// A construct SIREN deliberately does not support.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The rule exceeds a safety limit (size, nesting, number of values).
    #[error("too large: {0}")]
    TooLarge(String),
    /// A correlation or filter rule refers to a rule that was not loaded.
    #[error("refers to rule '{0}', which is not loaded")]
    UnknownRuleReference(String),
    /// Another rule with the same id was already loaded.
    #[error("duplicate rule id '{id}' (first loaded from {first})")]
    DuplicateId {
        /// The id.
        id: String,
        /// Where the first one came from.
        first: String,
    },
}

/// One rule (or file) that was not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDiagnostic {
    /// The file the rule came from (its path, or the name given to [`super::RuleSet::from_yaml`]).
    pub file: String,
    /// The rule within the file: its title or id when known, else `document N` (1-based).
    /// `None` when the whole file is concerned.
    pub rule: Option<String>,
    /// What went wrong.
    pub error: RuleError,
}

impl fmt::Display for RuleDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Some(rule) => write!(f, "{}: rule '{}': {}", self.file, rule, self.error),
            None => write!(f, "{}: {}", self.file, self.error),
        }
    }
}

/// A log-source mapping file that could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LogSourceError {
    /// The file could not be read.
    #[error("cannot read log-source mapping {file}: {reason}")]
    Io {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// The mapping is not valid YAML or does not have the expected shape.
    #[error("invalid log-source mapping {file}: {reason}")]
    Invalid {
        /// The file.
        file: String,
        /// Why (with line and column when the YAML itself is malformed).
        reason: String,
    },
}
