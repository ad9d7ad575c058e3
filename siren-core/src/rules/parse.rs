//! From YAML documents to rules: metadata, the `detection` section (search identifiers and
//! condition), correlation and filter rules, and the `siren:` extension.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use serde_yaml::{Mapping, Value as Yaml};

use super::condition::{self, Cond};
use super::model::{
    CompareOp, Correlation, CorrelationCondition, CorrelationType, Filter, Level, LogSource, Rule,
    RuleId, RuleKind, RuleTests, SirenExtension, Status,
};
use super::value::{self, Scalar, ValueTest};
use super::{RuleDiagnostic, RuleError};
use crate::event::Fields;

/// The most documents read from one file.
const MAX_DOCUMENTS: usize = 10_000;
/// The most field items one rule may hold.
const MAX_ITEMS: usize = 20_000;

/// One field item of a search: a field (or, for keywords, none) and its test.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub field: Option<std::sync::Arc<str>>,
    pub test: ValueTest,
}

/// Makes the items that name the same field share one name.
pub(crate) fn share_names<'i>(
    items: impl Iterator<Item = &'i mut Item>,
    names: &mut std::collections::HashSet<std::sync::Arc<str>>,
) {
    for item in items {
        if let Some(field) = &mut item.field {
            match names.get(field) {
                Some(shared) => *field = shared.clone(),
                None => {
                    names.insert(field.clone());
                }
            }
        }
    }
}

/// A search identifier's definition: alternatives (OR) of item groups (AND).
#[derive(Debug, Clone)]
pub(crate) struct Search {
    pub alternatives: Vec<Vec<Item>>,
}

/// A compiled `detection` section.
#[derive(Debug, Clone)]
pub(crate) struct Detection {
    pub searches: Vec<Search>,
    pub condition: Cond,
}

impl Detection {
    /// Makes items that name the same field share one name (so that a name's address
    /// identifies it, see `Subject::get_item`).
    pub(crate) fn share_field_names(
        &mut self,
        names: &mut std::collections::HashSet<std::sync::Arc<str>>,
    ) {
        let items = self
            .searches
            .iter_mut()
            .flat_map(|s| s.alternatives.iter_mut().flatten());
        share_names(items, names);
    }

    /// The same detection with field names renamed (for a log source's field mapping).
    pub(crate) fn renamed(&self, rename: &dyn Fn(&str) -> String) -> Detection {
        let mut d = self.clone();
        for s in &mut d.searches {
            for group in &mut s.alternatives {
                for item in group {
                    if let Some(f) = &item.field {
                        item.field = Some(rename(f).into());
                    }
                    rename_test(&mut item.test, rename);
                }
            }
        }
        d
    }
}

/// One half of a necessary condition: one of these (field, literal) pairs occurs, the
/// literal ASCII case-insensitively in the field's text. The field
/// [`ANY_FIELD`](super::ANY_FIELD) stands for any of the event's fields (keywords).
pub(crate) type Clause = Vec<(Box<str>, Box<str>)>;

/// A necessary condition for a detection, in conjunctive form: whenever the detection holds,
/// every clause does. Never empty, and no clause is.
pub(crate) type Need = Vec<Clause>;

/// The most clauses a need keeps (the most selective): each costs the prefilter a bit per
/// event that meets its literal, and past a few they rarely rule out more.
const MAX_CLAUSES: usize = 4;

/// How selective a clause is: its shortest literal's length, fewer pairs breaking ties.
fn clause_score(clause: &Clause) -> (usize, std::cmp::Reverse<usize>) {
    (
        clause.iter().map(|(_, a)| a.len()).min().unwrap_or(0),
        std::cmp::Reverse(clause.len()),
    )
}

/// The need of a conjunction: every part's clauses (a part without a need adds none).
fn all_of(needs: impl Iterator<Item = Option<Need>>) -> Option<Need> {
    let mut clauses: Need = needs.flatten().flatten().collect();
    for clause in &mut clauses {
        clause.sort_unstable();
        clause.dedup();
    }
    clauses.sort_by_key(|c| std::cmp::Reverse(clause_score(c)));
    let mut kept: Need = Vec::new();
    for clause in clauses {
        if kept.len() == MAX_CLAUSES {
            break;
        }
        if !kept.contains(&clause) {
            kept.push(clause);
        }
    }
    (!kept.is_empty()).then_some(kept)
}

