//! The typed model of a processing pipeline, read from pySigma's YAML format.

use std::collections::HashMap;

use regex::Regex;
use serde_yaml::{Mapping, Value as Yaml};

use super::expr::Expr;

/// Why a pipeline file could not be used. The message names the file and, where it is one
/// item's fault, the transformation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The file could not be read.
    #[error("cannot read the pipeline {file}: {reason}")]
    Io {
        /// The file.
        file: String,
        /// The system's message.
        reason: String,
    },
    /// The file is not a valid pipeline.
    #[error("invalid pipeline {file}: {reason}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A transformation that only a query backend can carry out.
    #[error(
        "pipeline {file}: transformation {item} ('{kind}') cannot apply to a matching engine: {why}"
    )]
    NotApplicable {
        /// The file.
        file: String,
        /// The processing item (its `id`, or its position).
        item: String,
        /// The transformation's `type`.
        kind: String,
        /// Why.
        why: String,
    },
}

/// A processing pipeline: its name, priority, variables and processing items.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// `name`, or the file's name.
    pub name: String,
    /// `priority` (lower runs first; 0 when absent).
    pub priority: i64,
    /// `vars`: name → values.
    pub vars: HashMap<String, Vec<String>>,
    /// The file it came from.
    pub file: String,
    pub(crate) items: Vec<Item>,
}

/// One processing item: a transformation and the conditions under which it applies.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// `id`, if any (what `processing_item_applied` refers to).
    pub id: Option<String>,
    /// How it is named in errors.
    pub label: String,
    pub transformation: Transformation,
    pub rule: Conditions<RuleCond>,
    pub detection_item: Conditions<ItemCond>,
    pub field_name: Conditions<FieldCond>,
}

/// A list of conditions and how they combine.
#[derive(Debug, Clone)]
pub(crate) struct Conditions<C> {
    pub list: Vec<(String, C)>,
    pub link: Link,
    pub negate: bool,
}

impl<C> Conditions<C> {
    /// Whether they hold, `holds` telling for each condition; no conditions always hold.
    pub(crate) fn hold(&self, holds: impl Fn(&C) -> bool) -> bool {
        if self.list.is_empty() {
            return true;
        }
        let result = match &self.link {
            Link::All => self.list.iter().all(|(_, c)| holds(c)),
            Link::Any => self.list.iter().any(|(_, c)| holds(c)),
            Link::Expr(e) => e.eval(&|name| {
                self.list
                    .iter()
                    .find(|(n, _)| n == name)
                    .is_some_and(|(_, c)| holds(c))
            }),
        };
        result != self.negate
    }
}

/// How a list of conditions combines.
#[derive(Debug, Clone)]
pub(crate) enum Link {
    /// `and` (the default).
    All,
    /// `or`.
    Any,
    /// An expression over named conditions.
    Expr(Expr),
}

/// A transformation this engine can carry out.
#[derive(Debug, Clone)]
pub(crate) enum Transformation {
    /// Field name → one or several field names.
    FieldNameMapping(HashMap<String, Vec<String>>),
    /// Field name prefix → another prefix.
    FieldNamePrefixMapping(Vec<(String, String)>),
    /// A condition ANDed to the rule's.
    AddCondition {
        conditions: Vec<(String, Yaml)>,
        name: Option<String>,
        template: bool,
        negated: bool,
    },
    /// The rule's log source replaced.
    ChangeLogsource {
        product: Option<String>,
        category: Option<String>,
        service: Option<String>,
    },
    /// Detection items removed.
    DropDetectionItem,
    /// Strings rewritten by a regex.
    ReplaceString {
        regex: Regex,
        replacement: String,
        skip_special: bool,
        interpret_special: bool,
    },
    /// A processing state value set.
    SetState { key: String, val: Yaml },
    /// The rule refused.
    RuleFailure(String),
    /// The rule refused when a detection item meets the conditions.
    DetectionItemFailure(String),
}

/// A condition on the rule.
#[derive(Debug, Clone)]
pub(crate) enum RuleCond {
    Logsource {
        product: Option<String>,
        category: Option<String>,
        service: Option<String>,
    },
    Applied(String),
    State(StateCond),
    Tag(String),
    IsSigmaRule(bool),
    ContainsDetectionItem {
        field: Option<String>,
        value: Yaml,
    },
}

