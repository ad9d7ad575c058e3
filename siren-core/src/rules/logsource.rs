//! The log-source mapping: which channels, event IDs and field names a Sigma `logsource`
//! designates. The default ships in `rules/logsources.yml`; users may load their own.

use serde::Deserialize;

use super::LogSourceError;
use super::model::LogSource;
use super::pipeline::Pipeline;

/// The mapping shipped with SIREN.
pub const DEFAULT_MAPPING: &str = include_str!("../../../rules/logsources.yml");

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    #[allow(dead_code)]
    version: Option<u32>,
    logsources: Vec<EntryShape>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryShape {
    product: Option<String>,
    category: Option<String>,
    service: Option<String>,
    sources: Vec<SourceShape>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceShape {
    #[serde(default)]
    channel: Option<OneOrMany>,
    #[serde(default)]
    provider: Option<OneOrMany>,
    #[serde(default)]
    event_ids: Vec<i64>,
    #[serde(default)]
    conditions: serde_yaml::Mapping,
    #[serde(default)]
    fields: serde_yaml::Mapping,
    /// A pySigma processing pipeline's `transformations` (a list) or a whole pipeline
    /// (a mapping), applied to the rules compiled for this source.
    #[serde(default)]
    pipeline: Option<serde_yaml::Value>,
}

/// One place events of a log source come from.
#[derive(Debug, Clone)]
pub struct EventSelector {
    /// Channels (compared case-insensitively with the event's `Channel`); none means the
    /// events that have no channel (syslog, CSV, flat JSON…).
    pub channels: Vec<String>,
    /// Providers (`Provider_Name`); empty = any.
    pub providers: Vec<String>,
    /// Event IDs; empty = any.
    pub event_ids: Vec<i64>,
    /// Further field conditions: the field must equal one of the values (case-insensitive).
    pub conditions: Vec<(String, Vec<String>)>,
    /// Field renames: the rule's field name → the name in these events.
    pub fields: Vec<(String, String)>,
    /// How rules are rewritten for these events: the renames of `fields` as a
    /// `field_name_mapping`, then the source's own `pipeline` (empty when it has neither).
    pub pipeline: Pipeline,
}

impl EventSelector {
    /// The event's field name for a rule's field name.
    pub fn field<'a>(&'a self, rule_field: &'a str) -> &'a str {
        self.fields
            .iter()
            .find(|(from, _)| from == rule_field)
            .map(|(_, to)| to.as_str())
            .unwrap_or(rule_field)
    }
}

/// One log source and its sources.
#[derive(Debug, Clone)]
pub struct LogSourceEntry {
    /// `product`, or `None` for any.
    pub product: Option<String>,
    /// `category`, which the rule must have exactly (absent = the rule has none).
    pub category: Option<String>,
    /// `service`, likewise.
    pub service: Option<String>,
    /// Where its events come from.
    pub sources: Vec<EventSelector>,
}

/// A whole log-source mapping.
#[derive(Debug, Clone)]
pub struct LogSourceMap {
    entries: Vec<LogSourceEntry>,
}

impl Default for LogSourceMap {
    fn default() -> Self {
        Self::parse("rules/logsources.yml", DEFAULT_MAPPING)
            .expect("the shipped log-source mapping is valid")
    }
}

fn scalar_text(value: &serde_yaml::Value) -> Option<String> {
    match value {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl LogSourceMap {
    /// Parses a mapping from YAML; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, LogSourceError> {
        let invalid = |reason: String| LogSourceError::Invalid {
            file: file.to_owned(),
            reason,
        };
        let shape: FileShape = serde_yaml::from_str(text).map_err(|e| {
            invalid(match e.location() {
                Some(l) => format!("line {}, column {}: {e}", l.line(), l.column()),
                None => e.to_string(),
            })
        })?;
        let mut entries = Vec::with_capacity(shape.logsources.len());
        for e in shape.logsources {
            let mut sources = Vec::new();
            for s in e.sources {
                let mut conditions = Vec::new();
                for (k, v) in s.conditions {
                    let key = scalar_text(&k).ok_or_else(|| invalid("condition key".into()))?;
                    let values = match v {
                        serde_yaml::Value::Sequence(seq) => {
                            seq.iter().filter_map(scalar_text).collect()
                        }
                        other => scalar_text(&other).into_iter().collect(),
                    };
                    conditions.push((key, values));
                }
                let mut fields = Vec::new();
                for (k, v) in s.fields {
                    match (scalar_text(&k), scalar_text(&v)) {
                        (Some(k), Some(v)) => fields.push((k, v)),
                        _ => {
                            return Err(invalid("'fields' maps field names to field names".into()));
                        }
                    }
                }
                let mut pipeline = Pipeline::renames(file, &fields);
                if let Some(p) = s.pipeline {
                    let p = match p {
                        serde_yaml::Value::Sequence(items) => {
                            let mut m = serde_yaml::Mapping::new();
                            m.insert("transformations".into(), serde_yaml::Value::Sequence(items));
                            serde_yaml::Value::Mapping(m)
                        }
                        other => other,
                    };
                    let text = serde_yaml::to_string(&p).map_err(|e| invalid(e.to_string()))?;
                    let own = Pipeline::parse(file, &text).map_err(|e| invalid(e.to_string()))?;
                    pipeline.append(own);
                }
                sources.push(EventSelector {
                    channels: s.channel.map(OneOrMany::into_vec).unwrap_or_default(),
                    providers: s.provider.map(OneOrMany::into_vec).unwrap_or_default(),
                    event_ids: s.event_ids,
                    conditions,
                    fields,
                    pipeline,
                });
            }
            entries.push(LogSourceEntry {
                product: e.product,
                category: e.category,
                service: e.service,
                sources,
            });
        }
        Ok(Self { entries })
    }

    /// Loads a mapping file.
    pub fn load(path: &std::path::Path) -> Result<Self, LogSourceError> {
        let text = std::fs::read_to_string(path).map_err(|e| LogSourceError::Io {
            file: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Every entry.
    pub fn entries(&self) -> &[LogSourceEntry] {
        &self.entries
    }

    /// The sources a rule's log source designates, or `None` when the mapping does not know it.
    pub fn resolve(&self, logsource: &LogSource) -> Option<Vec<&EventSelector>> {
        let same = |a: &Option<String>, b: &Option<String>| match (a, b) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            (None, None) => true,
            _ => false,
        };
        let product_ok = |e: &LogSourceEntry| match (&logsource.product, &e.product) {
            (Some(p), Some(q)) => p.eq_ignore_ascii_case(q),
            _ => true,
        };
        let found = |cat: &Option<String>, svc: &Option<String>| {
            self.entries
                .iter()
                .filter(|e| product_ok(e) && same(&e.category, cat) && same(&e.service, svc))
                .flat_map(|e| e.sources.iter())
                .collect::<Vec<_>>()
        };
        if logsource.category.is_none() && logsource.service.is_none() {
            return None;
        }
        let exact = found(&logsource.category, &logsource.service);
        if !exact.is_empty() {
            return Some(exact);
        }
        if logsource.category.is_some() && logsource.service.is_some() {
            // A category narrowed to a service: the service's channels, the category's IDs.
            let by_category = found(&logsource.category, &None);
            let by_service = found(&None, &logsource.service);
            if !by_category.is_empty() {
                let channels: Vec<String> = by_service
                    .iter()
                    .flat_map(|s| s.channels.iter().cloned())
                    .collect();
                let narrowed: Vec<&EventSelector> = by_category
                    .into_iter()
                    .filter(|s| {
                        channels.is_empty()
                            || s.channels
                                .iter()
                                .any(|c| channels.iter().any(|d| d.eq_ignore_ascii_case(c)))
                    })
                    .collect();
                if !narrowed.is_empty() {
                    return Some(narrowed);
                }
            }
            if !by_service.is_empty() {
                return Some(by_service);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ls(product: &str, category: Option<&str>, service: Option<&str>) -> LogSource {
        LogSource {
            product: Some(product.to_owned()),
            category: category.map(str::to_owned),
            service: service.map(str::to_owned),
        }
    }

    #[test]
    fn shipped_mapping_parses_and_resolves() {
        let map = LogSourceMap::default();
        let pc = map
            .resolve(&ls("windows", Some("process_creation"), None))
            .unwrap();
        assert_eq!(pc.len(), 2);
        assert_eq!(pc[0].event_ids, vec![1]);
        assert_eq!(pc[1].field("Image"), "NewProcessName");
        assert_eq!(pc[1].field("CommandLine"), "CommandLine");
        let sec = map.resolve(&ls("windows", None, Some("security"))).unwrap();
        assert_eq!(sec[0].channels, vec!["Security"]);
        assert!(map.resolve(&ls("windows", None, None)).is_none());
        let linux = map
            .resolve(&ls("linux", Some("process_creation"), None))
            .unwrap();
        assert_eq!(linux.len(), 2);
        assert!(linux[1].channels.is_empty());
        assert!(map.resolve(&ls("linux", None, Some("auth"))).is_none());
        let av = LogSource {
            category: Some("antivirus".into()),
            ..LogSource::default()
        };
        assert!(map.resolve(&av).is_some());
        let narrowed = map
            .resolve(&ls("windows", Some("process_creation"), Some("sysmon")))
            .unwrap();
        assert_eq!(narrowed.len(), 1);
    }

    #[test]
    fn every_windows_category_and_service_of_the_taxonomy_is_mapped() {
        let map = LogSourceMap::default();
        for category in [
            "process_creation",
            "file_change",
            "network_connection",
            "sysmon_status",
            "process_termination",
            "driver_load",
            "image_load",
            "create_remote_thread",
            "raw_access_thread",
            "process_access",
            "file_event",
            "registry_add",
            "registry_delete",
            "registry_set",
            "registry_rename",
            "registry_event",
            "create_stream_hash",
            "pipe_created",
            "wmi_event",
            "dns_query",
            "file_delete",
            "process_tampering",
            "file_executable_detected",
            "sysmon_error",
            "file_access",
            "file_rename",
            "ps_module",
            "ps_script",
            "ps_classic_start",
            "ps_classic_provider_start",
            "ps_classic_script",
            "antivirus",
        ] {
            assert!(
                map.resolve(&ls("windows", Some(category), None)).is_some(),
                "{category}"
            );
        }
        for service in [
            "security",
            "system",
            "application",
            "sysmon",
            "powershell",
            "powershell-classic",
            "taskscheduler",
            "wmi",
            "windefend",
            "firewall-as",
            "bits-client",
            "dns-client",
            "dns-server",
            "msexchange-management",
            "codeintegrity-operational",
            "appxdeployment-server",
            "ntlm",
            "security-mitigations",
            "applocker",
            "iis-configuration",
            "terminalservices-localsessionmanager",
            "smbserver-connectivity",
            "smbclient-security",
            "smbclient-connectivity",
            "shell-core",
            "printservice-operational",
            "printservice-admin",
            "openssh",
            "microsoft-servicebus-client",
            "lsa-server",
            "ldap",
            "driver-framework",
            "dns-server-analytic",
            "diagnosis-scripted",
            "certificateservicesclient-lifecycle-system",
            "capi2",
            "appxpackaging-om",
            "appmodel-runtime",
            "bitlocker",
            "iis",
            "vhdmp",
        ] {
            assert!(
                map.resolve(&ls("windows", None, Some(service))).is_some(),
                "{service}"
            );
        }
    }

    #[test]
    fn bad_mapping_is_an_error_with_location() {
        let err = LogSourceMap::parse("x.yml", "logsources: [ {product: windows, sources: 3} ]")
            .unwrap_err();
        assert!(err.to_string().contains("x.yml"));
        assert!(LogSourceMap::parse("x.yml", "nonsense: 1").is_err());
    }
}
