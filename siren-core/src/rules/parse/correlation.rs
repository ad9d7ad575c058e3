//! A correlation rule's `correlation:` section: type, referenced rules, `group-by`, timespan,
//! condition, `generate` and aliases, validated.

use std::time::Duration;

use serde_yaml::Value as Yaml;

use super::document::{opt_text, text, text_list};
use crate::rules::RuleError;
use crate::rules::model::{CompareOp, Correlation, CorrelationCondition, CorrelationType};

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

pub(super) fn parse_correlation(value: &Yaml) -> Result<Correlation, RuleError> {
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
