//! Local filtering: which events a source ships (channels, event IDs, levels, field values).
//!
//! Events are looked at through `siren-core`'s flattening, so a field is named as a Sigma rule
//! names it (`EventID`, `Channel`, `TargetUserName`, `process.name`). Comparisons are
//! case-insensitive text comparisons.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use serde_json::Value;
use siren_core::{Event, TenantId};

/// The `filter:` block of a source. Every part given must hold for an event to be shipped.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Only events of these channels (the `Channel` field, or the event's source).
    #[serde(default)]
    pub channels: Vec<String>,
    /// Only these event IDs.
    #[serde(default)]
    pub event_ids: Vec<i64>,
    /// Never these event IDs.
    #[serde(default)]
    pub exclude_event_ids: Vec<i64>,
    /// Only these levels: `critical`, `error`, `warning`, `information`, `verbose`.
    #[serde(default)]
    pub levels: Vec<String>,
    /// Only events whose fields have these values (a list means any of them).
    #[serde(default, rename = "match")]
    pub match_fields: BTreeMap<String, OneOrMany>,
    /// Never events whose fields all have these values.
    #[serde(default)]
    pub exclude: BTreeMap<String, OneOrMany>,
}

/// One value or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A list: any of them.
    Many(Vec<Scalar>),
    /// One value.
    One(Scalar),
}

/// A scalar as written in YAML.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// Text.
    Text(String),
    /// A number.
    Number(serde_json::Number),
    /// A boolean.
    Bool(bool),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Text(t) => t.to_lowercase(),
            Scalar::Number(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

impl OneOrMany {
    fn texts(&self) -> HashSet<String> {
        match self {
            OneOrMany::One(s) => [s.text()].into(),
            OneOrMany::Many(v) => v.iter().map(Scalar::text).collect(),
        }
    }
}

const LEVELS: &[&str] = &["critical", "error", "warning", "information", "verbose"];

impl FilterConfig {
    /// Checks the values (the error starts with the offending key).
    pub fn validate(&self) -> Result<(), String> {
        for level in &self.levels {
            if !LEVELS.contains(&level.to_lowercase().as_str()) {
                return Err(format!(
                    "levels: unknown level {level:?} (use {})",
                    LEVELS.join(", ")
                ));
            }
        }
        for key in self.match_fields.keys().chain(self.exclude.keys()) {
            if key.is_empty() {
                return Err("match/exclude: empty field name".to_owned());
            }
        }
        Ok(())
    }
}

/// A compiled filter.
#[derive(Debug, Clone)]
pub struct Filter {
    channels: HashSet<String>,
    event_ids: HashSet<i64>,
    exclude_event_ids: HashSet<i64>,
    levels: HashSet<String>,
    match_fields: Vec<(String, HashSet<String>)>,
    exclude: Vec<(String, HashSet<String>)>,
}

impl Filter {
    /// Compiles a validated configuration.
    pub fn new(config: &FilterConfig) -> Self {
        Self {
            channels: config.channels.iter().map(|c| c.to_lowercase()).collect(),
            event_ids: config.event_ids.iter().copied().collect(),
            exclude_event_ids: config.exclude_event_ids.iter().copied().collect(),
            levels: config.levels.iter().map(|c| c.to_lowercase()).collect(),
            match_fields: config
                .match_fields
                .iter()
                .map(|(k, v)| (k.clone(), v.texts()))
                .collect(),
            exclude: config
                .exclude
                .iter()
                .map(|(k, v)| (k.clone(), v.texts()))
                .collect(),
        }
    }

    /// Whether the event (as shipped: evtx_dump JSON, ECS, flat JSON) passes.
    pub fn keeps(&self, document: &Value) -> bool {
        let Ok(fields) = siren_core::normalize::flatten::flatten(document.clone()) else {
            // Not an object: nothing to filter on; the server reports it.
            return true;
        };
        let event = Event::from_fields(fields, TenantId::default());
        if !self.channels.is_empty() {
            let channel = event
                .get_str("Channel")
                .map(|c| c.to_lowercase())
                .or_else(|| event.source.as_ref().map(|s| s.to_lowercase()));
            if !channel.is_some_and(|c| self.channels.contains(&c)) {
                return false;
            }
        }
        if !self.event_ids.is_empty()
            && !event
                .event_id
                .is_some_and(|id| self.event_ids.contains(&id))
        {
            return false;
        }
        if event
            .event_id
            .is_some_and(|id| self.exclude_event_ids.contains(&id))
        {
            return false;
        }
        if !self.levels.is_empty()
            && !event
                .severity
                .as_ref()
                .is_some_and(|s| self.levels.contains(&s.to_lowercase()))
        {
            return false;
        }
        let holds = |(field, values): &(String, HashSet<String>)| {
            event
                .get_str(field)
                .is_some_and(|v| values.contains(&v.to_lowercase()))
        };
        if !self.match_fields.iter().all(holds) {
            return false;
        }
        if !self.exclude.is_empty() && self.exclude.iter().all(holds) {
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(event_id: i64, level: i64, channel: &str, user: &str) -> Value {
        serde_json::json!({"Event": {"System": {
            "EventID": event_id, "Level": level, "Channel": channel, "Computer": "ws1",
            "EventRecordID": 7, "TimeCreated": {"#attributes": {"SystemTime": "2024-01-01T00:00:00Z"}}
        }, "EventData": {"TargetUserName": user}}})
    }

    fn filter(yaml: &str) -> Filter {
        let config: FilterConfig = serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        config.validate().unwrap_or_else(|e| panic!("{e}"));
        Filter::new(&config)
    }

    #[test]
    fn event_ids_channels_levels_and_fields() {
        let f = filter(
            "channels: [Security]\nevent_ids: [4624, 4625]\nlevels: [information]\nexclude: {TargetUserName: [SYSTEM]}\n",
        );
        assert!(f.keeps(&windows(4624, 4, "Security", "alice")));
        assert!(!f.keeps(&windows(4624, 4, "System", "alice")), "channel");
        assert!(!f.keeps(&windows(4688, 4, "Security", "alice")), "event id");
        assert!(!f.keeps(&windows(4624, 2, "Security", "alice")), "level");
        assert!(!f.keeps(&windows(4624, 4, "Security", "system")), "exclude");
        let m = filter("match: {TargetUserName: Alice}\nexclude_event_ids: [1]\n");
        assert!(m.keeps(&windows(4624, 4, "Security", "alice")));
        assert!(!m.keeps(&windows(4624, 4, "Security", "bob")));
        assert!(!m.keeps(&windows(1, 4, "Security", "alice")));
    }

    #[test]
    fn unknown_level_is_refused() {
        let config: FilterConfig = serde_yaml::from_str("levels: [loud]").unwrap_or_default();
        assert!(config.validate().unwrap_err().starts_with("levels"));
    }
}
