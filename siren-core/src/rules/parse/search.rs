//! A `detection` section's search identifiers (maps of field items, lists of keywords)
//! compiled into a [`Detection`], with its condition.

use serde_yaml::{Mapping, Value as Yaml};

use super::detection::{Detection, Item, Search};
use super::document::{ParseContext, text};
use crate::rules::RuleError;
use crate::rules::condition::{self, Cond};
use crate::rules::value::{self, Scalar};

/// The most field items one rule may hold.
const MAX_ITEMS: usize = 20_000;

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
