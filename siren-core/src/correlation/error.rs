//! Correlation errors: a correlation rule that cannot be evaluated, a saved state that
//! cannot be restored.

use super::{STATE_FORMAT, STATE_VERSION};

/// A correlation rule that cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorrelationError {
    /// A rule the correlation refers to is not loaded.
    #[error("correlation '{correlation}': referenced rule '{reference}' is not loaded")]
    UnknownRule {
        /// The correlation's reference.
        correlation: String,
        /// The missing rule's id or name.
        reference: String,
    },
    /// The correlation refers to a filter rule, which produces no matches.
    #[error("correlation '{correlation}': referenced rule '{reference}' is a filter rule")]
    NotMatchable {
        /// The correlation's reference.
        correlation: String,
        /// The filter rule's id or name.
        reference: String,
    },
}

/// Why a snapshot could not be restored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The bytes are not a correlation state.
    #[error("correlation state is not valid: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The bytes are some other document.
    #[error("correlation state has format '{found}', expected '{STATE_FORMAT}'")]
    WrongFormat {
        /// The format name found.
        found: String,
    },
    /// The state was written by an incompatible version.
    #[error(
        "correlation state version {found} is not supported (this build reads {STATE_VERSION})"
    )]
    UnsupportedVersion {
        /// The version found.
        found: u32,
    },
}