/// A condition on a detection item.
#[derive(Debug, Clone)]
pub(crate) enum ItemCond {
    MatchString {
        regex: Regex,
        all: bool,
        negate: bool,
    },
    IsNull {
        all: bool,
    },
    Applied(String),
    State(StateCond),
}

/// A condition on a field name.
#[derive(Debug, Clone)]
pub(crate) enum FieldCond {
    Include(FieldPatterns),
    Exclude(FieldPatterns),
    Applied(String),
    State(StateCond),
}

/// `include_fields` / `exclude_fields`: plain names or regexes.
#[derive(Debug, Clone)]
pub(crate) enum FieldPatterns {
    Plain(Vec<String>),
    Re(Vec<Regex>),
}

impl FieldPatterns {
    pub(crate) fn matches(&self, field: &str) -> bool {
        match self {
            FieldPatterns::Plain(names) => names.iter().any(|n| n == field),
            FieldPatterns::Re(res) => res
                .iter()
                .any(|r| r.find(field).is_some_and(|m| m.start() == 0)),
        }
    }
}

/// `processing_state`: a state key compared with a value.
#[derive(Debug, Clone)]
pub(crate) struct StateCond {
    pub key: String,
    pub val: Yaml,
    pub equal: bool,
}

/// Transformation types that only make sense to a backend building query text, and why.
const NOT_APPLICABLE: &[(&str, &str)] = &[
    (
        "field_name_suffix",
        "it marks fields for a query language (e.g. '.keyword')",
    ),
    ("field_name_prefix", "it marks fields for a query language"),
    ("field_name_transform", "it calls a Python function"),
    (
        "wildcard_placeholders",
        "it turns placeholders into query wildcards",
    ),
    (
        "value_placeholders",
        "use SIREN's expand placeholders (--placeholders) instead",
    ),
    ("query_expression_placeholders", "it writes query text"),
    (
        "file_placeholders",
        "it reads placeholder values for a backend",
    ),
    (
        "http_placeholders",
        "it fetches placeholder values over HTTP",
    ),
    ("command_placeholders", "it runs a command"),
    ("add_field", "it changes a query's output fields"),
    ("remove_field", "it changes a query's output fields"),
    ("set_field", "it changes a query's output fields"),
    ("set_custom_attribute", "it sets an attribute for a backend"),
    (
        "convert_type",
        "it changes value types for a query language",
    ),
    (
        "case",
        "it changes letter case for a case-sensitive query language",
    ),
    ("regex", "it turns values into regexes for a query language"),
    ("map_string", "not supported by SIREN yet"),
    ("set_value", "not supported by SIREN yet"),
    ("hashes_fields", "not supported by SIREN yet"),
    ("extract_fields", "it records fields for a backend"),
    (
        "strict_field_mapping_failure",
        "it checks a backend's field mapping",
    ),
    ("nest", "nested pipelines are not supported by SIREN yet"),
];

type Fail<'a> = Box<dyn Fn(String) -> PipelineError + 'a>;