/// The need of a disjunction: for two parts, `(a1 and a2) or (b1 and b2)` implies each
/// `ai or bj`; so each clause of the result joins one clause of every part (the most
/// selective ones). A part without a need leaves none.
fn any_of(needs: impl Iterator<Item = Option<Need>>) -> Option<Need> {
    let mut result: Option<Need> = None;
    for need in needs {
        let need = need?;
        result = Some(match result {
            None => need,
            Some(previous) => {
                let mut joined = Vec::new();
                for a in previous.iter().take(2) {
                    for b in need.iter().take(2) {
                        joined.push(a.iter().chain(b).cloned().collect());
                    }
                }
                all_of(std::iter::once(Some(joined)))?
            }
        });
    }
    result
}

impl Detection {
    /// The detection's necessary condition, when one can be derived from its literals.
    pub(crate) fn need(&self) -> Option<Need> {
        self.cond_need(&self.condition)
    }

    fn search_need(&self, i: usize) -> Option<Need> {
        any_of(self.searches[i].alternatives.iter().map(|group| {
            all_of(group.iter().map(|item| {
                // A keyword's literal occurs in some field: the prefilter scans them all.
                let field: Box<str> = item.field.as_deref().unwrap_or(super::ANY_FIELD).into();
                let atoms = item.test.atoms()?;
                let clause: Clause = atoms.into_iter().map(|a| (field.clone(), a)).collect();
                (!clause.is_empty()).then(|| vec![clause])
            }))
        }))
    }

    fn cond_need(&self, cond: &Cond) -> Option<Need> {
        match cond {
            Cond::Search(i) => self.search_need(*i),
            Cond::Not(_) => None,
            Cond::And(cs) => all_of(cs.iter().map(|c| self.cond_need(c))),
            Cond::Or(cs) => any_of(cs.iter().map(|c| self.cond_need(c))),
            Cond::AtLeast { min, searches } => {
                if *min >= searches.len() {
                    all_of(searches.iter().map(|&i| self.search_need(i)))
                } else {
                    any_of(searches.iter().map(|&i| self.search_need(i)))
                }
            }
        }
    }
}

impl Detection {
    /// The event IDs one of which an event must have for the detection to hold: the
    /// `EventID` values its condition requires, when it requires one of a few.
    pub(crate) fn event_ids(&self) -> Option<Vec<i64>> {
        let mut ids = self.cond_ids(&self.condition)?;
        ids.sort_unstable();
        ids.dedup();
        (!ids.is_empty() && ids.len() <= MAX_EVENT_IDS).then_some(ids)
    }

    fn search_ids(&self, i: usize) -> Option<Vec<i64>> {
        let mut all = Vec::new();
        for group in &self.searches[i].alternatives {
            let ids = group.iter().find_map(|item| {
                (item.field.as_deref() == Some("EventID"))
                    .then(|| item.test.exact_integers())
                    .flatten()
            })?;
            all.extend(ids);
        }
        Some(all)
    }

    fn cond_ids(&self, cond: &Cond) -> Option<Vec<i64>> {
        let any = |ids: &mut dyn Iterator<Item = Option<Vec<i64>>>| {
            let mut all = Vec::new();
            for part in ids {
                all.extend(part?);
            }
            Some(all)
        };
        match cond {
            Cond::Search(i) => self.search_ids(*i),
            Cond::Not(_) => None,
            Cond::And(cs) => cs.iter().find_map(|c| self.cond_ids(c)),
            Cond::Or(cs) => any(&mut cs.iter().map(|c| self.cond_ids(c))),
            Cond::AtLeast { min, searches } => {
                if *min >= searches.len() {
                    searches.iter().find_map(|&i| self.search_ids(i))
                } else {
                    any(&mut searches.iter().map(|&i| self.search_ids(i)))
                }
            }
        }
    }
}

/// Past this many event IDs, a detection stays with its source's other rules.
const MAX_EVENT_IDS: usize = 16;

