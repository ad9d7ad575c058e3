//! A rule file's YAML documents, and each document's rule: metadata, log source, the
//! detection, correlation or filter it holds, and its `siren:` extension.

use std::collections::HashMap;

use serde::Deserialize;
use serde_yaml::{Mapping, Value as Yaml};

use super::correlation::parse_correlation;
use super::detection::Detection;
use super::search::parse_detection;
use super::siren::parse_siren;
use crate::rules::model::{
    Filter, Level, LogSource, Rule, RuleId, RuleKind, SirenExtension, Status,
};
use crate::rules::pipeline::{Pipeline, apply_to_document};
use crate::rules::{RuleDiagnostic, RuleError};

/// The most documents read from one file.
const MAX_DOCUMENTS: usize = 10_000;

/// A parsed document: the rule and, for detection and filter rules, its detection.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub rule: Rule,
    pub detection: Option<Detection>,
    /// The detection's YAML after the user's pipelines (`(section, document)`), kept for
    /// log sources whose own pipeline rewrites it again.
    pub source: Option<(&'static str, Mapping)>,
}

/// What the parser needs to know.
pub(crate) struct ParseContext<'a> {
    pub placeholders: &'a HashMap<String, Vec<String>>,
    /// The user's processing pipelines, in priority order.
    pub pipelines: &'a [Pipeline],
}

/// Parses every document of a file. Each result is a rule or a diagnostic.
pub(crate) fn parse_file(
    file: &str,
    text: &str,
    cx: &ParseContext<'_>,
) -> Vec<Result<Parsed, RuleDiagnostic>> {
    let (documents, error) = yaml_documents(file, text);
    let mut out = parse_documents(file, documents, cx);
    out.extend(error.map(Err));
    out
}

/// A file's YAML documents, up to the first that cannot be parsed (the parser cannot
/// resynchronise after a syntax error), and the error that stopped them, if any.
pub(crate) fn yaml_documents(file: &str, text: &str) -> (Vec<Yaml>, Option<RuleDiagnostic>) {
    let mut documents = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let document = i + 1;
        if document > MAX_DOCUMENTS {
            let error = RuleDiagnostic {
                file: file.to_owned(),
                rule: None,
                error: RuleError::TooLarge(format!("more than {MAX_DOCUMENTS} documents")),
            };
            return (documents, Some(error));
        }
        match Yaml::deserialize(doc) {
            Ok(v) => documents.push(v),
            Err(e) => {
                let (line, column) = e
                    .location()
                    .map(|l| (l.line(), l.column()))
                    .unwrap_or((0, 0));
                let message = e.to_string();
                let message = message
                    .split(" at line ")
                    .next()
                    .unwrap_or(&message)
                    .to_owned();
                let error = RuleDiagnostic {
                    file: file.to_owned(),
                    rule: Some(format!("document {document}")),
                    error: RuleError::Yaml {
                        line,
                        column,
                        message,
                    },
                };
                return (documents, Some(error));
            }
        }
    }
    (documents, None)
}

/// The rules of a file's parsed YAML documents (numbered from 1 in diagnostics).
pub(crate) fn parse_documents(
    file: &str,
    documents: Vec<Yaml>,
    cx: &ParseContext<'_>,
) -> Vec<Result<Parsed, RuleDiagnostic>> {
    let mut out = Vec::new();
    for (i, value) in documents.into_iter().enumerate() {
        let document = i + 1;
        // Empty documents, and a log-source mapping kept beside the rules, are not rules.
        if value.is_null() || is_logsource_mapping(&value) {
            continue;
        }
        let label = rule_label(&value, document);
        out.push(
            parse_document(file, document, value, cx).map_err(|error| RuleDiagnostic {
                file: file.to_owned(),
                rule: Some(label),
                error,
            }),
        );
    }
    out
}

/// Whether a document is a log-source mapping (like `rules/logsources.yml`), not a rule.
fn is_logsource_mapping(value: &Yaml) -> bool {
    value.get("logsources").is_some()
        && ["title", "detection", "correlation", "filter"]
            .iter()
            .all(|k| value.get(*k).is_none())
}

fn rule_label(value: &Yaml, document: usize) -> String {
    for key in ["title", "id", "name"] {
        if let Some(Yaml::String(s)) = value.get(key) {
            return s.clone();
        }
    }
    format!("document {document}")
}

pub(super) fn text(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        Yaml::Tagged(t) => text(&t.value),
        _ => None,
    }
}

pub(super) fn opt_text(map: &Mapping, key: &str) -> Result<Option<String>, RuleError> {
    match map.get(key) {
        None | Some(Yaml::Null) => Ok(None),
        Some(v) => text(v).map(Some).ok_or_else(|| RuleError::InvalidKey {
            key: key.to_owned(),
            reason: "expected a string".to_owned(),
        }),
    }
}