impl Pipeline {
    /// Parses a pipeline from YAML; `file` names it in errors. A Hayabusa field-alias file
    /// (`rules/config/eventkey_alias.txt`: CSV lines `alias,event_key` under that header)
    /// is read as a pipeline too (see [`Pipeline::from_hayabusa_aliases`]).
    pub fn parse(file: &str, text: &str) -> Result<Pipeline, PipelineError> {
        if text
            .trim_start_matches('\u{feff}')
            .lines()
            .next()
            .is_some_and(|l| l.trim().eq_ignore_ascii_case("alias,event_key"))
        {
            return Self::from_hayabusa_aliases(file, text);
        }
        let file_owned = file.to_owned();
        let invalid: Fail<'_> = Box::new(move |reason| PipelineError::Invalid {
            file: file_owned.clone(),
            reason,
        });
        let doc: Yaml = serde_yaml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let Yaml::Mapping(map) = doc else {
            return Err(invalid("expected a mapping".into()));
        };
        for key in map.keys() {
            let key = key.as_str().unwrap_or("");
            if !matches!(
                key,
                "name"
                    | "priority"
                    | "vars"
                    | "transformations"
                    | "postprocessing"
                    | "finalizers"
                    | "allowed_backends"
            ) {
                return Err(invalid(format!("unknown key '{key}'")));
            }
        }
        for backend_only in ["postprocessing", "finalizers"] {
            if let Some(Yaml::Sequence(seq)) = map.get(backend_only)
                && let Some(first) = seq.first()
            {
                return Err(PipelineError::NotApplicable {
                    file: file.to_owned(),
                    item: format!("{backend_only}[0]"),
                    kind: first
                        .get("type")
                        .and_then(Yaml::as_str)
                        .unwrap_or(backend_only)
                        .to_owned(),
                    why: format!("'{backend_only}' rewrites a backend's query text"),
                });
            }
        }
        let name = match map.get("name") {
            Some(v) => text_of(v).ok_or_else(|| invalid("'name' must be a string".into()))?,
            None => file.to_owned(),
        };
        let priority = match map.get("priority") {
            None | Some(Yaml::Null) => 0,
            Some(v) => v
                .as_i64()
                .ok_or_else(|| invalid("'priority' must be an integer".into()))?,
        };
        let mut vars = HashMap::new();
        if let Some(v) = map.get("vars") {
            let Yaml::Mapping(m) = v else {
                return Err(invalid("'vars' must be a mapping".into()));
            };
            for (k, v) in m {
                let k = text_of(k).ok_or_else(|| invalid("'vars' keys are names".into()))?;
                vars.insert(
                    k,
                    texts(v).ok_or_else(|| invalid("'vars' values are strings".into()))?,
                );
            }
        }
        let mut items = Vec::new();
        match map.get("transformations") {
            None | Some(Yaml::Null) => {}
            Some(Yaml::Sequence(seq)) => {
                for (i, item) in seq.iter().enumerate() {
                    items.push(parse_item(file, i, item, &invalid)?);
                }
            }
            Some(_) => return Err(invalid("'transformations' must be a list".into())),
        }
        Ok(Pipeline {
            name,
            priority,
            vars,
            file: file.to_owned(),
            items,
        })
    }

    /// A Hayabusa field-alias file as one `field_name_mapping`: each alias (a field name
    /// Hayabusa's rules use, e.g. `RdsGtwErrorCode`) maps to the name SIREN gives the
    /// element its event key points to: attributes as `Element_Attribute`, and a data field
    /// named like one of `System`'s (`Channel`) by its dotted path. Aliases that are
    /// already that name change nothing.
    pub fn from_hayabusa_aliases(file: &str, text: &str) -> Result<Pipeline, PipelineError> {
        let mut fields = Vec::new();
        for (n, line) in text
            .trim_start_matches('\u{feff}')
            .lines()
            .enumerate()
            .skip(1)
        {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((alias, key)) = line.split_once(',') else {
                return Err(PipelineError::Invalid {
                    file: file.to_owned(),
                    reason: format!("line {}: expected 'alias,event_key'", n + 1),
                });
            };
            let (alias, key) = (alias.trim(), key.trim());
            let target = flattened_name(key);
            if !alias.is_empty() && !target.is_empty() && alias != target {
                fields.push((alias.to_owned(), target));
            }
        }
        Ok(Pipeline::renames(file, &fields))
    }

    /// Loads a pipeline file.
    pub fn load(path: &std::path::Path) -> Result<Pipeline, PipelineError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PipelineError::Io {
            file: file.clone(),
            reason: e.to_string(),
        })?;
        Self::parse(&file, &text)
    }

    /// How many processing items it has.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it has no processing items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Appends another pipeline's processing items.
    pub(crate) fn append(&mut self, other: Pipeline) {
        self.items.extend(other.items);
    }

    /// A pipeline of one `field_name_mapping` item (one-to-one renames), or none when
    /// there are no renames.
    pub(crate) fn renames(file: &str, fields: &[(String, String)]) -> Pipeline {
        if fields.is_empty() {
            return Pipeline {
                name: file.to_owned(),
                priority: 0,
                vars: HashMap::new(),
                file: file.to_owned(),
                items: Vec::new(),
            };
        }
        let mapping = fields
            .iter()
            .map(|(from, to)| (from.clone(), vec![to.clone()]))
            .collect();
        Pipeline {
            name: file.to_owned(),
            priority: 0,
            vars: HashMap::new(),
            file: file.to_owned(),
            items: vec![Item {
                id: None,
                label: "fields".into(),
                transformation: Transformation::FieldNameMapping(mapping),
                rule: Conditions::none(),
                detection_item: Conditions::none(),
                field_name: Conditions::none(),
            }],
        }
    }
}

impl<C> Conditions<C> {
    fn none() -> Self {
        Conditions {
            list: Vec::new(),
            link: Link::All,
            negate: false,
        }
    }
}

