//! The event model: every original field, flattened, plus SIREN's normalised core fields.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The flattened original fields of an event, in the order the source carried them.
///
/// Windows events are flattened so that `EventID`, `Channel`, `Computer`, `Provider_Name`,
/// `TimeCreated`, `EventRecordID` and every named `EventData` / `UserData` field can be looked
/// up by name, whichever input format carried the event (see [`crate::normalize::flatten`]).
///
/// An insertion-ordered map with a fast, seeded hasher (foldhash): every event's fields are
/// inserted once and looked up by many rules, and SipHash (serde_json's `Map`) cost more
/// than the lookups themselves. It serialises as a JSON object, in order.
pub type Fields = indexmap::IndexMap<String, Value, foldhash::fast::RandomState>;

/// The tenant that owns an event, alert or incident.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    /// The tenant used when none is configured.
    pub const DEFAULT: &'static str = "default";

    /// Parses a tenant name: 1 to 64 characters of `[A-Za-z0-9_.-]`.
    pub fn parse(name: &str) -> Result<Self, InvalidTenant> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(InvalidTenant(name.to_owned()))
        }
    }

    /// The tenant's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TenantId {
    fn default() -> Self {
        Self(Self::DEFAULT.to_owned())
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for TenantId {
    type Err = InvalidTenant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A tenant name that is empty, too long or holds characters other than `[A-Za-z0-9_.-]`.
#[derive(Debug, thiserror::Error)]
#[error("invalid tenant name '{0}': use 1 to 64 characters of A-Z, a-z, 0-9, '_', '.', '-'")]
pub struct InvalidTenant(String);

/// One security event: all original fields plus the normalised core.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When the event happened, in UTC.
    pub timestamp: Option<DateTime<Utc>>,
    /// The host that recorded the event (`Computer` for Windows).
    pub host: Option<String>,
    /// Where on the host it came from: channel, provider or program.
    pub source: Option<String>,
    /// The event ID (`EventID` for Windows).
    pub event_id: Option<i64>,
    /// The record number within its log (`EventRecordID` for Windows).
    pub record_id: Option<i64>,
    /// The source's own severity, normalised to `critical|error|warning|information|verbose`
    /// (syslog severities map onto these).
    pub severity: Option<String>,
    /// The account the event is about.
    pub user: Option<String>,
    /// Source IP address.
    pub src_ip: Option<String>,
    /// Destination IP address.
    pub dst_ip: Option<String>,
    /// Image path or name of the process concerned.
    pub process: Option<String>,
    /// Its command line.
    pub command_line: Option<String>,
    /// Image path or name of its parent process.
    pub parent_process: Option<String>,
    /// The tenant that owns the event.
    pub tenant: TenantId,
    /// Every original field, flattened.
    pub fields: Fields,
}

impl Event {
    /// Builds an event from flattened fields, deriving the normalised core from them.
    pub fn from_fields(fields: Fields, tenant: TenantId) -> Self {
        let mut event = Event {
            timestamp: None,
            host: None,
            source: None,
            event_id: None,
            record_id: None,
            severity: None,
            user: None,
            src_ip: None,
            dst_ip: None,
            process: None,
            command_line: None,
            parent_process: None,
            tenant,
            fields,
        };
        crate::normalize::core::derive_core(&mut event);
        event
    }

    /// The value of an original field, by its flattened name.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields.get(field)
    }

    /// The value of an original field as text: strings as they are, numbers and booleans
    /// formatted, `None` for a missing field, null, an array or an object.
    pub fn get_str(&self, field: &str) -> Option<std::borrow::Cow<'_, str>> {
        match self.fields.get(field)? {
            Value::String(s) => Some(std::borrow::Cow::Borrowed(s)),
            Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
            Value::Bool(b) => Some(std::borrow::Cow::Borrowed(if *b {
                "true"
            } else {
                "false"
            })),
            _ => None,
        }
    }
}