pub(super) fn text_list(map: &Mapping, key: &str) -> Result<Vec<String>, RuleError> {
    match map.get(key) {
        None | Some(Yaml::Null) => Ok(Vec::new()),
        Some(Yaml::Sequence(seq)) => seq
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| {
                text(v).ok_or_else(|| RuleError::InvalidKey {
                    key: key.to_owned(),
                    reason: "expected a list of strings".to_owned(),
                })
            })
            .collect(),
        Some(v) => text(v)
            .map(|s| vec![s])
            .ok_or_else(|| RuleError::InvalidKey {
                key: key.to_owned(),
                reason: "expected a string or a list of strings".to_owned(),
            }),
    }
}

fn parse_document(
    file: &str,
    document: usize,
    value: Yaml,
    cx: &ParseContext<'_>,
) -> Result<Parsed, RuleError> {
    let Yaml::Mapping(mut map) = value else {
        return Err(RuleError::NotARule(
            "the document is not a mapping".to_owned(),
        ));
    };
    apply_to_document(cx.pipelines, &mut map).map_err(|e| RuleError::Pipeline(e.to_string()))?;
    if map.contains_key("action") {
        return Err(RuleError::Unsupported(
            "'action' (Sigma 1.0 rule collections): write each rule in full".to_owned(),
        ));
    }
    let title = opt_text(&map, "title")?.ok_or_else(|| RuleError::MissingKey("title".into()))?;
    let level = match opt_text(&map, "level")? {
        None => None,
        Some(l) => Some(Level::parse(&l).ok_or_else(|| RuleError::InvalidKey {
            key: "level".into(),
            reason: format!("unknown level '{l}'"),
        })?),
    };
    let status = match opt_text(&map, "status")? {
        None => None,
        Some(s) => Some(Status::parse(&s).ok_or_else(|| RuleError::InvalidKey {
            key: "status".into(),
            reason: format!("unknown status '{s}'"),
        })?),
    };
    let logsource = match map.get("logsource") {
        None | Some(Yaml::Null) => LogSource::default(),
        Some(Yaml::Mapping(ls)) => LogSource {
            product: opt_text(ls, "product")?.map(|s| s.to_ascii_lowercase()),
            category: opt_text(ls, "category")?.map(|s| s.to_ascii_lowercase()),
            service: opt_text(ls, "service")?.map(|s| s.to_ascii_lowercase()),
        },
        Some(_) => {
            return Err(RuleError::InvalidKey {
                key: "logsource".into(),
                reason: "expected a mapping".into(),
            });
        }
    };
    let siren = match map.get("siren") {
        None | Some(Yaml::Null) => SirenExtension::default(),
        Some(v) => parse_siren(v)?,
    };

    let (kind, detection) = if let Some(c) = map.get("correlation") {
        (RuleKind::Correlation(parse_correlation(c)?), None)
    } else if let Some(d) = map.get("detection") {
        if !map.contains_key("logsource") {
            return Err(RuleError::MissingKey("logsource".into()));
        }
        (
            RuleKind::Detection,
            Some(parse_detection(d, "detection", cx)?),
        )
    } else if let Some(f) = map.get("filter") {
        let Yaml::Mapping(fm) = f else {
            return Err(RuleError::InvalidKey {
                key: "filter".into(),
                reason: "expected a mapping".into(),
            });
        };
        let rules = text_list(fm, "rules")?;
        if rules.is_empty() {
            return Err(RuleError::MissingKey("filter.rules".into()));
        }
        let mut rest = fm.clone();
        rest.remove("rules");
        let detection = parse_detection(&Yaml::Mapping(rest), "filter", cx)?;
        (RuleKind::Filter(Filter { rules }), Some(detection))
    } else {
        return Err(RuleError::NotARule(
            "no 'detection', 'correlation' or 'filter' key".to_owned(),
        ));
    };

    let rule = Rule {
        id: opt_text(&map, "id")?.map(RuleId::new),
        name: opt_text(&map, "name")?,
        title,
        status,
        description: opt_text(&map, "description")?,
        author: opt_text(&map, "author")?,
        references: text_list(&map, "references")?,
        tags: text_list(&map, "tags")?,
        falsepositives: text_list(&map, "falsepositives")?,
        level,
        date: opt_text(&map, "date")?,
        modified: opt_text(&map, "modified")?,
        logsource,
        logsource_mapped: false,
        file: file.to_owned(),
        document,
        kind,
        siren,
    };
    let source = match &rule.kind {
        RuleKind::Detection => Some("detection"),
        RuleKind::Filter(_) => Some("filter"),
        _ => None,
    }
    .map(|section| {
        let mut kept = Mapping::new();
        for key in ["logsource", "tags", section] {
            if let Some(v) = map.get(key) {
                kept.insert(key.into(), v.clone());
            }
        }
        (section, kept)
    });
    Ok(Parsed {
        rule,
        detection,
        source,
    })
}
