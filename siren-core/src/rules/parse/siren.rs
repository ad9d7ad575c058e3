//! The `siren:` extension of a rule: incident grouping, severity, investigation steps and
//! the rule's own test events.

use serde_yaml::Value as Yaml;

use super::document::{text, text_list};
use crate::event::Fields;
use crate::rules::RuleError;
use crate::rules::model::{Level, RuleTests, SirenExtension};

fn to_fields(value: &Yaml, key: &str) -> Result<Fields, RuleError> {
    let invalid = |reason: String| RuleError::InvalidKey {
        key: key.to_owned(),
        reason,
    };
    let json = serde_json::to_value(value).map_err(|e| invalid(e.to_string()))?;
    match json {
        serde_json::Value::Object(map) => Ok(map.into_iter().collect()),
        _ => Err(invalid(
            "each test event must be a mapping of fields".into(),
        )),
    }
}

pub(super) fn parse_siren(value: &Yaml) -> Result<SirenExtension, RuleError> {
    let Yaml::Mapping(map) = value else {
        return Err(RuleError::InvalidKey {
            key: "siren".into(),
            reason: "expected a mapping".into(),
        });
    };
    let mut ext = SirenExtension::default();
    for (key, v) in map {
        let key = text(key).unwrap_or_default();
        match key.as_str() {
            "group_by" | "group-by" => ext.group_by = text_list(map, &key)?,
            "investigation" => ext.investigation = text_list(map, &key)?,
            "severity" => {
                let s = text(v).unwrap_or_default();
                ext.severity = Some(Level::parse(&s).ok_or_else(|| RuleError::InvalidKey {
                    key: "siren.severity".into(),
                    reason: format!("unknown severity '{s}'"),
                })?);
            }
            "tests" => {
                let Yaml::Mapping(tests) = v else {
                    return Err(RuleError::InvalidKey {
                        key: "siren.tests".into(),
                        reason: "expected a mapping with 'match' and 'no_match'".into(),
                    });
                };
                let mut out = RuleTests::default();
                for (k, events) in tests {
                    let k = text(k).unwrap_or_default();
                    let list = match (k.as_str(), events) {
                        ("match", _) => &mut out.must_match,
                        ("no_match", _) => &mut out.must_not_match,
                        _ => {
                            return Err(RuleError::InvalidKey {
                                key: format!("siren.tests.{k}"),
                                reason: "unknown key (expected 'match' or 'no_match')".into(),
                            });
                        }
                    };
                    let path = format!("siren.tests.{k}");
                    match events {
                        Yaml::Sequence(seq) => {
                            for e in seq {
                                list.push(to_fields(e, &path)?);
                            }
                        }
                        Yaml::Null => {}
                        other => list.push(to_fields(other, &path)?),
                    }
                }
                ext.tests = out;
            }
            other => {
                return Err(RuleError::InvalidKey {
                    key: format!("siren.{other}"),
                    reason: "unknown key (expected group_by, severity, investigation, tests)"
                        .into(),
                });
            }
        }
    }
    Ok(ext)
}