fn text_of(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn texts(v: &Yaml) -> Option<Vec<String>> {
    match v {
        Yaml::Sequence(seq) => seq.iter().map(text_of).collect(),
        v => text_of(v).map(|s| vec![s]),
    }
}

fn opt_text(m: &Mapping, key: &str, invalid: &Fail<'_>) -> Result<Option<String>, PipelineError> {
    match m.get(key) {
        None | Some(Yaml::Null) => Ok(None),
        Some(v) => text_of(v)
            .map(Some)
            .ok_or_else(|| invalid(format!("'{key}' must be a string"))),
    }
}

fn flag(m: &Mapping, key: &str, invalid: &Fail<'_>) -> Result<bool, PipelineError> {
    match m.get(key) {
        None | Some(Yaml::Null) => Ok(false),
        Some(Yaml::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid(format!("'{key}' must be true or false"))),
    }
}

fn compile(pattern: &str, what: &str, invalid: &Fail<'_>) -> Result<Regex, PipelineError> {
    Regex::new(pattern).map_err(|e| invalid(format!("{what}: invalid regex '{pattern}': {e}")))
}

const COMMON_KEYS: &[&str] = &[
    "id",
    "type",
    "rule_conditions",
    "rule_cond_op",
    "rule_cond_not",
    "rule_cond_expr",
    "detection_item_conditions",
    "detection_item_cond_op",
    "detection_item_cond_not",
    "detection_item_cond_expr",
    "field_name_conditions",
    "field_name_cond_op",
    "field_name_cond_not",
    "field_name_cond_expr",
];

fn parse_item(
    file: &str,
    index: usize,
    value: &Yaml,
    invalid: &Fail<'_>,
) -> Result<Item, PipelineError> {
    let Yaml::Mapping(m) = value else {
        return Err(invalid(format!(
            "transformations[{index}] must be a mapping"
        )));
    };
    let id = opt_text(m, "id", invalid)?;
    let label = match &id {
        Some(id) => format!("'{id}'"),
        None => format!("transformations[{index}]"),
    };
    let prefix = label.clone();
    let at: Fail<'_> = Box::new(move |reason: String| invalid(format!("{prefix}: {reason}")));
    let kind = opt_text(m, "type", &at)?.ok_or_else(|| at("missing 'type'".into()))?;
    if let Some((_, why)) = NOT_APPLICABLE.iter().find(|(k, _)| *k == kind) {
        return Err(PipelineError::NotApplicable {
            file: file.to_owned(),
            item: label,
            kind,
            why: (*why).to_owned(),
        });
    }
    let params: Vec<&str> = m
        .keys()
        .filter_map(Yaml::as_str)
        .filter(|k| !COMMON_KEYS.contains(k))
        .collect();
    let allowed: &[&str] = match kind.as_str() {
        "field_name_mapping" | "field_name_prefix_mapping" => &["mapping"],
        "add_condition" => &["conditions", "name", "template", "negated"],
        "change_logsource" => &["product", "category", "service"],
        "drop_detection_item" => &[],
        "replace_string" => &["regex", "replacement", "skip_special", "interpret_special"],
        "set_state" => &["key", "val"],
        "rule_failure" | "detection_item_failure" => &["message"],
        other => {
            return Err(PipelineError::NotApplicable {
                file: file.to_owned(),
                item: label,
                kind: other.to_owned(),
                why: "SIREN does not know this transformation".into(),
            });
        }
    };
    if let Some(extra) = params.iter().find(|p| !allowed.contains(p)) {
        return Err(at(format!("'{kind}' takes no parameter '{extra}'")));
    }
    let transformation = match kind.as_str() {
        "field_name_mapping" => {
            let Some(Yaml::Mapping(mapping)) = m.get("mapping") else {
                return Err(at("'mapping' must be a mapping".into()));
            };
            let mut out = HashMap::new();
            for (k, v) in mapping {
                let k = text_of(k).ok_or_else(|| at("field names are strings".into()))?;
                let v = texts(v).ok_or_else(|| at(format!("'{k}': field names are strings")))?;
                if v.is_empty() {
                    return Err(at(format!("'{k}' maps to no field")));
                }
                out.insert(k, v);
            }
            Transformation::FieldNameMapping(out)
        }
        "field_name_prefix_mapping" => {
            let Some(Yaml::Mapping(mapping)) = m.get("mapping") else {
                return Err(at("'mapping' must be a mapping".into()));
            };
            let mut out = Vec::new();
            for (k, v) in mapping {
                match (text_of(k), text_of(v)) {
                    (Some(k), Some(v)) => out.push((k, v)),
                    _ => return Err(at("'mapping' maps a prefix to one prefix".into())),
                }
            }
            Transformation::FieldNamePrefixMapping(out)
        }
        "add_condition" => {
            let Some(Yaml::Mapping(conds)) = m.get("conditions") else {
                return Err(at(
                    "'conditions' must be a mapping of fields to values".into()
                ));
            };
            let mut conditions = Vec::new();
            for (k, v) in conds {
                let k = text_of(k).ok_or_else(|| at("condition fields are strings".into()))?;
                conditions.push((k, v.clone()));
            }
            Transformation::AddCondition {
                conditions,
                name: opt_text(m, "name", &at)?,
                template: flag(m, "template", &at)?,
                negated: flag(m, "negated", &at)?,
            }
        }
        "change_logsource" => Transformation::ChangeLogsource {
            product: opt_text(m, "product", &at)?,
            category: opt_text(m, "category", &at)?,
            service: opt_text(m, "service", &at)?,
        },
        "drop_detection_item" => Transformation::DropDetectionItem,
        "replace_string" => {
            let pattern = opt_text(m, "regex", &at)?.ok_or_else(|| at("missing 'regex'".into()))?;
            let replacement = opt_text(m, "replacement", &at)?.unwrap_or_default();
            Transformation::ReplaceString {
                regex: compile(&pattern, "'regex'", &at)?,
                replacement: python_replacement(&replacement),
                skip_special: flag(m, "skip_special", &at)?,
                interpret_special: flag(m, "interpret_special", &at)?,
            }
        }
        "set_state" => Transformation::SetState {
            key: opt_text(m, "key", &at)?.ok_or_else(|| at("missing 'key'".into()))?,
            val: m.get("val").cloned().unwrap_or(Yaml::Null),
        },
        "rule_failure" => Transformation::RuleFailure(
            opt_text(m, "message", &at)?.unwrap_or_else(|| "rule_failure".into()),
        ),
        _ => Transformation::DetectionItemFailure(
            opt_text(m, "message", &at)?.unwrap_or_else(|| "detection_item_failure".into()),
        ),
    };
    Ok(Item {
        id,
        label: label.clone(),
        transformation,
        rule: conditions(m, "rule", &at, rule_cond)?,
        detection_item: conditions(m, "detection_item", &at, item_cond)?,
        field_name: conditions(m, "field_name", &at, field_cond)?,
    })
}

type CondParser<C> = for<'a> fn(&str, &Mapping, &Fail<'a>) -> Result<C, PipelineError>;