fn rename_test(test: &mut ValueTest, rename: &dyn Fn(&str) -> String) {
    match test {
        ValueTest::Or(ts) | ValueTest::And(ts) => {
            for t in ts {
                rename_test(t, rename);
            }
        }
        ValueTest::Not(t) => rename_test(t, rename),
        ValueTest::FieldRef { other, .. } => *other = rename(other).into(),
        _ => {}
    }
}

/// A parsed document: the rule and, for detection and filter rules, its detection.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub rule: Rule,
    pub detection: Option<Detection>,
}

/// What the parser needs to know.
pub(crate) struct ParseContext<'a> {
    pub placeholders: &'a HashMap<String, Vec<String>>,
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

fn text(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        Yaml::Tagged(t) => text(&t.value),
        _ => None,
    }
}

fn opt_text(map: &Mapping, key: &str) -> Result<Option<String>, RuleError> {
    match map.get(key) {
        None | Some(Yaml::Null) => Ok(None),
        Some(v) => text(v).map(Some).ok_or_else(|| RuleError::InvalidKey {
            key: key.to_owned(),
            reason: "expected a string".to_owned(),
        }),
    }
}

fn text_list(map: &Mapping, key: &str) -> Result<Vec<String>, RuleError> {
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
    let Yaml::Mapping(map) = value else {
        return Err(RuleError::NotARule(
            "the document is not a mapping".to_owned(),
        ));
    };
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
    Ok(Parsed { rule, detection })
}

/// Parses a `detection` (or a filter's) section.
pub(crate) fn parse_detection(
    value: &Yaml,
    section: &str,
    cx: &ParseContext<'_>,
) -> Result<Detection, RuleError> {
    let Yaml::Mapping(map) = value else {
        return Err(RuleError::InvalidKey {
            key: section.to_owned(),
            reason: "expected a mapping".to_owned(),
        });
    };
    let mut names = Vec::new();
    let mut searches = Vec::new();
    let mut condition_texts: Vec<String> = Vec::new();
    let mut items = 0usize;
    for (key, value) in map {
        let key = text(key).ok_or_else(|| RuleError::InvalidKey {
            key: section.to_owned(),
            reason: "search identifiers must be strings".to_owned(),
        })?;
        match key.as_str() {
            "condition" => {
                condition_texts = match value {
                    Yaml::Sequence(seq) => seq
                        .iter()
                        .map(|v| {
                            text(v).ok_or_else(|| RuleError::InvalidKey {
                                key: format!("{section}.condition"),
                                reason: "expected a string or a list of strings".into(),
                            })
                        })
                        .collect::<Result<_, _>>()?,
                    v => vec![text(v).ok_or_else(|| RuleError::InvalidKey {
                        key: format!("{section}.condition"),
                        reason: "expected a string or a list of strings".into(),
                    })?],
                };
            }
            // Sigma 1.0's window for aggregations; meaningless without them.
            "timeframe" => {}
            _ => {
                let path = format!("{section}.{key}");
                let search = parse_search(&path, value, cx, &mut items)?;
                names.push(key);
                searches.push(search);
            }
        }
    }
    if condition_texts.is_empty() {
        return Err(RuleError::MissingKey(format!("{section}.condition")));
    }
    let mut conds = Vec::with_capacity(condition_texts.len());
    for text in &condition_texts {
        conds.push(
            condition::parse(text, &names).map_err(|reason| RuleError::Condition {
                condition: text.clone(),
                reason,
            })?,
        );
    }
    let condition = if conds.len() == 1 {
        conds.pop().expect("one condition")
    } else {
        Cond::Or(conds)
    };
    Ok(Detection {
        searches,
        condition,
    })
}

fn scalar(value: &Yaml) -> Option<Scalar> {
    Some(match value {
        Yaml::Null => Scalar::Null,
        Yaml::Bool(b) => Scalar::Bool(*b),
        Yaml::Number(n) => match n.as_i64() {
            Some(i) => Scalar::Int(i),
            None => Scalar::Float(n.as_f64()?),
        },
        Yaml::String(s) => Scalar::Str(s.clone()),
        Yaml::Tagged(t) => return scalar(&t.value),
        _ => return None,
    })
}