fn conditions<C>(
    m: &Mapping,
    prefix: &str,
    at: &Fail<'_>,
    parse: CondParser<C>,
) -> Result<Conditions<C>, PipelineError> {
    let mut list = Vec::new();
    match m.get(format!("{prefix}_conditions").as_str()) {
        None | Some(Yaml::Null) => {}
        Some(Yaml::Sequence(seq)) => {
            for (i, c) in seq.iter().enumerate() {
                list.push((i.to_string(), one_cond(prefix, c, at, parse)?));
            }
        }
        Some(Yaml::Mapping(named)) => {
            for (name, c) in named {
                let name = text_of(name).ok_or_else(|| at("condition names are strings".into()))?;
                list.push((name, one_cond(prefix, c, at, parse)?));
            }
        }
        Some(_) => {
            return Err(at(format!(
                "'{prefix}_conditions' must be a list or a mapping"
            )));
        }
    }
    let link = match (
        opt_text(m, &format!("{prefix}_cond_expr"), at)?,
        opt_text(m, &format!("{prefix}_cond_op"), at)?,
    ) {
        (Some(expr), _) => {
            let names: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
            Link::Expr(
                Expr::parse(&expr, &names).map_err(|e| at(format!("{prefix}_cond_expr: {e}")))?,
            )
        }
        (None, None) => Link::All,
        (None, Some(op)) if op.eq_ignore_ascii_case("and") => Link::All,
        (None, Some(op)) if op.eq_ignore_ascii_case("or") => Link::Any,
        (None, Some(op)) => {
            return Err(at(format!(
                "{prefix}_cond_op must be 'and' or 'or', not '{op}'"
            )));
        }
    };
    Ok(Conditions {
        list,
        link,
        negate: flag(m, &format!("{prefix}_cond_not"), at)?,
    })
}