fn parse_search(
    path: &str,
    value: &Yaml,
    cx: &ParseContext<'_>,
    items: &mut usize,
) -> Result<Search, RuleError> {
    let mut alternatives = Vec::new();
    match value {
        Yaml::Mapping(map) => alternatives.push(parse_group(path, map, cx, items)?),
        Yaml::Sequence(seq) => {
            let mut keywords = Vec::new();
            for v in seq {
                match v {
                    Yaml::Mapping(map) => alternatives.push(parse_group(path, map, cx, items)?),
                    other => match scalar(other) {
                        Some(Scalar::Null) | None => {
                            return Err(RuleError::InvalidKey {
                                key: path.to_owned(),
                                reason: "a list must hold maps or keyword values".into(),
                            });
                        }
                        Some(s) => keywords.push(s),
                    },
                }
            }
            if !keywords.is_empty() {
                let test = value::compile_keywords(path, &[], &keywords, cx.placeholders)?;
                alternatives.push(vec![Item { field: None, test }]);
            }
        }
        other => match scalar(other) {
            Some(Scalar::Null) | None => {
                return Err(RuleError::InvalidKey {
                    key: path.to_owned(),
                    reason: "empty search identifier".into(),
                });
            }
            Some(s) => {
                let test = value::compile_keywords(path, &[], &[s], cx.placeholders)?;
                alternatives.push(vec![Item { field: None, test }]);
            }
        },
    }
    if alternatives.is_empty() {
        return Err(RuleError::InvalidKey {
            key: path.to_owned(),
            reason: "empty search identifier".into(),
        });
    }
    Ok(Search { alternatives })
}

fn parse_group(
    path: &str,
    map: &Mapping,
    cx: &ParseContext<'_>,
    items: &mut usize,
) -> Result<Vec<Item>, RuleError> {
    let mut group = Vec::with_capacity(map.len());
    for (key, value) in map {
        *items += 1;
        if *items > MAX_ITEMS {
            return Err(RuleError::TooLarge(format!(
                "more than {MAX_ITEMS} field items"
            )));
        }
        let key = text(key).ok_or_else(|| RuleError::InvalidKey {
            key: path.to_owned(),
            reason: "field names must be strings".into(),
        })?;
        let mut parts = key.split('|');
        let field = parts.next().unwrap_or("");
        let mods: Vec<&str> = parts.collect();
        let values: Vec<Scalar> = match value {
            Yaml::Sequence(seq) => seq
                .iter()
                .map(|v| {
                    scalar(v).ok_or_else(|| RuleError::InvalidKey {
                        key: format!("{path}.{key}"),
                        reason: "values must be scalars".into(),
                    })
                })
                .collect::<Result<_, _>>()?,
            v => vec![scalar(v).ok_or_else(|| RuleError::InvalidKey {
                key: format!("{path}.{key}"),
                reason: "values must be scalars or lists of scalars".into(),
            })?],
        };
        let test = if field.is_empty() {
            value::compile_keywords(&key, &mods, &values, cx.placeholders)?
        } else {
            value::compile_item(&key, &mods, &values, cx.placeholders)?
        };
        group.push(Item {
            field: (!field.is_empty()).then(|| field.into()),
            test,
        });
    }
    Ok(group)
}

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