fn one_cond<C>(
    prefix: &str,
    c: &Yaml,
    at: &Fail<'_>,
    parse: CondParser<C>,
) -> Result<C, PipelineError> {
    let Yaml::Mapping(c) = c else {
        return Err(at(format!("{prefix} conditions are mappings")));
    };
    let kind = opt_text(c, "type", at)?
        .ok_or_else(|| at(format!("a {prefix} condition has no 'type'")))?;
    parse(&kind, c, at)
}

fn state_cond(c: &Mapping, at: &Fail<'_>) -> Result<StateCond, PipelineError> {
    let op = opt_text(c, "op", at)?.unwrap_or_else(|| "eq".into());
    let equal = match op.as_str() {
        "eq" => true,
        "ne" => false,
        other => {
            return Err(at(format!(
                "processing_state: op '{other}' is not supported (eq, ne)"
            )));
        }
    };
    Ok(StateCond {
        key: opt_text(c, "key", at)?.ok_or_else(|| at("processing_state needs 'key'".into()))?,
        val: c.get("val").cloned().unwrap_or(Yaml::Null),
        equal,
    })
}

fn applied(c: &Mapping, at: &Fail<'_>) -> Result<String, PipelineError> {
    opt_text(c, "processing_item_id", at)?
        .ok_or_else(|| at("processing_item_applied needs 'processing_item_id'".into()))
}

fn rule_cond(kind: &str, c: &Mapping, at: &Fail<'_>) -> Result<RuleCond, PipelineError> {
    Ok(match kind {
        "logsource" => RuleCond::Logsource {
            product: opt_text(c, "product", at)?,
            category: opt_text(c, "category", at)?,
            service: opt_text(c, "service", at)?,
        },
        "processing_item_applied" => RuleCond::Applied(applied(c, at)?),
        "processing_state" => RuleCond::State(state_cond(c, at)?),
        "tag" => {
            RuleCond::Tag(opt_text(c, "tag", at)?.ok_or_else(|| at("tag needs 'tag'".into()))?)
        }
        "is_sigma_rule" => RuleCond::IsSigmaRule(true),
        "is_sigma_correlation_rule" => RuleCond::IsSigmaRule(false),
        "contains_detection_item" => RuleCond::ContainsDetectionItem {
            field: opt_text(c, "field", at)?,
            value: c.get("value").cloned().unwrap_or(Yaml::Null),
        },
        other => return Err(at(format!("rule condition '{other}' is not supported"))),
    })
}

fn any_all(c: &Mapping, at: &Fail<'_>) -> Result<bool, PipelineError> {
    match opt_text(c, "cond", at)?.as_deref() {
        None | Some("any") => Ok(false),
        Some("all") => Ok(true),
        Some(other) => Err(at(format!("'cond' must be 'any' or 'all', not '{other}'"))),
    }
}

fn item_cond(kind: &str, c: &Mapping, at: &Fail<'_>) -> Result<ItemCond, PipelineError> {
    Ok(match kind {
        "match_string" => {
            let pattern = opt_text(c, "pattern", at)?
                .ok_or_else(|| at("match_string needs 'pattern'".into()))?;
            ItemCond::MatchString {
                regex: compile(&pattern, "match_string", at)?,
                all: any_all(c, at)?,
                negate: flag(c, "negate", at)?,
            }
        }
        "is_null" => ItemCond::IsNull {
            all: any_all(c, at)?,
        },
        "processing_item_applied" => ItemCond::Applied(applied(c, at)?),
        "processing_state" => ItemCond::State(state_cond(c, at)?),
        other => {
            return Err(at(format!(
                "detection item condition '{other}' is not supported"
            )));
        }
    })
}

fn field_patterns(c: &Mapping, at: &Fail<'_>) -> Result<FieldPatterns, PipelineError> {
    let fields = c
        .get("fields")
        .and_then(texts)
        .ok_or_else(|| at("include_fields / exclude_fields need 'fields'".into()))?;
    match opt_text(c, "mode", at)?.as_deref() {
        None | Some("plain") => Ok(FieldPatterns::Plain(fields)),
        Some("re") => Ok(FieldPatterns::Re(
            fields
                .iter()
                .map(|f| compile(f, "field pattern", at))
                .collect::<Result<_, _>>()?,
        )),
        Some(other) => Err(at(format!("field matching mode '{other}' (plain or re)"))),
    }
}