fn parse_siren(value: &Yaml) -> Result<SirenExtension, RuleError> {
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

/// Parses a Sigma timespan: a number and a unit (`s`, `m`, `h`, `d`, `w`).
pub(crate) fn parse_timespan(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        "w" => n.checked_mul(604_800)?,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

fn parse_correlation(value: &Yaml) -> Result<Correlation, RuleError> {
    let invalid = |key: &str, reason: String| RuleError::InvalidKey {
        key: format!("correlation.{key}"),
        reason,
    };
    let Yaml::Mapping(map) = value else {
        return Err(RuleError::InvalidKey {
            key: "correlation".into(),
            reason: "expected a mapping".into(),
        });
    };
    for key in map.keys() {
        let key = text(key).unwrap_or_default();
        if !matches!(
            key.as_str(),
            "type"
                | "rules"
                | "group-by"
                | "group_by"
                | "timespan"
                | "timeframe"
                | "condition"
                | "generate"
                | "aliases"
        ) {
            return Err(invalid(&key, "unknown key".into()));
        }
    }
    let kind_text =
        opt_text(map, "type")?.ok_or_else(|| RuleError::MissingKey("correlation.type".into()))?;
    let kind = CorrelationType::parse(&kind_text)
        .ok_or_else(|| invalid("type", format!("unknown correlation type '{kind_text}'")))?;
    let rules = text_list(map, "rules")?;
    if rules.is_empty() {
        return Err(RuleError::MissingKey("correlation.rules".into()));
    }
    let mut group_by = text_list(map, "group-by")?;
    if group_by.is_empty() {
        group_by = text_list(map, "group_by")?;
    }
    // `timeframe` is accepted for `timespan` (the name some tools write).
    let timespan_text = match opt_text(map, "timespan")? {
        Some(t) => t,
        None => opt_text(map, "timeframe")?
            .ok_or_else(|| RuleError::MissingKey("correlation.timespan".into()))?,
    };
    let timespan = parse_timespan(&timespan_text).ok_or_else(|| {
        invalid(
            "timespan",
            format!("'{timespan_text}' is not a duration like 30s, 5m, 1h, 1d"),
        )
    })?;
    let condition = match map.get("condition") {
        None | Some(Yaml::Null) => None,
        Some(Yaml::Mapping(c)) => {
            let mut cond = CorrelationCondition::default();
            for (k, v) in c {
                let k = text(k).unwrap_or_default();
                let op = match k.as_str() {
                    "gt" => CompareOp::Gt,
                    "gte" => CompareOp::Gte,
                    "lt" => CompareOp::Lt,
                    "lte" => CompareOp::Lte,
                    "eq" => CompareOp::Eq,
                    "neq" => CompareOp::Neq,
                    "field" => {
                        cond.field = Some(text(v).ok_or_else(|| {
                            invalid("condition.field", "expected a field name".into())
                        })?);
                        continue;
                    }
                    "percentile" => {
                        cond.percentile = v.as_f64();
                        continue;
                    }
                    other => {
                        return Err(invalid("condition", format!("unknown operator '{other}'")));
                    }
                };
                let n = v.as_f64().ok_or_else(|| {
                    invalid(&format!("condition.{k}"), "expected a number".into())
                })?;
                cond.comparisons.push((op, n));
            }
            if cond.comparisons.is_empty() {
                return Err(invalid(
                    "condition",
                    "no comparison (gt, gte, lt, lte, eq, neq)".into(),
                ));
            }
            Some(cond)
        }
        Some(_) => return Err(invalid("condition", "expected a mapping".into())),
    };
    match (kind, &condition) {
        (CorrelationType::Temporal | CorrelationType::TemporalOrdered, _) => {}
        (_, None) => return Err(RuleError::MissingKey("correlation.condition".into())),
        (k, Some(c)) if k.needs_field() && c.field.is_none() => {
            return Err(RuleError::MissingKey("correlation.condition.field".into()));
        }
        _ => {}
    }
    if matches!(
        kind,
        CorrelationType::Temporal | CorrelationType::TemporalOrdered
    ) && rules.len() < 2
        && condition.is_none()
    {
        return Err(invalid(
            "rules",
            "temporal correlations need at least two rules".into(),
        ));
    }
    let generate = match map.get("generate") {
        None | Some(Yaml::Null) => false,
        Some(Yaml::Bool(b)) => *b,
        Some(_) => return Err(invalid("generate", "expected true or false".into())),
    };
    let mut aliases = Vec::new();
    match map.get("aliases") {
        None | Some(Yaml::Null) => {}
        Some(Yaml::Mapping(a)) => {
            for (name, per_rule) in a {
                let name = text(name).unwrap_or_default();
                let Yaml::Mapping(per_rule) = per_rule else {
                    return Err(invalid(
                        &format!("aliases.{name}"),
                        "expected a mapping of rule → field".into(),
                    ));
                };
                let mut fields = Vec::new();
                for (rule, field) in per_rule {
                    match (text(rule), text(field)) {
                        (Some(r), Some(f)) => fields.push((r, f)),
                        _ => {
                            return Err(invalid(
                                &format!("aliases.{name}"),
                                "expected a mapping of rule → field".into(),
                            ));
                        }
                    }
                }
                aliases.push((name, fields));
            }
        }
        Some(_) => return Err(invalid("aliases", "expected a mapping".into())),
    }
    Ok(Correlation {
        kind,
        rules,
        group_by,
        timespan,
        condition,
        generate,
        aliases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_one(text: &str) -> Result<Parsed, RuleDiagnostic> {
        let placeholders = HashMap::new();
        let cx = ParseContext {
            placeholders: &placeholders,
        };
        parse_file("t.yml", text, &cx).into_iter().next().unwrap()
    }

    #[test]
    fn timespans() {
        assert_eq!(parse_timespan("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_timespan("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timespan("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_timespan("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_timespan("5"), None);
        assert_eq!(parse_timespan("m"), None);
        assert_eq!(parse_timespan("0s"), None);
        assert_eq!(parse_timespan("99999999999999999999d"), None);
    }

    #[test]
    fn correlation_is_validated() {
        let ok = "title: t\ncorrelation:\n  type: value_count\n  rules: [a]\n  group-by: [IpAddress]\n  timespan: 5m\n  condition: {gt: 3, field: TargetUserName}\n";
        let p = parse_one(ok).unwrap();
        let RuleKind::Correlation(c) = p.rule.kind else {
            panic!()
        };
        assert_eq!(c.kind, CorrelationType::ValueCount);
        assert_eq!(
            c.condition.unwrap().field.as_deref(),
            Some("TargetUserName")
        );
        let missing_field = ok.replace(", field: TargetUserName", "");
        assert!(
            parse_one(&missing_field)
                .unwrap_err()
                .to_string()
                .contains("condition.field")
        );
        let bad_type = ok.replace("value_count", "value_cnt");
        assert!(
            parse_one(&bad_type)
                .unwrap_err()
                .to_string()
                .contains("value_cnt")
        );
        let bad_span = ok.replace("5m", "5 minutes");
        assert!(
            parse_one(&bad_span)
                .unwrap_err()
                .to_string()
                .contains("timespan")
        );
    }

    #[test]
    fn yaml_errors_have_line_and_column() {
        let err = parse_one("title: t\ndetection:\n  sel: [a\n  condition: sel\n").unwrap_err();
        match err.error {
            RuleError::Yaml { line, column, .. } => assert!(line > 0 && column > 0),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn siren_extension() {
        let text = "title: t\nlogsource: {product: windows, service: security}\ndetection:\n  sel: {EventID: 4625}\n  condition: sel\nsiren:\n  group_by: [TargetUserName]\n  severity: high\n  investigation: [look]\n  tests:\n    match: [{EventID: 4625}]\n    no_match: [{EventID: 4624}]\n";
        let p = parse_one(text).unwrap();
        assert_eq!(p.rule.siren.severity, Some(Level::High));
        assert_eq!(p.rule.siren.tests.must_match.len(), 1);
        assert_eq!(p.rule.siren.tests.must_not_match.len(), 1);
        let bad = text.replace("group_by", "groupby");
        assert!(
            parse_one(&bad)
                .unwrap_err()
                .to_string()
                .contains("siren.groupby")
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
            let _ = parse_one_all(&text);
        }

        #[test]
        fn rule_shaped_soup_never_panics(
            field in "[A-Za-z|]{0,30}",
            value in "[-*?\\\\a-z%/ ]{0,20}",
            cond in "[a-z0-9_*() ]{0,40}",
        ) {
            let text = format!(
                "title: t\nlogsource: {{product: windows}}\ndetection:\n  sel:\n    '{field}': '{value}'\n  condition: {cond}\n"
            );
            let _ = parse_one_all(&text);
        }
    }

    fn parse_one_all(text: &str) -> usize {
        let placeholders = HashMap::new();
        let cx = ParseContext {
            placeholders: &placeholders,
        };
        parse_file("t.yml", text, &cx).len()
    }
}