fn field_cond(kind: &str, c: &Mapping, at: &Fail<'_>) -> Result<FieldCond, PipelineError> {
    Ok(match kind {
        "include_fields" => FieldCond::Include(field_patterns(c, at)?),
        "exclude_fields" => FieldCond::Exclude(field_patterns(c, at)?),
        "processing_item_applied" => FieldCond::Applied(applied(c, at)?),
        "processing_state" => FieldCond::State(state_cond(c, at)?),
        other => {
            return Err(at(format!(
                "field name condition '{other}' is not supported"
            )));
        }
    })
}

/// Python's `re.sub` replacement syntax (`\1`, `\g<1>`, `\g<name>`, `\\`) in the `regex`
/// crate's (`${1}`, `${name}`, `$$`).
fn python_replacement(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.peek().copied() {
                Some(d) if d.is_ascii_digit() => {
                    let mut n = String::new();
                    while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                        n.push(d);
                        chars.next();
                    }
                    out.push_str(&format!("${{{n}}}"));
                }
                Some('g') => {
                    chars.next();
                    if chars.peek() == Some(&'<') {
                        chars.next();
                        let name: String = chars.by_ref().take_while(|&c| c != '>').collect();
                        out.push_str(&format!("${{{name}}}"));
                    } else {
                        out.push_str("\\g");
                    }
                }
                Some('\\') => {
                    chars.next();
                    out.push('\\');
                }
                Some('n') => {
                    chars.next();
                    out.push('\n');
                }
                Some('t') => {
                    chars.next();
                    out.push('\t');
                }
                _ => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

/// The names of the fields flattening gives a Windows event's `System` element: a data
/// field of the same name is kept under its dotted path instead.
const SYSTEM_NAMES: &[&str] = &[
    "Provider_Name",
    "Provider_Guid",
    "Provider_EventSourceName",
    "EventID",
    "EventID_Qualifiers",
    "Version",
    "Level",
    "Task",
    "Opcode",
    "Keywords",
    "TimeCreated",
    "EventRecordID",
    "Correlation_ActivityID",
    "Correlation_RelatedActivityID",
    "Execution_ProcessID",
    "Execution_ThreadID",
    "Channel",
    "Computer",
    "Security_UserID",
];

/// The name SIREN's flattening gives the value at a Hayabusa event key
/// (`Event.EventData.CommandLine`, with attributes as `Element_attributes.Name`):
/// - a leaf keeps its own name (`CommandLine`); an attribute is `Element_Attribute`
///   (`Event.System.Provider_attributes.Name` → `Provider_Name`), and `System`'s
///   `TimeCreated_attributes.SystemTime` is `TimeCreated`;
/// - outside `System`, a name `System` already gives keeps its dotted path, as flattening
///   does when a name is taken (`Event.UserData.LogFileCleared.Channel` →
///   `UserData.LogFileCleared.Channel`, since `Channel` is the event's own channel).
///
/// A key not under `Event` is named by its last segment.
pub(crate) fn flattened_name(key: &str) -> String {
    let Some(path) = key.strip_prefix("Event.") else {
        return key.rsplit('.').next().unwrap_or(key).to_owned();
    };
    let segments: Vec<&str> = path.split('.').collect();
    let in_system = segments.first() == Some(&"System");
    let (name, dotted) = match segments.as_slice() {
        [.., element, attribute] if element.ends_with("_attributes") => {
            let element = element.trim_end_matches("_attributes");
            let name = if in_system && element == "TimeCreated" && *attribute == "SystemTime" {
                "TimeCreated".to_owned()
            } else {
                format!("{element}_{attribute}")
            };
            let mut dotted = segments[..segments.len() - 2].to_vec();
            dotted.extend([element, attribute]);
            (name, dotted.join("."))
        }
        [.., last] => ((*last).to_owned(), path.to_owned()),
        [] => (String::new(), String::new()),
    };
    if !in_system && SYSTEM_NAMES.contains(&name.as_str()) {
        dotted
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::python_replacement;

    #[test]
    fn python_replacements_translate() {
        assert_eq!(python_replacement(r"\1-\g<name>$"), "${1}-${name}$$");
        assert_eq!(python_replacement(r"\\device\\"), r"\device\");
        assert_eq!(python_replacement(r"\device"), r"\device");
    }
}
